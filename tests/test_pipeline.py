"""The whole run: one GeoPackage with every layer, styles and metadata; tables; maps."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import openpyxl
import pandas as pd
import pyogrio
import pytest

from urbanunits import pipeline
from urbanunits.config import Config
from urbanunits.pipeline import StageResult
from urbanunits.sources.osm import OSMLayers

from .conftest import demo_config

SPATIAL = {"update_units", "blocks", "old_communities", "renewal_packages", "facilities",
           "lifecircle", "service_gaps"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, demo_layers: OSMLayers
        ) -> tuple[Config, StageResult]:
    cfg = demo_config(tmp_path_factory.mktemp("all"))
    # reuse the parsed layers: the cache lives in another folder
    pipeline_load = pipeline.load_layers
    try:
        pipeline.load_layers = lambda _cfg: demo_layers  # type: ignore[assignment]
        res = pipeline.run_all(cfg)
    finally:
        pipeline.load_layers = pipeline_load  # type: ignore[assignment]
    return cfg, res


def test_every_layer_round_trips(run: tuple[Config, StageResult]) -> None:
    cfg, res = run
    info = {str(name): geom for name, geom in pyogrio.list_layers(cfg.gpkg_path)}
    assert set(info) >= SPATIAL
    for name, df in res.layers.items():
        back = pyogrio.read_dataframe(cfg.gpkg_path, layer=name)
        assert len(back) == len(df), name
        want_cols = [c for c in df.columns if c != "geometry"]
        got_cols = [c for c in back.columns if c != "geometry"]
        assert got_cols == want_cols, name
        if name in SPATIAL:
            assert pyogrio.read_info(cfg.gpkg_path, layer=name)["crs"] == "EPSG:32651", name
            assert info[name] != "Unknown", name  # one declared geometry type for QGIS


def test_styles_and_metadata(run: tuple[Config, StageResult]) -> None:
    cfg, _ = run
    styles = pyogrio.read_dataframe(cfg.gpkg_path, layer="layer_styles", read_geometry=False)
    assert styles["f_table_name"].is_unique
    assert set(styles["f_table_name"]) >= SPATIAL
    assert styles["useAsDefault"].all()
    for qml in styles["styleQML"]:
        assert ET.fromstring(qml.split("\n", 1)[1]).find("renderer-v2") is not None
    units_qml = styles.set_index("f_table_name").at["update_units", "styleQML"]
    assert 'attr="unit_class"' in units_qml and 'fieldName="unit_id"' in units_qml
    meta = pyogrio.read_dataframe(cfg.gpkg_path, layer="run_metadata", read_geometry=False)
    kv = dict(zip(meta["key"], meta["value"], strict=True))
    assert "© OpenStreetMap contributors" in kv["attribution"]
    assert kv["run_name"] == "lujiazui" and len(kv["sha256:osm"]) == 64


def test_tables(run: tuple[Config, StageResult]) -> None:
    cfg, res = run
    folder = cfg.output.dir / "tables"
    comm = folder / "communities.csv"
    assert comm.read_bytes()[:3] == b"\xef\xbb\xbf"
    back = pd.read_csv(comm, encoding="utf-8-sig")
    assert set(res.layers["old_communities"]["name"]) == set(back["name"])
    assert "东园一村" in set(back["name"])
    wb = openpyxl.load_workbook(folder / "lujiazui.xlsx", read_only=True)
    assert {"units", "packages", "communities", "lifecircle"} <= set(wb.sheetnames)


def test_maps_and_units_reclassified(run: tuple[Config, StageResult]) -> None:
    cfg, res = run
    names = {p.name for p in res.maps}
    assert {"update_units.png", "renewal_packages.png"} <= names
    assert {f"lifecircle_{k}.png" for k in cfg.lifecircle.categories} <= names
    assert all(p.is_file() and p.stat().st_size > 50_000 for p in res.maps)
    units = res.layers["update_units"]
    n_old = res.layers["old_communities"]["is_old"].sum()
    assert units["n_old_communities"].sum() == n_old
    assert (units["unit_class"] == "old_community_renewal").any()
    # the life circle rows are keyed by the same community ids as old_communities
    assert set(res.layers["lifecircle"]["community_id"]) == set(
        res.layers["old_communities"]["community_id"])


def test_failed_stage_keeps_previous_geopackage(tmp_path: Path, demo_layers: OSMLayers,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = demo_config(tmp_path)
    pipeline.run_units(cfg, layers=demo_layers, draw=False)
    before = cfg.gpkg_path.read_bytes()

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(pyogrio, "write_dataframe", boom)
    with pytest.raises(RuntimeError):
        pipeline.run_units(cfg, layers=demo_layers, draw=False)
    assert cfg.gpkg_path.read_bytes() == before
    assert sorted(p.name for p in cfg.gpkg_path.parent.iterdir() if p.is_file()) == [
        "lujiazui.gpkg"]
