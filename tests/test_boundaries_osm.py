"""Sub-districts from OSM boundary relations (split outer ways, inner rings) and the NBS join."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from urbanunits import pipeline
from urbanunits.config import Config
from urbanunits.sources.boundaries import (
    join_nbs_codes,
    normalise_name,
    read_nbs_codes,
    subdistricts_from_osm,
)
from urbanunits.sources.osm import read_osm

from .conftest import ROOT, demo_config

CODES = ROOT / "data" / "raw" / "ningbo" / "ningbo_subdistricts_nbs2023.csv"
X0, Y0, STEP = 121.490, 31.225, 0.005  # inside the demo study area

# Grid points in STEP units. A = 南门街道 [0,2]x[0,2] with a hole (C = 江厦 街道),
# B = 西门 [2,4]x[0,2], E = 不存在街道 [4,5]x[0,2], district D = 海曙区 [0,4]x[0,2].
NODES = {1: (0, 0), 2: (2, 0), 3: (4, 0), 4: (4, 2), 5: (2, 2), 6: (0, 2),
         7: (0.5, 0.5), 8: (1.5, 0.5), 9: (1.5, 1.5), 10: (0.5, 1.5),
         12: (5, 0), 13: (5, 2), 14: (1, 0.25)}
WAYS = {101: [1, 2], 102: [2, 5], 103: [5, 6, 1], 104: [2, 3], 105: [3, 4], 106: [4, 5],
        107: [7, 8, 9, 10, 7], 108: [3, 12, 13, 4]}
BOUNDARY_TAGS = {"boundary": "administrative", "admin_level": "8"}
RELATIONS = {
    # outer ring split over three ways, one of them reversed; an inner ring; a label node
    201: ("南门街道", "8", [("w", 101, "outer"), ("w", 102, "outer"), ("w", 103, "outer"),
                          ("w", 107, "inner"), ("n", 14, "label")]),
    202: ("西门", "8", [("w", 104, "outer"), ("w", 105, "outer"), ("w", 106, "outer"),
                       ("w", 102, "outer")]),
    203: ("江厦 街道", "8", [("w", 107, "outer")]),
    204: ("不存在街道", "8", [("w", 108, "outer"), ("w", 105, "outer")]),
    205: ("海曙区", "6", [("w", 101, "outer"), ("w", 104, "outer"), ("w", 105, "outer"),
                       ("w", 106, "outer"), ("w", 103, "outer")]),
}


def _xy(key: int) -> tuple[float, float]:
    gx, gy = NODES[key]
    return X0 + gx * STEP, Y0 + gy * STEP


def write_boundary_osm(path: Path) -> Path:
    """A small OSM XML with administrative boundary relations, written by hand."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for nid in sorted(NODES):
        x, y = _xy(nid)
        tags = '<tag k="place" v="suburb"/>' if nid == 14 else ""
        out.append(f'<node id="{nid}" version="1" lat="{y:.7f}" lon="{x:.7f}">{tags}</node>')
    for wid, refs in sorted(WAYS.items()):
        nds = "".join(f'<nd ref="{r}"/>' for r in refs)
        # Member ways carry boundary tags themselves, as in real OSM data (no name).
        tags = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in BOUNDARY_TAGS.items())
        out.append(f'<way id="{wid}" version="1">{nds}{tags}</way>')
    for rid, (name, level, members) in sorted(RELATIONS.items()):
        mem = "".join(f'<member type="{"way" if t == "w" else "node"}" ref="{r}" role="{role}"/>'
                      for t, r, role in members)
        tags = (f'<tag k="type" v="boundary"/><tag k="boundary" v="administrative"/>'
                f'<tag k="admin_level" v="{level}"/><tag k="name" v="{name}"/>')
        out.append(f'<relation id="{rid}" version="1">{mem}{tags}</relation>')
    out.append("</osm>")
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def expected(crs: str) -> dict[str, shapely.Geometry]:
    def box(a: float, b: float, c: float, d: float) -> shapely.Geometry:
        return shapely.box(X0 + a * STEP, Y0 + b * STEP, X0 + c * STEP, Y0 + d * STEP)

    hole = box(0.5, 0.5, 1.5, 1.5)
    shapes = {"南门街道": box(0, 0, 2, 2).difference(hole), "西门": box(2, 0, 4, 2),
              "江厦 街道": hole, "不存在街道": box(4, 0, 5, 2), "海曙区": box(0, 0, 4, 2)}
    s = gpd.GeoSeries(list(shapes.values()), index=list(shapes), crs="EPSG:4326").to_crs(crs)
    return dict(s.items())


@pytest.fixture(scope="module")
def boundary_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    tmp = tmp_path_factory.mktemp("boundaries")
    osm_path = write_boundary_osm(tmp / "boundaries.osm")
    cfg = demo_config(tmp / "out")
    return dataclasses.replace(cfg, inputs=dataclasses.replace(
        cfg.inputs, osm=osm_path, subdistrict_codes=CODES))


def test_relation_boundaries_become_valid_polygons(boundary_cfg: Config) -> None:
    layers = read_osm(boundary_cfg, use_cache=False, check=False)
    found = subdistricts_from_osm(layers)
    want = expected(boundary_cfg.study_area.crs)
    subs = found.subdistricts.set_index("subdistrict").geometry
    assert sorted(subs.index) == sorted(n for n in want if n != "海曙区")
    assert found.districts["district"].tolist() == ["海曙区"]
    got = {**subs.to_dict(), "海曙区": found.districts.geometry.iloc[0]}
    for name, geom in got.items():
        assert geom.is_valid, name
        assert geom.geom_type in ("Polygon", "MultiPolygon"), name
        # Same shape as the rings we drew (tolerance: 0.01 % of the area).
        assert geom.symmetric_difference(want[name]).area < 1e-4 * want[name].area, name
    nanmen = got["南门街道"]
    assert nanmen.geom_type == "Polygon" and len(nanmen.interiors) == 1
    # The enclave is a sub-district of its own and fills the hole exactly.
    assert nanmen.union(got["江厦 街道"]).symmetric_difference(
        shapely.Polygon(nanmen.exterior)).area < 1e-4 * nanmen.area
    # Districts are assigned by containment; E lies outside 海曙区.
    district = found.subdistricts.set_index("subdistrict")["district"]
    assert district["南门街道"] == district["西门"] == district["江厦 街道"] == "海曙区"
    assert pd.isna(district["不存在街道"])


def test_nbs_join_counts_and_codes(boundary_cfg: Config) -> None:
    layers = read_osm(boundary_cfg, check=False)
    found = subdistricts_from_osm(layers, codes_csv=CODES)
    codes = read_nbs_codes(CODES).set_index("name")["code"]
    got = found.subdistricts.set_index("subdistrict")["nbs_code"]
    assert got["南门街道"] == codes["南门街道"]
    assert got["江厦 街道"] == codes["江厦街道"]
    assert got["西门"] == codes["西门街道"]
    assert pd.isna(got["不存在街道"])
    join = found.join
    assert join is not None
    assert (join.matched, join.total, join.unmatched) == (3, 4, ["不存在街道"])
    assert join.by == {"ref:NBS": 0, "name": 2, "name without suffix": 1}
    assert "3 of 4" in join.summary() and "不存在街道" in join.summary()
    # 海曙区 has no ref:NBS; it takes the district code its sub-districts agree on.
    assert found.districts["nbs_code"].tolist() == [codes["南门街道"][:6]]
    # The units stage gets them through pipeline.load_subdistricts (no boundary file given).
    sub = pipeline.load_subdistricts(boundary_cfg, layers)
    assert sub is not None
    assert set(sub["subdistrict"]) == set(got.index)
    assert sub["nbs_code"].notna().sum() == 3


def test_ref_nbs_wins_and_district_narrows_candidates() -> None:
    table = pd.DataFrame({"code": ["330203001", "330206001", "330206002"],
                          "name": ["南门街道", "南门街道", "北门镇"],
                          "area_code": ["330203", "330206", "330206"]})
    gdf = gpd.GeoDataFrame({"subdistrict": ["南门街道", "南门", "北门", "北门镇"],
                            "ref": [None, None, None, "330203001000"],
                            "dcode": ["330206", None, None, None]},
                           geometry=[shapely.Point(i, 0) for i in range(4)], crs="EPSG:32651")
    out, join = join_nbs_codes(gdf, table, ref_col="ref", district_code_col="dcode")
    # 1: the name is ambiguous city-wide but unique in its district; 2: ambiguous, no district;
    # 3: unique core name; 4: the ref:NBS tag wins over the name.
    assert out["nbs_code"].tolist()[0] == "330206001"
    assert pd.isna(out["nbs_code"].iloc[1])
    assert out["nbs_code"].tolist()[2:] == ["330206002", "330203001"]
    assert join.by == {"ref:NBS": 1, "name": 1, "name without suffix": 1}
    assert join.unmatched == ["南门"]


# CJK place-name cores; 乡 (U+4E61) is left out because a core ending in it is itself suffixed.
_CJK = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80,
                                      exclude_characters="乡"), min_size=1, max_size=4)


@given(core=_CJK, suffix=st.sampled_from(["街道", "镇", "乡", "街道办事处", ""]),
       gap=st.sampled_from(["", " ", "\u3000", "\t"]))
def test_normalise_name_ignores_spacing_and_suffix(core: str, suffix: str, gap: str) -> None:
    spaced = gap.join(core) + gap + suffix
    assert normalise_name(spaced) == normalise_name(core + suffix)
    assert normalise_name(spaced, strip_suffix=True) == core


def write_demo_with_subdistricts(path: Path) -> Path:
    """The demo extract plus two sub-district relations splitting it at 121.500 E (a PBF)."""
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    n0, w0 = 20_000_000_000, 2_000_000_000  # after the demo's IDs, so the file stays sorted
    x0, xm, x1, y0, y1 = 121.480, 121.500, 121.520, 31.215, 31.255
    nodes = {n0 + 1: (x0, y0), n0 + 2: (xm, y0), n0 + 3: (x1, y0), n0 + 4: (x1, y1),
             n0 + 5: (xm, y1), n0 + 6: (x0, y1)}
    ways = {w0 + 1: [n0 + 1, n0 + 2], w0 + 2: [n0 + 2, n0 + 5], w0 + 3: [n0 + 5, n0 + 6, n0 + 1],
            w0 + 4: [n0 + 2, n0 + 3, n0 + 4], w0 + 5: [n0 + 4, n0 + 5]}
    rels = {1: ("陆家嘴街道", [w0 + 1, w0 + 2, w0 + 3]), 2: ("潍坊新村街道", [w0 + 4, w0 + 5, w0 + 2])}
    with osmium.SimpleWriter(str(path), overwrite=True) as w:
        wrote_nodes = False
        for obj in osmium.FileProcessor(str(ROOT / "data" / "raw" / "lujiazui.osm")):
            if obj.is_way() and not wrote_nodes:
                for nid, loc in nodes.items():
                    w.add_node(Node(id=nid, location=loc, version=1))
                wrote_nodes = True
            w.add(obj)
        for wid, refs in ways.items():
            w.add_way(Way(id=wid, nodes=refs, version=1,
                          tags={"boundary": "administrative", "admin_level": "8"}))
        for rid, (name, members) in rels.items():
            w.add_relation(Relation(id=rid, version=1, members=[("w", m, "outer") for m in members],
                                    tags={"type": "boundary", "boundary": "administrative",
                                          "admin_level": "8", "name": name}))
    return path


def test_units_nest_in_osm_subdistricts(tmp_path: Path) -> None:
    """No boundary file: the units stage takes the extract's admin_level=8 relations."""
    pbf = write_demo_with_subdistricts(tmp_path / "demo_subdistricts.osm.pbf")
    cfg = demo_config(tmp_path / "out")
    cfg = dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs, osm=pbf))
    assert cfg.inputs.subdistricts is None
    res = pipeline.run_units(cfg, write=False, draw=False)
    units = res.layers["update_units"]
    subs = pipeline.load_subdistricts(cfg, res.extra["layers"])
    assert subs is not None
    assert sorted(subs["subdistrict"]) == ["潍坊新村街道", "陆家嘴街道"]
    assert set(units["subdistrict"]) == {"陆家嘴街道", "潍坊新村街道"}
    # Every unit lies inside the sub-district it is labelled with (1 m tolerance).
    polys = subs.set_index("subdistrict").geometry
    for name, geom in zip(units["subdistrict"], units.geometry, strict=True):
        assert geom.difference(polys[name].buffer(1.0)).area < 1.0, name


# --- Shapefile encodings ----------------------------------------------------------------------

GBK_NAMES = ["陆家嘴街道", "潍坊新村街道", "塘桥街道"]


def write_subdistrict_shp(path: Path, *, encoding: str, cpg: str | None) -> Path:
    """Three sub-district boxes in the demo area as a Shapefile; ``cpg`` replaces the .cpg
    (None deletes it)."""
    gdf = gpd.GeoDataFrame({"name": GBK_NAMES, "code": ["1", "2", "3"]},
                           geometry=[shapely.box(121.49 + 0.01 * i, 31.22, 121.50 + 0.01 * i,
                                                 31.25) for i in range(3)], crs="EPSG:4326")
    gdf.to_file(path, encoding=encoding, engine="pyogrio")
    cpg_path = path.with_suffix(".cpg")
    cpg_path.unlink(missing_ok=True)
    if cpg is not None:
        cpg_path.write_text(cpg, encoding="ascii")
    return path


@pytest.mark.parametrize(("encoding", "cpg"), [("GBK", None), ("GBK", "GBK"),
                                               ("UTF-8", None), ("UTF-8", "UTF-8")])
def test_shapefile_names_decode_with_or_without_cpg(tmp_path: Path, encoding: str,
                                                    cpg: str | None) -> None:
    from urbanunits.sources.boundaries import read_subdistricts

    shp = write_subdistrict_shp(tmp_path / "streets.shp", encoding=encoding, cpg=cpg)
    raw = shp.with_suffix(".dbf").read_bytes()
    assert "陆家嘴".encode(encoding) in raw  # the file really holds that encoding
    sub = read_subdistricts(shp, crs="EPSG:32651")
    assert sorted(sub["subdistrict"]) == sorted(GBK_NAMES)


def test_wrong_cpg_is_caught_and_the_key_fixes_it(tmp_path: Path) -> None:
    from urbanunits.errors import DataError, InputFileError
    from urbanunits.sources.boundaries import read_subdistricts

    latin = write_subdistrict_shp(tmp_path / "latin.shp", encoding="GBK", cpg="ISO-8859-1")
    with pytest.raises(DataError) as exc:
        read_subdistricts(latin, crs="EPSG:32651")
    assert "inputs.subdistricts_encoding" in exc.value.fix
    utf = write_subdistrict_shp(tmp_path / "utf.shp", encoding="GBK", cpg="UTF-8")
    with pytest.raises(InputFileError, match="not in the encoding"):
        read_subdistricts(utf, crs="EPSG:32651")
    for shp in (latin, utf):  # the explicit key wins over the .cpg
        sub = read_subdistricts(shp, crs="EPSG:32651", encoding="GB18030")
        assert sorted(sub["subdistrict"]) == sorted(GBK_NAMES)


def test_subdistricts_encoding_key_reaches_the_reader(tmp_path: Path) -> None:
    from urbanunits.config import load_config
    from urbanunits.errors import ConfigError

    shp = write_subdistrict_shp(tmp_path / "gbk.shp", encoding="GBK", cpg="ISO-8859-1")
    conf = tmp_path / "c.toml"
    base = (f'name = "t"\n[study_area]\nbbox = [121.4865, 31.2225, 121.5125, 31.2475]\n'
            f'[inputs]\nosm = "{ROOT / "data" / "raw" / "lujiazui.osm"}"\n'
            f'subdistricts = "{shp}"\n')
    conf.write_text(base + 'subdistricts_encoding = "GB18030"\n', encoding="utf-8")
    cfg = load_config(conf)
    layers = types.SimpleNamespace(study_area=gpd.GeoDataFrame(
        geometry=[shapely.box(121.4865, 31.2225, 121.5125, 31.2475)], crs="EPSG:4326").to_crs(
        cfg.study_area.crs))
    sub = pipeline.load_subdistricts(cfg, layers)  # type: ignore[arg-type]
    assert sub is not None and sorted(sub["subdistrict"]) == sorted(GBK_NAMES)
    conf.write_text(base + 'subdistricts_encoding = "gbk-9"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="subdistricts_encoding"):
        load_config(conf)


def test_is_garbled() -> None:
    from urbanunits.sources.boundaries import is_garbled

    for name in GBK_NAMES:
        assert not is_garbled(name)
        assert is_garbled(name.encode("gbk").decode("latin-1"))
    for name in ("Zürich", "São Paulo", "Ålesund", "陆家嘴 Lujiazui"):
        assert not is_garbled(name)
    assert is_garbled("陆家\ufffd街道")


def test_no_subdistricts_at_all_is_a_warning(demo_cfg: Config, demo_layers: object,
                                             caplog: pytest.LogCaptureFixture) -> None:
    import logging

    assert demo_cfg.inputs.subdistricts is None
    no_admin = dataclasses.replace(demo_layers, admin=demo_layers.admin.iloc[:0])  # type: ignore
    with caplog.at_level(logging.WARNING):
        assert pipeline.load_subdistricts(demo_cfg, no_admin) is None
    (msg,) = [r.getMessage() for r in caplog.records if "sub-district" in r.getMessage()]
    assert "inputs.subdistricts" in msg and "merged across" in msg
