"""The maps of a run: each stage's PNGs drawn into the run's staging folder.

What each map shows is in :mod:`urbanunits.maps`, :mod:`urbanunits.programme_maps` and
:mod:`urbanunits.sites_maps`; this module names the files and feeds them a stage's results, or
the layers read back from the GeoPackage (``urbanunits maps``).

Each map is handed to :func:`~urbanunits.map_files.save_map` as a function that builds its
figure: inside a :func:`~urbanunits.map_files.saving_in_parallel` block the figures are then
built by the processes that draw them, not one after the other before the drawing starts.
The basemap they share is built first (:func:`~urbanunits.maps.prepare_basemap`), so that each
process copies it instead of building its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import pandas as pd

from urbanunits import maps, sites_maps
from urbanunits._outputs import Staging
from urbanunits.config import Config
from urbanunits.layers import OSMLayers
from urbanunits.lifecircle import mandatory
from urbanunits.programme_maps import plot_programme, plot_programme_years
from urbanunits.sources.inputs import load_subdistricts
from urbanunits.units import barrier_lines, prepare_subdistricts, subdistrict_lines

__all__ = ["draw_lifecircle", "draw_packages", "draw_programme", "draw_sites", "draw_units",
           "map_barriers", "save_into", "sites_from_layers"]


def save_into(cfg: Config, staging: Staging, fig: Any, name: str) -> Path:
    """Save a map into the staging folder; return its final path (``maps/<name>``).

    ``fig`` is a figure or a function that builds it (:func:`~urbanunits.map_files.save_map`).
    """
    final = cfg.maps_dir / name
    maps.save_map(fig, staging.path(final), dpi=cfg.output.map_dpi)
    return final


def _figure(plot: Callable[..., tuple[Any, Any]], *args: Any, **kwargs: Any
            ) -> Callable[[], Any]:
    """A function building ``plot(*args, **kwargs)``'s figure when called (for save_into)."""
    return lambda: plot(*args, **kwargs)[0]


def draw_units(cfg: Config, staging: Staging, units: gpd.GeoDataFrame, layers: OSMLayers,
                barriers: gpd.GeoDataFrame | None) -> Path:
    maps.prepare_basemap(layers)
    return save_into(cfg, staging, _figure(maps.plot_units, units, layers=layers,
                                           title=cfg.title, barriers=barriers),
                     "update_units.png")


def draw_packages(cfg: Config, staging: Staging, packages: gpd.GeoDataFrame,
                  communities: gpd.GeoDataFrame, layers: OSMLayers) -> Path:
    maps.prepare_basemap(layers)
    return save_into(cfg, staging, _figure(maps.plot_packages, packages, communities,
                                           layers=layers, title=cfg.title),
                     "renewal_packages.png")


def draw_lifecircle(cfg: Config, staging: Staging, result: Any,
                     layers: OSMLayers) -> list[Path]:
    maps.prepare_basemap(layers)
    return [save_into(cfg, staging, _figure(maps.plot_lifecircle, result.communities,
                                            result.facilities, key, layers=layers, cfg=cfg),
                      f"lifecircle_{key}.png")
            for key in cfg.lifecircle.categories]


def draw_sites(cfg: Config, staging: Staging, result: Any, lcr: Any,
                layers: OSMLayers) -> list[Path]:
    maps.prepare_basemap(layers)
    out = []
    lc = lcr.communities
    for key in dict.fromkeys(result.summary["category"]) if len(result.summary) else []:
        met = pd.Series(True, index=lc.index)
        for s in mandatory(cfg.lifecircle.categories[key]):
            met &= lc[f"{key}_{s}_ok"] | lc["community_id"].isin(
                result.newly_covered.get((key, s), []))
        out.append(save_into(cfg, staging, _figure(
            sites_maps.plot_sites, lc, result.suggestions, key, layers=layers, cfg=cfg,
            newly=set(lc.loc[met, "community_id"])), f"sites_{key}.png"))
    return out


def draw_programme(cfg: Config, staging: Staging, result: Any,
                    layers: OSMLayers) -> list[Path]:
    maps.prepare_basemap(layers)
    return [save_into(cfg, staging, _figure(plot_programme, result.packages, result.communities,
                                            layers=layers, title=cfg.title), "programme.png"),
            save_into(cfg, staging, _figure(plot_programme_years, result.years, title=cfg.title),
                      "programme_years.png")]


def map_barriers(cfg: Config, layers: OSMLayers) -> gpd.GeoDataFrame:
    """The units map's barrier and sub-district lines, without running the units stage."""
    u = cfg.units
    bar = barrier_lines(layers, highways=u.barrier_highways, railways=u.barrier_railways,
                        waterways=u.barrier_waterways, water_edges=u.water_edges,
                        min_water_body_m2=u.min_area_m2)
    sd = prepare_subdistricts(load_subdistricts(cfg, layers), crs=layers.study_area.crs,
                              study_area=layers.study_area.union_all())
    parts = [f.set_crs(bar.crs, allow_override=True) for f in (bar, subdistrict_lines(sd))
             if not f.empty]
    return (gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=bar.crs) if parts
            else bar)


def sites_from_layers(lc: gpd.GeoDataFrame, suggestions: gpd.GeoDataFrame,
                       cfg: Config) -> Any:
    """What the sites maps need, from the layers: studied subtypes, MCLP sites' coverage."""
    studied = [(key, s) for key, cat in cfg.lifecircle.categories.items()
               for s in mandatory(cat) if not lc[f"{key}_{s}_ok"].astype(bool).all()]
    newly: dict[tuple[str, str], list[str]] = {}
    mclp = suggestions[suggestions["method"] == "mclp"]
    for key, s in studied:
        rows = mclp[(mclp["category"] == key) & (mclp["subtype"] == s)]
        newly[key, s] = [i for ids in rows["community_ids"] for i in str(ids).split(", ") if i]
    return SimpleNamespace(suggestions=suggestions, newly_covered=newly,
                           summary=pd.DataFrame({"category": [k for k, _ in studied]}))

