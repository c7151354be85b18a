"""Every input of a run, read once: ``load_inputs(cfg) -> RunInputs``.

The one place a notebook, the command line and the tests get the same inputs from, so that they
give the same answer: ``update_units(inputs.layers, cfg, subdistricts=inputs.subdistricts,
heritage_areas=inputs.heritage_areas)`` in a notebook is what ``make units`` computes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import shapely

from urbanunits.config import Config
from urbanunits.sources.boundaries import (
    join_nbs_codes,
    read_subdistricts,
    subdistricts_from_osm,
)
from urbanunits.sources.heritage import read_heritage_areas
from urbanunits.sources.osm import OSMLayers, read_osm

__all__ = ["RunInputs", "load_heritage_areas", "load_inputs", "load_subdistricts"]

logger = logging.getLogger(__name__)


@dataclass
class RunInputs:
    """The inputs of a run, in the config's metric CRS.

    Attributes
    ----------
    layers
        The parsed OSM extract (:class:`~urbanunits.sources.osm.OSMLayers`).
    subdistricts
        Sub-district (街道) polygons from ``inputs.subdistricts``, else the extract's OSM
        ``admin_level=8`` boundaries, else None.
    heritage_areas
        Designated conservation areas from ``inputs.heritage_areas``, or None.
    """

    layers: OSMLayers
    subdistricts: gpd.GeoDataFrame | None
    heritage_areas: gpd.GeoDataFrame | None


def load_inputs(cfg: Config) -> RunInputs:
    """Read the OSM extract (cached), sub-districts and heritage areas of a config."""
    layers = read_osm(cfg)
    return RunInputs(layers=layers, subdistricts=load_subdistricts(cfg, layers),
                     heritage_areas=load_heritage_areas(cfg))


def load_subdistricts(cfg: Config, layers: OSMLayers) -> gpd.GeoDataFrame | None:
    """Sub-district polygons from ``inputs.subdistricts``, else OSM admin level 8, else None.

    With ``inputs.subdistrict_codes`` the official NBS codes are joined by name (column
    ``nbs_code``; matched/unmatched counts are logged).

    Returns
    -------
    geopandas.GeoDataFrame or None
        Columns ``subdistrict``, ``nbs_code`` (and ``district``, ``osm_id`` from OSM) and
        geometry in the metric CRS.
    """
    codes = cfg.inputs.subdistrict_codes
    if cfg.inputs.subdistricts is not None:
        sub = read_subdistricts(cfg.inputs.subdistricts, crs=cfg.study_area.crs,
                                name_field=cfg.inputs.subdistrict_name_field,
                                encoding=cfg.inputs.subdistricts_encoding)
        if codes is not None:
            sub = join_nbs_codes(sub, codes)[0]
        _check_subdistricts(sub, layers, str(cfg.inputs.subdistricts))
        return sub
    found = subdistricts_from_osm(layers, codes_csv=codes)
    if found.subdistricts.empty:
        return None
    logger.info("sub-districts from OSM: %s", "; ".join(found.summary_lines()))
    _check_subdistricts(found.subdistricts, layers, "OSM admin_level=8 boundaries")
    return found.subdistricts


def load_heritage_areas(cfg: Config) -> gpd.GeoDataFrame | None:
    """Designated conservation areas from ``inputs.heritage_areas`` (None when not set)."""
    if cfg.inputs.heritage_areas is None:
        return None
    return read_heritage_areas(cfg.inputs.heritage_areas, crs=cfg.study_area.crs)


def _check_subdistricts(sub: gpd.GeoDataFrame, layers: OSMLayers, where: str) -> None:
    """Warn when sub-districts overlap or leave part of the study area uncovered."""
    area = layers.study_area.geometry.iloc[0]
    parts = sub.geometry.intersection(area)
    union = shapely.union_all(parts.values)
    overlap = float(parts.area.sum() - union.area)
    if overlap > 1e-3 * area.area:
        logger.warning("%s: sub-districts overlap by %.1f ha inside the study area; units there "
                       "are given to one of them", where, overlap / 1e4)
    uncovered = float(area.area - union.area)
    if uncovered > 1e-2 * area.area:
        logger.warning("%s: %.0f %% of the study area lies in no sub-district; units there "
                       "have no subdistrict", where, 100 * uncovered / area.area)
