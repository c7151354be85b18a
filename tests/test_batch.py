"""urbanunits batch on a real Dask LocalCluster (2 worker processes): two cities and a broken one.

The demo and a small synthetic city are run as tasks; a config naming a missing extract fails
alone, in one line; every finished city's outputs equal what ``urbanunits all`` writes for it;
a rerun recomputes nothing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pyogrio
import pytest

from urbanunits.batch import run_batch
from urbanunits.cli import main as cli_main
from urbanunits.config import load_config

from .conftest import DEMO_OSM, ROOT
from .demorun import shared_folder
from .test_extract_checks import BBOX_TOML, X0, X1, Y0, Y1, full_extract


def _write_configs(tmp: Path) -> list[Path]:
    # The demo config (so that the session's parse cache of the demo serves it: _seed_cache)
    # under another name, with small maps: the cities' maps only have to exist.
    demo = tmp / "demo.toml"
    text = (ROOT / "configs" / "lujiazui.toml").read_text(encoding="utf-8")
    for old, new in (('name = "lujiazui"', 'name = "demo"'),
                     ('osm = "data/raw/lujiazui.osm"', f'osm = "{DEMO_OSM}"'),
                     ('dir = "data/processed"', f'dir = "{tmp / "out"}"'),
                     ("map_dpi = 200", "map_dpi = 50")):
        assert old in text, old
        text = text.replace(old, new)
    demo.write_text(text, encoding="utf-8")
    w = full_extract()
    w.node((X0 + X1) / 2, (Y0 + Y1) / 2, {"amenity": "kindergarten", "name": "测试幼儿园"})
    synth = tmp / "synth.toml"
    synth.write_text(f'name = "synth"\n[study_area]\nbbox = {BBOX_TOML}\n'
                     f'[inputs]\nosm = "{w.write(tmp / "synth.osm")}"\n'
                     f'[output]\ndir = "{tmp / "out"}"\n', encoding="utf-8")
    broken = tmp / "broken.toml"
    broken.write_text('name = "broken"\n[study_area]\nbbox = [121.49, 31.22, 121.50, 31.23]\n'
                      f'[inputs]\nosm = "{tmp / "missing.osm"}"\n[output]\ndir = "{tmp / "out"}"\n',
                      encoding="utf-8")
    return [demo, synth, broken]


def _seed_cache(tmp_path_factory: pytest.TempPathFactory, out: Path) -> None:
    """Copy the session's parse cache of the demo into ``out``: the demo is not parsed again."""
    (out / "cache").mkdir(parents=True, exist_ok=True)
    for p in (shared_folder(tmp_path_factory) / "out" / "cache").glob("osm-*.gpkg"):
        shutil.copy2(p, out / "cache" / p.name)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, demo_layers: object
          ) -> tuple[Path, list[Path], object]:
    tmp = tmp_path_factory.mktemp("batch")
    configs = _write_configs(tmp)
    _seed_cache(tmp_path_factory, tmp / "out")
    res = run_batch(configs, n_workers=2, summary_dir=tmp / "summary")
    return tmp, configs, res


def test_cities_run_and_a_broken_one_is_reported(batch: tuple[Path, list[Path], object]) -> None:
    tmp, configs, res = batch
    rows = res.cities.set_index("city")  # type: ignore[attr-defined]
    assert list(rows["status"]) == ["done", "done", "failed"]
    assert "missing.osm" in rows.at["broken", "error"] and "\n" not in rows.at["broken", "error"]
    for cfg_path, name in zip(configs[:2], ("demo", "synth"), strict=True):
        cfg = load_config(cfg_path)
        layers = {str(n) for n, _ in pyogrio.list_layers(cfg.gpkg_path)}
        assert {"update_units", "lifecircle", "lifecircle_summary"} <= layers
        # the summary row is read back from what the city wrote
        units = pyogrio.read_dataframe(cfg.gpkg_path, layer="update_units", read_geometry=False)
        assert rows.at[name, "n_units"] == len(units)
        cov = pyogrio.read_dataframe(cfg.gpkg_path, layer="lifecircle_summary",
                                     read_geometry=False)
        want = cov.loc[(cov["category"] == "all"), "pop_share_ok"].iloc[0]
        assert rows.at[name, "share_all"] == pytest.approx(want, nan_ok=True)
        # the maps are in the city's own folder, not in a staging folder left beside it
        drawn = {p.name for p in Path(cfg.maps_dir).glob("*.png")}
        assert {"update_units.png", "lifecircle_childcare.png"} <= drawn, drawn
    assert not [p for p in (tmp / "out").iterdir() if "staging" in p.name]
    lines = res.summary_lines()  # type: ignore[attr-defined]
    assert any(line.startswith("broken: FAILED — ") for line in lines)
    assert lines[-1].startswith("2/3 cities done")


def test_summary_files_reopen(batch: tuple[Path, list[Path], object]) -> None:
    tmp, _, res = batch
    gpkg = tmp / "summary" / "batch_summary.gpkg"
    back = pyogrio.read_dataframe(gpkg, layer="cities")
    assert list(back["city"]) == ["demo", "synth", "broken"]
    assert back.crs.to_epsg() == 4326
    assert back.geometry.iloc[:2].notna().all()  # study areas of the cities that ran
    assert (tmp / "summary" / "batch_summary.xlsx").is_file()
    assert (tmp / "summary" / "batch_summary.png").stat().st_size > 10_000
    assert set(res.files) == {gpkg, tmp / "summary" / "batch_summary.xlsx",  # type: ignore[attr-defined]
                              tmp / "summary" / "batch_summary.png"}


def test_rerun_skips_unchanged_cities_and_the_cli_exits_4(
        batch: tuple[Path, list[Path], object], capsys: pytest.CaptureFixture[str]) -> None:
    tmp, configs, _ = batch
    demo_gpkg = load_config(configs[0]).gpkg_path
    before = demo_gpkg.stat().st_mtime_ns
    code = cli_main(["batch", *map(str, configs), "--workers", "2", "--summary-dir",
                     str(tmp / "summary2"), "-q"])
    out = capsys.readouterr().out
    assert code == 4  # one city failed
    assert "demo: unchanged" in out and "synth: unchanged" in out and "broken: FAILED" in out
    assert demo_gpkg.stat().st_mtime_ns == before  # not recomputed


def test_demo_split_into_four_parts_equals_the_unsplit_run(tmp_path: Path,
                                                            tmp_path_factory: Any,
                                                            demo_layers: object,
                                                            demo_run: Any) -> None:
    """A 2 × 2 grid over the demo: every unit and community comes back once, with the same
    geometry, and every life-circle distance equals the unsplit run's."""
    import numpy as np
    import shapely

    from urbanunits.batch import dask_client
    from urbanunits.split import run_split, split_parts

    cfg_path = _write_configs(tmp_path)[0]
    _seed_cache(tmp_path_factory, tmp_path / "out")
    cfg = load_config(cfg_path)
    parts = split_parts(cfg, "grid:1.45", layers=demo_layers)
    assert len(parts) == 4
    whole = demo_run.layers  # the shared `urbanunits all` of the demo
    with dask_client(None, 2) as client:
        res = run_split(cfg_path, "grid:1.45", client=client)
    got = res.layers

    def key(g: shapely.Geometry) -> tuple[float, float, float]:
        p = g.representative_point()
        return round(p.x, 2), round(p.y, 2), round(g.area, 1)

    assert sorted(map(key, got["update_units"].geometry)) == sorted(
        map(key, whole["update_units"].geometry))
    assert got["update_units"]["unit_id"].is_unique
    a = got["lifecircle"].assign(k=[key(g) for g in got["lifecircle"].geometry]).set_index("k")
    b = whole["lifecircle"].assign(k=[key(g) for g in whole["lifecircle"].geometry]).set_index("k")
    assert sorted(a.index) == sorted(b.index)
    cols = [c for c in b.columns if c.endswith("_dist_m")]
    np.testing.assert_allclose(a.loc[b.index, cols].to_numpy(float),
                               b[cols].to_numpy(float), atol=1e-6, equal_nan=True)
    assert (a.loc[b.index, "all_ok"].to_numpy() == b["all_ok"].to_numpy()).all()
    back = {str(n) for n, _ in pyogrio.list_layers(cfg.gpkg_path)}
    assert {"parts", "update_units", "lifecircle"} <= back


def test_local_cluster_workers_allocate_as_a_lone_run_does() -> None:
    import os

    from urbanunits.batch import dask_client

    # Dask's default MALLOC_TRIM_THRESHOLD_ (glibc's adaptive mmap threshold off) is not set;
    # its one thread per worker for numerical libraries is kept
    # On Linux workers fork from a fork server, not from this process (whose nanny would be
    # their parent); a worker restarted after a crash starts the same way
    with dask_client(None, 1) as client:
        trim = client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_")
        omp = client.run(os.getenv, "OMP_NUM_THREADS")
        parents = list(client.run(os.getppid).values())
        client.restart()
        trim_again = client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_")
        parents_again = list(client.run(os.getppid).values())
    assert list(trim.values()) == list(trim_again.values()) == [
        os.environ.get("MALLOC_TRIM_THRESHOLD_")]
    assert list(omp.values()) == ["1"]
    if sys.platform.startswith("linux"):
        assert os.getpid() not in parents + parents_again
        assert parents == parents_again  # the same fork server


def test_parts_keep_their_parse_cache_from_run_to_run(tmp_path: Path, demo_layers: object
                                                      ) -> None:
    """A part's boundary file is written with the same bytes each run, so the parse cache
    keyed by its hash is found again instead of a new one written per part and run."""
    from urbanunits.sources.osm_cache import parse_key
    from urbanunits.split import part_configs, split_parts

    cfg = load_config(_write_configs(tmp_path)[0])
    parts = split_parts(cfg, "grid:1.45", layers=demo_layers)

    def keys() -> list[str]:
        return [parse_key(c, c.inputs.osm) for c in part_configs(cfg, parts, tmp_path / "w")]

    first = keys()
    assert len(set(first)) == len(parts) == 4
    assert keys() == first
