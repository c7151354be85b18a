"""Programme stage in the pipeline: `make all` layers and sheet, skipping, CLI infeasibility."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .test_programme import CN


def test_demo_run_all_writes_the_programme(demo_run: Any) -> None:
    import openpyxl

    from urbanunits.export import list_layers

    cfg, res = demo_run.cfg, demo_run
    names = set(list_layers(cfg.gpkg_path))
    assert {"programme", "programme_communities", "elevator_candidates",
            "programme_years"} <= names
    wb = openpyxl.load_workbook(cfg.tables_dir / f"{cfg.name}.xlsx", read_only=True)
    rows = list(wb["项目库"].iter_rows(values_only=True))
    assert rows[0][:3] == ("序号", "项目编号", "项目名称") and len(rows) == 2  # one package
    assert "实施" in rows[1]
    assert any(line.startswith("[programme] 2026 实施: 1 package,") for line in res.summary)
    maps = [p for p in res.maps if p.name.startswith("programme")]
    assert [p.name for p in maps] == ["programme.png", "programme_years.png"]
    assert all(p.parent == cfg.maps_dir and p.stat().st_size > 10_000 for p in maps)


def test_stage_with_no_package_skips_in_one_line(tmp_path: Path, demo_layers: Any) -> None:
    from urbanunits import pipeline

    from .conftest import demo_config

    cfg = demo_config(tmp_path)
    pk = pipeline.run_packages(cfg, layers=demo_layers, write=False, draw=False).layers
    res = pipeline.run_programme(cfg, layers=demo_layers,
                                 packages=pk["renewal_packages"].iloc[:0],
                                 communities=pk["communities"], gaps=None)
    assert res.summary == ["programme: skipped — no renewal packages (no old community was "
                           "found in the study area)"]
    assert res.layers == {} and res.maps == [] and not cfg.gpkg_path.exists()


def test_cli_reports_fixed_years_over_a_cap_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from urbanunits.cli import main

    from .conftest import DEMO_OSM

    inv = tmp_path / "inv.csv"
    inv.write_bytes(CN.encode("gb18030"))
    cfg = tmp_path / "configs" / "t.toml"
    cfg.parent.mkdir()
    cfg.write_text(
        'name = "t"\n[study_area]\nbbox = [121.4865, 31.2225, 121.5125, 31.2475]\n'
        f'[inputs]\nosm = "{DEMO_OSM}"\ninventory = "{inv}"\n'
        "[packages]\nmin_floor_area_m2 = 0.0\nmin_households = 0\n"
        "[programme]\nstart_year = 2026\n[[programme.years]]\nfloor_area_cap_m2 = 1000.0\n"
        f'[output]\ndir = "{tmp_path / "out"}"\n', encoding="utf-8")
    code = main(["programme", "--config", str(cfg), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("error: programme year 1: packages fixed to it by 计划年度")
    assert "above the cap of 1,000" in last and "programme.years[0]" in last
    assert not (tmp_path / "out" / "t.gpkg").exists()

