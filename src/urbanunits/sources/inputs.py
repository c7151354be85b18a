"""Every input of a run, read once: ``load_inputs(cfg) -> RunInputs``.

The one place a notebook, the command line and the tests get the same inputs from, so that they
give the same answer: ``update_units(inputs.layers, cfg, subdistricts=inputs.subdistricts,
heritage_areas=inputs.heritage_areas)`` in a notebook is what ``make units`` computes.

The packages stage's inputs — the community inventory, the planner's overrides and the population
raster — are read only for the stages that use them (:func:`load_communities`, or
``load_inputs(cfg, communities=True)``), so ``make units`` never stops on a bad inventory it does
not need.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

from urbanunits._raster import CountGrid
from urbanunits.config import Config
from urbanunits.sources.boundaries import (
    join_nbs_codes,
    read_subdistricts,
    subdistricts_from_osm,
)
from urbanunits.sources.facilities import check_datum, load_facilities, street_lines
from urbanunits.sources.heritage import read_heritage_areas
from urbanunits.sources.inventory import InventoryReport, read_inventory
from urbanunits.sources.osm import OSMLayers, read_osm
from urbanunits.sources.overrides import read_overrides
from urbanunits.sources.population import read_population

__all__ = [
    "CommunityInputs",
    "RunInputs",
    "load_communities",
    "load_heritage_areas",
    "load_inputs",
    "load_run_facilities",
    "load_subdistricts",
]

logger = logging.getLogger(__name__)


@dataclass
class CommunityInputs:
    """The packages stage's own inputs, read (:func:`load_communities`) and checked.

    Passed whole to :func:`urbanunits.packages.build_inventory`; all None (the default) means
    the communities are the OSM residential areas, no override, population from households.

    Attributes
    ----------
    inventory
        Rows of ``inputs.inventory`` (:func:`~urbanunits.sources.inventory.read_inventory`, in
        the metric CRS, datum checked), or None: the communities come from OSM.
    inventory_report
        Notes from reading the inventory (skipped rows, duplicate names), or None.
    inventory_source
        The inventory's file name (column ``source`` of the communities), or None.
    overrides
        Rows of ``inputs.community_overrides``
        (:func:`~urbanunits.sources.inventory.read_overrides`), or None.
    overrides_source
        That file, as named in messages, or None.
    population
        The window of ``inputs.population_raster`` under the community polygons, or None (no
        raster, or no polygon to sum it over).
    """

    inventory: gpd.GeoDataFrame | None = None
    inventory_report: InventoryReport | None = None
    inventory_source: str | None = None
    overrides: pd.DataFrame | None = None
    overrides_source: str | None = None
    population: CountGrid | None = None


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
    communities
        The packages stage's inventory, overrides and population raster
        (:class:`CommunityInputs`); None unless asked for.
    facilities, facility_notes
        The life circles' facilities (:func:`load_run_facilities`) and what was done to them;
        None unless asked for.
    """

    layers: OSMLayers
    subdistricts: gpd.GeoDataFrame | None
    heritage_areas: gpd.GeoDataFrame | None
    communities: CommunityInputs | None = None
    facilities: gpd.GeoDataFrame | None = None
    facility_notes: list[str] | None = None


def load_inputs(cfg: Config, *, communities: bool = False,
                facilities: bool = False) -> RunInputs:
    """Read the OSM extract (cached), sub-districts and heritage areas of a config.

    With ``communities`` the packages stage's inputs are read too (:func:`load_communities`),
    with ``facilities`` the life circles' (:func:`load_run_facilities`): ask for them when those
    stages will run, so that a run of the units alone never fails on a file it does not need.
    """
    layers = read_osm(cfg)
    fac, notes = load_run_facilities(cfg, layers) if facilities else (None, None)
    return RunInputs(layers=layers, subdistricts=load_subdistricts(cfg, layers),
                     heritage_areas=load_heritage_areas(cfg),
                     communities=load_communities(cfg, layers) if communities else None,
                     facilities=fac, facility_notes=notes)


def load_run_facilities(cfg: Config, layers: OSMLayers) -> tuple[gpd.GeoDataFrame, list[str]]:
    """The life circles' facilities as a run reads them: the configured files and OSM's.

    File rows are kept within ``osm.graph_margin_m`` of the study area (the walk network's
    reach), checked against the extract's streets and named POIs for an undeclared GCJ-02/BD-09
    datum, and merged with OSM's records of the same facility (``lifecircle.dedupe_m``).

    Returns
    -------
    tuple of (GeoDataFrame, list of str)
        Facilities in the config's metric CRS, and one line per thing done to them.
    """
    area = layers.study_area.geometry.iloc[0].buffer(cfg.osm.graph_margin_m)
    return load_facilities(cfg, layers.facilities, area=area, roads=layers.roads,
                           pois=layers.pois)


def load_communities(cfg: Config, layers: OSMLayers) -> CommunityInputs:
    """Read the community inventory, the overrides and the population raster of a config.

    The inventory (``inputs.inventory``) is read in the metric CRS; points read as WGS84
    because ``inputs.inventory_coord_system`` is unset are checked against the extract's
    streets and named places and stop the run when they fit GCJ-02/BD-09 better. The population
    raster is read under the polygons whose population it will give: the inventory's, or the
    extract's residential areas without an inventory.

    Parameters
    ----------
    cfg
        Run configuration (``[inputs]``).
    layers
        The parsed extract (datum check; residential areas).

    Returns
    -------
    CommunityInputs
        What :func:`urbanunits.packages.build_inventory` takes besides the layers.
    """
    out = CommunityInputs()
    inp = cfg.inputs
    polygons = layers.residential.geometry
    if inp.inventory is not None:
        inv, out.inventory_report = read_inventory(
            inp.inventory, crs=cfg.study_area.crs,
            coord_system=inp.inventory_coord_system or "wgs84",  # unset reads as WGS84
            on_missing_coords=inp.inventory_on_missing_coords, sheet=inp.inventory_sheet)
        if not inp.inventory_coord_system:
            _check_inventory_datum(inv, layers, Path(inp.inventory))
        out.inventory, out.inventory_source = inv, Path(inp.inventory).name
        polygons = inv.geometry
    if inp.population_raster is not None:
        poly = polygons[polygons.geom_type.isin(["Polygon", "MultiPolygon"])]
        if len(poly):
            out.population = read_population(inp.population_raster, poly)
    if inp.community_overrides is not None:
        out.overrides = read_overrides(inp.community_overrides)
        out.overrides_source = str(inp.community_overrides)
    return out


def _check_inventory_datum(inv: gpd.GeoDataFrame, layers: OSMLayers, path: Path) -> None:
    """An inventory of points that declares no datum: stop if it is GCJ-02/BD-09 (web maps)."""
    pts = inv[inv.geometry.geom_type == "Point"]
    if len(pts) == 0:
        return
    ll = pts.geometry.to_crs("EPSG:4326")
    check_datum(ll.x.to_numpy(), ll.y.to_numpy(), street_lines(layers.roads), path=path,
                key="inputs.inventory_coord_system",
                names=pts["name"] if "name" in pts.columns else None, reference=layers.pois)


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
        logger.warning("no sub-districts (街道): inputs.subdistricts is not set and the extract "
                       "has no admin_level=8 boundaries; units are merged across sub-district "
                       "lines and have no subdistrict — set inputs.subdistricts to a boundary "
                       "file")
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
