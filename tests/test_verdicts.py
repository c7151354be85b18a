"""GB 50180 verdicts on a small synthetic OSM file that holds the traps a real extract holds.

Look-alikes (pet and dental hospitals, 全家福酒家, an early-education centre, an elderly activity
room, a children's welfare home, Helsinki-style day care for children), one-level items that
must not stand in for another (a mall, a general hospital), and a kindergarten whose grounds
hold a footway loop no street reaches. Everything is written here, in metres around a point in
UTM 51N, so the expected distances follow from the layout alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest

from urbanunits.config import Config, StudyArea, default_categories, default_contradicting_tags
from urbanunits.lifecircle import LifeCircleResult, life_circle
from urbanunits.sources.classify import classify_facilities
from urbanunits.sources.osm import OSMLayers, read_osm

from .conftest import demo_config
from .stage_inputs import inventory_of

CRS = "EPSG:32651"
X0, Y0 = 350_000.0, 3_450_000.0
_TO_LL = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)

# Look-alikes, 30–60 m south of compound A's street: none may count for what it resembles.
# id: (x, y, tags, the (category, subtype) pairs it may count as)
LOOKALIKES: dict[int, tuple[float, float, dict[str, str], set[tuple[str, str]]]] = {
    9001: (150, -40, {"amenity": "veterinary", "name": "爱心宠物医院"}, set()),
    9002: (170, -40, {"amenity": "hospital", "name": "华美口腔医院"}, {("clinic", "hospital")}),
    9003: (190, -40, {"amenity": "clinic", "name": "艺星医疗美容医院"},
           {("clinic", "hospital")}),
    9004: (210, -40, {"amenity": "restaurant", "name": "全家福酒家"}, set()),
    9005: (230, -40, {"amenity": "childcare", "name": "金宝贝早教中心"}, set()),
    9006: (250, -40, {"amenity": "community_centre", "name": "潍坊社区老年活动室"}, set()),
    9007: (270, -40, {"amenity": "social_facility", "social_facility": "group_home",
                      "name": "市儿童福利院"}, set()),
    9008: (150, -60, {"amenity": "social_facility", "social_facility": "day_care",
                      "social_facility:for": "child", "name": "Päiväkoti Pilke"}, set()),
    9009: (170, -60, {"amenity": "social_facility", "social_facility": "outreach",
                      "social_facility:for": "drug_addicted", "name": "HIV-tukikeskus"}, set()),
    9010: (190, -60, {"amenity": "hospital", "name": "上海东方医院"}, {("clinic", "hospital")}),
    9011: (210, -60, {"shop": "mall", "name": "正大购物中心"}, {("commerce", "mall")}),
    9012: (230, -60, {"shop": "yes", "name": "便民超市"}, set()),
    9013: (250, -60, {"office": "insurance", "name": "社会养老保险服务中心"}, set()),
    9014: (270, -60, {"amenity": "dentist", "name": "贝佳齿科诊所"}, set()),
}


def _node(nid: int, x: float, y: float, tags: dict[str, str] | None = None) -> str:
    lon, lat = _TO_LL.transform(X0 + x, Y0 + y)
    inner = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in (tags or {}).items())
    return f'<node id="{nid}" version="1" lat="{lat:.8f}" lon="{lon:.8f}">{inner}</node>'


def _way(wid: int, refs: list[int], tags: dict[str, str]) -> str:
    nds = "".join(f'<nd ref="{r}"/>' for r in refs)
    inner = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    return f'<way id="{wid}" version="1">{nds}{inner}</way>'


def write_trap_osm(path: Path) -> Path:
    """Streets y = 0 and y = 400 (x 0–1200), cross streets x = 0, 600, 1200 (y -600–600),
    nodes every 100 m; compounds A (x 100–300) and B (x 700–900) 10 m north of y = 0; the
    kindergarten 阳光幼儿园 south of B with an unconnected footway loop in its grounds."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    ids: dict[tuple[int, int], int] = {}
    nid = 1

    def at(x: int, y: int) -> int:
        nonlocal nid
        if (x, y) not in ids:
            ids[x, y] = nid
            out.append(_node(nid, x, y))
            nid += 1
        return ids[x, y]

    ways: list[str] = []
    wid = 100
    for y in (0, 400):
        ways.append(_way(wid, [at(x, y) for x in range(0, 1201, 100)],
                         {"highway": "residential", "name": f"街{y}"}))
        wid += 1
    for x in (0, 600, 1200):
        ways.append(_way(wid, [at(x, y) for y in range(-600, 601, 100)],
                         {"highway": "residential"}))
        wid += 1

    def polygon(corners: list[tuple[int, int]], tags: dict[str, str]) -> None:
        nonlocal nid, wid
        refs = []
        for x, y in corners:
            out.append(_node(nid, x, y))
            refs.append(nid)
            nid += 1
        ways.append(_way(wid, [*refs, refs[0]], tags))
        wid += 1

    polygon([(100, 10), (300, 10), (300, 180), (100, 180)],
            {"landuse": "residential", "name": "甲村新村"})
    polygon([(700, 10), (900, 10), (900, 180), (700, 180)],
            {"landuse": "residential", "name": "乙村新村"})
    polygon([(750, -20), (850, -20), (850, -110), (750, -110)],
            {"amenity": "kindergarten", "name": "阳光幼儿园"})
    # the footway loop inside the kindergarten's grounds: no mapped path joins it to a street
    polygon([(780, -45), (820, -45), (820, -85), (780, -85)], {"highway": "footway"})
    for key, (x, y, tags, _) in LOOKALIKES.items():
        out.append(_node(key, x, y, tags))
    out += ways
    out.append("</osm>")
    path.write_text("\n".join(out), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, OSMLayers, LifeCircleResult]:
    tmp = tmp_path_factory.mktemp("traps")
    osm = write_trap_osm(tmp / "traps.osm")
    cfg = demo_config(tmp / "out")
    lon0, lat0 = _TO_LL.transform(X0 + 20, Y0 - 580)
    lon1, lat1 = _TO_LL.transform(X0 + 1180, Y0 + 580)
    cfg = dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs, osm=osm),
                              study_area=StudyArea(bbox=(lon0, lat0, lon1, lat1), crs=CRS))
    layers = read_osm(cfg, use_cache=False)
    comm = inventory_of(layers, cfg)
    res = life_circle(layers.walk_graph, comm, layers.facilities, cfg)
    return cfg, layers, res


def test_no_lookalike_counts_for_what_it_resembles(
        trap: tuple[Config, OSMLayers, LifeCircleResult]) -> None:
    _, layers, _ = trap
    fac = layers.facilities
    for key, (_, _, tags, allowed) in LOOKALIKES.items():
        got = {(r.category, r.subtype) for r in fac[fac["osm_id"] == key].itertuples()}
        assert got <= allowed, (tags["name"], got)
    rules = dict(zip(fac["osm_id"], fac["matched_by"], strict=True))
    assert rules[9011] == "name:购物中心"  # the classifying rule is recorded
    assert rules[9010] == "name:医院"


def test_a_mall_and_a_hospital_alone_meet_nothing(
        trap: tuple[Config, OSMLayers, LifeCircleResult]) -> None:
    _, _, res = trap
    lc = res.communities.set_index("name")
    a = lc.loc["甲村新村"]
    # the mall and the hospital are ~70 m away: their own items are met ...
    assert a["commerce_mall_ok"] and a["commerce_mall_dist_m"] < 150
    assert a["clinic_hospital_ok"] and a["clinic_hospital_dist_m"] < 150
    # ... but neither stands in for a convenience store, a market or a health centre
    assert not a["commerce_ok"] and not a["clinic_ok"]
    assert set(a["commerce_missing"].split(", ")) == {"convenience", "market"}
    assert set(a["clinic_missing"].split(", ")) == {"health_centre", "outpatient"}
    assert np.isnan(a["commerce_convenience_dist_m"]) and np.isnan(a["elderly_care_dist_m"])
    assert not lc["elderly_care_ok"].any() and not lc["all_ok"].any()
    gaps = res.gaps[res.gaps["community_id"] == a["community_id"]]
    assert {("commerce", "convenience"), ("commerce", "market"), ("clinic", "health_centre"),
            ("clinic", "outpatient"), ("elderly_care", "day_care"),
            ("elderly_care", "nursing_home")} <= set(zip(gaps["category"], gaps["subtype"],
                                                         strict=True))
    assert not (gaps["subtype"] == "hospital").any()  # not a standard item, never a gap


def test_kindergarten_grounds_with_a_footway_island_reach_the_street(
        trap: tuple[Config, OSMLayers, LifeCircleResult]) -> None:
    cfg, layers, res = trap
    fac = res.facilities.set_index("name")
    kg = fac.loc["阳光幼儿园"]
    # its point lies in the grounds; the street y = 0 is ~60 m north, the loop ~20 m
    assert kg["component_nodes"] >= cfg.lifecircle.min_component_nodes
    lc = res.communities.set_index("name")
    b = lc.loc["乙村新村"]
    # B enters at the street node (800, 0), 10 m from its edge; the kindergarten is the
    # representative point of its grounds plus the walk to (800, 0)
    x, y = kg.geometry.x - X0, kg.geometry.y - Y0
    assert b["childcare_kindergarten_dist_m"] == pytest.approx(abs(y) + abs(x - 800) + 10,
                                                               abs=1.0)
    assert b["childcare_ok"]
    # without island handling the kindergarten would sit on the loop, unreachable
    off = dataclasses.replace(cfg.lifecircle, min_component_nodes=1)
    comm = inventory_of(layers, cfg)
    res1 = life_circle(layers.walk_graph, comm, layers.facilities, off)
    assert np.isnan(res1.communities.set_index("name").at["乙村新村",
                                                          "childcare_kindergarten_dist_m"])


@pytest.mark.parametrize(("tags", "want"), [
    ({"name": "陆家嘴社区卫生服务中心", "amenity": "hospital"}, ("clinic", "health_centre")),
    ({"name": "东方医院", "amenity": "hospital"}, ("clinic", "hospital")),
    ({"name": "花木社区医院"}, ("clinic", "health_centre")),  # longest match beats 医院
    ({"name": "瑞康门诊部", "amenity": "clinic"}, ("clinic", "outpatient")),
    ({"name": "口腔门诊部", "amenity": "clinic"}, None),
    ({"name": "全家便利店", "shop": "convenience"}, ("commerce", "convenience")),
    ({"name": "全家福酒家"}, None),
    ({"name": "三林菜市场"}, ("commerce", "market")),
    ({"name": "联华超市", "shop": "supermarket"}, ("commerce", "market")),
    ({"name": "好邻居超市"}, None),
    ({"name": "建材市场", "shop": "supermarket"}, None),
    ({"name": "金宝贝早教中心", "amenity": "kindergarten"}, None),
    ({"name": "小太阳托育园"}, ("childcare", "nursery")),
    ({"name": "潍坊社区老年活动室"}, None),
    ({"name": "洋泾街道日间照料中心"}, ("elderly_care", "day_care")),
    ({"name": "浦东新区社会福利院"}, ("elderly_care", "nursing_home")),
    ({"name": "市儿童福利院"}, None),
    ({"social_facility": "nursing_home"}, ("elderly_care", "nursing_home")),
    ({"social_facility": "nursing_home", "social_facility:for": "child"}, None),
    ({"social_facility": "day_care", "social_facility:for": "senior"},
     ("elderly_care", "day_care")),
    ({"social_facility": "day_care", "social_facility:for": "senior;disabled"},
     ("elderly_care", "day_care")),
    ({"social_facility": "day_care"}, None),
    ({"name": "养老保险服务中心", "office": "insurance"}, None),
    ({"name": "老百姓大药房", "amenity": "pharmacy"}, ("commerce", "pharmacy")),
    ({"name": "宠物药店"}, None),
])
def test_classification_rules(tags: dict[str, str], want: tuple[str, str] | None) -> None:
    cols = ["name", "amenity", "shop", "healthcare", "social_facility", "social_facility:for",
            "office"]
    pois = pd.DataFrame([{c: tags.get(c) for c in cols} | {"osm_id": 1}])
    out = classify_facilities(pois, default_categories(),
                              contradicting_tags=default_contradicting_tags())
    got = {(r.category, r.subtype) for r in out.itertuples()}
    assert got == ({want} if want else set()), got
