"""Where to get data for: the study area plus a margin, as a WGS84 box, and OSM file formats."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd

from urbanunits.config import Config
from urbanunits.errors import InputFileError
from urbanunits.sources.study_area import study_area_polygon

__all__ = ["osmium_format", "region_bbox_ll"]

WGS84 = "EPSG:4326"


def region_bbox_ll(cfg: Config, *, margin_m: float | None = None
                   ) -> tuple[float, float, float, float]:
    """WGS84 box around the study area grown by ``margin_m`` metres.

    Parameters
    ----------
    cfg
        Run configuration (``study_area.bbox`` or ``study_area.boundary``).
    margin_m
        Margin in metres, measured in the config's metric CRS; default ``osm.graph_margin_m``,
        the distance the ingest keeps the walk graph beyond the study area.

    Returns
    -------
    tuple of float
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees.
    """
    margin = cfg.osm.graph_margin_m if margin_m is None else margin_m
    area = study_area_polygon(cfg).geometry.iloc[0].buffer(max(margin, 0.0))
    x0, y0, x1, y1 = gpd.GeoSeries([area], crs=cfg.study_area.crs).to_crs(WGS84).total_bounds
    return float(x0), float(y0), float(x1), float(y1)


def osmium_format(path: Path) -> str:
    """The libosmium format string for an OSM file name (``pbf``, ``osm``, ``osm.bz2``...).

    Temporary files made by :func:`urbanunits.export.atomic_path` end in ``.part.pbf`` and the
    like, so writers must be told the format instead of guessing it from the name.
    """
    name = path.name.lower()
    for suffix, fmt in ((".osm.pbf", "pbf"), (".pbf", "pbf"), (".osm.bz2", "osm.bz2"),
                        (".osm.gz", "osm.gz"), (".osm", "osm")):
        if name.endswith(suffix):
            return fmt
    raise InputFileError(path, "unknown OSM file type",
                         "name the file .osm, .osm.pbf, .osm.bz2 or .osm.gz")
