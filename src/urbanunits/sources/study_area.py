"""The study area as a polygon in the run's metric CRS, from its bbox or boundary file.

Every reader needs it (the OSM ingest, clip and fetch extents, the coverage check), so it stands
alone rather than inside the OSM reader that some of them would otherwise import in a circle.
"""

from __future__ import annotations

import geopandas as gpd
import shapely
from shapely.geometry.base import BaseGeometry

from urbanunits.config import Config
from urbanunits.crs import check_distortion, check_extent
from urbanunits.errors import DataError
from urbanunits.sources.boundaries import read_polygons

__all__ = ["study_area_polygon"]

WGS84 = "EPSG:4326"


def study_area_polygon(cfg: Config) -> gpd.GeoDataFrame:
    """Return the study area as a one-row GeoDataFrame in the config's metric CRS.

    Parameters
    ----------
    cfg
        The run configuration (``study_area.boundary`` wins over ``study_area.bbox``).

    Returns
    -------
    geopandas.GeoDataFrame
        Column ``name`` and a (Multi)Polygon geometry.
    """
    crs = cfg.study_area.crs
    if cfg.study_area.boundary is not None:
        gdf = read_polygons(cfg.study_area.boundary, crs=crs, what="study-area boundary")
        geom = shapely.union_all(gdf.geometry.values)
    else:
        assert cfg.study_area.bbox is not None  # checked in config
        box = shapely.box(*cfg.study_area.bbox)
        geom = gpd.GeoSeries([box], crs=WGS84).to_crs(crs).iloc[0]
        # Densify so that the projected bbox edges follow the true meridians/parallels.
        geom = gpd.GeoSeries([shapely.segmentize(box, 0.0005)], crs=WGS84).to_crs(crs).iloc[0]
    src = cfg.source or cfg.name
    _check_distortion(geom, crs, where=f"{src}: study_area.crs",
                      extent_where=(f"{src}: study_area.bbox" if cfg.study_area.boundary is None
                                    else str(cfg.study_area.boundary)))
    return gpd.GeoDataFrame({"name": [cfg.title or cfg.name]}, geometry=[geom], crs=crs)


def _check_distortion(geom: BaseGeometry, crs: str, *, where: str, extent_where: str) -> None:
    """Refuse a study area too large for one zone, then a CRS that misstates areas there.

    The size comes first: a country-sized area is the problem, whatever CRS it would be blamed
    on. ``where`` names the CRS key, ``extent_where`` the bbox key or boundary file.
    """
    ll = gpd.GeoSeries([geom], crs=crs).to_crs(WGS84)
    x0, y0, x1, y1 = (float(v) for v in ll.total_bounds)
    check_extent((x0, y0, x1, y1), where=extent_where, error=DataError)
    c = gpd.GeoSeries([geom.centroid], crs=crs).to_crs(WGS84).iloc[0]
    check_distortion(crs, float(c.x), float(c.y), where=where)
