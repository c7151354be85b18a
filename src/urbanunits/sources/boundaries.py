"""Polygon inputs: study-area and sub-district (街道) boundary files."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from urbanunits.errors import CRSError, DataError, InputFileError

__all__ = ["read_polygons", "read_subdistricts"]

logger = logging.getLogger(__name__)


def read_polygons(path: str | Path, *, crs: str, what: str, layer: str | None = None
                  ) -> gpd.GeoDataFrame:
    """Read a polygon file (GeoPackage, GeoJSON, Shapefile...) into the metric CRS.

    Invalid polygons are repaired with ``make_valid`` and counted in the log; empty geometries
    are dropped. A file without a CRS is an error (guessing would silently shift everything).

    Parameters
    ----------
    path
        The file.
    crs
        Target metric CRS.
    what
        What the file is for, used in messages (e.g. ``"sub-district boundaries"``).
    layer
        Layer to read (default: the first).

    Returns
    -------
    geopandas.GeoDataFrame
        Polygons in ``crs``.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"{what} file not found",
                             "check the path in the config or put the file there")
    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(path, f"could not read {what} ({first})",
                             "use a valid GeoPackage, GeoJSON or Shapefile") from exc
    if gdf.crs is None:
        raise CRSError(path, f"{what} have no CRS",
                       "save the file with its CRS (e.g. EPSG:4326 or EPSG:4490) set")
    if gdf.empty:
        raise DataError(path, f"{what} file has no features", "use a file with polygons")
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].copy()
    poly = gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    if not poly.all():
        bad = sorted(set(gdf.geometry.geom_type[~poly]))
        raise DataError(path, f"{what} must be polygons, found {', '.join(bad)}",
                        "export polygons (not lines or points)")
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        logger.warning("%s: repaired %d invalid polygon(s) in %s", path, int(invalid.sum()), what)
        fixed = shapely.make_valid(gdf.geometry.values[invalid.values])
        gdf.loc[invalid, "geometry"] = [_polygon_parts(g) for g in fixed]
        gdf = gdf[~gdf.geometry.is_empty]
    if gdf.crs != crs:
        gdf = gdf.to_crs(crs)
    return gdf.reset_index(drop=True)


def _polygon_parts(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep the polygonal parts of a repaired geometry (make_valid may add lines or points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def read_subdistricts(path: str | Path, *, crs: str, name_field: str = "name"
                      ) -> gpd.GeoDataFrame:
    """Read sub-district (街道) polygons: columns ``subdistrict`` and geometry, metric CRS.

    Parameters
    ----------
    path
        Boundary file.
    crs
        Target metric CRS.
    name_field
        Column holding the sub-district name.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per sub-district (parts of the same name dissolved).
    """
    gdf = read_polygons(path, crs=crs, what="sub-district boundaries")
    if name_field not in gdf.columns:
        cols = ", ".join(c for c in gdf.columns if c != "geometry")
        raise DataError(f"{path}: column {name_field!r}", "not found",
                        f"set inputs.subdistrict_name_field to one of: {cols}")
    out = gdf[[name_field, "geometry"]].rename(columns={name_field: "subdistrict"})
    out["subdistrict"] = out["subdistrict"].astype(str)
    out = out.dissolve(by="subdistrict", as_index=False)
    return out.sort_values("subdistrict").reset_index(drop=True)


def list_layers(path: Path) -> list[str]:
    """Layer names of a vector file (empty if unreadable)."""
    try:
        return [str(r[0]) for r in pyogrio.list_layers(path)]
    except (DataSourceError, OSError):
        return []
