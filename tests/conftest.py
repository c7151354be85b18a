"""Shared fixtures: the demo config pointed at a temporary output folder, and parsed layers."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("URBANUNITS_PROGRESS", "0")

from urbanunits.config import Config, Output, load_config
from urbanunits.sources.osm import OSMLayers, read_osm

from .demorun import DemoRun, locked, make_demo_run, shared_config, shared_folder

ROOT = Path(__file__).resolve().parents[1]
DEMO_OSM = ROOT / "data" / "raw" / "lujiazui.osm"


def demo_config(out: Path, **changes: object) -> Config:
    """The shipped demo config with outputs (and caches) under ``out``."""
    cfg = load_config(ROOT / "configs" / "lujiazui.toml", output=Output(dir=out))
    return dataclasses.replace(cfg, **changes) if changes else cfg


@pytest.fixture(scope="session")
def demo_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return demo_config(tmp_path_factory.mktemp("demo_out"))


@pytest.fixture(scope="session")
def demo_layers(tmp_path_factory: pytest.TempPathFactory) -> OSMLayers:
    """The demo extract parsed once per session (the workers share the parse cache)."""
    folder = shared_folder(tmp_path_factory)
    with locked(folder):
        return read_osm(shared_config(folder))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_layers: OSMLayers) -> DemoRun:
    """The demo's ``urbanunits all``, run once per session (read-only: copy before writing)."""
    return make_demo_run(shared_folder(tmp_path_factory))


@pytest.fixture(autouse=True)
def _close_figures() -> object:
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
