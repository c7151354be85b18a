"""Designated conservation areas from a user file (``inputs.heritage_areas``).

Historic-district plans (历史文化街区, 历史风貌区) and the protection zones of listed monuments are
rarely mapped in OpenStreetMap. A planner who has them as polygons (GeoPackage, GeoJSON,
Shapefile... any file GDAL reads, with its CRS set) gives them here; the units stage then treats
them like OSM's designated areas when it measures each unit's ``historic_share``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd

from urbanunits.sources.boundaries import read_polygons

__all__ = ["read_heritage_areas"]

logger = logging.getLogger(__name__)


def read_heritage_areas(path: str | Path, *, crs: str) -> gpd.GeoDataFrame:
    """Read designated conservation areas into the metric CRS.

    Parameters
    ----------
    path
        Polygon file. Attributes are ignored except ``name``, kept when present.
    crs
        Target metric CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        ``name`` (None when the file has none), ``historic`` (``"heritage_area"``),
        ``designated`` (True) and geometry in ``crs``.

    Raises
    ------
    InputFileError
        The file is missing or unreadable.
    CRSError
        The file has no CRS.
    DataError
        The file is empty or holds other than polygons.
    """
    gdf = read_polygons(path, crs=crs, what="heritage areas")
    names = gdf["name"].astype(object) if "name" in gdf.columns else [None] * len(gdf)
    out = gpd.GeoDataFrame({"name": names, "historic": "heritage_area", "designated": True},
                           geometry=gdf.geometry.values, crs=gdf.crs)
    logger.info("%s: %d heritage area(s), %.1f ha", path, len(out), out.area.sum() / 1e4)
    return out
