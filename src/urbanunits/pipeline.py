"""The thin layer that runs stages from a config: load (cached), compute, write, draw.

Notebooks and the CLI call the same functions. Stage logic lives in the stage modules
(:mod:`urbanunits.units`, :mod:`urbanunits.packages`, :mod:`urbanunits.lifecircle`) as pure
functions; this module only wires inputs to them and results to the GeoPackage and maps.

Every function that writes or draws holds the run's lock for its whole duration and writes into a
staging folder that replaces ``<output.dir>/<name>/`` whole at the end (:mod:`urbanunits._outputs`):
a run that fails or is killed leaves the previous run's files as they were.

A stage that needs earlier stages' layers reads them from the run's GeoPackage when their
digests match the config and inputs (:mod:`urbanunits._resume`) and computes them otherwise; it
does so only when it loaded the extract from the config itself (frames passed in by a caller
are not covered by the digests). :func:`run_all` computes every stage; :func:`run_maps` draws
from the reused layers.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import weakref
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import pandas as pd

from urbanunits import lifecircle as lc_mod
from urbanunits import packages as pk
from urbanunits import programme as pg_mod
from urbanunits import sites as sites_mod
from urbanunits import units as units_mod
from urbanunits._outputs import Staging
from urbanunits.config import Config
from urbanunits.drawing import (
    draw_lifecircle,
    draw_packages,
    draw_programme,
    draw_sites,
    draw_units,
    map_barriers,
)
from urbanunits.errors import EmptyInputError
from urbanunits.export import write_tables
from urbanunits.lifecircle import LifeCircleResult
from urbanunits.map_files import start_drawing
from urbanunits.maps import saving_in_parallel
from urbanunits.programme import project_list
from urbanunits.run_store import (
    StageResult,
    current_digests,
    reuse,
    stage_outputs,
    store_stage,
    write_run,
)
from urbanunits.sites import combine_candidates, osm_candidates
from urbanunits.sources.boundaries import subdistricts_from_osm
from urbanunits.sources.candidates import read_candidate_sites
from urbanunits.sources.inputs import (
    CommunityInputs,
    load_communities,
    load_heritage_areas,
    load_run_facilities,
    load_subdistricts,
)
from urbanunits.sources.osm import OSMLayers, read_osm
from urbanunits.units import (
    ClassRules,
    class_counts_line,
    recount_old_communities,
)
from urbanunits.webmap import write_webmap

__all__ = ["StageResult", "load_heritage_areas", "load_layers", "load_subdistricts",
           "run_ingest", "run_units"]

logger = logging.getLogger(__name__)


class _Load:
    """Default of ``subdistricts=``: read them from the config (``None`` means there are none)."""


_LOAD = _Load()


def load_layers(cfg: Config) -> OSMLayers:
    """Read the configured OSM extract (cached)."""
    return read_osm(cfg)


# Layers a stage function loaded from its config itself (by id, alive while in use). Only
# then may earlier stages be reused from the GeoPackage: the digests cover the config's files,
# not frames a caller passes in.
_FROM_CONFIG: weakref.WeakValueDictionary[int, OSMLayers] = weakref.WeakValueDictionary()


def _config_layers(cfg: Config, layers: OSMLayers | None) -> OSMLayers:
    """``layers``, or the config's extract (remembered as such)."""
    if layers is not None:
        return layers
    loaded = load_layers(cfg)
    _FROM_CONFIG[id(loaded)] = loaded
    return loaded


def _may_reuse(layers: OSMLayers) -> bool:
    return _FROM_CONFIG.get(id(layers)) is layers


def run_ingest(cfg: Config) -> StageResult:
    """Parse the extract (or read the cache) and report layer counts."""
    t0 = time.perf_counter()
    layers = load_layers(cfg)
    res = StageResult("ingest", seconds=time.perf_counter() - t0)
    res.summary = [f"{k}: {v}" for k, v in layers.summary().items()]
    if not layers.admin.empty:

        found = subdistricts_from_osm(layers, codes_csv=cfg.inputs.subdistrict_codes)
        res.summary += found.summary_lines()
        for name in ("subdistricts", "districts"):
            if not getattr(found, name).empty:
                res.layers[name] = getattr(found, name)
    res.extra["layers"] = layers
    return res


def run_units(cfg: Config, *, layers: OSMLayers | None = None, write: bool = True,
              draw: bool = True,
              subdistricts: gpd.GeoDataFrame | _Load | None = _LOAD) -> StageResult:
    """Update units: blocks → units → classes; writes ``update_units`` and ``blocks``.

    Later stages' layers and maps, and the tables, are removed from the run: they were made
    from the units this replaces.
    """
    with stage_outputs(cfg, active=write or draw) as staging:
        return _run_units(cfg, layers=layers, write=write, draw=draw, staging=staging,
                          subdistricts=subdistricts)


def _run_units(cfg: Config, *, layers: OSMLayers | None, write: bool, draw: bool,
               staging: Staging | None,
               subdistricts: gpd.GeoDataFrame | _Load | None) -> StageResult:

    t0 = time.perf_counter()
    layers = layers or load_layers(cfg)
    if isinstance(subdistricts, _Load):
        subdistricts = load_subdistricts(cfg, layers)
    result = units_mod.update_units(layers, cfg, subdistricts=subdistricts,
                                    heritage_areas=load_heritage_areas(cfg))
    res = StageResult("units", layers={"update_units": result.units, "blocks": result.blocks})
    res.summary = result.summary_lines()
    res.extra["result"] = result
    res.extra["layers"] = layers
    res.extra["digests"] = ["units"]
    if staging is not None:
        if write:
            store_stage(cfg, staging, res.layers, "units", vouched=res.extra["digests"],
                        drawn=draw)
        if draw:
            res.maps.append(draw_units(cfg, staging, result.units, layers, result.barriers))
    res.seconds = time.perf_counter() - t0
    return res


# --- lifecircle stage ---

__all__ += ["run_lifecircle"]


def run_lifecircle(cfg: Config, *, layers: OSMLayers | None = None,
                   communities: gpd.GeoDataFrame | None = None,
                   units: gpd.GeoDataFrame | None = None,
                   packages: gpd.GeoDataFrame | None = None, write: bool = True,
                   draw: bool = True) -> StageResult:
    """15-minute life circles: walking distances, coverage, gaps; layers and one map per category.

    Communities are the packages stage's inventory (layer ``communities``: old and new
    communities, keyed by ``community_id``); without ``communities`` the units and packages stages
    run in memory first.

    Writes ``lifecircle``, ``facilities``, ``service_gaps`` and ``lifecircle_summary`` (plus
    ``lifecircle_units``/``lifecircle_packages`` when communities carry ``unit_id``/
    ``package_id``, and ``isochrones`` when ``lifecircle.isochrones`` is on) and
    ``maps/lifecircle_<category>.png``.

    Raises
    ------
    EmptyInputError
        No facility of any category was found (OSM and facility files): there is nothing to
        measure walks to.
    """
    with stage_outputs(cfg, active=write or draw) as staging:
        return _run_lifecircle(cfg, layers=layers, communities=communities, units=units,
                               packages=packages, write=write, draw=draw, staging=staging)


def _run_lifecircle(cfg: Config, *, layers: OSMLayers | None,
                    communities: gpd.GeoDataFrame | None, units: gpd.GeoDataFrame | None,
                    packages: gpd.GeoDataFrame | None, write: bool, draw: bool,
                    staging: Staging | None) -> StageResult:

    t0 = time.perf_counter()
    layers = _config_layers(cfg, layers)
    upstream: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    vouched: list[str] = []  # stages computed or reused under cfg (recorded for resume)
    redo = ["lifecircle"]  # stages computed here (their maps and later results go stale)
    if communities is None:
        reused = reuse(cfg, "packages") if units is None and _may_reuse(layers) else None
        if reused is None:
            pk = run_packages(cfg, layers=layers, units=units, write=False, draw=False)
            # written along with the life circles, so that every id in the file resolves
            upstream = dict(pk.layers)
            vouched = list(pk.extra["digests"])
            redo += pk.extra["recomputed"]
        else:
            upstream = dict(reused.layers)
            vouched = list(reused.stages)
        communities = upstream["communities"]
        units = upstream.get("update_units", units)
        packages = upstream["renewal_packages"]
        if vouched:
            vouched.append("lifecircle")
    facilities, notes = load_run_facilities(cfg, layers)
    if facilities.empty:
        raise EmptyInputError(f"{cfg.source or cfg.name}: lifecircle.categories",
                              "no facility of any category was found in the study area "
                              "(OSM tags and names, facility files)",
                              "add facility lists (lifecircle.categories.<key>.files) or "
                              "extend the categories' osm_tags/name_patterns")
    result = lc_mod.life_circle(layers.walk_network, communities, facilities, cfg.lifecircle,
                                units=units, packages=packages)
    res = StageResult("lifecircle", layers={**upstream, **result.layers()})
    res.summary = notes + result.summary_lines()
    res.extra["result"] = result
    res.extra["layers"] = layers
    res.extra["digests"] = vouched
    res.extra["recomputed"] = redo
    if staging is not None:
        if write:
            store_stage(cfg, staging, res.layers, "lifecircle", vouched=vouched, recomputed=redo,
                        drawn=draw)
        if draw:
            res.maps += draw_lifecircle(cfg, staging, result, layers)
    res.seconds = time.perf_counter() - t0
    res.summary.append(f"stage time {res.seconds:.1f} s (life-circle computation "
                       f"{result.seconds['total']:.2f} s, of which searches "
                       f"{result.seconds['search']:.2f} s)")
    return res


def _lifecircle_from_layers(layers: Mapping[str, Any]) -> Any:
    """The life-circle result as its layers hold it (for stages and maps that reuse it)."""

    return LifeCircleResult(communities=layers["lifecircle"], facilities=layers["facilities"],
                            gaps=layers["service_gaps"], coverage=layers["lifecircle_summary"],
                            units=layers.get("lifecircle_units"),
                            packages=layers.get("lifecircle_packages"),
                            isochrones=layers.get("isochrones"))


def _lifecircle_stage(cfg: Config, layers: OSMLayers) -> StageResult:
    """The life circles (and the stages before them) reused from the run, or computed."""
    reused = reuse(cfg, "lifecircle") if _may_reuse(layers) else None
    if reused is None:
        return run_lifecircle(cfg, layers=layers, write=False, draw=False)
    lcr = _lifecircle_from_layers(reused.layers)
    res = StageResult("lifecircle", layers=dict(reused.layers))
    res.summary = lcr.summary_lines()
    res.extra.update(result=lcr, layers=layers, digests=list(reused.stages), recomputed=[])
    return res


# --- sites stage ---

__all__ += ["load_candidates", "run_sites"]


def load_candidates(cfg: Config, layers: OSMLayers) -> gpd.GeoDataFrame:
    """Candidate sites: the register ``inputs.candidate_sites`` first, then OSM's (if on)."""

    reg = None
    if cfg.inputs.candidate_sites is not None:

        reg = read_candidate_sites(cfg.inputs.candidate_sites, crs=cfg.study_area.crs,
                                   coord_system=cfg.inputs.candidate_sites_coord_system,
                                   sheet=cfg.inputs.candidate_sites_sheet,
                                   land_far=cfg.sites.land_far)
    osm = None
    if cfg.sites.osm_candidates and len(layers.sites):
        osm = osm_candidates(layers.sites, kinds=cfg.sites.osm_kinds, land_far=cfg.sites.land_far)
    return combine_candidates(reg, osm, crs=cfg.study_area.crs,
                              osm_polygons=layers.sites if len(layers.sites) else None)


def run_sites(cfg: Config, *, layers: OSMLayers | None = None,
              lifecircle: StageResult | None = None,
              communities: gpd.GeoDataFrame | None = None, write: bool = True,
              draw: bool = True) -> StageResult:
    """Sites for missing facilities (MCLP, LSCP) and supply-demand accessibility (E2SFCA).

    Without ``lifecircle`` the earlier stages run in memory first and their layers are written
    along. Age-group counts (``pop_0_3``, ``pop_3_6``, ``pop_60_plus``) are taken from
    ``communities`` (the ``communities`` layer) when it has them. Writes ``site_suggestions``,
    ``accessibility``, ``site_candidates`` and ``maps/sites_<category>.png`` for each category
    with a gap.
    """
    with stage_outputs(cfg, active=write or draw) as staging:
        return _run_sites(cfg, layers=layers, lifecircle=lifecircle, communities=communities,
                          write=write, draw=draw, staging=staging)


def _run_sites(cfg: Config, *, layers: OSMLayers | None, lifecircle: StageResult | None,
               communities: gpd.GeoDataFrame | None, write: bool, draw: bool,
               staging: Staging | None) -> StageResult:

    t0 = time.perf_counter()
    layers = _config_layers(cfg, layers)
    upstream: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    vouched: list[str] = []  # stages computed or reused under cfg (recorded for resume)
    redo = ["sites"]  # stages computed here (their maps and later results go stale)
    if lifecircle is None:
        lifecircle = _lifecircle_stage(cfg, layers)
        upstream = dict(lifecircle.layers)
        vouched = [*lifecircle.extra["digests"], "sites"] if lifecircle.extra["digests"] else []
        redo += lifecircle.extra["recomputed"]
    lcr = lifecircle.extra["result"]
    comm = lcr.communities
    if communities is None:
        communities = lifecircle.layers.get("communities")
    ages = [c for c in sites_mod.AGE_COLUMNS.values()
            if communities is not None and c in communities.columns]
    if communities is not None and ages:
        comm = comm.merge(pd.DataFrame(communities)[["community_id", *ages]],
                          on="community_id", how="left")
    result = sites_mod.suggest_sites(layers.walk_network, comm, lcr.facilities,
                                     load_candidates(cfg, layers), cfg)
    res = StageResult("sites", layers={**upstream, **result.layers()})
    res.summary = result.summary_lines()
    res.extra["result"] = result
    res.extra["lifecircle"] = lifecircle
    if staging is not None:
        if write:
            store_stage(cfg, staging, res.layers, "sites", vouched=vouched, recomputed=redo,
                        drawn=draw)
        if draw:
            res.maps += draw_sites(cfg, staging, result, lcr, layers)
    res.seconds = time.perf_counter() - t0
    return res


# --- packages stage ---

__all__ += ["run_packages"]


def run_packages(cfg: Config, *, layers: OSMLayers | None = None,
                 units: gpd.GeoDataFrame | None = None, write: bool = True,
                 draw: bool = True,
                 subdistricts: gpd.GeoDataFrame | _Load | None = _LOAD,
                 community_inputs: CommunityInputs | None = None) -> StageResult:
    """Renewal packages: inventory → links → packages.

    Writes layers ``communities``, ``renewal_packages``, ``package_links`` and the updated
    ``update_units``, and the map ``renewal_packages.png``. Without ``units`` the units stage is
    run in memory first and its ``blocks`` are written too, so the file stays one consistent run;
    life-circle layers and maps computed from older packages, and the tables, are removed.
    ``community_inputs`` are the config's inventory, overrides and raster as
    :func:`load_communities` reads them (read here when None).

    Raises
    ------
    EmptyInputError
        The study area has no communities (no named residential areas and no inventory rows).
    """
    with stage_outputs(cfg, active=write or draw) as staging:
        return _run_packages(cfg, layers=layers, units=units, write=write, draw=draw,
                             staging=staging, subdistricts=subdistricts,
                             community_inputs=community_inputs)


def _no_communities(cfg: Config, layers: OSMLayers) -> EmptyInputError:
    where = cfg.inputs.inventory if cfg.inputs.inventory is not None else (
        f"{layers.source}: residential areas")
    return EmptyInputError(where, "no community lies in the study area (named "
                           "landuse=residential areas or inventory rows)",
                           "enlarge study_area or give an old-community inventory in "
                           "inputs.inventory (CSV with lon/lat, or polygons)")


def _run_packages(cfg: Config, *, layers: OSMLayers | None, units: gpd.GeoDataFrame | None,
                  write: bool, draw: bool, staging: Staging | None,
                  subdistricts: gpd.GeoDataFrame | _Load | None,
                  community_inputs: CommunityInputs | None) -> StageResult:

    t0 = time.perf_counter()
    layers = _config_layers(cfg, layers)
    if cfg.inputs.inventory is None and layers.residential.empty:
        raise _no_communities(cfg, layers)
    may_reuse = _may_reuse(layers) and isinstance(subdistricts, _Load)
    if isinstance(subdistricts, _Load):
        subdistricts = load_subdistricts(cfg, layers)
    upstream: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    vouched: list[str] = []  # stages computed or reused under cfg (recorded for resume)
    unit_lines = None  # the units map's lines, when the units stage ran here
    if units is None:
        reused = reuse(cfg, "units") if may_reuse else None
        if reused is None:
            unit_stage = run_units(cfg, layers=layers, write=False, draw=False,
                                   subdistricts=subdistricts)
            upstream = dict(unit_stage.layers)
            unit_lines = unit_stage.extra["result"].barriers
        else:
            upstream = dict(reused.layers)
        units = upstream["update_units"]
        vouched = ["units", "packages"]
    # the units' classes are re-derived below, so their layer (and map) is always rewritten
    communities = pk.build_inventory(layers, cfg=cfg.packages,
                                     inputs=community_inputs or load_communities(cfg, layers),
                                     units=units)
    if communities.empty:
        raise _no_communities(cfg, layers)
    barriers = pk.hard_barriers(layers, kinds=cfg.packages.hard_barriers)
    result = pk.renewal_packages(communities, cfg=cfg.packages, units=units, barriers=barriers,
                                 subdistricts=subdistricts)
    out: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {
        **upstream, "communities": result.communities,
        "renewal_packages": result.packages, "package_links": result.links}
    res = StageResult("packages", layers=out)
    res.summary = result.summary_lines()
    if result.unit_counts is not None:
        # The packages stage only counts old communities per unit; the units' classes are
        # re-derived here with the units stage's own rules, so one stage owns update_units.

        new_units = recount_old_communities(units, result.communities,
                                            rules=ClassRules.from_config(cfg.units))
        new_units["package_ids"] = new_units["unit_id"].map(
            result.unit_counts.set_index("unit_id")["package_ids"]).fillna("").to_numpy()
        out["update_units"] = new_units
        if "unit_class" in new_units.columns:
            res.extra["class_line"] = "update units " + class_counts_line(new_units)
            res.summary.insert(0, res.extra["class_line"])
    res.extra["result"] = result
    res.extra["layers"] = layers
    res.extra["digests"] = vouched
    res.extra["recomputed"] = redo = ["units", "packages"]
    if staging is not None:
        if write:
            store_stage(cfg, staging, res.layers, "packages", vouched=vouched, recomputed=redo,
                        drawn=draw)
        if draw:
            res.maps.append(draw_units(cfg, staging, out["update_units"], layers,
                                       map_barriers(cfg, layers) if unit_lines is None
                                       else unit_lines))
            res.maps.append(draw_packages(cfg, staging, result.packages, result.communities,
                                          layers))
    res.seconds = time.perf_counter() - t0
    return res


# --- programme stage ---

__all__ += ["run_programme"]


def run_programme(cfg: Config, *, layers: OSMLayers | None = None,
                  packages: gpd.GeoDataFrame | None = None,
                  communities: gpd.GeoDataFrame | None = None,
                  gaps: pd.DataFrame | None = None, write: bool = True,
                  draw: bool = True) -> StageResult:
    """Project library (项目库): scores, phasing into years, lift candidates.

    Without ``packages`` the earlier stages run in memory first (their layers are written too).
    Writes ``programme``, ``programme_communities``, ``elevator_candidates`` and
    ``programme_years``, and ``maps/programme.png`` and ``maps/programme_years.png``; with no
    package to phase it writes nothing and says why in one line.
    """
    with stage_outputs(cfg, active=write or draw) as staging:
        return _run_programme(cfg, layers=layers, packages=packages, communities=communities,
                              gaps=gaps, write=write, draw=draw, staging=staging)


def _run_programme(cfg: Config, *, layers: OSMLayers | None,
                   packages: gpd.GeoDataFrame | None, communities: gpd.GeoDataFrame | None,
                   gaps: pd.DataFrame | None, write: bool, draw: bool,
                   staging: Staging | None) -> StageResult:

    t0 = time.perf_counter()
    layers = _config_layers(cfg, layers)
    upstream: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    vouched: list[str] = []  # stages computed or reused under cfg (recorded for resume)
    redo = ["programme"]  # stages computed here (their maps and later results go stale)
    if packages is None or communities is None:
        lc = _lifecircle_stage(cfg, layers)
        upstream = dict(lc.layers)
        vouched = [*lc.extra["digests"], "programme"] if lc.extra["digests"] else []
        redo += lc.extra["recomputed"]
        packages, communities = upstream["renewal_packages"], upstream["communities"]
        gaps = upstream["service_gaps"]
    result = pg_mod.programme(packages, communities, cfg=cfg.programme, lifecircle=gaps,
                              buildings=layers.buildings, areas=layers.residential)
    res = StageResult("programme", layers={**upstream, **result.layers()})
    res.summary = result.summary_lines()
    res.extra["result"] = result
    if staging is not None and write and (
            result.layers() or staging.path(cfg.gpkg_path).exists()):
        # with no package to phase, the programme layers of an earlier run go too
        store_stage(cfg, staging, res.layers, "programme", vouched=vouched, recomputed=redo,
                    drawn=draw)
    if staging is not None and draw and result.layers():
        res.maps += draw_programme(cfg, staging, result, layers)
    res.seconds = time.perf_counter() - t0
    return res


# --- whole run ---

__all__ += ["run_all"]


def _tables(stages: dict[str, StageResult]) -> dict[str, pd.DataFrame]:
    """Per-unit, per-package and per-community summaries for spreadsheets."""
    tables: dict[str, pd.DataFrame] = {"units": stages["units"].layers["update_units"]}
    if "packages" in stages:
        tables["units"] = stages["packages"].layers.get("update_units", tables["units"])
        tables["packages"] = stages["packages"].layers["renewal_packages"]
        tables["communities"] = stages["packages"].layers["communities"]
    if "lifecircle" in stages:
        lc = stages["lifecircle"].layers
        tables["lifecircle"] = lc["lifecircle"]
        tables["lifecircle_summary"] = lc["lifecircle_summary"]
        for name in ("lifecircle_units", "lifecircle_packages", "service_gaps"):
            if name in lc:
                tables[name] = lc[name]
    if "programme" in stages and stages["programme"].layers:

        pg = stages["programme"].layers
        tables["项目库"] = project_list(stages["programme"].extra["result"])
        for name in ("programme", "programme_years", "elevator_candidates"):
            tables[name] = pg[name]
    if "sites" in stages:
        for name in ("site_suggestions", "accessibility"):
            tables[name] = stages["sites"].layers[name]
    return tables


def run_all(cfg: Config, *, write: bool = True, draw: bool = True,
            webmap: bool = False) -> StageResult:
    """Every stage in order (units → packages → life circles → programme, sites), tables, maps.

    Leaves ``<output.dir>/<name>/`` holding ``<name>.gpkg`` (all layers, QGIS styles,
    ``run_metadata``), ``tables/*.csv``, ``tables/<name>.xlsx`` and ``maps/*.png`` (and with
    ``webmap``, the HTML map ``<name>.html``, whose path is ``extra["html"]``), and nothing
    else: the folder is replaced whole, so no file of an earlier run survives.

    A stage that cannot run for want of data (:class:`~urbanunits.errors.EmptyInputError`: no
    communities, no facilities) is skipped with the stages that need it; the others are written
    and ``skipped`` says why (the CLI exits with status 3). Any other error writes nothing.
    """

    # With draw only (run_maps), the previous GeoPackage and tables are kept and the maps redrawn.
    # The maps are drawn in parallel at the end, before the staging folder is swapped in.
    with stage_outputs(cfg, active=write or draw, keep=not write) as staging, saving_in_parallel():
        if staging is not None and not write:
            shutil.rmtree(staging.path(cfg.maps_dir), ignore_errors=True)
        return _run_all(cfg, write=write, draw=draw, staging=staging, webmap=webmap)


def _run_all(cfg: Config, *, write: bool, draw: bool, staging: Staging | None,
             webmap: bool = False) -> StageResult:
    t0 = time.perf_counter()
    layers = load_layers(cfg)
    stages: dict[str, StageResult] = {}
    skipped: dict[str, str] = {}
    # Every stage is computed before anything is written: a stage that fails leaves the previous
    # run's GeoPackage and tables untouched, never a mix of two runs. The units map is drawn after
    # the packages stage has counted old communities per unit (old-community renewal class).
    subdistricts = load_subdistricts(cfg, layers)
    # The packages stage's input files are read before anything is computed: a wrong inventory
    # stops the run at once, not after the units stage (minutes on a city).
    community_inputs = load_communities(cfg, layers)
    stages["units"] = run_units(cfg, layers=layers, write=False, draw=False,
                                subdistricts=subdistricts)
    try:
        stages["packages"] = run_packages(cfg, layers=layers,
                                          units=stages["units"].layers["update_units"],
                                          write=False, draw=False, subdistricts=subdistricts,
                                          community_inputs=community_inputs)
    except EmptyInputError as exc:
        skipped["packages"] = exc.one_line()
        skipped["lifecircle"] = "needs the communities of the packages stage, which was skipped"
    if "packages" in stages:
        pk = stages["packages"].layers
        # Report the classes as written: the packages stage re-derives them with the old
        # communities counted in, so the units stage's own summary would show the classes
        # from before.
        unit_res = stages["units"].extra["result"]
        stages["units"].summary = dataclasses.replace(
            unit_res, units=pk.get("update_units", unit_res.units)).summary_lines()
        stages["packages"].summary = [line for line in stages["packages"].summary
                                      if line != stages["packages"].extra.get("class_line")]
        try:
            stages["lifecircle"] = run_lifecircle(
                cfg, layers=layers, communities=pk["communities"],
                units=pk.get("update_units"), packages=pk["renewal_packages"], write=False,
                draw=False)
        except EmptyInputError as exc:
            skipped["lifecircle"] = exc.one_line()
    if "lifecircle" in stages:
        stages["programme"] = run_programme(
            cfg, layers=layers, packages=pk["renewal_packages"],
            communities=pk["communities"],
            gaps=stages["lifecircle"].layers["service_gaps"], write=False, draw=False)
        stages["sites"] = run_sites(cfg, layers=layers, lifecircle=stages["lifecircle"],
                                    communities=pk["communities"], write=False, draw=False)
    res = StageResult("all", skipped=skipped)
    for name, st in stages.items():
        res.layers.update(st.layers)
        res.summary += [f"[{name}] {line}" for line in st.summary]
    for name, why in skipped.items():
        logger.warning("skipped stage %s: %s", name, why)
    if staging is not None and draw:
        # The figures are built first and their drawing starts in the other processes, which
        # draw while this one writes the GeoPackage and tables (saving_in_parallel in run_all).
        res.maps.append(draw_units(cfg, staging, res.layers["update_units"], layers,
                                    stages["units"].extra["result"].barriers))
        if "packages" in stages:
            pkr = stages["packages"].extra["result"]
            res.maps.append(draw_packages(cfg, staging, pkr.packages, pkr.communities, layers))
        if "lifecircle" in stages:
            res.maps += draw_lifecircle(cfg, staging, stages["lifecircle"].extra["result"],
                                         layers)
        if "programme" in stages and stages["programme"].layers:
            res.maps += draw_programme(cfg, staging, stages["programme"].extra["result"],
                                        layers)
        if "sites" in stages:
            res.maps += draw_sites(cfg, staging, stages["sites"].extra["result"],
                                    stages["lifecircle"].extra["result"], layers)
        start_drawing()
    if staging is not None and write:
        write_run(cfg, res.layers, staging=staging, digests=current_digests(cfg, list(stages)),
                  drawn=list(stages) if draw else [])
        files = write_tables(staging.path(cfg.tables_dir), _tables(stages),
                             workbook=f"{cfg.name}.xlsx", categories=cfg.lifecircle.categories,
                             about=[("运行 run", cfg.title or cfg.name),
                                    ("坐标系 CRS", cfg.study_area.crs)])
        res.summary += [f"table {staging.final(p)}" for p in files]
        if webmap:
            # from the staged GeoPackage, while the map workers draw (the last maps are
            # drawn by this process when the block ends)
            html = cfg.html_path
            write_webmap(staging.path(cfg.gpkg_path), staging.path(html), title=cfg.name,
                         final=html)
            res.extra["html"] = html
    res.extra["stages"] = stages
    res.seconds = time.perf_counter() - t0
    return res
