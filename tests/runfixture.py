"""A small synthetic finished run (GeoPackage with styles and metadata), written by the tests."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry import MultiPolygon, Point, box

from urbanunits.export import layer_styles, write_layers

CRS = "EPSG:32651"
X0, Y0 = 360_000.0, 3_300_000.0


def _sq(i: int, size: float = 100.0) -> object:
    return box(X0 + i * size, Y0, X0 + (i + 1) * size, Y0 + size)


def run_layers(n_units: int = 3) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Layers shaped like the pipeline's: mixed single/multi polygons, points, a plain table."""
    units_geom = [_sq(i) for i in range(n_units)]
    # one unit in two parts, so the layer mixes Polygon and MultiPolygon
    units_geom[0] = MultiPolygon([_sq(0, 40.0), box(X0 + 60, Y0 + 60, X0 + 100, Y0 + 100)])
    units = gpd.GeoDataFrame({
        "unit_id": [f"U{i + 1:02d}" for i in range(n_units)],
        "unit_class": ["old_community_renewal", "commercial_mixed", "green_open_space",
                       "residential_upgrading"][:n_units] + ["general_renewal"] * (n_units - 4),
        "class_label": ["老旧小区改造 Old-community renewal"] * n_units,
        "subdistrict": ["月湖街道"] * n_units,
        "area_m2": [10_000.0 + i for i in range(n_units)],
        "n_old_communities": list(range(n_units)),
    }, geometry=units_geom, crs=CRS)
    comm = gpd.GeoDataFrame({
        "community_id": ["C1", "C2"], "name": ["兰园小区", "菊园新村"],
        "is_old": [True, False], "built_year": [1995, 2008],
        "floor_area_m2": [52_000.5, 31_000.0], "households": [610, 388],
    }, geometry=[MultiPolygon([box(X0 + 10, Y0 + 10, X0 + 30, Y0 + 30)]),
                 MultiPolygon([box(X0 + 110, Y0 + 10, X0 + 150, Y0 + 50)])], crs=CRS)
    lc = gpd.GeoDataFrame({
        "community_id": ["C1", "C2"], "name": ["兰园小区", "菊园新村"], "population": [1500, 900],
        "clinic_ok": [True, False], "clinic_dist_m": [420.0, 1730.5], "n_missing": [0, 3],
        "all_ok": [True, False],
    }, geometry=comm.geometry.copy(), crs=CRS)
    packages = gpd.GeoDataFrame({
        "package_id": ["P1"], "member_names": ["兰园小区;菊园新村"], "n_communities": [2],
        "floor_area_m2": [83_000.5], "households": [998],
    }, geometry=[box(X0, Y0, X0 + 160, Y0 + 60)], crs=CRS)
    fac = gpd.GeoDataFrame({
        "facility_id": ["F1", "F2", "F3"], "category": ["clinic", "childcare", "commerce"],
        "subtype": ["health_station", "kindergarten", "market"],
        "name": ["社区卫生服务站", "菊园幼儿园", "菜市场"],
    }, geometry=[Point(X0 + 50, Y0 + 50), Point(X0 + 150, Y0 + 80), Point(X0 + 220, Y0 + 20)],
        crs=CRS)
    gaps = gpd.GeoDataFrame({
        # no unique id: the published table gets a generated fid key
        "community_id": ["C2", "C2"], "category": ["clinic", "clinic"],
        "subtype": ["health_station", "health_centre"], "shortfall_m": [1230.5, 80.0],
    }, geometry=[box(X0 + 100, Y0, X0 + 200, Y0 + 100)] * 2, crs=CRS)
    summary = pd.DataFrame({"category": ["clinic", "childcare"], "n_ok": [1, 2],
                            "share_ok": [0.5, 1.0]})
    # an empty layer, as a run without links between communities has
    links = gpd.GeoDataFrame({"from_id": pd.Series(dtype=str), "to_id": pd.Series(dtype=str),
                              "distance_m": pd.Series(dtype=float)},
                             geometry=gpd.GeoSeries([], crs=CRS), crs=CRS)
    return {"update_units": units, "communities": comm, "renewal_packages": packages,
            "package_links": links, "lifecircle": lc, "facilities": fac, "service_gaps": gaps,
            "lifecircle_summary": summary}


def write_run(path: Path, n_units: int = 3, *, run_name: str = "testrun") -> Path:
    """Write the synthetic run to a GeoPackage as the pipeline does."""
    layers = run_layers(n_units)
    meta = pd.DataFrame({"key": ["toolkit", "run_name", "crs", "n_units"],
                         "value": ["urbanunits", run_name, CRS, str(n_units)]})
    return write_layers(path, layers, styles=layer_styles(layers), metadata=meta)
