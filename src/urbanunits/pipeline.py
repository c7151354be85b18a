"""The thin layer that runs stages from a config: load (cached), compute, write, draw.

Notebooks and the CLI call the same functions. Stage logic lives in the stage modules
(:mod:`urbanunits.units`, :mod:`urbanunits.packages`, :mod:`urbanunits.lifecircle`) as pure
functions; this module only wires inputs to them and results to the GeoPackage and maps.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from urbanunits.config import Config
from urbanunits.export import write_layers
from urbanunits.sources.osm import OSMLayers, read_osm

__all__ = ["StageResult", "load_heritage_areas", "load_layers", "load_subdistricts",
           "run_ingest", "run_units"]

logger = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage produced: layers written, maps drawn, summary lines, timing."""

    stage: str
    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame] = field(default_factory=dict)
    maps: list[Path] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def report(self) -> str:
        """Human-readable summary for the terminal."""
        lines = [f"{self.stage}: done in {self.seconds:.1f} s"]
        lines += [f"  {s}" for s in self.summary]
        for name, gdf in self.layers.items():
            lines.append(f"  layer {name}: {len(gdf)} rows")
        lines += [f"  map {p}" for p in self.maps]
        return "\n".join(lines)


# The layers each stage owns. A stage's layers are computed from those of the stages before it,
# so when a stage rewrites its layers, the later stages' layers in the file are dropped rather
# than left pointing at ids that no longer exist.
STAGE_LAYERS: dict[str, frozenset[str]] = {
    "units": frozenset({"update_units", "blocks"}),
    "packages": frozenset({"old_communities", "renewal_packages", "package_links"}),
    "lifecircle": frozenset({"lifecircle", "facilities", "service_gaps", "lifecircle_summary",
                             "lifecircle_units", "lifecircle_packages", "isochrones"}),
    "sites": frozenset({"site_suggestions", "accessibility", "site_candidates"}),
}


def _downstream(stage: str) -> set[str]:
    names = list(STAGE_LAYERS)
    return set().union(*(STAGE_LAYERS[n] for n in names[names.index(stage) + 1:]))


def write_run(cfg: Config, layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame], *,
              drop: set[str] | frozenset[str] = frozenset()) -> Path:
    """Write stage layers to the run's GeoPackage with their QGIS styles and the run metadata.

    ``drop`` names layers to remove (later stages' results that these layers make stale).
    """
    from urbanunits.export import layer_styles, run_metadata

    inputs = {"osm": cfg.inputs.osm}
    if cfg.study_area.boundary is not None:
        inputs["study_area"] = cfg.study_area.boundary
    for role in ("subdistricts", "subdistrict_codes", "inventory", "community_overrides",
                 "population_raster", "heritage_areas", "candidate_sites"):
        path = getattr(cfg.inputs, role)
        if path is not None:
            inputs[role] = path
    for key, cat in cfg.lifecircle.categories.items():
        for i, f in enumerate(cat.files):
            inputs[f"facilities:{key}:{i}"] = f.path
    return write_layers(cfg.gpkg_path, layers, styles=layer_styles(layers),
                        metadata=run_metadata(cfg, inputs=inputs), drop=drop)


class _Load:
    """Default of ``subdistricts=``: read them from the config (``None`` means there are none)."""


_LOAD = _Load()


def load_layers(cfg: Config) -> OSMLayers:
    """Read the configured OSM extract (cached)."""
    return read_osm(cfg)


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
    from urbanunits.sources.boundaries import (
        join_nbs_codes,
        read_subdistricts,
        subdistricts_from_osm,
    )

    codes = cfg.inputs.subdistrict_codes
    if cfg.inputs.subdistricts is not None:
        sub = read_subdistricts(cfg.inputs.subdistricts, crs=cfg.study_area.crs,
                                name_field=cfg.inputs.subdistrict_name_field)
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
    from urbanunits.sources.heritage import read_heritage_areas

    return read_heritage_areas(cfg.inputs.heritage_areas, crs=cfg.study_area.crs)


def _check_subdistricts(sub: gpd.GeoDataFrame, layers: OSMLayers, where: str) -> None:
    """Warn when sub-districts overlap or leave part of the study area uncovered."""
    import shapely

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


def run_ingest(cfg: Config) -> StageResult:
    """Parse the extract (or read the cache) and report layer counts."""
    t0 = time.perf_counter()
    layers = load_layers(cfg)
    res = StageResult("ingest", seconds=time.perf_counter() - t0)
    res.summary = [f"{k}: {v}" for k, v in layers.summary().items()]
    if not layers.admin.empty:
        from urbanunits.sources.boundaries import subdistricts_from_osm

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
    """Update units: blocks → units → classes; writes ``update_units`` and ``blocks``."""
    from urbanunits import units as units_mod

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
    if write:
        write_run(cfg, res.layers, drop=_downstream("units"))
    if draw:
        res.maps.append(_draw_units(cfg, result.units, layers, result.barriers))
    res.seconds = time.perf_counter() - t0
    return res


def _draw_units(cfg: Config, units: gpd.GeoDataFrame, layers: OSMLayers,
                barriers: gpd.GeoDataFrame | None) -> Path:
    from urbanunits import maps

    fig, _ = maps.plot_units(units, layers=layers, title=cfg.title, barriers=barriers)
    return maps.save_map(fig, cfg.maps_dir / "update_units.png", dpi=cfg.output.map_dpi)


# --- lifecircle stage ---

__all__ += ["run_lifecircle"]


def run_lifecircle(cfg: Config, *, layers: OSMLayers | None = None,
                   communities: gpd.GeoDataFrame | None = None,
                   units: gpd.GeoDataFrame | None = None,
                   packages: gpd.GeoDataFrame | None = None, write: bool = True,
                   draw: bool = True) -> StageResult:
    """15-minute life circles: walking distances, coverage, gaps; layers and one map per category.

    Communities are the packages stage's inventory (layer ``old_communities``: old and new
    compounds, keyed by ``community_id``); without ``communities`` the units and packages stages
    run in memory first.

    Writes ``lifecircle``, ``facilities``, ``service_gaps`` and ``lifecircle_summary`` (plus
    ``lifecircle_units``/``lifecircle_packages`` when communities carry ``unit_id``/
    ``package_id``, and ``isochrones`` when ``lifecircle.isochrones`` is on) and
    ``maps/lifecircle_<category>.png``.
    """
    from urbanunits import lifecircle as lc_mod
    from urbanunits.sources.facilities import load_facilities

    t0 = time.perf_counter()
    layers = layers or load_layers(cfg)
    upstream: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    if communities is None:
        pk = run_packages(cfg, layers=layers, units=units, write=False, draw=False)
        communities = pk.layers["old_communities"]
        units = pk.layers.get("update_units", units)
        packages = pk.layers["renewal_packages"]
        # written along with the life circles, so that every id in the file resolves
        upstream = dict(pk.layers)
    area = layers.study_area.geometry.iloc[0].buffer(cfg.osm.graph_margin_m)
    facilities, notes = load_facilities(cfg, layers.facilities, area=area)
    result = lc_mod.life_circle(layers.walk_graph, communities, facilities, cfg.lifecircle,
                                units=units, packages=packages)
    res = StageResult("lifecircle", layers={**upstream, **result.layers()})
    res.summary = notes + result.summary_lines()
    res.extra["result"] = result
    res.extra["layers"] = layers
    if write:
        write_run(cfg, res.layers)
    if draw:
        res.maps += _draw_lifecircle(cfg, result, layers)
    res.seconds = time.perf_counter() - t0
    res.summary.append(f"stage time {res.seconds:.1f} s (life-circle computation "
                       f"{result.seconds['total']:.2f} s, of which searches "
                       f"{result.seconds['search']:.2f} s)")
    return res


def _draw_lifecircle(cfg: Config, result: Any, layers: OSMLayers) -> list[Path]:
    from urbanunits import maps

    out = []
    for key in cfg.lifecircle.categories:
        fig, _ = maps.plot_lifecircle(result.communities, result.facilities, key,
                                      layers=layers, cfg=cfg)
        out.append(maps.save_map(fig, cfg.maps_dir / f"lifecircle_{key}.png",
                                 dpi=cfg.output.map_dpi))
    return out


# --- sites stage ---

__all__ += ["load_candidates", "run_sites"]


def load_candidates(cfg: Config, layers: OSMLayers) -> gpd.GeoDataFrame:
    """Candidate sites: the register ``inputs.candidate_sites`` first, then OSM's (if on)."""
    from urbanunits.sites import combine_candidates, osm_candidates

    reg = None
    if cfg.inputs.candidate_sites is not None:
        from urbanunits.sources.candidates import read_candidate_sites

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
    ``communities`` (the ``old_communities`` layer) when it has them. Writes ``site_suggestions``,
    ``accessibility``, ``site_candidates`` and ``maps/sites_<category>.png`` for each category
    with a gap.
    """
    from urbanunits import sites as sites_mod

    t0 = time.perf_counter()
    layers = layers or load_layers(cfg)
    upstream: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    if lifecircle is None:
        lifecircle = run_lifecircle(cfg, layers=layers, write=False, draw=False)
        upstream = dict(lifecircle.layers)
    lcr = lifecircle.extra["result"]
    comm = lcr.communities
    if communities is None:
        communities = lifecircle.layers.get("old_communities")
    ages = [c for c in sites_mod.AGE_COLUMNS.values()
            if communities is not None and c in communities.columns]
    if communities is not None and ages:
        comm = comm.merge(pd.DataFrame(communities)[["community_id", *ages]],
                          on="community_id", how="left")
    result = sites_mod.suggest_sites(layers.walk_graph, comm, lcr.facilities,
                                     load_candidates(cfg, layers), cfg)
    res = StageResult("sites", layers={**upstream, **result.layers()})
    res.summary = result.summary_lines()
    res.extra["result"] = result
    res.extra["lifecircle"] = lifecircle
    if write:
        write_run(cfg, res.layers)
    if draw:
        res.maps += _draw_sites(cfg, result, lcr, layers)
    res.seconds = time.perf_counter() - t0
    return res


def _draw_sites(cfg: Config, result: Any, lcr: Any, layers: OSMLayers) -> list[Path]:
    from urbanunits import maps
    from urbanunits.lifecircle import mandatory

    out = []
    lc = lcr.communities
    for key in dict.fromkeys(result.summary["category"]) if len(result.summary) else []:
        met = pd.Series(True, index=lc.index)
        for s in mandatory(cfg.lifecircle.categories[key]):
            met &= lc[f"{key}_{s}_ok"] | lc["community_id"].isin(
                result.newly_covered.get((key, s), []))
        fig, _ = maps.plot_sites(lc, result.suggestions, key, layers=layers, cfg=cfg,
                                 newly=set(lc.loc[met, "community_id"]))
        out.append(maps.save_map(fig, cfg.maps_dir / f"sites_{key}.png",
                                 dpi=cfg.output.map_dpi))
    return out


# --- packages stage ---

__all__ += ["run_packages"]


def run_packages(cfg: Config, *, layers: OSMLayers | None = None,
                 units: gpd.GeoDataFrame | None = None, write: bool = True,
                 draw: bool = True,
                 subdistricts: gpd.GeoDataFrame | _Load | None = _LOAD) -> StageResult:
    """Renewal packages: inventory → links → packages.

    Writes layers ``old_communities``, ``renewal_packages``, ``package_links`` and the updated
    ``update_units`` (old communities counted in, classes re-derived and reported in the
    summary), and the map ``renewal_packages.png``. Without
    ``units`` the units stage is run in memory first and its ``blocks`` are written too, so the
    file stays one consistent run; life-circle layers computed from older packages are removed.
    """
    from urbanunits import packages as pk

    t0 = time.perf_counter()
    layers = layers or load_layers(cfg)
    if isinstance(subdistricts, _Load):
        subdistricts = load_subdistricts(cfg, layers)
    upstream: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    if units is None:
        unit_stage = run_units(cfg, layers=layers, write=False, draw=False,
                               subdistricts=subdistricts)
        units = unit_stage.layers["update_units"]
        upstream = dict(unit_stage.layers)
    communities = pk.build_inventory(layers, cfg, units=units)
    barriers = pk.hard_barriers(layers, kinds=cfg.packages.hard_barriers)
    result = pk.renewal_packages(communities, cfg, units=units, barriers=barriers,
                                 subdistricts=subdistricts)
    out: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {
        **upstream, "old_communities": result.communities,
        "renewal_packages": result.packages, "package_links": result.links}
    res = StageResult("packages", layers=out)
    res.summary = result.summary_lines()
    if result.units is not None:
        # The classes changed with the old communities counted in: report them as written.
        from urbanunits.units import class_counts_line

        out["update_units"] = result.units
        if "unit_class" in result.units.columns:
            res.extra["class_line"] = "update units " + class_counts_line(result.units)
            res.summary.insert(0, res.extra["class_line"])
    res.extra["result"] = result
    res.extra["layers"] = layers
    if write:
        write_run(cfg, res.layers, drop=_downstream("packages"))
    if draw:
        from urbanunits import maps

        fig, _ = maps.plot_packages(result.packages, result.communities, layers=layers,
                                    title=cfg.title)
        res.maps.append(maps.save_map(fig, cfg.maps_dir / "renewal_packages.png",
                                      dpi=cfg.output.map_dpi))
    res.seconds = time.perf_counter() - t0
    return res


# --- whole run ---

__all__ += ["run_all", "run_maps"]


def _tables(stages: dict[str, StageResult]) -> dict[str, pd.DataFrame]:
    """Per-unit, per-package and per-community summaries for spreadsheets."""
    tables: dict[str, pd.DataFrame] = {}
    if "packages" in stages:
        tables["units"] = stages["packages"].layers.get(
            "update_units", stages["units"].layers["update_units"])
        tables["packages"] = stages["packages"].layers["renewal_packages"]
        tables["communities"] = stages["packages"].layers["old_communities"]
    if "lifecircle" in stages:
        lc = stages["lifecircle"].layers
        tables["lifecircle"] = lc["lifecircle"]
        tables["lifecircle_summary"] = lc["lifecircle_summary"]
        for name in ("lifecircle_units", "lifecircle_packages", "service_gaps"):
            if name in lc:
                tables[name] = lc[name]
    if "sites" in stages:
        for name in ("site_suggestions", "accessibility"):
            tables[name] = stages["sites"].layers[name]
    return tables


def run_all(cfg: Config, *, write: bool = True, draw: bool = True) -> StageResult:
    """Every stage in order (units → packages → life circles → sites), tables and maps.

    Leaves ``<name>.gpkg`` (all layers, QGIS styles, ``run_metadata``), ``tables/*.csv`` and
    ``tables/<name>.xlsx``, and every map in ``output.dir``.
    """
    from urbanunits.export import write_tables

    t0 = time.perf_counter()
    layers = load_layers(cfg)
    stages: dict[str, StageResult] = {}
    # Every stage is computed before anything is written: a stage that fails leaves the previous
    # run's GeoPackage and tables untouched, never a mix of two runs. The units map is drawn after
    # the packages stage has counted old communities per unit (old-community renewal class).
    subdistricts = load_subdistricts(cfg, layers)
    stages["units"] = run_units(cfg, layers=layers, write=False, draw=False,
                                subdistricts=subdistricts)
    stages["packages"] = run_packages(cfg, layers=layers,
                                      units=stages["units"].layers["update_units"],
                                      write=False, draw=False, subdistricts=subdistricts)
    pk = stages["packages"].layers
    # Report the classes as written: the packages stage re-derives them with the old communities
    # counted in, so the units stage's own summary would show the classes from before.
    unit_res = stages["units"].extra["result"]
    stages["units"].summary = dataclasses.replace(
        unit_res, units=pk.get("update_units", unit_res.units)).summary_lines()
    stages["packages"].summary = [line for line in stages["packages"].summary
                                  if line != stages["packages"].extra.get("class_line")]
    stages["lifecircle"] = run_lifecircle(
        cfg, layers=layers, communities=pk["old_communities"], units=pk.get("update_units"),
        packages=pk["renewal_packages"], write=False, draw=False)
    stages["sites"] = run_sites(cfg, layers=layers, lifecircle=stages["lifecircle"],
                                communities=pk["old_communities"], write=False, draw=False)
    res = StageResult("all")
    for name, st in stages.items():
        res.layers.update(st.layers)
        res.summary += [f"[{name}] {line}" for line in st.summary]
    if write:
        write_run(cfg, res.layers)
        files = write_tables(cfg.output.dir / "tables", _tables(stages),
                             workbook=f"{cfg.name}.xlsx")
        res.summary += [f"table {p}" for p in files]
    if draw:
        from urbanunits import maps

        res.maps.append(_draw_units(cfg, res.layers["update_units"], layers,
                                    stages["units"].extra["result"].barriers))
        pkr = stages["packages"].extra["result"]
        fig, _ = maps.plot_packages(pkr.packages, pkr.communities, layers=layers,
                                    title=cfg.title)
        res.maps.append(maps.save_map(fig, cfg.maps_dir / "renewal_packages.png",
                                      dpi=cfg.output.map_dpi))
        res.maps += _draw_lifecircle(cfg, stages["lifecircle"].extra["result"], layers)
        res.maps += _draw_sites(cfg, stages["sites"].extra["result"],
                                stages["lifecircle"].extra["result"], layers)
    res.extra["stages"] = stages
    res.seconds = time.perf_counter() - t0
    return res


def run_maps(cfg: Config) -> StageResult:
    """Recompute every stage in memory and redraw every map (the GeoPackage is not touched)."""
    res = run_all(cfg, write=False, draw=True)
    res.stage = "maps"
    res.summary = []
    res.layers = {}
    return res
