"""The whole run: one GeoPackage with every layer, styles and metadata; tables; maps."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pyogrio
import pytest

from urbanunits import pipeline
from urbanunits.catalog import CATALOG, STAGE_LAYERS
from urbanunits.config import Config
from urbanunits.pipeline import StageResult
from urbanunits.sources.osm import OSMLayers
from urbanunits.tables import column_info, format_table
from urbanunits.units import CLASS_LABELS, class_counts_line

from .conftest import demo_config
from .demorun import DemoRun, copy_of

SPATIAL = {"update_units", "blocks", "communities", "renewal_packages", "facilities",
           "lifecircle", "service_gaps"}


@pytest.fixture(scope="module")
def run(demo_run: DemoRun) -> tuple[Config, StageResult]:
    """The session's shared `urbanunits all` of the demo (read only)."""
    res = StageResult("all", layers=demo_run.layers, maps=demo_run.maps, summary=demo_run.summary)
    res.extra["stages"] = demo_run.stages
    return demo_run.cfg, res


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
    folder = cfg.output.dir / "lujiazui" / "tables"  # documented layout
    assert folder == cfg.tables_dir
    comm = folder / "communities.csv"
    assert comm.read_bytes()[:3] == b"\xef\xbb\xbf"
    back = pd.read_csv(comm, encoding="utf-8-sig")
    # bilingual headers: Chinese name, then the layer's column key
    assert "名称 name" in back.columns and "建筑面积(㎡) floor_area_m2" in back.columns
    layer = res.layers["communities"].set_index("community_id")
    back = back.set_index("小区编号 community_id")
    assert set(layer["name"]) == set(back["名称 name"])
    assert "东园一村" in set(back["名称 name"])
    # booleans as 是/否, floor area in whole m², population as an integer
    assert set(back["老旧小区 is_old"]) <= {"是", "否"}
    assert (back["老旧小区 is_old"] == layer.loc[back.index, "is_old"].map(
        {True: "是", False: "否"})).all()
    want = layer.loc[back.index, "floor_area_m2"].round(0)
    assert (back["建筑面积(㎡) floor_area_m2"] == want).all()
    lc = pd.read_csv(folder / "lifecircle_summary.csv", encoding="utf-8-sig")
    # counts of communities and residents meeting a category stay numbers (not 是/否)
    summary = res.layers["lifecircle_summary"]
    for key in ("n_ok", "population_ok"):
        (head,) = [c for c in lc.columns if c.endswith(" " + key)]
        assert lc[head].tolist() == summary[key].round(0).astype(int).tolist()
    # and no numeric column of any written layer is shown as 是/否
    for name, layer in res.layers.items():
        _, infos = format_table(layer)
        for info in infos:
            if info.kind == "bool":
                assert not pd.api.types.is_numeric_dtype(layer[info.key]) or \
                    set(layer[info.key].dropna().unique()) <= {0, 1}, (name, info.key)
    share = lc["达标人口占比(%) pop_share_ok"].dropna()
    raw = res.layers["lifecircle_summary"]["pop_share_ok"].dropna()
    assert share.tolist() == (raw * 100).round(1).tolist()  # percent, one decimal
    gaps = pd.read_csv(folder / "service_gaps.csv", encoding="utf-8-sig")
    dist = gaps["步行距离(m) dist_m"].dropna()
    assert (dist == dist.round(0)).all()  # metres to 1 m
    wb = openpyxl.load_workbook(folder / "lujiazui.xlsx")
    assert {"units", "packages", "communities", "lifecircle", "site_suggestions",
            "accessibility", "数据字典 Dictionary", "说明 About"} <= set(wb.sheetnames)
    ws = wb["communities"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref
    heads = [c.value for c in ws[1]]
    col = heads.index("建筑面积(㎡) floor_area_m2") + 1
    assert ws.cell(row=2, column=col).number_format == "#,##0"
    # every column of every sheet is in the dictionary
    dic = pd.read_excel(folder / "lujiazui.xlsx", sheet_name="数据字典 Dictionary")
    for sheet in ("units", "communities", "lifecircle", "service_gaps"):
        cols = pd.read_excel(folder / "lujiazui.xlsx", sheet_name=sheet, nrows=0).columns
        listed = set(dic.loc[dic["表 sheet"] == sheet, "列 column"])
        assert {c.rsplit(" ", 1)[-1] for c in cols} <= listed, sheet
    about = pd.read_excel(folder / "lujiazui.xlsx", sheet_name="说明 About")
    assert about["内容 value"].str.contains("OpenStreetMap").any()


#: Columns of the demo's tables allowed to have no Chinese name (keep this short and say why).
UNNAMED_OK: set[tuple[str, str]] = set()


def test_every_written_column_is_named_in_chinese(run: tuple[Config, StageResult]) -> None:
    cfg, _ = run
    book = cfg.tables_dir / f"{cfg.name}.xlsx"
    dic = pd.read_excel(book, sheet_name="数据字典 Dictionary", dtype=str, keep_default_na=False)
    cjk = re.compile(r"[\u4e00-\u9fff]")
    unnamed = {(s, k) for s, k, zh in zip(dic["表 sheet"], dic["列 column"], dic["中文 Chinese"],
                                          strict=True)
               if (zh == k and k.isascii()) or not cjk.search(zh)}
    assert unnamed <= UNNAMED_OK, sorted(unnamed - UNNAMED_OK)
    # an English meaning for every column, also the project list's Chinese-keyed ones
    no_en = dic[~dic["含义 meaning"].str.contains("[A-Za-z]")]
    assert no_en.empty, no_en[["表 sheet", "列 column"]].values.tolist()
    assert {"programme", "programme_years", "elevator_candidates", "项目库",
            "accessibility"} <= set(dic["表 sheet"])
    csvs = sorted(cfg.tables_dir.glob("*.csv"))
    assert len(csvs) == dic["表 sheet"].nunique()
    for path in csvs:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        keys = dic.loc[dic["表 sheet"] == path.stem[:31], "列 column"].tolist()
        assert len(keys) == len(table.columns), path.name
        for head, key in zip(table.columns, keys, strict=True):
            # no Chinese name with an English word glued on (日间照料中心demand)
            assert not re.search(r"[\u4e00-\u9fff][A-Za-z]", head.split(" ")[0]), head
            info = column_info(key, categories=cfg.lifecircle.categories)
            if info.kind in ("count", "yuan", "m2", "metres", "year"):
                # whole numbers print as such in the CSV (not 4261.0)
                bad = [v for v in table[head] if v and not re.fullmatch(r"-?\d+", v)]
                assert not bad, (path.name, head, bad[:3])


def test_maps_and_units_reclassified(run: tuple[Config, StageResult]) -> None:
    cfg, res = run
    names = {p.name for p in res.maps}
    assert {"update_units.png", "renewal_packages.png"} <= names
    assert {f"lifecircle_{k}.png" for k in cfg.lifecircle.categories} <= names
    assert "sites_elderly_care.png" in names  # no elderly care mapped: sites suggested
    assert all(p.is_file() and p.stat().st_size > 50_000 for p in res.maps)
    units = res.layers["update_units"]
    n_old = res.layers["communities"]["is_old"].sum()
    assert units["n_old_communities"].sum() == n_old
    assert (units["unit_class"] == "old_community_renewal").any()
    # the life circle rows are keyed by the same community ids as communities
    assert set(res.layers["lifecircle"]["community_id"]) == set(
        res.layers["communities"]["community_id"])


def test_summary_reports_the_written_classes(run: tuple[Config, StageResult]) -> None:
    cfg, res = run
    written = pyogrio.read_dataframe(cfg.gpkg_path, layer="update_units", read_geometry=False)
    lines = [line for line in res.summary if "classes (" in line]
    assert lines == [f"[units] {class_counts_line(written)}"]
    # the packages stage changed them: no unit is old-community renewal before it
    assert CLASS_LABELS["old_community_renewal"] in lines[0]
    assert (written["old_floor_share"] >= cfg.units.min_old_floor_share).any()


def test_packages_stage_reports_classes_and_reads_heritage_areas(
        tmp_path: Path, demo_layers: OSMLayers) -> None:
    cfg = demo_config(tmp_path / "out")
    units = pipeline.run_units(cfg, layers=demo_layers, write=False, draw=False).layers[
        "update_units"]
    target = units.loc[units["unit_class"] != "historic_conservation"].iloc[0]
    path = tmp_path / "heritage.gpkg"
    gpd.GeoDataFrame({"name": ["保护区"]}, geometry=[target.geometry],
                     crs=units.crs).to_crs("EPSG:4490").to_file(path, layer="areas")
    cfg = dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs, heritage_areas=path))
    res = pipeline.run_packages(cfg, layers=demo_layers, draw=False)
    written = pyogrio.read_dataframe(cfg.gpkg_path, layer="update_units", read_geometry=False)
    assert f"update units {class_counts_line(written)}" in res.summary
    row = written.set_index("unit_id").loc[target["unit_id"]]
    assert row["historic_share"] == pytest.approx(1.0, abs=1e-3)
    assert row["unit_class"] == "historic_conservation"
    meta = pyogrio.read_dataframe(cfg.gpkg_path, layer="run_metadata", read_geometry=False)
    assert "sha256:heritage_areas" in set(meta["key"])


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
    # no staging folder left beside the run folder (only the run and its idle lock file)
    assert sorted(p.name for p in cfg.output.dir.iterdir()) == [".lujiazui.lock", "lujiazui"]


def _ids_resolve(gpkg: Path) -> None:
    """Every unit/package id a layer refers to exists in the layer that defines it."""
    names = {str(n) for n, _ in pyogrio.list_layers(gpkg)}
    units = set(pyogrio.read_dataframe(gpkg, layer="update_units")["unit_id"])
    for name in names & {"communities", "lifecircle", "lifecircle_units"}:
        refs = set(pyogrio.read_dataframe(gpkg, layer=name, read_geometry=False)["unit_id"]
                   .dropna())
        assert refs <= units, name
    if "lifecircle_packages" in names:
        assert "renewal_packages" in names
        pk = set(pyogrio.read_dataframe(gpkg, layer="renewal_packages")["package_id"])
        refs = set(pyogrio.read_dataframe(gpkg, layer="lifecircle_packages")["package_id"])
        assert refs <= pk


def test_stage_runs_keep_the_file_consistent(tmp_path: Path, demo_layers: OSMLayers,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = demo_config(tmp_path)
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: demo_layers)
    later = {"communities", "renewal_packages", "package_links", "lifecircle",
             "service_gaps", "lifecircle_units", "lifecircle_packages"}
    pipeline.run_units(cfg, layers=demo_layers, draw=False)
    pipeline.run_lifecircle(cfg, layers=demo_layers, draw=False)  # computes units, packages
    names = {str(n) for n, _ in pyogrio.list_layers(cfg.gpkg_path)}
    assert later <= names
    _ids_resolve(cfg.gpkg_path)
    # Rewriting the units drops the results computed from the old ones.
    pipeline.run_units(cfg, layers=demo_layers, draw=False)
    names = {str(n) for n, _ in pyogrio.list_layers(cfg.gpkg_path)}
    assert not later & names
    assert {"update_units", "blocks"} <= names
    styles = pyogrio.read_dataframe(cfg.gpkg_path, layer="layer_styles", read_geometry=False)
    assert set(styles["f_table_name"]) <= names
    pipeline.run_packages(cfg, layers=demo_layers, draw=False)
    _ids_resolve(cfg.gpkg_path)


def test_failed_run_all_leaves_previous_results(tmp_path: Path, demo_layers: OSMLayers,
                                                demo_run: DemoRun,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = copy_of(demo_run, tmp_path)  # a finished `urbanunits all`
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: demo_layers)
    before = cfg.gpkg_path.read_bytes()

    def fail(*_a: object, **_k: object) -> None:
        raise RuntimeError("life circles failed")

    monkeypatch.setattr(pipeline, "run_lifecircle", fail)
    with pytest.raises(RuntimeError):
        pipeline.run_all(cfg, draw=False)
    assert cfg.gpkg_path.read_bytes() == before


def test_empty_layers_declare_their_geometry(tmp_path: Path) -> None:
    import geopandas as gpd

    from urbanunits.export import write_layers

    empty = gpd.GeoDataFrame({"package_id": []}, geometry=gpd.GeoSeries([], crs="EPSG:32651"))
    write_layers(tmp_path / "x.gpkg", {"renewal_packages": empty, "package_links": empty})
    types = dict(pyogrio.list_layers(tmp_path / "x.gpkg"))
    assert types == {"renewal_packages": "MultiPolygon", "package_links": "MultiLineString"}


def test_every_written_layer_is_catalogued_with_its_styled_columns(
        run: tuple[Config, StageResult]) -> None:
    cfg, res = run
    written = {str(n): g for n, g in pyogrio.list_layers(cfg.gpkg_path)}
    for name, geom in written.items():
        if name in {"layer_styles", "run_metadata"}:
            continue
        assert name in CATALOG, f"{name} is written but not in the catalog"
        spec = CATALOG[name]
        if spec.geometry is None:
            assert geom is None, name
            continue
        # one part per feature is written as the single type of the declared multi type
        assert geom in {spec.geometry, spec.geometry.removeprefix("Multi")}, (name, geom)
        cols = set(pyogrio.read_info(cfg.gpkg_path, layer=name)["fields"])
        style = spec.style
        assert style is not None, name
        if style.column is not None:
            assert style.column in cols, (name, style.column)
        if style.labels:
            assert style.label_field(cols) is not None, (name, style.labels)
        if spec.key is not None:
            assert spec.key in cols, (name, spec.key)
    # each stage's own layers are the ones the catalog gives it
    seen: set[str] = set()
    for stage, names in res.extra["stages"].items():
        own = set(names) - seen
        assert own <= STAGE_LAYERS[stage], (stage, own - STAGE_LAYERS[stage])
        seen |= set(names)
    styles = pyogrio.read_dataframe(cfg.gpkg_path, layer="layer_styles", read_geometry=False)
    qml = dict(zip(styles["f_table_name"], styles["styleQML"], strict=True))
    for name, spec in CATALOG.items():
        if name in qml and spec.style is not None and spec.style.column is not None:
            assert f'attr="{spec.style.column}"' in qml[name], name
