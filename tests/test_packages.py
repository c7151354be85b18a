"""Renewal packages: classification, estimates, links, clustering invariants, demo acceptance."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanunits import packages as pk
from urbanunits.config import Config, PackagesConfig
from urbanunits.errors import ConfigError, DataError
from urbanunits.export import list_layers, read_layer
from urbanunits.sources.osm import OSMLayers

CRS = "EPSG:32651"
X0, Y0 = 355_000.0, 3_455_000.0


def make_cfg(**pkg: Any) -> PackagesConfig:
    base: dict[str, Any] = {
        "link_distance_m": 150.0, "hard_barriers": ["river", "rail"], "min_floor_area_m2": 0.0,
        "max_floor_area_m2": 1e12, "min_households": 0, "max_households": 10**9,
        "prefer_same_subdistrict": True}
    base.update(pkg)
    return PackagesConfig(**base)


def squares(centres: list[tuple[float, float]], *, side_m: float = 60.0,
            floor_area_m2: float | list[float] = 20_000.0, subdistrict: list[Any] | None = None,
            is_old: bool | list[bool] = True) -> gpd.GeoDataFrame:
    """Square communities of ``side_m`` centred on offsets (m) from a UTM 51N origin."""
    n = len(centres)
    fa = np.broadcast_to(np.asarray(floor_area_m2, dtype=float), (n,)).copy()
    geoms = [shapely.box(X0 + x - side_m / 2, Y0 + y - side_m / 2, X0 + x + side_m / 2,
                         Y0 + y + side_m / 2) for x, y in centres]
    return gpd.GeoDataFrame({
        "community_id": [f"C{i + 1:03d}" for i in range(n)],
        "name": [f"测试{i + 1}村" for i in range(n)],
        "is_old": np.broadcast_to(np.asarray(is_old), (n,)).copy(),
        "floor_area_m2": fa, "households": fa / 70.0, "population": fa / 70.0 * 2.6,
        "subdistrict": subdistrict if subdistrict is not None else [None] * n,
    }, geometry=geoms, crs=CRS)


def vline(x: float, y0: float = -1000.0, y1: float = 1000.0) -> shapely.LineString:
    return shapely.LineString([(X0 + x, Y0 + y0), (X0 + x, Y0 + y1)])


def barrier_frame(geoms: list[Any], kind: str = "river") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"kind": [kind] * len(geoms), "name": [None] * len(geoms)},
                            geometry=geoms, crs=CRS)


def members(res: pk.PackagesResult) -> list[set[str]]:
    c = res.communities
    return sorted((set(g["community_id"]) for _, g in c[c["package_id"].notna()].groupby(
        "package_id")), key=min)


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def test_name_rules_demo_names() -> None:
    p = PackagesConfig()
    old = ["东园一村", "东园二村", "东园三村", "东园四村", "崂山三村", "崂山四村", "崂山五村",
           "东昌新村", "乳山一村", "上船大楼", "御桥新村", "曹杨新邨", "航运宿舍", "花园新村"]
    new = ["汤臣一品", "仁恒滨江园", "财富海景花园", "金顶公寓", "滨江凯旋门", "中粮·海景壹号",
           "盛大金磐花园", "浦江茗园", "汇豪天下", "江临天下", "金外滩花园", "浦江公馆",
           "滨江名人苑", "世贸滨江花园-北区", "菊园", "兰园小区"]
    res = pk.classify_communities(pd.Series(old + new), built_by_year=p.built_by_year,
                                  old_name_patterns=p.old_name_patterns,
                                  new_name_patterns=p.new_name_patterns)
    got = dict(zip(old + new, res["is_old"], strict=True))
    assert [n for n in old if not got[n]] == []
    assert [n for n in new if got[n]] == []
    assert res["old_rule"].str.startswith(("name_old:", "name_new:")).all()
    # every old one was called old by its name alone, and flagged so
    assert res["old_by_name_only"].tolist() == res["is_old"].tolist()


def test_xiaoqu_suffix_is_not_evidence_of_age() -> None:
    p = PackagesConfig()
    names = pd.Series(["保利花园小区", "万科城小区", "三航小区", "张杨路370弄小区", "东园一村小区",
                       "万科城二期"])
    res = pk.classify_communities(names, old_name_patterns=p.old_name_patterns,
                                  new_name_patterns=p.new_name_patterns)
    assert res["is_old"].tolist() == [False, False, False, False, True, False]
    assert res["old_rule"].tolist() == ["name_new:花园", "name_new:城$", "none", "none",
                                        "name_old:[一二三四五六七八九十\\d]+村$", "name_new:城$"]
    assert res["old_by_name_only"].tolist() == [False, False, False, False, True, False]
    # Even a user's own 小区$ rule never beats a developer word before the suffix; without one,
    # it still applies, and the stem's own type word still counts (花园新村 is old).
    mine = pk.classify_communities(pd.Series(["保利花园小区", "万科城小区", "三航小区",
                                              "花园新村小区"]),
                                   old_name_patterns=[*p.old_name_patterns, "小区$"],
                                   new_name_patterns=p.new_name_patterns)
    assert mine["is_old"].tolist() == [False, False, True, True]
    assert mine["old_rule"].tolist() == ["name_new:花园", "name_new:城$", "name_old:小区$",
                                         "name_old:新[村邨]$"]


def test_tagged_year_beats_name_and_unknown_names_are_new() -> None:
    names = pd.Series(["东园一村", "汤臣一品", "某某大厦", "某某", "某某"])
    start = pd.Series(["2005", "1985-06", None, None, "~1962"])
    age = pd.Series([None, None, "1990", None, None])
    res = pk.classify_communities(names, start_date=start, building_age=age,
                                  built_by_year=2000, old_name_patterns=[r"村$"],
                                  new_name_patterns=[r"一品"])
    assert res["is_old"].tolist() == [False, True, True, False, True]
    assert res["old_rule"].tolist() == ["year:start_date", "year:start_date",
                                        "year:building:age", "none", "year:start_date"]
    assert res["built_year"].tolist()[:3] == [2005, 1985, 1990]
    assert res["built_year_text"].tolist()[:3] == ["2005", "1985-06", "1990"]
    assert not res["old_by_name_only"].any()


def test_built_by_year_is_inclusive() -> None:
    names = pd.Series(["甲", "乙", "丙", "丁", "戊"])
    start = pd.Series(["2000", "2001", "1990s", "2000s", "1995-2000"])
    res = pk.classify_communities(names, start_date=start, built_by_year=2000)
    assert res["built_year"].tolist() == [2000, 2001, 1999, 2009, 2000]
    assert res["is_old"].tolist() == [True, False, True, False, True]
    res = pk.classify_communities(names, start_date=start, built_by_year=1999)
    assert res["is_old"].tolist() == [False, False, True, False, False]


def test_bad_pattern_is_config_error() -> None:
    with pytest.raises(ConfigError, match="regex"):
        pk.classify_communities(pd.Series(["x"]), old_name_patterns=["(unclosed"])


# --------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------


def test_floor_area_equals_brute_force_sum() -> None:
    rng = np.random.default_rng(3)
    comm = squares([(0, 0), (300, 0)], side_m=200.0)
    boxes, levels = [], []
    for _ in range(40):
        x, y = rng.uniform(-150, 450), rng.uniform(-150, 150)
        w, h = rng.uniform(10, 40, size=2)
        boxes.append(shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h))
        levels.append(float(rng.integers(1, 30)))
    b = gpd.GeoDataFrame({"levels": levels, "levels_tagged": [True, False] * 20,
                          "start_date": [None] * 39 + ["1978"]}, geometry=boxes, crs=CRS)
    est = pk.estimate_floor_area(comm, b, fallback_far=1.5)
    for i, poly in enumerate(comm.geometry):
        expect = sum(poly.intersection(g).area * lv for g, lv in zip(boxes, levels, strict=True))
        assert est["floor_area_m2"].iloc[i] == pytest.approx(expect, rel=1e-9)
    empty = squares([(5000, 5000)], side_m=100.0)
    est2 = pk.estimate_floor_area(empty, b, fallback_far=1.5)
    assert est2["floor_area_m2"].iloc[0] == pytest.approx(10_000 * 1.5)
    assert est2["floor_area_method"].iloc[0] == "site×fallback_far"


# --------------------------------------------------------------------------------------------
# Links and barriers
# --------------------------------------------------------------------------------------------


def test_link_graph_matches_brute_force_distances() -> None:
    rng = np.random.default_rng(11)
    pts = [(float(x), float(y)) for x, y in rng.uniform(0, 2000, size=(60, 2))]
    comm = squares(pts, side_m=40.0)
    G = pk.link_graph(comm, link_distance_m=150.0)
    geoms = list(comm.geometry)
    expect = {(i, j) for i in range(len(geoms)) for j in range(i + 1, len(geoms))
              if geoms[i].distance(geoms[j]) <= 150.0}
    assert {tuple(sorted(e)) for e in G.edges()} == expect


def test_river_between_close_communities_separates_them() -> None:
    comm = squares([(0, 0), (120, 0)])
    cfg = make_cfg()
    river = barrier_frame([vline(60.0)])
    with_river = pk.renewal_packages(comm, cfg=cfg, barriers=river)
    assert members(with_river) == [{"C001"}, {"C002"}]
    assert with_river.report.n_blocked_links == 1
    without = pk.renewal_packages(comm, cfg=cfg)
    assert members(without) == [{"C001", "C002"}]


def test_moat_polygon_separates_and_sides_differ() -> None:
    # B sits inside a ring-shaped water polygon (a moat): different faces, and no link.
    comm = squares([(0, 0), (100, 0)], side_m=40.0)
    ring = shapely.box(X0 + 50, Y0 - 60, X0 + 160, Y0 + 60)
    moat = barrier_frame([ring.exterior.buffer(6.0)])
    sides, faces = pk.barrier_sides(comm.geometry, moat, margin_m=200.0)
    assert sides[0] != sides[1]
    assert not any(f.intersects(moat.geometry.iloc[0].buffer(-1)) for f in faces)
    G = pk.link_graph(comm, link_distance_m=200.0, barriers=moat)
    assert G.number_of_edges() == 0
    assert pk.link_graph(comm, link_distance_m=200.0).number_of_edges() == 1


def test_dangling_rail_spur_blocks_the_straight_link() -> None:
    comm = squares([(0, 0), (120, 0)])
    spur = shapely.LineString([(X0 + 60, Y0 - 100), (X0 + 60, Y0 + 100)])  # ends nearby
    G = pk.link_graph(comm, link_distance_m=150.0, barriers=barrier_frame([spur], "rail"))
    assert G.number_of_edges() == 0


def test_hard_barriers_from_demo_layers(demo_layers: OSMLayers) -> None:
    bar = pk.hard_barriers(demo_layers, kinds=["river", "rail"])
    assert set(bar["kind"]) == {"river"}  # demo rail is all metro in tunnels
    assert "黄浦江" in set(bar["name"].dropna())
    ponds = demo_layers.water[demo_layers.water["kind"] == "pond"]
    assert not bar.geometry.geom_equals_exact(ponds.geometry.iloc[0], 0).any()
    with pytest.raises(ConfigError):
        pk.hard_barriers(demo_layers, kinds=["canyon"])


# --------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------


def test_two_clusters_far_apart_give_two_packages() -> None:
    a = [(0, 0), (80, 0), (0, 80), (80, 80)]
    b = [(3000 + x, y) for x, y in a]
    res = pk.renewal_packages(squares(a + b), cfg=make_cfg())
    assert members(res) == [{"C001", "C002", "C003", "C004"}, {"C005", "C006", "C007", "C008"}]
    assert res.packages["n_communities"].tolist() == [4, 4]
    assert res.packages["floor_area_m2"].tolist() == [80_000, 80_000]


def test_links_of_touching_communities_have_no_geometry_and_the_rest_are_valid() -> None:
    # C001 and C002 share an edge (60 m squares 60 m apart); C003 is 40 m from C002
    res = pk.renewal_packages(squares([(0, 0), (60, 0), (160, 0)]), cfg=make_cfg())
    links = res.links.set_index(["from_id", "to_id"])
    assert links.loc[("C001", "C002"), "distance_m"] == 0
    assert links.loc[("C001", "C002"), "geometry"] is None
    gap = links.loc[("C002", "C003"), "geometry"]
    assert gap.is_valid and gap.length == pytest.approx(40.0)
    drawn = res.links.geometry.dropna()
    assert shapely.is_valid(drawn.values).all()
    assert np.allclose(drawn.length, res.links.loc[drawn.index, "distance_m"], atol=0.05)


def test_ceiling_splits_a_long_chain_into_compact_pieces() -> None:
    n, each, cap = 12, 50_000.0, 200_000.0
    comm = squares([(100.0 * i, 0.0) for i in range(n)], floor_area_m2=each)
    res = pk.renewal_packages(comm, cfg=make_cfg(max_floor_area_m2=cap))
    pieces = members(res)
    assert len(pieces) >= math.ceil(n * each / cap)
    assert len(pieces) <= 2 * math.ceil(n * each / cap)
    for piece in pieces:
        pos = sorted(int(c[1:]) for c in piece)
        assert pos == list(range(pos[0], pos[-1] + 1)), "a piece skips part of the chain"
        assert len(pos) * each <= cap
    assert not res.packages["above_ceiling"].any()


def test_floor_merges_a_small_package_into_a_neighbour_with_room() -> None:
    # A chain: big(150k) - big(150k) | small(10k) at the end; ceiling 320k, floor 30k.
    comm = squares([(0, 0), (100, 0), (200, 0)], floor_area_m2=[150_000, 150_000, 10_000])
    res = pk.renewal_packages(comm, cfg=make_cfg(max_floor_area_m2=320_000,
                                             min_floor_area_m2=30_000))
    assert {"C003"} not in members(res)
    assert all(f <= 320_000 for f in res.packages["floor_area_m2"])
    assert not res.packages["below_floor"].any()


def test_single_community_above_ceiling_is_its_own_package_and_reported() -> None:
    comm = squares([(0, 0), (100, 0)], floor_area_m2=[900_000, 20_000])
    res = pk.renewal_packages(comm, cfg=make_cfg(max_floor_area_m2=400_000,
                                             min_floor_area_m2=50_000))
    assert members(res) == [{"C001"}, {"C002"}]
    assert [o[0] for o in res.report.oversize] == ["P01"]
    assert res.report.below_floor == ["P02"]
    assert any("above a ceiling" in line for line in res.summary_lines())


def test_households_ceiling_binds_too() -> None:
    comm = squares([(0, 0), (100, 0)], floor_area_m2=70_000)  # 1000 households each
    res = pk.renewal_packages(comm, cfg=make_cfg(max_households=1500))
    assert len(members(res)) == 2


def test_subdistricts_kept_apart_unless_needed_for_a_floor() -> None:
    comm = squares([(0, 0), (100, 0), (200, 0), (300, 0)],
                   floor_area_m2=[60_000, 60_000, 60_000, 60_000],
                   subdistrict=["甲", "甲", "乙", "乙"])
    res = pk.renewal_packages(comm, cfg=make_cfg(min_floor_area_m2=100_000))
    assert members(res) == [{"C001", "C002"}, {"C003", "C004"}]
    assert res.report.cross_subdistrict == []
    small = squares([(0, 0), (100, 0), (200, 0)], floor_area_m2=[60_000, 60_000, 20_000],
                    subdistrict=["甲", "甲", "乙"])
    res2 = pk.renewal_packages(small, cfg=make_cfg(min_floor_area_m2=100_000))
    assert members(res2) == [{"C001", "C002", "C003"}]
    assert res2.report.cross_subdistrict == ["P01"]
    off = pk.renewal_packages(small, cfg=make_cfg(min_floor_area_m2=100_000,
                                              prefer_same_subdistrict=False))
    assert members(off) == [{"C001", "C002", "C003"}]


def test_new_and_outside_communities_are_not_packaged() -> None:
    comm = squares([(0, 0), (100, 0), (200, 0)], is_old=[True, False, True])
    comm["in_study_area"] = [True, True, False]
    res = pk.renewal_packages(comm, cfg=make_cfg())
    assert res.communities["package_id"].notna().tolist() == [True, False, False]
    assert res.report.outside_study_area == ["C003"]


@st.composite
def layouts(draw: Any) -> tuple[gpd.GeoDataFrame, float, float]:
    n = draw(st.integers(2, 30))
    cells = draw(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=n,
                          max_size=n, unique=True))
    fa = draw(st.lists(st.floats(1_000, 300_000), min_size=n, max_size=n))
    sub = draw(st.lists(st.sampled_from(["甲", "乙", None]), min_size=n, max_size=n))
    cap = draw(st.floats(100_000, 600_000))
    floor = draw(st.floats(0, 100_000))
    comm = squares([(120.0 * x, 120.0 * y) for x, y in cells], floor_area_m2=fa, subdistrict=sub)
    return comm, cap, floor


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_partition_invariants(case: tuple[gpd.GeoDataFrame, float, float]) -> None:
    comm, cap, floor = case
    cfg = make_cfg(max_floor_area_m2=cap, min_floor_area_m2=floor)
    res = pk.renewal_packages(comm, cfg=cfg)
    c = res.communities
    # every old community in exactly one package; package rows agree with members
    assert c["package_id"].notna().all()
    counts = c.groupby("package_id").size()
    assert counts.sort_index().tolist() == res.packages.set_index("package_id")[
        "n_communities"].sort_index().tolist()
    # contiguity in the link graph (brute-force links: boundary distance ≤ link distance)
    geoms = list(c.geometry)
    lab = c["package_id"].to_numpy()
    G = nx.Graph()
    G.add_nodes_from(range(len(geoms)))
    G.add_edges_from((i, j) for i in range(len(geoms)) for j in range(i + 1, len(geoms))
                     if geoms[i].distance(geoms[j]) <= cfg.link_distance_m)
    for p in set(lab):
        nodes = np.flatnonzero(lab == p).tolist()
        assert nx.is_connected(G.subgraph(nodes))
    # ceilings hold except for single communities (totals from the unrounded inputs)
    total = comm.set_index("community_id")["floor_area_m2"].groupby(
        c.set_index("community_id")["package_id"]).sum()
    big = total[total > cap + 1e-6]
    n_members = c.groupby("package_id").size()
    assert (n_members[big.index] == 1).all()
    assert sorted(o[0] for o in res.report.oversize) == sorted(big.index)
    # components of the link graph are never merged
    comp = {v: k for k, cc in enumerate(nx.connected_components(G)) for v in cc}
    for p in set(lab):
        assert len({comp[v] for v in np.flatnonzero(lab == p)}) == 1
    # deterministic and independent of row order
    shuffled = comm.sample(frac=1.0, random_state=1)
    again = pk.renewal_packages(shuffled, cfg=cfg)
    assert members(again) == members(res)


def test_assert_partition_catches_a_split_package() -> None:
    G = nx.path_graph(3)
    pk.assert_partition([0, 0, 0], G)
    with pytest.raises(AssertionError):
        pk.assert_partition([0, 1, 0], G)


def test_units_filled_and_outlines_cover_members() -> None:
    comm = squares([(0, 0), (80, 0), (2000, 0)], floor_area_m2=[10_000, 20_000, 30_000])
    units = gpd.GeoDataFrame({"unit_id": ["U1", "U2", "U3"], "subdistrict": ["甲", "甲", "乙"]},
                             geometry=[shapely.box(X0 - 500, Y0 - 500, X0 + 500, Y0 + 500),
                                       shapely.box(X0 + 500, Y0 - 500, X0 + 3000, Y0 + 500),
                                       shapely.box(X0 + 3000, Y0 - 500, X0 + 4000, Y0 + 500)],
                             crs=CRS)
    res = pk.renewal_packages(comm, cfg=make_cfg(), units=units)
    assert res.communities["unit_id"].tolist() == ["U1", "U1", "U2"]
    assert res.communities["subdistrict"].tolist() == ["甲", "甲", "甲"]
    u = res.unit_counts.set_index("unit_id")
    assert u["n_old_communities"].to_dict() == {"U1": 2, "U2": 1, "U3": 0}
    assert u["old_floor_area_m2"].to_dict() == {"U1": 30_000, "U2": 30_000, "U3": 0}
    assert "n_old_communities" not in units.columns or units["n_old_communities"].eq(0).all()
    for _, row in res.packages.iterrows():
        mem = res.communities[res.communities["package_id"] == row["package_id"]]
        assert row.geometry.buffer(1e-6).covers(shapely.union_all(mem.geometry.values))
        assert 0 < row["polsby_popper"] <= 1
        assert 0 < row["fill_ratio"] <= 1 + 1e-9


def test_missing_columns_and_geographic_crs_are_refused() -> None:
    comm = squares([(0, 0)])
    with pytest.raises(DataError, match="floor_area_m2"):
        pk.renewal_packages(comm.drop(columns="floor_area_m2"), cfg=make_cfg())
    from urbanunits.errors import CRSError

    with pytest.raises(CRSError):
        pk.renewal_packages(comm.to_crs("EPSG:4326"), cfg=make_cfg())
    dup = pd.concat([comm, comm])
    with pytest.raises(DataError, match="duplicate"):
        pk.renewal_packages(gpd.GeoDataFrame(dup, crs=CRS), cfg=make_cfg())


# --------------------------------------------------------------------------------------------
# Demo acceptance
# --------------------------------------------------------------------------------------------


def test_demo_inventory_classes(demo_layers: OSMLayers, demo_cfg: Config) -> None:
    c = pk.build_inventory(demo_layers, cfg=demo_cfg.packages)
    assert c["community_id"].is_unique
    assert c["community_id"].tolist() == sorted(c["community_id"])
    assert c["osm_id"].is_monotonic_increasing
    old = dict(zip(c["name"], c["is_old"], strict=True))
    for name in ["东园一村", "东园二村", "东园三村", "东园四村", "崂山三村", "崂山四村", "崂山五村"]:
        assert old[name], name
    for name in ["汤臣一品", "仁恒滨江园"]:
        assert not old[name], name
    assert (c["floor_area_m2"] > 0).all()
    assert c["floor_area_estimated"].all() and c["households_estimated"].all()
    assert np.allclose(c["households"], (c["floor_area_m2"] / 70.0).round(0), atol=1)


def _bank(layers: OSMLayers, geoms: gpd.GeoSeries) -> np.ndarray:
    """Bank of the Huangpu (0/1) from the river polygon alone, independent of the packages code."""
    river = shapely.union_all(layers.water[layers.water["kind"] == "river"].geometry.values)
    land = layers.study_area.geometry.iloc[0].difference(river)
    parts = sorted(shapely.get_parts(land), key=lambda g: -g.area)[:2]
    # compounds are kept whole; judge each by its part inside the study area
    pts = geoms.intersection(layers.study_area.geometry.iloc[0]).representative_point()
    bank = np.full(len(geoms), -1)
    for k, part in enumerate(parts):
        bank[pts.within(part).to_numpy()] = k
    return bank


def test_demo_packages_acceptance(demo_layers: OSMLayers, demo_cfg: Config) -> None:
    comm = pk.build_inventory(demo_layers, cfg=demo_cfg.packages)
    bar = pk.hard_barriers(demo_layers, kinds=demo_cfg.packages.hard_barriers)
    res = pk.renewal_packages(comm, cfg=demo_cfg.packages, barriers=bar)
    old = res.communities[res.communities["is_old"]]
    assert old["package_id"].notna().all()
    assert res.communities.loc[~res.communities["is_old"], "package_id"].isna().all()
    assert len(old) == res.packages["n_communities"].sum()
    p = demo_cfg.packages
    over = res.packages[(res.packages["floor_area_m2"] > p.max_floor_area_m2)
                        | (res.packages["households"] > p.max_households)]
    assert (over["n_communities"] == 1).all()
    assert len(res.report.oversize) == len(over)


def test_demo_no_package_spans_the_huangpu(demo_layers: OSMLayers, demo_cfg: Config) -> None:
    # Make every compound "old" and link across 800 m so that the river is the only thing
    # keeping the two banks apart; the control run without barriers must then span it.
    comm = pk.build_inventory(demo_layers, cfg=demo_cfg.packages).assign(is_old=True)
    cfg = dataclasses.replace(demo_cfg, packages=dataclasses.replace(
        demo_cfg.packages, link_distance_m=800.0))
    bank = pd.Series(_bank(demo_layers, comm.geometry), index=comm["community_id"])
    assert set(bank) == {0, 1}
    bar = pk.hard_barriers(demo_layers, kinds=cfg.packages.hard_barriers)
    res = pk.renewal_packages(comm, cfg=cfg.packages, barriers=bar)
    per_pkg = res.communities.assign(bank=res.communities["community_id"].map(bank)).groupby(
        "package_id")["bank"].nunique()
    assert (per_pkg == 1).all()
    control = pk.renewal_packages(comm, cfg=cfg.packages, barriers=None)
    per_pkg2 = control.communities.assign(
        bank=control.communities["community_id"].map(bank)).groupby("package_id")["bank"].nunique()
    assert (per_pkg2 > 1).any()


def test_demo_map_and_pipeline(demo_layers: OSMLayers, demo_cfg: Config, tmp_path: Any) -> None:
    from urbanunits import maps, pipeline
    from urbanunits.config import Output

    sa = demo_layers.study_area.geometry.iloc[0]
    x0, y0, x1, y1 = sa.bounds
    xs = np.linspace(x0, x1, 4)
    units = gpd.GeoDataFrame(
        {"unit_id": [f"U{i}" for i in range(9)], "subdistrict": [None] * 9,
         "area_m2": 0.0, "n_old_communities": 0, "old_floor_area_m2": 0.0,
         "unit_class": "mixed"},
        geometry=[shapely.box(xs[i], y0 + (y1 - y0) * j / 3, xs[i + 1],
                              y0 + (y1 - y0) * (j + 1) / 3) for j in range(3) for i in range(3)],
        crs=demo_layers.study_area.crs)
    cfg = dataclasses.replace(demo_cfg, output=Output(dir=tmp_path))
    res = pipeline.run_packages(cfg, layers=demo_layers, units=units)
    assert {"communities", "renewal_packages", "update_units"} <= set(
        list_layers(cfg.gpkg_path))
    u = read_layer(cfg.gpkg_path, "update_units")
    c = read_layer(cfg.gpkg_path, "communities")
    assert u["n_old_communities"].sum() == c["is_old"].sum()
    assert u["old_floor_area_m2"].sum() == pytest.approx(c.loc[c["is_old"], "floor_area_m2"].sum())
    assert res.maps and res.maps[0].stat().st_size > 10_000
    result = res.extra["result"]
    _, ax = maps.plot_packages(result.packages, result.communities, layers=demo_layers)
    texts = {t.get_text() for t in ax.texts}
    assert set(result.packages["package_id"]) <= texts
    assert "东园一村" in texts and "汤臣一品" in texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum(t.startswith("P") for t in legend) == len(result.packages)


def test_no_old_communities_gives_no_packages() -> None:
    comm = squares([(0, 0), (100, 0)], is_old=False)
    units = gpd.GeoDataFrame({"unit_id": ["U1"]}, geometry=[shapely.box(X0 - 500, Y0 - 500,
                                                                         X0 + 500, Y0 + 500)],
                             crs=CRS)
    res = pk.renewal_packages(comm, cfg=make_cfg(), units=units, barriers=barrier_frame([vline(50)]))
    assert res.packages.empty and res.links.empty
    assert res.communities["package_id"].isna().all()
    assert res.unit_counts["n_old_communities"].tolist() == [0]
    assert res.summary_lines()[:2] == ["communities: 2 (0 old, 2 new)", "packages: 0"]


def test_many_packages_get_neighbour_distinct_colours_and_a_short_legend(
        demo_layers: OSMLayers) -> None:
    from urbanunits import maps

    comm = squares([(250.0 * i, 0.0) for i in range(40)])  # gaps of 190 m
    res = pk.renewal_packages(comm, cfg=make_cfg(link_distance_m=100.0))
    assert len(res.packages) == 40
    colors = maps._package_colors(res.packages)
    assert all(colors[i] != colors[i + 1] for i in range(39))
    _, ax = maps.plot_packages(res.packages, res.communities, layers=demo_layers)
    assert len(ax.get_legend().get_texts()) <= 3


def test_demo_with_units_stage_reclassifies_units(demo_layers: OSMLayers,
                                                   demo_cfg: Config) -> None:
    from urbanunits import units as units_mod

    units = units_mod.update_units(demo_layers, demo_cfg).units
    comm = pk.build_inventory(demo_layers, cfg=demo_cfg.packages, units=units)
    assert comm["unit_id"].notna().all()
    bar = pk.hard_barriers(demo_layers, kinds=demo_cfg.packages.hard_barriers)
    res = pk.renewal_packages(comm, cfg=demo_cfg.packages, units=units, barriers=bar)
    # the stage counts; the units stage's rules re-derive the classes (as the pipeline does)
    u = units_mod.recount_old_communities(units, res.communities,
                                          rules=units_mod.ClassRules.from_config(demo_cfg.units))
    counts = res.unit_counts.set_index("unit_id")
    assert (counts.loc[u["unit_id"], "n_old_communities"].to_numpy()
            == u["n_old_communities"].to_numpy()).all()
    assert u["n_old_communities"].sum() == comm["is_old"].sum()
    # Oracle, independent of the stage's own unit_id column: each old community belongs to
    # the unit that shares the largest area with it (the units tile the study area).
    old = comm[comm["is_old"]]
    shared = np.array([[g.intersection(ug).area for ug in units.geometry]
                       for g in old.geometry])
    assert (shared.max(axis=1) > 0).all()
    home = units["unit_id"].to_numpy()[shared.argmax(axis=1)]
    want_n = pd.Series(home).value_counts()
    want_floor = pd.Series(old["floor_area_m2"].to_numpy(float)).groupby(home).sum()
    by_id = u.set_index("unit_id")
    for uid in by_id.index:
        assert by_id.at[uid, "n_old_communities"] == want_n.get(uid, 0), uid
        assert by_id.at[uid, "old_floor_area_m2"] == pytest.approx(want_floor.get(uid, 0.0)), uid
    renew = u["unit_class"] == "old_community_renewal"
    assert renew.any()
    assert (u.loc[renew, "n_old_communities"] >= 1).all()
    assert (units["n_old_communities"] == 0).all()  # the input units are not mutated
    # Every old community lies (mostly) in the unit it was given: compounds are kept whole, so
    # judge the part inside the study area, which the units cover.
    area = demo_layers.study_area.geometry.iloc[0]
    for _, c in comm[comm["is_old"]].iterrows():
        unit = units.loc[units["unit_id"] == c["unit_id"]].geometry.iloc[0]
        inside = c.geometry.intersection(area)
        assert unit.intersection(inside).area >= 0.5 * inside.area - 1e-6


def test_map_text_is_all_in_the_cjk_font(demo_layers: OSMLayers) -> None:
    import matplotlib.text

    from urbanunits import maps

    from .test_maps import _cmap_for_family

    comm = squares([(0, 0), (100, 0), (3000, 0)], floor_area_m2=[900_000, 1_000, 1_000],
                   is_old=[True, True, True])
    comm.loc[2, "is_old"] = False
    comm["in_study_area"] = True
    res = pk.renewal_packages(comm, cfg=make_cfg(max_floor_area_m2=400_000, min_floor_area_m2=5e4,
                                             link_distance_m=10.0))
    _, ax = maps.plot_packages(res.packages, res.communities, layers=demo_layers, title="测试")
    text = "".join(t.get_text() for t in ax.findobj(matplotlib.text.Text))
    assert "▲" in text and "▽" in text
    path = maps.cjk_font_path()
    assert path is not None
    cmap = _cmap_for_family(path, maps.cjk_font_family())
    missing = sorted({ch for ch in text if not ch.isspace() and ord(ch) not in cmap})
    assert not missing, missing
