"""CRS guard, GCJ-02/BD-09 conversions and atomic writes."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanunits.crs import (
    bd09_to_gcj02,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    require_projected,
    to_wgs84,
    wgs84_to_gcj02,
)
from urbanunits.errors import CRSError
from urbanunits.export import atomic_path, list_layers, read_layer, write_layers


def test_require_projected() -> None:
    g = gpd.GeoDataFrame(geometry=[shapely.Point(121.5, 31.2)], crs="EPSG:4326")
    with pytest.raises(CRSError, match="degrees"):
        require_projected(g, "f")
    with pytest.raises(CRSError, match="no CRS"):
        require_projected(gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]), "f")
    require_projected(g.to_crs("EPSG:32651"), "f")


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    r = 6371008.8
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return float(2 * r * np.arcsin(np.sqrt(a)))


def test_gcj02_published_vector() -> None:
    # Test vector used by the eviltransform / coordtransform projects (Beijing, Tiananmen area):
    # WGS84 (116.3911, 39.9072) -> GCJ-02 approximately (116.39734, 39.90860).
    lon, lat = wgs84_to_gcj02(116.3911, 39.9072)
    assert float(lon) == pytest.approx(116.397340, abs=2e-5)
    assert float(lat) == pytest.approx(39.908600, abs=2e-5)


def test_gcj02_offset_in_ningbo_is_a_few_hundred_metres() -> None:
    lon, lat = 121.55, 29.87
    glon, glat = wgs84_to_gcj02(lon, lat)
    d = haversine_m(lon, lat, float(glon), float(glat))
    assert 300 < d < 700  # the known GCJ-02 shift in east China is ~500 m
    assert float(glon) > lon  # shifted east-north-east there
    assert float(glat) < lat + 0.01


@settings(max_examples=60, deadline=None)
@given(st.floats(73.0, 134.0), st.floats(18.0, 53.0))
def test_round_trips_within_a_metre(lon: float, lat: float) -> None:
    wlon, wlat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert haversine_m(lon, lat, float(wlon), float(wlat)) < 1.0
    blon, blat = gcj02_to_bd09(lon, lat)
    glon, glat = bd09_to_gcj02(blon, blat)
    assert haversine_m(lon, lat, float(glon), float(glat)) < 1.0
    wlon, wlat = to_wgs84(*gcj02_to_bd09(*wgs84_to_gcj02(lon, lat)), "bd09")
    assert haversine_m(lon, lat, float(wlon), float(wlat)) < 1.0


def test_outside_china_unchanged_and_unknown_system() -> None:
    lon, lat = wgs84_to_gcj02(2.35, 48.85)
    assert (float(lon), float(lat)) == (2.35, 48.85)
    with pytest.raises(CRSError, match="coord_system"):
        to_wgs84([1.0], [2.0], "baidu")


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_layers_round_trip_and_replace(tmp_path: Path) -> None:
    gpkg = tmp_path / "run.gpkg"
    a = gpd.GeoDataFrame({"name": ["东园一村", "崂山三村"], "n": [1, 2]},
                         geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
                         crs="EPSG:32651")
    b = gpd.GeoDataFrame({"k": [1.5]}, geometry=[shapely.Point(0, 0)], crs="EPSG:32651")
    write_layers(gpkg, {"a": a, "b": b})
    write_layers(gpkg, {"b": b.iloc[0:0]})  # replace one layer, keep the other
    assert sorted(list_layers(gpkg)) == ["a", "b"]
    back = read_layer(gpkg, "a")
    assert list(back["name"]) == ["东园一村", "崂山三村"]
    assert back.crs == "EPSG:32651"
    assert len(read_layer(gpkg, "b")) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.gpkg"]


def test_styles_metadata_and_tables(tmp_path: Path, demo_cfg) -> None:  # type: ignore[no-untyped-def]
    import xml.etree.ElementTree as ET

    import openpyxl
    import pyogrio

    from urbanunits import _qml
    from urbanunits.export import run_metadata, write_tables

    gpkg = tmp_path / "run.gpkg"
    a = gpd.GeoDataFrame({"cls": ["x", "y"], "name": ["东园一村", "汤臣一品"]},
                         geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
                         crs="EPSG:32651")
    qml_a = _qml.categorized("fill", "cls", {"x": ("#ff0000", "X 类"), "y": ("#00ff00", "Y")},
                             label_field="name")
    write_layers(gpkg, {"a": a, "b": a}, styles={"a": qml_a, "b": _qml.single("fill", "#123456")},
                 metadata=run_metadata(demo_cfg, inputs={"osm": demo_cfg.inputs.osm}))
    # Restyling one layer keeps the other's row.
    write_layers(gpkg, {"a": a}, styles={"a": _qml.graduated("fill", "n", [(0, 1, "#ffffff", "0–1")])})
    styles = pyogrio.read_dataframe(gpkg, layer="layer_styles", read_geometry=False)
    assert sorted(styles["f_table_name"]) == ["a", "b"]
    assert styles["useAsDefault"].all()
    for qml in styles["styleQML"]:
        root = ET.fromstring(qml.split("\n", 1)[1])
        assert root.tag == "qgis"
        assert root.find("renderer-v2") is not None
    meta = dict(pyogrio.read_dataframe(gpkg, layer="run_metadata", read_geometry=False)
                .itertuples(index=False, name=None))
    assert "OpenStreetMap contributors" in meta["attribution"]
    assert len(meta["sha256:osm"]) == 64
    assert 'name = "lujiazui"' in meta["config_toml"]

    files = write_tables(tmp_path / "tables", {"units": a, "communities": a.drop(columns="cls")})
    csv = tmp_path / "tables" / "units.csv"
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")
    assert "东园一村" in csv.read_text(encoding="utf-8-sig")
    assert "geometry" not in csv.read_text(encoding="utf-8-sig")
    wb = openpyxl.load_workbook(tmp_path / "tables" / "tables.xlsx")
    assert wb.sheetnames == ["units", "communities", "数据字典 Dictionary", "说明 About"]
    assert wb["units"]["B2"].value == "东园一村"
    assert len(files) == 3


def _central_meridian(epsg: int) -> float:
    import pyproj

    op = pyproj.CRS.from_epsg(epsg).coordinate_operation
    return float(next(p.value for p in op.params if "natural origin" in p.name
                      and "Longitude" in p.name))


@pytest.mark.parametrize(("lon", "lat"), [
    (24.94, 60.17), (118.78, 32.06), (121.55, 29.87), (116.4, 39.9), (-74.0, 40.7),
    (151.2, -33.9), (-43.2, -22.9), (2.35, 48.86), (179.9, 0.5), (-179.9, -0.5), (87.6, 43.8)])
def test_suggested_zones_are_centred_on_the_point(lon: float, lat: float) -> None:
    """Oracle: the EPSG database's own central meridian and hemisphere of each suggested CRS."""
    import pyproj

    from urbanunits.crs import gk_cm_epsg, utm_epsg

    utm = utm_epsg(lon, lat)
    assert abs(_central_meridian(utm) - lon) <= 3.0
    assert pyproj.CRS.from_epsg(utm).name.endswith("N" if lat >= 0 else "S")
    gk = gk_cm_epsg(lon, lat)
    in_china = 73 < lon < 135 and 18 < lat < 54
    assert (gk is not None) == in_china
    if gk is not None:
        cm = _central_meridian(gk)
        assert abs(cm - lon) <= 1.5
        assert pyproj.CRS.from_epsg(gk).name == f"CGCS2000 / 3-degree Gauss-Kruger CM {cm:.0f}E"


def test_crs_advice_names_the_local_zones() -> None:
    from urbanunits.crs import suggest_crs

    assert suggest_crs(24.94, 60.17) == "EPSG:32635 (UTM zone 35N)"  # Helsinki
    nanjing = suggest_crs(118.78, 32.06)
    assert "EPSG:32650" in nanjing and "EPSG:4549" in nanjing and "CM 120E" in nanjing
    assert "EPSG:4548" in suggest_crs(118.3, 32.0)  # west of 118.5°E: CM 117E


def test_swapped_lonlat() -> None:
    from urbanunits.crs import swapped_hint, swapped_lonlat

    lon = np.array([121.5, 31.2, np.nan, 24.9, 60.2, 200.0])
    lat = np.array([31.2, 121.5, 31.2, 60.2, 24.9, 31.0])
    # Without a box only rows that are no coordinate as given (lat 121.5) but are one swapped.
    assert swapped_lonlat(lon, lat).tolist() == [False, True, False, False, False, False]
    # With a box (Helsinki), a row that lands in Russia as given but inside the box swapped.
    helsinki = (24.5, 60.0, 25.5, 60.5)
    assert swapped_lonlat(lon, lat, bbox_ll=helsinki).tolist() == [
        False, True, False, False, True, False]
    assert swapped_hint(swapped_lonlat(lon, lat, bbox_ll=helsinki)) == (
        "lon/lat swapped in 2 row(s)?")
    assert swapped_hint(np.zeros(3, dtype=bool)) == ""


def test_require_projected_suggests_the_local_utm_zone() -> None:
    g = gpd.GeoDataFrame(geometry=[shapely.Point(24.94, 60.17)], crs="EPSG:4326")
    with pytest.raises(CRSError, match="EPSG:32635"):
        require_projected(g, "f")
