"""Where a run's results live: the stage result, the staged run folder, the GeoPackage.

:func:`write_run` writes stage layers with their QGIS styles and metadata (including the stage
digests of :mod:`urbanunits._resume`); :func:`reuse` reads a stage back when its digests still
match. :mod:`urbanunits.pipeline` decides what to compute; this module only stores and finds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from urbanunits import _resume
from urbanunits._outputs import Staging, staged_run
from urbanunits._resume import UPSTREAM, ancestors, stage_digests
from urbanunits.catalog import STAGE_LAYERS
from urbanunits.config import Config
from urbanunits.export import layer_styles, list_layers, run_metadata, write_layers

__all__ = [
    "STAGE_MAPS",
    "StageResult",
    "computed_from",
    "current_digests",
    "drop_stale",
    "reuse",
    "stage_outputs",
    "stale_layers",
    "store_stage",
    "up_to_date",
    "write_run",
]

logger = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage produced: layers written, maps drawn, summary lines, timing.

    ``skipped`` maps each stage that could not run (in :func:`run_all`) to its one-line reason.
    """

    stage: str
    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame] = field(default_factory=dict)
    maps: list[Path] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def report(self) -> str:
        """Human-readable summary for the terminal."""
        lines = [f"{self.stage}: done in {self.seconds:.1f} s"]
        lines += [f"  {s}" for s in self.summary]
        for name, gdf in self.layers.items():
            lines.append(f"  layer {name}: {len(gdf)} rows")
        lines += [f"  map {p}" for p in self.maps]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


# The maps each stage draws (glob patterns under maps/), removed with the stage's layers.
STAGE_MAPS: dict[str, tuple[str, ...]] = {
    "units": ("update_units.png",),
    "packages": ("renewal_packages.png",),
    "lifecircle": ("lifecircle_*.png",),
    "programme": ("programme.png", "programme_years.png"),
    "sites": ("sites_*.png",),
}


def computed_from(stages: Iterable[str]) -> set[str]:
    """The stages computed, directly or not, from any of ``stages`` (themselves excluded)."""
    given = set(stages)
    return {s for s in UPSTREAM if s not in given and given & set(ancestors(s))}


def stale_layers(stage: str, recomputed: Iterable[str]) -> set[str]:
    """Layers a run of ``stage`` must remove: those of every stage computed from a stage this
    run recomputed, except the stages it writes itself (``stage`` and its ancestors).

    A stage reused unchanged from the GeoPackage makes nothing stale: ``urbanunits programme``
    with the life circles reused keeps the sites, one that recomputes them removes the sites.
    """
    keep = set(ancestors(stage))
    return set().union(*(STAGE_LAYERS[s] for s in computed_from({stage, *recomputed})
                         if s not in keep))


@contextlib.contextmanager
def stage_outputs(cfg: Config, *, active: bool, keep: bool = True) -> Iterator[Staging | None]:
    """The run's staging folder (locked, swapped in at the end), or None when nothing is written.

    ``keep`` starts from the previous run's files (a stage run replaces only its own).
    """
    if not active:
        yield None
        return
    with staged_run(cfg.run_dir, keep=keep) as staging:
        yield staging


def drop_stale(cfg: Config, staging: Staging, stage: str, *,
               recomputed: Iterable[str] = ()) -> None:
    """Remove from a kept run the files made from results this run replaces.

    The maps of ``stage``, of the other stages it ``recomputed`` and of every stage computed
    from them (``stage`` redraws its own; ``urbanunits maps`` redraws the rest), the tables and
    the HTML map (``urbanunits all`` writes them again). Maps of stages reused unchanged from
    the GeoPackage are kept.
    """
    redo = {stage, *recomputed}
    maps_dir = staging.path(cfg.maps_dir)
    removed = []
    for s in redo | computed_from(redo):
        for pattern in STAGE_MAPS[s]:
            for p in maps_dir.glob(pattern):
                p.unlink()
                if s != stage:
                    removed.append(p.name)
    if removed:
        logger.info("removed maps made from replaced results (`urbanunits maps` redraws "
                    "them): %s", ", ".join(sorted(removed)))
    tables = staging.path(cfg.tables_dir)
    if tables.is_dir():
        shutil.rmtree(tables)
        logger.info("removed %s: made from the layers this stage replaced (`urbanunits all` "
                    "writes them again)", cfg.tables_dir)
    html = staging.path(cfg.html_path)
    if html.is_file():
        html.unlink()
        logger.info("removed %s: made from the layers this stage replaced (`urbanunits all` "
                    "or `urbanunits export --format html` writes it again)", html.name)


def write_run(cfg: Config, layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame], *,
              drop: set[str] | frozenset[str] = frozenset(),
              staging: Staging | None = None, digests: Mapping[str, str] | None = None,
              drawn: Sequence[str] = ()) -> Path:
    """Write stage layers to the run's GeoPackage with their QGIS styles and the run metadata.

    ``drop`` names layers to remove (later stages' results that these layers make stale).
    ``digests`` (stage → digest, :mod:`urbanunits._resume`) names the stages whose layers in
    ``layers`` were computed or reused under ``cfg``: they are recorded for later runs to reuse.
    Without ``staging`` the write is a run of its own (locked, swapped in whole).
    """

    if staging is None:
        with stage_outputs(cfg, active=True) as own:
            assert own is not None
            write_run(cfg, layers, drop=drop, staging=own, digests=digests, drawn=drawn)
        return cfg.gpkg_path

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
    gpkg = staging.path(cfg.gpkg_path)
    meta = _resume.merge_metadata(run_metadata(cfg, inputs=inputs), gpkg, layers,
                                  owned=STAGE_LAYERS, drop=drop, digests=digests or {},
                                  drawn=drawn)
    write_layers(gpkg, layers, styles=layer_styles(layers), metadata=meta, drop=drop,
                 shown_as=cfg.gpkg_path)
    return cfg.gpkg_path


def store_stage(cfg: Config, staging: Staging,
                layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame], stage: str, *,
                vouched: Sequence[str], recomputed: Iterable[str] = (),
                drawn: bool = False) -> None:
    """Write a stage run's layers and remove what they make stale, in one step.

    Removed: the layers of stages computed from what this run ``recomputed``
    (:func:`stale_layers`), the stage's own layers it no longer produces (isochrones turned off,
    a programme with no package to phase), and the maps, tables and HTML map of
    :func:`drop_stale`. ``vouched`` are the stages whose digests are recorded for resume.
    """
    drop = stale_layers(stage, recomputed) | (STAGE_LAYERS[stage] - set(layers))
    write_run(cfg, layers, drop=drop, staging=staging, digests=current_digests(cfg, vouched),
              drawn=[stage] if drawn else [])
    drop_stale(cfg, staging, stage, recomputed=recomputed)


def current_digests(cfg: Config, stages: Sequence[str]) -> dict[str, str]:
    """The current digests of ``stages`` (computed or reused under ``cfg``)."""

    if not stages:
        return {}
    now = stage_digests(cfg)
    return {s: now[s] for s in stages}


def up_to_date(cfg: Config, stage: str) -> str | None:
    """Why the run already holds ``stage``'s current results, or None when it must be computed.

    Current means: the GeoPackage records, for ``stage`` and each stage it is computed from,
    the digest of the version, config sections and input files it reads now
    (:mod:`urbanunits._resume`); ``stage``'s layers were written, and so its maps drawn, from
    this config file word for word (titles and map options too); every layer those digests
    vouch for is still in the file, and the stage's maps are there. For units, the packages
    stage's counts in ``update_units`` must be current too. A later stage's results in the file
    were then computed from these same results, and stay.
    """
    if cfg.source is None or not Path(cfg.source).is_file():
        return None
    meta = _resume.read_metadata(cfg.gpkg_path)
    text = Path(cfg.source).read_text(encoding="utf-8")
    if meta.get(_resume.CONFIG_KEY + stage) != _resume.config_text_hash(text):
        return None
    now = stage_digests(cfg)
    chain = ancestors(stage)
    # update_units carries the packages stage's recount of old communities when it ran
    if stage == "units" and _resume.DIGEST_KEY + "packages" in meta:
        chain = ancestors("packages")
    if any(meta.get(_resume.DIGEST_KEY + s) != now[s] for s in chain):
        return None
    # the layers the digests vouch for are all still there (none deleted in QGIS, say)
    try:
        wanted = set().union(*(json.loads(meta[_resume.SCHEMA_KEY + s]) for s in chain))
    except (KeyError, ValueError):
        return None
    if not wanted <= set(list_layers(cfg.gpkg_path)):
        return None
    maps = ([f"lifecircle_{key}.png" for key in cfg.lifecircle.categories]
            if stage == "lifecircle" else STAGE_MAPS[stage])
    if not all(any(cfg.maps_dir.glob(p)) for p in maps):
        return None
    return (f"{stage}: up to date in {cfg.gpkg_path} (same config, inputs and version as "
            "when it was written); nothing recomputed — --force recomputes it")


def reuse(cfg: Config, stage: str, *, have: Sequence[str] = ()) -> Any:
    """``stage``'s layers (and its upstream stages') from the run's GeoPackage, or None.

    They are reused when every digest recorded for them matches the current config and inputs;
    otherwise the log says why the stage is computed. Stages in ``have`` are checked, not read.
    """

    got = _resume.read_stage(cfg.gpkg_path, stage, _resume.stage_digests(cfg),
                             owned=STAGE_LAYERS, have=have)
    if isinstance(got, str):
        logger.info("%s: computed, not reused: %s", stage, got)
        return None
    for s in got.stages:
        logger.info("%s: reused from %s (digest %s)", s, cfg.gpkg_path, got.digests[s][:12])
    return got

