"""The thin layer that runs stages from a config: load (cached), compute, write, draw.

Notebooks and the CLI call the same functions. Stage logic lives in the stage modules
(:mod:`urbanunits.units`, :mod:`urbanunits.packages`, :mod:`urbanunits.lifecircle`) as pure
functions; this module only wires inputs to them and results to the GeoPackage and maps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from urbanunits.config import Config
from urbanunits.export import write_layers
from urbanunits.sources.osm import OSMLayers, read_osm

__all__ = ["StageResult", "load_layers", "load_subdistricts", "run_ingest", "run_units"]

logger = logging.getLogger(__name__)


class NotBuiltError(NotImplementedError):
    """A stage whose issue has not landed yet."""


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


def load_layers(cfg: Config) -> OSMLayers:
    """Read the configured OSM extract (cached)."""
    return read_osm(cfg)


def load_subdistricts(cfg: Config, layers: OSMLayers) -> gpd.GeoDataFrame | None:
    """Sub-district polygons from ``inputs.subdistricts``, else OSM admin level 8, else None.

    Returns
    -------
    geopandas.GeoDataFrame or None
        Columns ``subdistrict`` and geometry in the metric CRS.
    """
    if cfg.inputs.subdistricts is not None:
        from urbanunits.sources.boundaries import read_subdistricts

        return read_subdistricts(cfg.inputs.subdistricts, crs=cfg.study_area.crs,
                                 name_field=cfg.inputs.subdistrict_name_field)
    admin = layers.admin
    if admin is not None and not admin.empty:
        sub = admin[admin["admin_level"] == 8]
        if not sub.empty:
            out = sub[["name", "geometry"]].rename(columns={"name": "subdistrict"})
            out = out[out["subdistrict"].notna()]
            if not out.empty:
                return out.dissolve(by="subdistrict", as_index=False).sort_values(
                    "subdistrict").reset_index(drop=True)
    return None


def run_ingest(cfg: Config) -> StageResult:
    """Parse the extract (or read the cache) and report layer counts."""
    t0 = time.perf_counter()
    layers = load_layers(cfg)
    res = StageResult("ingest", seconds=time.perf_counter() - t0)
    res.summary = [f"{k}: {v}" for k, v in layers.summary().items()]
    res.extra["layers"] = layers
    return res


def run_units(cfg: Config, *, layers: OSMLayers | None = None, write: bool = True,
              draw: bool = True) -> StageResult:
    """Update units: blocks → units → classes; writes ``update_units`` and ``blocks``."""
    from urbanunits import units as units_mod

    t0 = time.perf_counter()
    layers = layers or load_layers(cfg)
    subdistricts = load_subdistricts(cfg, layers)
    result = units_mod.update_units(layers, cfg, subdistricts=subdistricts)
    res = StageResult("units", layers={"update_units": result.units, "blocks": result.blocks})
    res.summary = result.summary_lines()
    res.extra["result"] = result
    res.extra["layers"] = layers
    if write:
        write_layers(cfg.gpkg_path, res.layers)
    if draw:
        from urbanunits import maps

        fig, _ = maps.plot_units(result.units, layers=layers, title=cfg.title,
                                 barriers=result.barriers)
        res.maps.append(maps.save_map(fig, cfg.maps_dir / "update_units.png",
                                      dpi=cfg.output.map_dpi))
    res.seconds = time.perf_counter() - t0
    return res


# --- lifecircle stage ---

__all__ += ["run_lifecircle"]


def _fallback_communities(layers: OSMLayers, cfg: Config) -> gpd.GeoDataFrame:
    """Communities from OSM residential compounds, for runs before the packages stage exists.

    ``community_id`` is the OSM id; population = Σ building footprint (m²) × levels inside the
    compound ÷ ``packages.m2_per_household`` × ``packages.persons_per_household``.
    """
    res = layers.residential
    out = gpd.GeoDataFrame({"community_id": res["osm_id"].to_numpy(),
                            "name": res["name"].to_numpy()},
                           geometry=res.geometry.to_numpy(), crs=res.crs)
    b = layers.buildings
    floor = pd.Series(0.0, index=out.index)
    if len(b) and len(out):
        parts = gpd.overlay(gpd.GeoDataFrame({"levels": b["levels"].to_numpy()},
                                             geometry=b.geometry.to_numpy(), crs=b.crs),
                            out[["geometry"]].reset_index(names="_c"), how="intersection",
                            keep_geom_type=True)
        floor = (parts.area * parts["levels"]).groupby(parts["_c"]).sum().reindex(
            out.index, fill_value=0.0)
    p = cfg.packages
    out["floor_area_m2"] = floor.to_numpy()
    out["population"] = (floor / p.m2_per_household * p.persons_per_household).round().to_numpy()
    return out


def _written_layer(cfg: Config, name: str) -> gpd.GeoDataFrame | None:
    """A layer an earlier stage wrote to the run's GeoPackage, or None."""
    from urbanunits.export import list_layers, read_layer

    if cfg.gpkg_path.is_file() and name in list_layers(cfg.gpkg_path):
        return read_layer(cfg.gpkg_path, name)
    return None


def run_lifecircle(cfg: Config, *, layers: OSMLayers | None = None, write: bool = True,
                   draw: bool = True) -> StageResult:
    """15-minute life circles: walking distances, coverage, gaps; layers and one map per category.

    Writes ``lifecircle``, ``facilities``, ``service_gaps`` and ``lifecircle_summary`` (plus
    ``lifecircle_units``/``lifecircle_packages`` when communities carry ``unit_id``/
    ``package_id``, and ``isochrones`` when ``lifecircle.isochrones`` is on) and
    ``maps/lifecircle_<category>.png``.
    """
    from urbanunits import lifecircle as lc_mod
    from urbanunits.sources.facilities import load_facilities

    t0 = time.perf_counter()
    layers = layers or load_layers(cfg)
    # Until the packages stage lands, communities come from OSM residential compounds; at merge
    # time this becomes the packages result (layer `old_communities`).
    communities = _fallback_communities(layers, cfg)
    area = layers.study_area.geometry.iloc[0].buffer(cfg.osm.graph_margin_m)
    facilities, notes = load_facilities(cfg, layers.facilities, area=area)
    units = _written_layer(cfg, "update_units")
    if units is None:
        notes.append("no update_units layer yet: run `urbanunits units` for per-unit summaries")
    result = lc_mod.life_circle(layers.walk_graph, communities, facilities, cfg.lifecircle,
                                units=units)
    res = StageResult("lifecircle", layers=result.layers())
    res.summary = notes + result.summary_lines()
    res.extra["result"] = result
    res.extra["layers"] = layers
    if write:
        write_layers(cfg.gpkg_path, res.layers)
    if draw:
        from urbanunits import maps

        for key in cfg.lifecircle.categories:
            fig, _ = maps.plot_lifecircle(result.communities, result.facilities, key,
                                          layers=layers, cfg=cfg)
            res.maps.append(maps.save_map(fig, cfg.maps_dir / f"lifecircle_{key}.png",
                                          dpi=cfg.output.map_dpi))
    res.seconds = time.perf_counter() - t0
    res.summary.append(f"stage time {res.seconds:.1f} s (life-circle computation "
                       f"{result.seconds['total']:.2f} s, of which searches "
                       f"{result.seconds['search']:.2f} s)")
    return res


# --- packages stage ---

__all__ += ["run_packages"]


def run_packages(cfg: Config, *, layers: OSMLayers | None = None,
                 units: gpd.GeoDataFrame | None = None, write: bool = True,
                 draw: bool = True) -> StageResult:
    """Renewal packages: inventory → links → packages.

    Writes layers ``old_communities``, ``renewal_packages``, ``package_links`` and the updated
    ``update_units``, and the map ``renewal_packages.png``. Without ``units`` the units stage is
    run in memory first; if it is not available the packages are built without units (no
    ``unit_id``, no ``update_units`` layer) and a warning says so.
    """
    from urbanunits import packages as pk

    t0 = time.perf_counter()
    layers = layers or load_layers(cfg)
    subdistricts = load_subdistricts(cfg, layers)
    if units is None:
        try:
            units = run_units(cfg, layers=layers, write=False, draw=False).layers["update_units"]
        except NotBuiltError:
            logger.warning("the units stage is not available; packages are built without "
                           "update units (no unit_id, update_units not updated)")
            units = None
    communities = pk.build_inventory(layers, cfg, units=units)
    barriers = pk.hard_barriers(layers, kinds=cfg.packages.hard_barriers)
    result = pk.renewal_packages(communities, cfg, units=units, barriers=barriers,
                                 subdistricts=subdistricts)
    out = {"old_communities": result.communities, "renewal_packages": result.packages,
           "package_links": result.links}
    if result.units is not None:
        out["update_units"] = result.units
    res = StageResult("packages", layers=out)
    res.summary = result.summary_lines()
    res.extra["result"] = result
    res.extra["layers"] = layers
    if write:
        write_layers(cfg.gpkg_path, res.layers)
    if draw:
        from urbanunits import maps

        fig, _ = maps.plot_packages(result.packages, result.communities, layers=layers,
                                    title=cfg.title)
        res.maps.append(maps.save_map(fig, cfg.maps_dir / "renewal_packages.png",
                                      dpi=cfg.output.map_dpi))
    res.seconds = time.perf_counter() - t0
    return res
