"""Lift counts that agree: lift buildings and lifts come from the same buildings, each building is
counted once, and no lift is claimed in a building nobody counted.

An inventory without 楼栋数 gives points, not outlines; the building count then comes from the
OSM buildings of the residential area each point stands in (README, "What a bureau must
supply"), and a community with neither gets no invented lifts.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from urbanunits import programme as pg
from urbanunits.config import ProgrammeConfig
from urbanunits.elevators import elevator_candidates
from urbanunits.sources.inventory import read_inventory

CRS = "EPSG:32651"
X0, Y0 = 355_000.0, 3_455_000.0
TO_LONLAT = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)


def rect(x: float, y: float, w: float, h: float) -> shapely.Polygon:
    return shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)


def lonlat(x: float, y: float) -> str:
    lon, lat = TO_LONLAT.transform(X0 + x, Y0 + y)
    return f"{lon:.7f},{lat:.7f}"


def osm_scene() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Two mapped estates: 甲 (200 m square, three walk-ups and a shop), 乙 (two walk-ups), and
    one walk-up in no estate. No building tags its storeys (the reader assumed 6)."""
    areas = gpd.GeoDataFrame({"name": ["甲", "乙"], "osm_id": [1, 2]},
                             geometry=[rect(0, 0, 200, 200), rect(400, 0, 200, 200)], crs=CRS)
    foot = [rect(20, 20, 20, 40), rect(80, 20, 20, 40), rect(140, 20, 20, 40),  # 甲 walk-ups
            rect(20, 120, 30, 30),                                                # 甲 shop
            rect(440, 60, 20, 40), rect(520, 60, 20, 40),                         # 乙 walk-ups
            rect(1000, 1000, 20, 40)]                                             # nowhere
    kind = ["residential"] * 3 + ["retail"] + ["apartments"] * 2 + ["residential"]
    b = gpd.GeoDataFrame({"building": kind, "levels": 6.0, "levels_tagged": False,
                          "elevator": None, "osm_id": np.arange(101, 101 + len(foot))},
                         geometry=foot, crs=CRS)
    return areas, b


def inventory_without_counts(tmp_path: Path, rows: list[tuple[str, float, float, int]]
                             ) -> gpd.GeoDataFrame:
    """An inventory as a bureau writes it, without 楼栋数: name at (x, y) with households."""
    text = "小区名称,经度,纬度,建成年代,建筑面积(㎡),户数（户）,层数,电梯,居民意愿\n" + "".join(
        f"{name},{lonlat(x, y)},1985年,\"{hh * 70:,}\",{hh},6,无,85%\n"
        for name, x, y, hh in rows)
    path = tmp_path / "inv.csv"
    path.write_bytes(text.encode("gb18030"))
    inv, _ = read_inventory(path, crs=CRS)
    assert inv["n_buildings"].isna().all()  # the premise: no building count listed
    return inv.assign(community_id=[f"C{i}" for i in range(len(inv))], is_old=True,
                      package_id="P01", population=np.nan)


def one_package(comm: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"package_id": ["P01"], "n_communities": [len(comm)],
                             "member_names": ["、".join(comm["name"])],
                             "floor_area_m2": [comm["floor_area_m2"].sum()],
                             "households": [comm["households"].sum()]},
                            geometry=[comm.geometry.union_all().buffer(300)], crs=CRS)


def assert_counts_agree(frame: pd.DataFrame, buildings: str, lifts: str, households: str,
                        per_lift: float) -> None:
    """Lifts need a building to stand in; at least one per building; at most one per
    ``per_lift`` households in each building (rounded up), so ⌈households ÷ per_lift⌉ plus one
    per building in all."""
    nb, nl, hh = (frame[c].to_numpy(dtype=float) for c in (buildings, lifts, households))
    known = ~np.isnan(nl)
    assert np.array_equal(known, ~np.isnan(nb)), "lifts and lift buildings known together"
    nb, nl, hh = nb[known], nl[known], hh[known]
    assert np.all((nl > 0) <= (nb >= 1)), f"lifts without a lift building: {frame}"
    assert np.all(nb <= nl), "fewer lifts than lift buildings"
    assert np.all(nl <= np.ceil(hh / per_lift) + nb), "more lifts than stairwells"


def test_inventory_points_take_the_buildings_of_their_estate(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    areas, b = osm_scene()
    # 丙 stands 500 m from any estate: nothing says how many buildings it has.
    comm = inventory_without_counts(tmp_path, [("甲村", 100, 100, 120), ("乙村", 500, 100, 90),
                                               ("丙村", 1500, 1500, 200)])
    cfg = ProgrammeConfig()
    with caplog.at_level(logging.WARNING, logger="urbanunits.elevators"):
        res = pg.programme(one_package(comm), comm, cfg=cfg, buildings=b, areas=areas)
    c = res.communities.set_index("name")

    # Oracle: residential footprints whose centre lies in each estate.
    homes = b[b["building"].isin(["residential", "apartments"])].geometry.centroid
    expect = {n: int(homes.within(a).sum()) for n, a in zip(["甲村", "乙村"], areas.geometry,
                                                             strict=True)}
    assert expect == {"甲村": 3, "乙村": 2}
    for name, n in expect.items():
        assert c.at[name, "n_buildings"] == n and c.at[name, "n_buildings_source"] == "osm"
        assert c.at[name, "elevator_buildings"] == n  # all 6-storey walk-ups without a lift
    # Equal footprints share the households equally: 40 and 45 a building, 4 lifts each.
    assert c.at["甲村", "n_lifts"] == 3 * math.ceil(40 / cfg.households_per_lift)
    assert c.at["乙村", "n_lifts"] == 2 * math.ceil(45 / cfg.households_per_lift)

    # 丙: lift need known (its households), buildings and lifts not, and nothing is charged.
    assert c.at["丙村", "n_buildings_source"] == "unknown"
    assert np.isnan(c.at["丙村", "elevator_buildings"]) and np.isnan(c.at["丙村", "n_lifts"])
    assert c.at["丙村", "elevator_households"] == 200 and np.isnan(c.at["丙村",
                                                                        "elevator_cost_yuan"])
    warned = [r.getMessage() for r in caplog.records if "丙村" in r.getMessage()]
    assert len(warned) == 1 and "楼栋数" in warned[0] and "甲村" not in warned[0]

    per = cfg.households_per_lift
    assert_counts_agree(res.communities, "elevator_buildings", "n_lifts",
                        "elevator_households", per)
    assert_counts_agree(res.elevators, "n_buildings", "n_lifts", "households", per)
    assert_counts_agree(res.packages, "elevator_buildings", "n_lifts", "elevator_households",
                        per)
    # The package holds 丙: its lift totals are blank, not the 5 buildings and 20 lifts of 甲
    # and 乙 (which would read as all of them); its cost counts the lifts that are known.
    p = res.packages.iloc[0]
    assert np.isnan(p["elevator_buildings"]) and np.isnan(p["n_lifts"])
    assert np.isnan(p["elevator_cost_yuan"])
    assert p["cost_yuan"] == pytest.approx(p["works_cost_yuan"] + 20 * cfg.elevator_cost_yuan)
    y = res.years[res.years["n_packages"] > 0].iloc[0]
    assert np.isnan(y["n_lifts"]) and np.isnan(y["elevator_buildings"])
    row = pg.project_list(res).iloc[0]
    assert pd.isna(row["加装电梯（幢）"]) and pd.isna(row["加装电梯（台）"])
    # Without 丙 the package's totals are 甲's and 乙's.
    known = comm[comm["name"] != "丙村"]
    p2 = pg.programme(one_package(known), known, cfg=cfg, buildings=b,
                      areas=areas).packages.iloc[0]
    assert p2["elevator_buildings"] == 5 and p2["n_lifts"] == 12 + 8
    assert p2["elevator_cost_yuan"] == 20 * cfg.elevator_cost_yuan
    assert any(line.startswith("building count: 0/3") for line in res.summary_lines())


def test_two_listed_parts_of_one_estate_share_its_buildings_once(tmp_path: Path) -> None:
    """Two inventory points in one mapped estate: each building goes to the nearer point."""
    areas = gpd.GeoDataFrame({"name": ["大村"], "osm_id": [1]},
                             geometry=[rect(0, 0, 400, 200)], crs=CRS)
    xs = [20, 80, 140, 260, 330]  # three nearer the west point, two nearer the east one
    b = gpd.GeoDataFrame({"building": "residential", "levels": 6.0, "levels_tagged": False,
                          "osm_id": np.arange(len(xs))},
                         geometry=[rect(x, 80, 20, 40) for x in xs], crs=CRS)
    comm = inventory_without_counts(tmp_path, [("大村一区", 100, 100, 150),
                                               ("大村二区", 300, 100, 100)])
    res = pg.programme(one_package(comm), comm, cfg=ProgrammeConfig(), buildings=b,
                       areas=areas)
    c = res.communities.set_index("name")
    assert c.at["大村一区", "n_buildings"] == 3 and c.at["大村二区", "n_buildings"] == 2
    assert res.elevators["osm_id"].is_unique and len(res.elevators) == len(xs)


def test_a_point_beside_an_estate_yields_to_one_inside_and_a_phase_beats_the_whole(
        tmp_path: Path) -> None:
    """A point 30 m outside estate A does not take A's buildings from the point inside it, even
    where it is nearer; a point inside phase S, mapped within the whole estate W, takes S's
    buildings only."""
    areas = gpd.GeoDataFrame({"name": ["A", "W", "S"], "osm_id": [1, 2, 3]},
                             geometry=[rect(0, 0, 200, 100), rect(1000, 0, 400, 400),
                                       rect(1050, 50, 100, 100)], crs=CRS)
    xs = [10, 60, 110, 170]  # A's walk-ups; the last is nearer the outside point
    b = gpd.GeoDataFrame({"building": "residential", "levels": 6.0, "levels_tagged": False,
                          "osm_id": np.arange(7)},
                         geometry=[*(rect(x, 40, 20, 20) for x in xs),
                                   rect(1080, 80, 20, 20), rect(1300, 300, 20, 20),
                                   rect(1300, 100, 20, 20)], crs=CRS)
    comm = inventory_without_counts(tmp_path, [("内村", 20, 50, 100), ("外村", 230, 50, 50),
                                               ("期村", 1100, 100, 60)])
    res = pg.programme(one_package(comm), comm, cfg=ProgrammeConfig(), buildings=b,
                       areas=areas)
    c = res.communities.set_index("name")
    assert c.at["内村", "n_buildings"] == len(xs)
    # 外村's buildings are not mapped apart from A's: unknown, not none
    assert c.at["外村", "n_buildings_source"] == "unknown" and np.isnan(c.at["外村", "n_lifts"])
    assert c.at["期村", "n_buildings"] == 1  # S's one walk-up, not W's three


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 400),
                          st.one_of(st.none(), st.integers(0, 6)), st.booleans()),
                min_size=1, max_size=4))
def test_lift_counts_agree_for_any_mix(spec: list[tuple[int, int, int | None, bool]]) -> None:
    """Per community: k mapped walk-ups in its estate (or none), households, a listed 楼栋数 or
    none, the point inside its estate or 200 m away from it."""
    areas, homes, rows = [], [], []
    for i, (k, hh, listed, near) in enumerate(spec):
        x = 1000.0 * i
        areas.append(rect(x, 0, 200, 200))
        homes += [rect(x + 10 + 40 * j, 50, 20, 40) for j in range(k)]
        rows.append({"community_id": f"C{i}", "households": float(hh),
                     "floor_area_m2": 70.0 * hh, "levels": 6.0, "has_elevator": False,
                     "n_buildings": np.nan if listed is None else float(listed),
                     "geometry": shapely.Point(X0 + x + 100, Y0 + (100 if near else 400))})
    comm = gpd.GeoDataFrame(rows, crs=CRS)
    b = gpd.GeoDataFrame({"building": ["residential"] * len(homes), "levels": 6.0,
                          "levels_tagged": False}, geometry=gpd.GeoSeries(homes, crs=CRS),
                         crs=CRS)
    out = elevator_candidates(comm, buildings=b, areas=gpd.GeoDataFrame(geometry=areas,
                                                                        crs=CRS))
    assert_counts_agree(out, "n_buildings", "n_lifts", "households", 12.0)
    got = out.groupby("community_id")["n_buildings"].sum(min_count=1)
    for i, (k, _, listed, near) in enumerate(spec):
        cid = f"C{i}"
        if near and k:  # the mapped buildings, whatever the inventory says
            assert got[cid] == k
        elif listed:
            assert got[cid] == listed
        elif listed == 0:  # listed with no building: nothing to retrofit
            assert cid not in got.index
        else:
            assert np.isnan(got[cid])
