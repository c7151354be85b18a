"""One demo run per test session, shared by the pytest-xdist workers.

With ``--dist loadfile`` a session fixture runs once per worker. The demo's parse cache and its
``urbanunits all`` run are made once in a folder beside the workers' temporary folders, named by
a digest of the source, config and extract, under a file lock: the first worker makes them, the
others wait and read them. Tests read the run; a test that changes files copies it first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from urbanunits.config import Config, Output, load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO_TOML = ROOT / "configs" / "lujiazui.toml"
DEMO_OSM = ROOT / "data" / "raw" / "lujiazui.osm"


def source_digest() -> str:
    """SHA-256 (16 hex digits) of the package source, this file, the demo config and the extract."""
    h = hashlib.sha256()
    for p in [*sorted((ROOT / "src").rglob("*.py")), Path(__file__), DEMO_TOML, DEMO_OSM]:
        h.update(p.relative_to(ROOT).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def shared_folder(factory: pytest.TempPathFactory) -> Path:
    """The folder the workers of this session share (the workers' temp folders' parent)."""
    base = factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / f"demo-{source_digest()}"
    folder.mkdir(exist_ok=True)
    return folder


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock (one worker at a time makes what is shared)."""
    with (folder / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def shared_config(folder: Path) -> Config:
    """The demo config with outputs (and the parse cache) in the shared folder."""
    return load_config(DEMO_TOML, output=Output(dir=folder / "out"))


@dataclass(frozen=True)
class DemoRun:
    """The shared ``urbanunits all`` of the demo (do not write into ``cfg``'s folder).

    ``layers`` are read back from the GeoPackage with the stage-resume reader, which restores
    them exactly as the run held them in memory (``tests/test_resume.py`` checks that).
    """

    cfg: Config
    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame]
    summary: list[str]
    stages: dict[str, list[str]]  # each stage's result layers, in run order
    maps: list[Path]
    computed: Path  # pickle of the layers as the run held them in memory

    def computed_layers(self) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
        """The layers as computed (before the GeoPackage)."""
        with self.computed.open("rb") as fh:
            out: dict[str, gpd.GeoDataFrame | pd.DataFrame] = pickle.load(fh)
        return out


def make_demo_run(folder: Path) -> DemoRun:
    """Run (once per session, under the lock) or read the shared demo run."""
    from urbanunits import _resume, catalog, pipeline

    cfg = shared_config(folder)
    done = folder / "run.json"
    with locked(folder):
        if not done.is_file():
            res = pipeline.run_all(cfg)
            # the layers as computed, for the exact round-trip test (test-only data: pickle)
            with (folder / "computed.pkl").open("wb") as fh:
                pickle.dump(res.layers, fh)
            stages = {name: list(st.layers) for name, st in res.extra["stages"].items()}
            done.write_text(json.dumps({"summary": res.summary, "stages": stages,
                                        "maps": [str(p) for p in res.maps]},
                                       ensure_ascii=False), encoding="utf-8")
    info = json.loads(done.read_text(encoding="utf-8"))
    now = _resume.stage_digests(cfg)
    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    have: list[str] = []
    for stage in ("sites", "programme"):
        got = _resume.read_stage(cfg.gpkg_path, stage, now, owned=catalog.STAGE_LAYERS,
                                 have=have)
        assert not isinstance(got, str), got
        layers.update(got.layers)
        have += got.stages
    return DemoRun(cfg=cfg, layers=layers, summary=info["summary"], stages=info["stages"],
                   maps=[Path(p) for p in info["maps"]], computed=folder / "computed.pkl")


def copy_of(run: DemoRun, out: Path) -> Config:
    """The shared run's folder copied under ``out`` (to write into), and its config there."""
    import dataclasses
    import shutil

    shutil.copytree(run.cfg.run_dir, out / run.cfg.name)
    return dataclasses.replace(run.cfg, output=dataclasses.replace(run.cfg.output, dir=out))
