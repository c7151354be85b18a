"""Whole runs: one folder per run, staged and swapped whole, locked, write failures as one line,
skipped stages, and a parse cache that never runs code."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import pandas as pd
import pyogrio
import pyogrio.errors
import pytest

from urbanunits import _outputs, catalog, pipeline
from urbanunits.cli import main
from urbanunits.config import Config
from urbanunits.errors import EmptyInputError, OutputError, RunLockedError
from urbanunits.export import list_layers
from urbanunits.sources import _cache, osm
from urbanunits.sources.osm import OSMLayers, read_osm

from .conftest import ROOT, demo_config
from .demorun import DemoRun, copy_of


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def only_the_run_left(cfg: Config) -> None:
    """Beside the run folder there is only its lock file: no staging, ready or old folder."""
    names = sorted(p.name for p in cfg.output.dir.iterdir() if p.name != "cache")
    assert names == [f".{cfg.name}.lock", cfg.name], names


@pytest.fixture(autouse=True)
def _records_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the CLI's logging set-up (own handler, no propagation) of earlier tests."""
    lg = logging.getLogger("urbanunits")
    monkeypatch.setattr(lg, "handlers", [])
    monkeypatch.setattr(lg, "propagate", True)


@pytest.fixture
def use_demo(monkeypatch: pytest.MonkeyPatch, demo_layers: OSMLayers) -> OSMLayers:
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: demo_layers)
    return demo_layers


def write_toml(tmp_path: Path, name: str, out: Path) -> Path:
    """The demo config under another name and output folder."""
    text = (ROOT / "configs" / "lujiazui.toml").read_text(encoding="utf-8")
    text = text.replace('name = "lujiazui"', f'name = "{name}"').replace(
        'dir = "data/processed"', f'dir = "{out}"').replace(
        'osm = "data/raw/lujiazui.osm"', f'osm = "{ROOT / "data" / "raw" / "lujiazui.osm"}"'
        ).replace("map_dpi = 200", "map_dpi = 50")  # the maps only have to exist here
    assert f'name = "{name}"' in text and str(out) in text and "map_dpi = 50" in text
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- layout and all-or-nothing ------------------------------------------------------------


def test_two_configs_sharing_an_output_folder_keep_their_own_files(
        tmp_path: Path, use_demo: OSMLayers) -> None:
    a = demo_config(tmp_path)
    b = dataclasses.replace(a, name="other")
    pipeline.run_units(a, draw=False)
    pipeline.run_units(b, draw=False)
    assert a.gpkg_path == tmp_path / "lujiazui" / "lujiazui.gpkg"
    assert b.gpkg_path == tmp_path / "other" / "other.gpkg"
    assert b.maps_dir == tmp_path / "other" / "maps"
    before = snapshot(a.run_dir)
    pipeline.run_units(b, draw=False)  # rewriting one run leaves the other alone
    assert snapshot(a.run_dir) == before
    meta = pyogrio.read_dataframe(b.gpkg_path, layer="run_metadata", read_geometry=False)
    assert dict(zip(meta["key"], meta["value"], strict=True))["run_name"] == "other"


def test_failure_while_drawing_maps_leaves_previous_run_byte_identical(
        tmp_path: Path, use_demo: OSMLayers, demo_run: DemoRun,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = copy_of(demo_run, tmp_path)  # a finished `urbanunits all` with maps and tables
    before = snapshot(cfg.run_dir)
    assert {"lujiazui.gpkg", "maps/update_units.png", "maps/renewal_packages.png",
            "tables/lujiazui.xlsx"} <= set(before)
    from urbanunits import maps

    written: list[Path] = []
    save = maps.save_map

    def record(fig: object, path: Path, **kw: object) -> Path:
        written.append(Path(path))
        return save(fig, path, **kw)  # type: ignore[arg-type]

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("killed while drawing")

    monkeypatch.setattr(maps, "save_map", record)
    monkeypatch.setattr(maps, "plot_packages", boom)
    with pytest.raises(RuntimeError, match="killed while drawing"):
        pipeline.run_all(cfg)
    # the new GeoPackage, tables and maps were written or queued (to staging) before the
    # failure (the packages map fails when its figure is built, by whichever process draws it)...
    assert {"update_units.png", "renewal_packages.png"} <= {p.name for p in written}
    assert all(".lujiazui.staging-" in str(p) for p in written)
    # ...and none of it reached the run folder
    assert snapshot(cfg.run_dir) == before
    only_the_run_left(cfg)


def test_whole_run_replaces_the_folder_and_stage_runs_drop_stale_files(
        tmp_path: Path, use_demo: OSMLayers, demo_run: DemoRun) -> None:
    cfg = copy_of(demo_run, tmp_path)  # a finished `urbanunits all`
    stray = cfg.maps_dir / "lifecircle_removed_category.png"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"old")
    # a stage run keeps the rest of the run but removes what its new layers make stale
    pipeline.run_lifecircle(cfg, draw=False)
    assert not stray.exists() and not cfg.tables_dir.exists()
    assert "update_units" in list_layers(cfg.gpkg_path)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"old")
    pipeline.run_all(cfg, draw=False)  # a whole run keeps nothing of the previous one
    assert not cfg.maps_dir.exists()
    assert (cfg.tables_dir / "units.csv").is_file()
    only_the_run_left(cfg)


def test_a_stage_whose_results_are_current_is_not_computed_again(
        tmp_path: Path, use_demo: OSMLayers, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`urbanunits units` after `all` with nothing changed keeps the whole run (it removed the
    later stages' layers, maps and tables); a changed config or --force computes it."""
    toml = write_toml(tmp_path, "t", tmp_path / "out")
    assert main(["all", "-q", "--config", str(toml)]) == 0
    run = tmp_path / "out" / "t"
    before = snapshot(run)
    capsys.readouterr()

    def units_ran(*_a: object, **_k: object) -> None:
        raise AssertionError("computed again")

    with monkeypatch.context() as m:
        m.setattr(pipeline, "run_units", units_ran)
        assert main(["units", "-q", "--config", str(toml)]) == 0
        assert main(["sites", "-q", "--config", str(toml)]) == 0
    assert "units: up to date" in capsys.readouterr().out
    assert snapshot(run) == before
    # a word changed in the config (the title the maps carry): computed
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'title = "', 'title = "新 ', 1), encoding="utf-8")
    assert main(["units", "-q", "--config", str(toml)]) == 0
    assert "done in" in capsys.readouterr().out
    assert "lifecircle" not in list_layers(run / "t.gpkg")  # later stages made stale
    # now current again, and --force computes it anyway
    assert main(["units", "-q", "--config", str(toml)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["units", "--force", "-q", "--config", str(toml)]) == 0
    assert "done in" in capsys.readouterr().out
    # maps drawn under an older config are not current: the title changed, then `sites` ran
    # (reusing the units): `units` still has its old-title map and is computed
    assert main(["all", "-q", "--config", str(toml)]) == 0
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'title = "', 'title = "再 ', 1), encoding="utf-8")
    assert main(["sites", "-q", "--config", str(toml)]) == 0
    capsys.readouterr()
    assert main(["units", "-q", "--config", str(toml)]) == 0
    assert "done in" in capsys.readouterr().out
    # an input of a later stage changed: update_units holds the packages stage's recount of
    # old communities, so `units` is not current either
    overrides = tmp_path / "overrides.csv"
    overrides.write_text("name,status\n东园一村,old\n", encoding="utf-8")
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[inputs]\n", f'[inputs]\ncommunity_overrides = "{overrides}"\n', 1), encoding="utf-8")
    assert main(["all", "-q", "--config", str(toml)]) == 0
    overrides.write_text("name,status\n东园一村,new\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["units", "-q", "--config", str(toml)]) == 0
    assert "done in" in capsys.readouterr().out
    # a life-circle map deleted: that stage is computed (and draws it again)
    assert main(["all", "-q", "--config", str(toml)]) == 0
    (run / "maps" / "lifecircle_clinic.png").unlink()
    capsys.readouterr()
    assert main(["lifecircle", "-q", "--config", str(toml)]) == 0
    assert "done in" in capsys.readouterr().out
    assert (run / "maps" / "lifecircle_clinic.png").is_file()
    # a layer the digests vouch for deleted from the file (in QGIS, say): computed again
    import sqlite3

    with sqlite3.connect(run / "t.gpkg") as db:  # as QGIS deletes a layer
        db.execute("DROP TABLE blocks")
        db.execute("DROP TABLE IF EXISTS rtree_blocks_geom")
        for meta in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions"):
            db.execute(f"DELETE FROM {meta} WHERE table_name = 'blocks'")
    assert "blocks" not in list_layers(run / "t.gpkg")
    assert main(["units", "-q", "--config", str(toml)]) == 0
    assert "done in" in capsys.readouterr().out
    assert "blocks" in list_layers(run / "t.gpkg")


def test_leftovers_of_a_killed_run_are_cleaned_or_completed(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "r.gpkg").write_bytes(b"previous")
    staging = tmp_path / ".r.staging-x1"
    staging.mkdir()
    (staging / "r.gpkg").write_bytes(b"half")
    _outputs.clean_leftovers(run)
    assert not staging.exists() and (run / "r.gpkg").read_bytes() == b"previous"
    # stopped between the two renames of a swap: the finished run is put in place
    old, ready = tmp_path / ".r.old-x2", tmp_path / ".r.ready-x2"
    run.rename(old)
    ready.mkdir()
    (ready / "r.gpkg").write_bytes(b"new")
    _outputs.clean_leftovers(run)
    assert (run / "r.gpkg").read_bytes() == b"new" and not old.exists()
    assert not ready.exists()
    # stopped after moving the previous run away, before the new one was complete
    run.rename(old)
    _outputs.clean_leftovers(run)
    assert (run / "r.gpkg").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_swap_without_atomic_exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_outputs, "_exchange", lambda _a, _b: False)
    run = tmp_path / "r"
    for text in ("one", "two"):
        with _outputs.staged_run(run, keep=True) as st:
            assert (st.root / "x.txt").exists() == (text == "two")  # kept from the last run
            st.path(run / "x.txt").write_text(text)
        assert (run / "x.txt").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]


def test_kept_files_are_linked_not_modified(tmp_path: Path) -> None:
    """A stage run starts from hard links of the previous files; replacing one in staging
    leaves the previous run's file as it was until the swap."""
    from urbanunits.export import atomic_path

    run = tmp_path / "r"
    run.mkdir()
    (run / "a.txt").write_text("old")
    with _outputs.staged_run(run, keep=True) as st:
        with atomic_path(st.path(run / "a.txt")) as tmp:
            tmp.write_text("new")
        assert (run / "a.txt").read_text() == "old"
    assert (run / "a.txt").read_text() == "new"


# --- write failures -----------------------------------------------------------------------


def _lines(err: str) -> list[str]:
    """Lines of stderr, without the warning every run on the demo gives (its extract maps no
    sub-districts)."""
    return [ln for ln in err.splitlines() if ln.strip()
            and not ln.startswith("no sub-districts (街道)")]


def assert_one_line(err: str, *needles: str) -> str:
    lines = _lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_output_folder_under_a_regular_file(tmp_path: Path, use_demo: OSMLayers,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Tests run as root, where chmod does not stop writes: a file in the way does."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    cfg = write_toml(tmp_path, "t", blocker / "out")
    assert main(["units", "-q", "--config", str(cfg)]) == 2
    assert_one_line(capsys.readouterr().err, str(blocker / "out"),
                    f"{blocker} is a file, not a folder", "set output.dir")
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(("exc", "needle"), [
    (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
    (OSError(errno.EACCES, "Permission denied"), "permission denied or read-only"),
    (OSError(errno.EROFS, "Read-only file system"), "permission denied or read-only"),
])
def test_write_failure_is_one_line_and_keeps_previous_outputs(
        tmp_path: Path, use_demo: OSMLayers, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], exc: OSError, needle: str) -> None:
    toml = write_toml(tmp_path, "t", tmp_path / "out")
    assert main(["units", "-q", "--config", str(toml)]) == 0
    capsys.readouterr()
    run = tmp_path / "out" / "t"
    before = snapshot(run)
    assert "t.gpkg" in before and "maps/update_units.png" in before

    def fail(*_a: object, **_k: object) -> None:
        raise exc

    monkeypatch.setattr(pyogrio, "write_dataframe", fail)
    assert main(["units", "--force", "-q", "--config", str(toml)]) == 2
    # named by its final path, not the temporary folder
    line = assert_one_line(capsys.readouterr().err, str(run / "t.gpkg"), needle, "output.dir")
    assert "staging" not in line
    assert snapshot(run) == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".t.lock", "t"]


def test_gdal_error_on_a_full_disk_says_the_disk_is_full(
        tmp_path: Path, use_demo: OSMLayers, monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL reports ENOSPC as e.g. 'table already exists', without an errno."""
    cfg = demo_config(tmp_path)

    def fail(*_a: object, **_k: object) -> None:
        raise pyogrio.errors.DataSourceError("table `update_units` already exists")

    monkeypatch.setattr(pyogrio, "write_dataframe", fail)
    monkeypatch.setattr(_outputs, "_free_bytes", lambda _p: 2 * 2**20)
    with pytest.raises(OutputError, match=r"the disk is full \(2 MB free\)") as info:
        pipeline.run_units(cfg, draw=False)
    assert info.value.where == str(cfg.gpkg_path)
    monkeypatch.setattr(_outputs, "_free_bytes", lambda _p: 50 * 2**30)
    with pytest.raises(OutputError, match="table `update_units` already exists"):
        pipeline.run_units(cfg, draw=False)
    assert not cfg.run_dir.exists()


# --- lock ---------------------------------------------------------------------------------


def test_second_run_stops_naming_the_holder_and_a_killed_holder_is_taken_over(
        tmp_path: Path, use_demo: OSMLayers, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """Documented behaviour: the second run does not wait, it stops at once (exit 2)."""
    toml = write_toml(tmp_path, "t", tmp_path / "out")
    run = tmp_path / "out" / "t"
    code = textwrap.dedent(f"""
        import sys
        from urbanunits._outputs import run_lock
        with run_lock({str(run)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert main(["units", "-q", "--config", str(toml)]) == 2
        assert_one_line(capsys.readouterr().err, str(run), "another run is writing",
                        f"pid {holder.pid} on {socket.gethostname()}", "wait for it")
        with pytest.raises(RunLockedError):
            pipeline.write_run(dataclasses.replace(demo_config(tmp_path / "out"), name="t"), {})
        assert not run.exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: its lock text stays, the kernel's lock goes
        holder.wait(timeout=30)
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()
    logging.getLogger("urbanunits").propagate = True  # main() turned it off
    with caplog.at_level(logging.WARNING, logger="urbanunits._outputs"):
        cfg = dataclasses.replace(demo_config(tmp_path / "out"), name="t")
        pipeline.run_units(cfg, draw=False)
    assert (run / "t.gpkg").is_file()
    assert any(f"pid {holder.pid}" in r.getMessage() and "taking over" in r.getMessage()
               for r in caplog.records)
    assert (tmp_path / "out" / ".t.lock").read_text() == ""  # released: the run finished


# --- skipped stages -----------------------------------------------------------------------


def test_all_writes_the_stages_that_can_run_and_exits_3(
        tmp_path: Path, demo_layers: OSMLayers, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    toml = write_toml(tmp_path, "t", tmp_path / "out")
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: demo_layers)
    assert main(["all", "-q", "--config", str(toml)]) == 0
    run = tmp_path / "out" / "t"
    assert "lifecircle" in list_layers(run / "t.gpkg")
    # the HTML map is written with the run, into its folder, and named on the command line
    assert (run / "t.html").is_file()
    assert f"HTML map {run / 't.html'}" in capsys.readouterr().out
    no_compounds = dataclasses.replace(
        demo_layers, residential=demo_layers.residential.iloc[0:0])
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: no_compounds)
    assert main(["all", "-q", "--config", str(toml)]) == 3
    err = _lines(capsys.readouterr().err)
    assert len(err) == 2, err
    assert err[0].startswith("skipped stage packages: ") and "no community" in err[0]
    assert err[1].startswith("skipped stage lifecircle: ") and "packages stage" in err[1]
    # the run is still all-or-nothing: only this run's units, nothing of the previous run
    assert set(list_layers(run / "t.gpkg")) == {"update_units", "blocks", "layer_styles",
                                                "run_metadata"}
    assert sorted(p.name for p in (run / "tables").iterdir()) == ["t.xlsx", "units.csv"]
    assert sorted(p.name for p in (run / "maps").iterdir()) == ["update_units.png"]


def test_no_facilities_skips_the_life_circles(tmp_path: Path, demo_layers: OSMLayers,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    none = dataclasses.replace(demo_layers, facilities=demo_layers.facilities.iloc[0:0])
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: none)
    cfg = demo_config(tmp_path)
    res = pipeline.run_all(cfg, draw=False)
    assert list(res.skipped) == ["lifecircle"]
    assert "no facility of any category" in res.skipped["lifecircle"]
    names = set(list_layers(cfg.gpkg_path))
    assert {"update_units", "communities", "renewal_packages"} <= names
    assert not names & catalog.STAGE_LAYERS["lifecircle"]
    # asked for on its own, the stage is an error: exit 2, nothing written
    with pytest.raises(EmptyInputError) as info:
        pipeline.run_lifecircle(cfg, draw=False)
    assert "no facility of any category" in str(info.value)


# --- parse cache --------------------------------------------------------------------------


def _frames_equal(a: OSMLayers, b: OSMLayers) -> None:
    for name in _cache.FRAMES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    ga, gb = a.walk_graph, b.walk_graph
    assert ga.graph == gb.graph
    assert dict(ga.nodes(data=True)) == dict(gb.nodes(data=True))
    assert list(ga.edges(keys=True, data=True)) == list(gb.edges(keys=True, data=True))
    assert a.source == b.source


@pytest.mark.parametrize("simplify", [False, True])
def test_cache_round_trips_exactly(tmp_path: Path, demo_cfg: Config, simplify: bool,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = dataclasses.replace(demo_cfg, output=dataclasses.replace(demo_cfg.output,
                                                                   dir=tmp_path))
    cfg = dataclasses.replace(cfg, osm=dataclasses.replace(cfg.osm,
                                                           simplify_walk_graph=simplify))
    parsed = read_osm(cfg)
    if simplify:  # lists and edge geometries, which need JSON and a geometry column
        kinds = {type(d.get("osmid")) for *_, d in parsed.walk_graph.edges(keys=True, data=True)}
        assert list in kinds
        assert any("geometry" in d for *_, d in parsed.walk_graph.edges(keys=True, data=True))

    def no_parse(_path: Path) -> None:
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(osm, "_parse", no_parse)
    cached = read_osm(cfg)
    _frames_equal(parsed, cached)
    assert isinstance(cached.walk_graph, nx.MultiDiGraph)


class _Payload:
    """Creates a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_a_crafted_or_damaged_cache_is_never_executed_and_is_parsed_again(
        tmp_path: Path, demo_cfg: Config, demo_layers: OSMLayers,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = dataclasses.replace(demo_cfg, output=dataclasses.replace(demo_cfg.output,
                                                                   dir=tmp_path))
    read_osm(cfg)
    (good,) = (tmp_path / "cache").glob("osm-*.gpkg")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(pickle.dumps(_Payload(tmp_path / "check")))  # the payload does work...
    assert (tmp_path / "check").exists()
    # ...but neither a pickle under the old name nor one under the cache's own name runs
    good.with_suffix(".pkl").write_bytes(payload)
    keep = good.read_bytes()
    good.write_bytes(payload)
    with caplog.at_level(logging.WARNING, logger="urbanunits.sources.osm"):
        layers = read_osm(cfg)
    assert not marker.exists()
    assert any("ignoring unusable cache" in r.getMessage() for r in caplog.records)
    _frames_equal(layers, demo_layers)
    assert good.read_bytes()[:16] == b"SQLite format 3\x00"  # rewritten as data
    # a tampered cache (a layer's rows changed behind its metadata's back) is refused too
    good.write_bytes(keep)
    pyogrio.write_dataframe(demo_layers.roads.iloc[:5], good, layer="roads", driver="GPKG",
                            promote_to_multi=False, geometry_type="Unknown")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="urbanunits.sources.osm"):
        layers = read_osm(cfg)
    assert any("roads: 5 rows" in r.getMessage() for r in caplog.records)
    _frames_equal(layers, demo_layers)


def test_run_folder_held_open_by_another_program(tmp_path: Path, use_demo: OSMLayers,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows refuses to rename a folder with a file open in QGIS or Excel: one line, and the
    previous run stays."""
    cfg = demo_config(tmp_path)
    pipeline.run_units(cfg, draw=False)
    before = snapshot(cfg.run_dir)
    monkeypatch.setattr(_outputs, "_exchange", lambda _a, _b: False)
    rename = Path.rename

    def locked(self: Path, target: Path) -> Path:
        if self == cfg.run_dir:
            raise PermissionError(errno.EACCES, "The process cannot access the file")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", locked)
    with pytest.raises(OutputError, match="open in another program") as info:
        pipeline.run_units(cfg, draw=False)
    assert info.value.where == str(cfg.run_dir) and "close it" in info.value.fix
    assert snapshot(cfg.run_dir) == before
    only_the_run_left(cfg)
