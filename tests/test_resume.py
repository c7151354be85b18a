"""Stage resume: stages reuse their layers from the run's GeoPackage when their digest matches."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
from geopandas.testing import assert_geodataframe_equal

from urbanunits import _resume, catalog, pipeline, redraw
from urbanunits.config import Config
from urbanunits.sources.osm import OSMLayers

from .conftest import demo_config
from .demorun import DemoRun, copy_of


@pytest.fixture(autouse=True)
def _records_reach_caplog(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
                          ) -> None:
    lg = logging.getLogger("urbanunits")
    monkeypatch.setattr(lg, "handlers", [])
    monkeypatch.setattr(lg, "propagate", True)
    caplog.set_level(logging.INFO, logger="urbanunits")


@pytest.fixture
def use_demo(monkeypatch: pytest.MonkeyPatch, demo_layers: OSMLayers) -> OSMLayers:
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: demo_layers)
    return demo_layers


def forbid(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make stage computations fail: a stage that is reused never calls them."""
    import urbanunits.lifecircle
    import urbanunits.packages
    import urbanunits.programme
    import urbanunits.sites
    import urbanunits.units

    where = {"update_units": urbanunits.units, "renewal_packages": urbanunits.packages,
             "life_circle": urbanunits.lifecircle, "programme": urbanunits.programme,
             "suggest_sites": urbanunits.sites}

    def fail(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("recomputed a stage that should be reused")

    for n in names:
        monkeypatch.setattr(where[n], n, fail)


def reused(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {r.getMessage().split(":")[0] for r in caplog.records
            if ": reused from " in r.getMessage()}


def test_every_layer_reads_back_exactly(demo_run: DemoRun) -> None:
    cfg, computed = demo_run.cfg, demo_run.computed_layers()
    got = _resume.read_stage(cfg.gpkg_path, "sites", _resume.stage_digests(cfg),
                             owned=catalog.STAGE_LAYERS)
    assert not isinstance(got, str), got
    pg = _resume.read_stage(cfg.gpkg_path, "programme", _resume.stage_digests(cfg),
                            owned=catalog.STAGE_LAYERS, have=got.stages)
    assert not isinstance(pg, str), pg
    back = {**got.layers, **pg.layers}
    # every layer the run wrote, with the same columns (order), dtypes, CRS, values, geometry
    assert set(back) == set(computed)
    for name, df in computed.items():
        if isinstance(df, gpd.GeoDataFrame):
            # geometry types compared here: geopandas' own check fails on a missing geometry
            # (NaN != NaN), which package_links has for communities that touch
            assert_geodataframe_equal(back[name], df, check_less_precise=False,
                                      check_index_type=True, check_geom_type=False)
            assert back[name].geom_type.fillna("").tolist() == df.geom_type.fillna("").tolist()
            assert back[name].crs == df.crs
        else:
            pd.testing.assert_frame_equal(back[name], df, check_exact=True)


def test_packages_then_lifecircle_reuses_units_and_packages(
        tmp_path: Path, use_demo: OSMLayers, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = demo_config(tmp_path)
    first = pipeline.run_packages(cfg, draw=False)
    forbid(monkeypatch, "update_units", "renewal_packages")
    caplog.clear()
    res = pipeline.run_lifecircle(cfg, draw=False)
    assert reused(caplog) == {"units", "packages"}
    assert any(f"units: reused from {cfg.gpkg_path} (digest " in r.getMessage()
               for r in caplog.records)
    assert_geodataframe_equal(res.layers["renewal_packages"], first.layers["renewal_packages"])
    # the reused layers went into the new run with their rows, so they are reused again
    caplog.clear()
    pipeline.run_programme(cfg, draw=False)
    assert reused(caplog) == {"units", "packages", "lifecircle"}


def test_maps_after_all_read_the_layers(tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers,
                                        monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    from urbanunits import maps

    cfg = copy_of(demo_run, tmp_path)
    # Every map is drawn from the layers; rendering the PNGs (half the time) is left out here:
    # the shared run's maps are checked in test_pipeline.
    def save(fig: Any, path: Path, **_kw: Any) -> Path:
        if callable(fig):  # a function building the figure (map_files.MapSource)
            fig = fig()
        axes = fig.axes[0]
        assert axes.collections or axes.patches, path  # something was drawn
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"png")
        return Path(path)

    monkeypatch.setattr(maps, "save_map", save)
    gpkg = cfg.gpkg_path.read_bytes()
    forbid(monkeypatch, "update_units", "renewal_packages", "life_circle", "programme",
           "suggest_sites")
    res = redraw.run_maps(cfg)
    assert reused(caplog) == {"units", "packages", "lifecircle", "programme", "sites"}
    names = {p.name for p in res.maps}
    assert {"update_units.png", "renewal_packages.png", "programme.png"} <= names
    assert {f"lifecircle_{k}.png" for k in cfg.lifecircle.categories} <= names
    assert all((cfg.run_dir / "maps" / n).is_file() for n in names)
    assert cfg.gpkg_path.read_bytes() == gpkg  # the GeoPackage is not touched


def test_units_config_change_recomputes_units_and_downstream(
        tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = copy_of(demo_run, tmp_path)
    cfg = dataclasses.replace(cfg, units=dataclasses.replace(
        cfg.units, min_area_m2=cfg.units.min_area_m2 * 2))
    calls: list[str] = []
    import urbanunits.packages
    import urbanunits.units

    for mod, name in ((urbanunits.units, "update_units"),
                      (urbanunits.packages, "renewal_packages")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _r=real, _n=name, **k: (
            calls.append(_n), _r(*a, **k))[1])
    pipeline.run_lifecircle(cfg, draw=False)
    assert calls == ["update_units", "renewal_packages"]
    assert not reused(caplog)
    assert any("units's inputs or config changed" in r.getMessage() for r in caplog.records)
    # and the new digests are recorded: the next stage reuses all three
    caplog.clear()
    forbid(monkeypatch, "update_units", "renewal_packages", "life_circle")
    pipeline.run_programme(cfg, draw=False)
    assert reused(caplog) == {"units", "packages", "lifecircle"}


def test_lifecircle_config_change_reuses_units_and_packages(
        tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = copy_of(demo_run, tmp_path)
    cfg = dataclasses.replace(cfg, lifecircle=dataclasses.replace(
        cfg.lifecircle, walk_speed_m_s=cfg.lifecircle.walk_speed_m_s * 1.1))
    forbid(monkeypatch, "update_units", "renewal_packages")
    pipeline.run_sites(cfg, draw=False)
    assert reused(caplog) == {"units", "packages"}
    assert any("lifecircle's inputs or config changed" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("damage", ["garbage", "missing", "partial"])
def test_damaged_geopackage_is_recomputed_and_says_why(
        tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers, damage: str,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = copy_of(demo_run, tmp_path)
    if damage == "garbage":
        cfg.gpkg_path.write_bytes(b"not a geopackage" * 100)
        why = "cannot be read"
    elif damage == "missing":
        cfg.gpkg_path.unlink()
        why = "no GeoPackage"
    else:
        # a file whose package layers were removed behind the run's back
        from urbanunits.export import write_layers

        keep = {n: df for n, df in demo_run.layers.items() if n == "update_units"}
        tmp = tmp_path / "partial.gpkg"
        write_layers(tmp, keep, metadata=pd.DataFrame(
            _resume._previous_rows(cfg.gpkg_path).items(), columns=["key", "value"]))
        shutil.copy(tmp, cfg.gpkg_path)
        why = "is missing from"
    res = pipeline.run_lifecircle(cfg, write=False, draw=False)
    assert not reused(caplog)
    assert any("computed, not reused" in r.getMessage() and why in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert_geodataframe_equal(res.layers["renewal_packages"],
                              demo_run.layers["renewal_packages"])


def test_units_alone_are_not_taken_from_a_file_the_packages_stage_counted_into(
        tmp_path: Path, demo_run: DemoRun) -> None:
    cfg = copy_of(demo_run, tmp_path)
    cfg = dataclasses.replace(cfg, packages=dataclasses.replace(
        cfg.packages, link_distance_m=cfg.packages.link_distance_m + 50))
    got = _resume.read_stage(cfg.gpkg_path, "units", _resume.stage_digests(cfg),
                             owned=catalog.STAGE_LAYERS)
    assert isinstance(got, str) and "counts of the packages stage" in got


def test_digest_covers_input_file_content(tmp_path: Path) -> None:
    osm = tmp_path / "a.osm"
    shutil.copy(demo_config(tmp_path).inputs.osm, osm)
    cfg = demo_config(tmp_path)
    cfg = dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs, osm=osm))
    before = _resume.stage_digests(cfg)
    with osm.open("a", encoding="utf-8") as fh:
        fh.write("\n")
    after = _resume.stage_digests(cfg)
    assert all(before[s] != after[s] for s in before)  # units changed, so every stage after


def test_frames_passed_in_are_never_combined_with_reused_layers(
        tmp_path: Path, demo_run: DemoRun, demo_layers: OSMLayers,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = copy_of(demo_run, tmp_path)
    # the caller's extract is not what the digests cover: the earlier stages are computed
    none = dataclasses.replace(demo_layers, residential=demo_layers.residential.iloc[0:0])
    from urbanunits.errors import EmptyInputError

    with pytest.raises(EmptyInputError):
        pipeline.run_lifecircle(cfg, layers=none, write=False, draw=False)
    assert not reused(caplog)


def _layers(cfg: Any) -> set[str]:
    import pyogrio

    return {str(n) for n, _ in pyogrio.list_layers(cfg.gpkg_path)}


def _maps(cfg: Any) -> set[str]:
    return {p.name for p in cfg.maps_dir.glob("*.png")}


def test_recomputed_life_circles_remove_what_was_made_from_them(
        tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers) -> None:
    cfg = copy_of(demo_run, tmp_path)
    html = cfg.gpkg_path.with_suffix(".html")
    html.write_text("<html></html>", encoding="utf-8")  # as `urbanunits all` leaves it
    before = _maps(cfg)
    assert {"programme.png", "update_units.png", "renewal_packages.png"} <= before
    assert _layers(cfg) & (catalog.STAGE_LAYERS["programme"] | catalog.STAGE_LAYERS["sites"])
    cfg = dataclasses.replace(cfg, lifecircle=dataclasses.replace(
        cfg.lifecircle, walk_speed_m_s=cfg.lifecircle.walk_speed_m_s * 1.1))
    pipeline.run_lifecircle(cfg, draw=False)
    # programme and sites were computed from the old life circles: their layers and maps go
    later = catalog.STAGE_LAYERS["programme"] | catalog.STAGE_LAYERS["sites"]
    assert not _layers(cfg) & later
    after = _maps(cfg)
    assert not {m for m in after if m.startswith(("programme", "sites_", "lifecircle_"))}
    # units and packages were reused unchanged: their maps stay
    assert {"update_units.png", "renewal_packages.png"} <= after
    assert not cfg.tables_dir.exists() and not html.exists()


def test_programme_with_life_circles_reused_keeps_the_sites(
        tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = copy_of(demo_run, tmp_path)
    sites_maps = {m for m in _maps(cfg) if m.startswith("sites_")}
    cfg = dataclasses.replace(cfg, programme=dataclasses.replace(
        cfg.programme, weight_age=cfg.programme.weight_age * 2))
    forbid(monkeypatch, "update_units", "renewal_packages", "life_circle")
    pipeline.run_programme(cfg, draw=False)
    assert catalog.STAGE_LAYERS["sites"] <= _layers(cfg)
    assert sites_maps <= _maps(cfg)
    assert not {m for m in _maps(cfg) if m.startswith("programme")}


def test_packages_run_replaces_the_units_map(
        tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers) -> None:
    """The packages stage rewrites the units' classes: their map is redrawn or removed."""
    cfg = copy_of(demo_run, tmp_path)
    pipeline.run_packages(cfg, draw=False)
    assert "update_units.png" not in _maps(cfg)
    pipeline.run_packages(cfg)
    assert {"update_units.png", "renewal_packages.png"} <= _maps(cfg)


def test_a_layer_the_stage_no_longer_makes_is_removed(
        tmp_path: Path, demo_run: DemoRun, use_demo: OSMLayers) -> None:
    """Isochrones written by one run are gone after a run with them turned off."""
    cfg = copy_of(demo_run, tmp_path)
    on = dataclasses.replace(cfg, lifecircle=dataclasses.replace(cfg.lifecircle, isochrones=True))
    pipeline.run_lifecircle(on, draw=False)
    assert "isochrones" in _layers(cfg)
    off = dataclasses.replace(cfg, lifecircle=dataclasses.replace(cfg.lifecircle,
                                                                  isochrones=False))
    pipeline.run_lifecircle(off, draw=False)
    assert "isochrones" not in _layers(cfg)
    assert {"lifecircle", "service_gaps"} <= _layers(cfg)


def test_a_shapefiles_attributes_are_part_of_its_digest(demo_cfg: Config, tmp_path: Path
                                                        ) -> None:
    """Renaming sub-districts in the .dbf alone (the .shp unchanged) changes the units' digest,
    so their layers are computed again rather than reused with the old names."""
    import geopandas as gpd
    import shapely

    shp = tmp_path / "sd.shp"
    gpd.GeoDataFrame({"name": ["甲"]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:32651").to_file(shp, encoding="utf-8")
    cfg = dataclasses.replace(demo_cfg, inputs=dataclasses.replace(demo_cfg.inputs,
                                                                    subdistricts=shp))
    before = _resume.stage_digests(cfg)
    geometry = shp.read_bytes()
    gpd.GeoDataFrame({"name": ["东"]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:32651").to_file(shp, encoding="utf-8")
    assert shp.read_bytes() == geometry  # the premise: only the attributes changed
    after = _resume.stage_digests(cfg)
    assert after["units"] != before["units"] and after["sites"] != before["sites"]
