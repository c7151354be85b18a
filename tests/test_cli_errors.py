"""User errors: one line naming the file/key, exit status 2, no traceback, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from urbanunits.cli import main

from .conftest import DEMO_OSM, ROOT


def config_file(tmp_path: Path, body: str, *, osm: Path | str = DEMO_OSM,
                bbox: str = "[121.4865, 31.2225, 121.5125, 31.2475]", output: str = "") -> Path:
    p = tmp_path / "configs" / "t.toml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(f'name = "t"\n[study_area]\nbbox = {bbox}\n{body}\n[inputs]\nosm = "{osm}"\n'
                 f'[output]\ndir = "{tmp_path / "out"}"\n{output}\n', encoding="utf-8")
    return p


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def no_outputs_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    leftovers = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [p for p in leftovers if p.suffix in {".gpkg", ".png", ".part"}
                or ".part" in p.name], leftovers


def test_missing_osm_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file(tmp_path, "", osm=tmp_path / "nowhere.osm.pbf")
    code, err = run_cli(["units", "--config", str(cfg)], capsys)
    assert_one_line_error(code, err, "nowhere.osm.pbf", "not found")
    no_outputs_left(tmp_path)


def test_ningbo_config_says_where_to_put_the_extract(capsys: pytest.CaptureFixture[str]) -> None:
    if (ROOT / "data" / "raw" / "ningbo.osm.pbf").exists():
        pytest.skip("a Ningbo extract is present on this machine")
    code, err = run_cli(["units", "--config", str(ROOT / "configs" / "ningbo.toml")], capsys)
    assert_one_line_error(code, err, "data/raw/ningbo.osm.pbf", "osmium extract")


def test_malformed_xml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.osm"
    bad.write_text(DEMO_OSM.read_text(encoding="utf-8")[:50_000], encoding="utf-8")
    code, err = run_cli(["units", "--config", str(config_file(tmp_path, "", osm=bad))], capsys)
    assert_one_line_error(code, err, "broken.osm", "could not be read")
    no_outputs_left(tmp_path)


def test_malformed_pbf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "garbage.osm.pbf"
    bad.write_bytes(b"\x00\x00\x00\x0dnot a pbf at all" * 10)
    code, err = run_cli(["units", "--config", str(config_file(tmp_path, "", osm=bad))], capsys)
    assert_one_line_error(code, err, "garbage.osm.pbf", "could not be read")


def test_empty_extract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.osm"
    empty.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6"></osm>\n')
    code, err = run_cli(["units", "--config", str(config_file(tmp_path, "", osm=empty))], capsys)
    assert_one_line_error(code, err, "empty.osm", "no OSM nodes or ways")


def test_bbox_outside_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file(tmp_path, "", bbox="[121.50, 29.80, 121.60, 29.90]")  # Ningbo, not Shanghai
    code, err = run_cli(["units", "--config", str(cfg)], capsys)
    assert_one_line_error(code, err, "lujiazui.osm", "does not overlap")
    no_outputs_left(tmp_path)


def test_bad_crs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file(tmp_path, 'crs = "EPSG:4326"')
    code, err = run_cli(["units", "--config", str(cfg)], capsys)
    assert_one_line_error(code, err, "study_area.crs", "not a projected CRS")


def test_bad_config_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file(tmp_path, "[units]\nmax_area_m2 = \"huge\"\n")
    code, err = run_cli(["units", "--config", str(cfg)], capsys)
    assert_one_line_error(code, err, "units.max_area_m2", "expected a number")


def test_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["units", "--config", str(tmp_path / "nope.toml")], capsys)
    assert_one_line_error(code, err, "nope.toml", "config file not found")


def test_console_script_exit_status(tmp_path: Path) -> None:
    """The real process: status 2, one line on stderr, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "urbanunits.cli", "units", "--config",
                           str(tmp_path / "nope.toml")], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("body", "key"), [
    ("[osm]\ngraph_margin_m = inf", "osm.graph_margin_m"),
    ("[osm]\ndefault_building_levels = -3", "osm.default_building_levels"),
    ("[units]\nmin_water_share = 5", "units.min_water_share"),
    ("[lifecircle]\nwalk_speed_m_s = nan", "lifecircle.walk_speed_m_s"),
    ("", "output.map_dpi"),  # map_dpi = 100000 goes in [output], below
])
@pytest.mark.parametrize("command", ["units", "all"])
def test_nonsense_value_leaves_the_previous_run_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, key: str,
        command: str) -> None:
    """Refused when the config is loaded: the GeoPackage and maps of the last run stay as they were."""
    out = tmp_path / "out"
    (out / "maps").mkdir(parents=True)
    gpkg, png = out / "t.gpkg", out / "maps" / "units.png"
    gpkg.write_bytes(b"previous run")
    png.write_bytes(b"previous map")
    cfg = config_file(tmp_path, body, output="map_dpi = 100000" if not body else "")
    code, err = run_cli([command, "--config", str(cfg)], capsys)
    assert_one_line_error(code, err, f"t.toml: {key}")
    assert gpkg.read_bytes() == b"previous run" and png.read_bytes() == b"previous map"
    assert sorted(p.name for p in out.rglob("*")) == ["maps", "t.gpkg", "units.png"]


def test_fetch_without_dns_fails_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real command with real back-off pauses: one line within seconds, not 7.5 minutes."""
    import time

    cfg = config_file(tmp_path, '[fetch]\noverpass_url = "http://nonexistent.invalid/api/'
                      'interpreter"\nmax_retries = 4\nbackoff_s = 30.0',
                      osm=tmp_path / "raw" / "f.osm")
    t0 = time.perf_counter()
    code, err = run_cli(["fetch", "-q", "--config", str(cfg)], capsys)
    assert time.perf_counter() - t0 < 10.0
    assert_one_line_error(code, err, "nonexistent.invalid", "cannot resolve")
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


@pytest.mark.parametrize("problem", ["missing", "unknown key"])
def test_batch_refuses_a_bad_config_before_starting(tmp_path: Path, problem: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    good = config_file(tmp_path, "")
    bad = tmp_path / "bad.toml"
    if problem == "unknown key":
        bad.write_text(good.read_text(encoding="utf-8") + "[bogus]\n", encoding="utf-8")
    summary = tmp_path / "summary"
    code, err = run_cli(["batch", str(good), str(bad), "--summary-dir", str(summary)], capsys)
    assert_one_line_error(code, err, str(bad))
    assert not summary.exists()  # no cluster, no city run, no summary
    no_outputs_left(tmp_path)


def test_all_reads_the_inventory_before_computing_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from urbanunits import pipeline

    inv = tmp_path / "inventory.csv"
    inv.write_bytes("小区名称,经度\n三航小区,121.5084\n".encode("gbk"))
    cfg = config_file(tmp_path, "").read_text(encoding="utf-8").replace(
        "[inputs]\n", f'[inputs]\ninventory = "{inv}"\n')
    path = tmp_path / "configs" / "t.toml"
    path.write_text(cfg, encoding="utf-8")

    def units_ran(*_a: object, **_k: object) -> None:
        raise AssertionError("the units stage ran before the inventory was read")

    monkeypatch.setattr(pipeline, "run_units", units_ran)
    code, err = run_cli(["all", "-q", "--config", str(path)], capsys)
    # with -q only warnings are logged besides the error (no sub-districts in this extract)
    err = "\n".join(ln for ln in err.splitlines() if "sub-district" not in ln)
    assert_one_line_error(code, err, "inventory.csv", "纬度 (lat)", "is missing")
    assert not (tmp_path / "out" / "t").exists()  # no run folder (the parse cache is kept)
