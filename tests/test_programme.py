"""Programme stage: scores that add up, phasing invariants, brute-force optimum, inventory fields."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from urbanunits import phasing
from urbanunits import programme as pg
from urbanunits.config import ProgrammeConfig, YearCap
from urbanunits.elevators import elevator_candidates
from urbanunits.sources.inventory import read_inventory

from .stage_inputs import inventory_of

CRS = "EPSG:32651"
X0, Y0 = 355_000.0, 3_455_000.0


# --------------------------------------------------------------------------------------------
# Oracle: every assignment of P packages to N years or reserve
# --------------------------------------------------------------------------------------------


def brute_force(score: np.ndarray, usage: np.ndarray, caps: np.ndarray, *, fixed: np.ndarray,
                ready: np.ndarray, discount: float) -> float:
    n_p, n_y = len(score), caps.shape[0]
    best = -1.0
    for years in itertools.product(range(-1, n_y), repeat=n_p):
        y = np.asarray(years)
        if np.any((fixed >= 0) & ready & (y != fixed)) or np.any(~ready & (y >= 0)):
            continue
        ok = all(np.all(usage[y == k].sum(axis=0) <= caps[k] + 1e-9) for k in range(n_y))
        if ok:
            val = sum(score[p] * (1 - discount) ** y[p] for p in range(n_p) if y[p] >= 0)
            best = max(best, val)
    return best


def check_plan(ph: pg.Phasing, usage: np.ndarray, caps: np.ndarray, fixed: np.ndarray,
               ready: np.ndarray) -> None:
    """Invariants every plan must hold."""
    for k in range(caps.shape[0]):
        assert np.all(usage[ph.year == k].sum(axis=0) <= caps[k] + 1e-6), f"year {k} over cap"
    assert np.all(ph.year[~ready] == -1), "a package below readiness was scheduled"
    honoured = (fixed >= 0) & ready
    assert np.array_equal(ph.year[honoured], fixed[honoured]), "fixed year not honoured"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_milp_equals_brute_force(data: st.DataObject) -> None:
    n_p = data.draw(st.integers(1, 6))
    n_y = data.draw(st.integers(1, 3))
    score = np.array(data.draw(st.lists(st.integers(0, 100), min_size=n_p, max_size=n_p)),
                     dtype=float)
    usage = np.array(data.draw(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)),
                                        min_size=n_p, max_size=n_p)), dtype=float)
    caps = np.array(data.draw(st.lists(st.tuples(st.integers(1, 120), st.integers(1, 120)),
                                       min_size=n_y, max_size=n_y)), dtype=float)
    ready = np.array(data.draw(st.lists(st.booleans(), min_size=n_p, max_size=n_p)))
    fixed = np.array(data.draw(st.lists(st.integers(-1, n_y - 1), min_size=n_p,
                                        max_size=n_p)))
    # keep the fixed packages feasible (an infeasible fixing is tested on its own)
    for k in range(n_y):
        while np.any(usage[(fixed == k) & ready].sum(axis=0) > caps[k]):
            fixed[np.flatnonzero((fixed == k) & ready)[0]] = -1
    discount = data.draw(st.sampled_from([0.0, 0.1, 0.5]))
    ph = pg.phase(score, usage, caps, fixed=fixed, ready=ready, year_discount=discount,
                  mip_rel_gap=0.0)
    check_plan(ph, usage, caps, fixed, ready)
    assert ph.objective == pytest.approx(brute_force(score, usage, caps, fixed=fixed,
                                                     ready=ready, discount=discount),
                                         abs=1e-6)
    assert ph.gap == pytest.approx(0.0, abs=1e-6)
    greedy = pg.phase(score, usage, caps, fixed=fixed, ready=ready, year_discount=discount,
                      solver="greedy")
    check_plan(greedy, usage, caps, fixed, ready)
    assert greedy.objective <= ph.objective + 1e-6


def test_greedy_misses_what_the_solver_finds() -> None:
    # One large package of score 10 vs two small ones of 6 each: greedy takes the large one.
    score = np.array([10.0, 6.0, 6.0])
    usage = np.array([[100.0], [50.0], [50.0]])
    caps = np.array([[100.0]])
    exact = pg.phase(score, usage, caps)
    greedy = pg.phase(score, usage, caps, solver="greedy")
    assert exact.year.tolist() == [-1, 0, 0] and exact.objective == 12.0
    assert greedy.year.tolist() == [0, -1, -1] and greedy.objective == 10.0


def test_a_later_year_says_why_when_an_earlier_one_would_fit() -> None:
    ph = pg.phase(np.array([10.0, 6.0, 6.0]), np.array([[100.0], [50.0], [50.0]]),
                  np.array([[100.0], [100.0]]), year_discount=0.1)
    assert ph.year.tolist() == [1, 0, 0]  # 12 + 9 beats 10 + 0.9 × 12 = 20.8
    assert "higher total score" in ph.reason[0] and "higher" not in ph.reason[1]


def test_solver_unavailable_falls_back_to_greedy(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(phasing, "_milp_available", lambda: False)
    ph = pg.phase(np.array([3.0, 2.0]), np.array([[1.0], [1.0]]), np.array([[1.0], [1.0]]))
    assert ph.solver == "greedy" and ph.year.tolist() == [0, 1]
    assert "unavailable" in caplog.text


def test_fixed_years_over_a_cap_are_infeasible() -> None:
    with pytest.raises(pg.ProgrammeInfeasibleError) as info:
        pg.phase(np.array([1.0, 1.0]), np.array([[60.0], [60.0]]), np.array([[100.0]]),
                 fixed=np.array([0, 0]), names=["P01", "P02"], resource_names=["m²"])
    msg = info.value.one_line()
    assert "P01, P02" in msg and "120" in msg and "100" in msg and "programme.years[0]" in msg


def test_package_above_every_cap_goes_to_reserve_with_the_reason() -> None:
    ph = pg.phase(np.array([9.0, 1.0]), np.array([[500.0], [10.0]]),
                  np.array([[100.0], [200.0]]), resource_names=["m²"])
    assert ph.year.tolist() == [-1, 0]
    assert "larger than every year's cap" in ph.reason[0] and "500" in ph.reason[0]


def test_phase_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    score = rng.integers(1, 50, 40).astype(float)  # ties on purpose
    usage = rng.integers(1, 30, (40, 2)).astype(float)
    caps = np.full((3, 2), 150.0)
    first = pg.phase(score, usage, caps)
    for _ in range(3):
        again = pg.phase(score, usage, caps)
        assert np.array_equal(again.year, first.year)


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def test_contributions_add_up_to_the_score() -> None:
    cfg = ProgrammeConfig(weight_age=2.0, weight_consent=0.0)
    vals = pd.DataFrame({"age_years": [40.0, 20.0, 0.0], "floor_area_m2": [1.0, 3.0, 2.0],
                         "households": [10.0, 10.0, np.nan], "consent_share": [1.0, 0.5, 0.9]})
    out = pg.score_table(vals, cfg)
    pts = out[[f"{k}_points" for k in pg.CRITERIA]].sum(axis=1)
    assert np.allclose(pts, out["score"], atol=1e-2)
    total_w = sum(getattr(cfg, w) for _, w, _ in pg.CRITERIA.values())
    # age: 40 is the largest ⇒ norm 1; 20 ⇒ 0.5; points = 100 × 2 × norm / Σw
    assert out["age_norm"].tolist() == [1.0, 0.5, 0.0]
    assert out.loc[1, "age_points"] == pytest.approx(100 * 2 * 0.5 / total_w, abs=1e-3)
    assert (out["consent_points"] == 0).all()  # weight 0 drops it
    assert out["rank"].tolist() == [1, 2, 3]
    assert out.loc[0, "top_criteria"].startswith("age")


# --------------------------------------------------------------------------------------------
# The stage on synthetic packages
# --------------------------------------------------------------------------------------------


def box(x: float, y: float, side: float = 80.0) -> shapely.Polygon:
    return shapely.box(X0 + x, Y0 + y, X0 + x + side, Y0 + y + side)


def synthetic(n_packages: int, per: int = 2, **extra: list[Any]) -> tuple[gpd.GeoDataFrame,
                                                                           gpd.GeoDataFrame]:
    rows, pks = [], []
    for p in range(n_packages):
        geoms = [box(p * 1000 + i * 100, 0) for i in range(per)]
        for i, g in enumerate(geoms):
            rows.append({"community_id": f"C{p}{i}", "name": f"村{p}{i}", "is_old": True,
                         "package_id": f"P{p + 1:02d}", "floor_area_m2": 10_000.0 * (p + 1),
                         "households": 100.0 * (p + 1), "population": 260.0 * (p + 1),
                         "built_year": 1980.0 + p, "geometry": g})
        pks.append({"package_id": f"P{p + 1:02d}", "n_communities": per,
                    "member_names": "、".join(f"村{p}{i}" for i in range(per)),
                    "floor_area_m2": 10_000.0 * (p + 1) * per,
                    "households": 100.0 * (p + 1) * per,
                    "population": 260.0 * (p + 1) * per,
                    "geometry": shapely.union_all(geoms).envelope})
    comm = gpd.GeoDataFrame(rows, crs=CRS)
    for k, v in extra.items():
        comm[k] = v
    return gpd.GeoDataFrame(pks, crs=CRS), comm


def test_zero_packages_skip_with_one_line() -> None:
    pk, comm = synthetic(1)
    res = pg.programme(pk.iloc[:0], comm, cfg=ProgrammeConfig())
    assert res.skipped and res.layers() == {}
    assert len(res.summary_lines()) == 1 and "skipped" in res.summary_lines()[0]
    assert "skipped" in pg.project_list(res).iloc[0, 0]


def test_one_package_goes_to_the_first_year() -> None:
    pk, comm = synthetic(1)
    res = pg.programme(pk, comm, cfg=ProgrammeConfig())
    row = res.packages.iloc[0]
    assert row["status"] == "实施" and row["year"] == 2026 and row["score"] > 0
    assert res.years.loc[0, "n_packages"] == 1 and res.years.iloc[-1]["status"] == "储备"


def test_caps_fixed_years_readiness_and_whole_packages() -> None:
    # P01..P04 of 20k, 40k, 60k, 80k m²; caps 100k m² a year.
    consent = [0.9, 0.9, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9]  # P02 below 2/3
    plan = [np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 2027.0, np.nan]  # P04 fixed 2027
    pk, comm = synthetic(4, consent_share=consent, plan_year=plan)
    cfg = ProgrammeConfig(years=[YearCap(floor_area_cap_m2=100_000.0)] * 3)
    res = pg.programme(pk, comm, cfg=cfg)
    out = res.packages.set_index("package_id")
    assert pd.isna(out.at["P02", "year"]) and out.at["P02", "status"] == "储备"
    assert "not ready" in out.at["P02", "reason"]
    assert out.at["P04", "year"] == 2027 and out.at["P04", "status"] == "生成"
    for _, y in res.years[res.years["year"].notna()].iterrows():
        assert y["floor_area_m2"] <= 100_000.0
    # never split: every community of a package has the package's year
    c = res.communities
    assert (c.groupby("package_id")["status"].nunique() == 1).all()
    # the candidates and the project list carry the same years
    lst = pg.project_list(res)
    assert list(lst.columns[:3]) == ["序号", "项目编号", "项目名称"]
    assert lst.set_index("项目编号").at["P04", "计划年度"] == 2027
    # the score breakdown names the criteria in Chinese, with the same points as top_criteria
    zh = {key: label.split(" ")[0] for key, (_, _, label) in pg.CRITERIA.items()}
    by_id = res.packages.set_index("package_id")["top_criteria"]
    for pid, text in zip(lst["项目编号"], lst["得分构成（前三项）"], strict=True):
        want = by_id[pid]
        for key, name in zh.items():
            want = want.replace(f"{key} ", f"{name} ")
        assert text == want and text.isascii() is (not text)


def test_rerun_is_identical() -> None:
    pk, comm = synthetic(5)
    cfg = ProgrammeConfig(years=[YearCap(floor_area_cap_m2=90_000.0)] * 3)
    a = pg.programme(pk, comm, cfg=cfg).packages.drop(columns="geometry")
    b = pg.programme(pk, comm, cfg=cfg).packages.drop(columns="geometry")
    pd.testing.assert_frame_equal(a, b)


def test_inputs_are_not_mutated() -> None:
    pk, comm = synthetic(2)
    before_pk, before_c = pk.copy(), comm.copy()
    pg.programme(pk, comm, cfg=ProgrammeConfig())
    pd.testing.assert_frame_equal(pk, before_pk)
    pd.testing.assert_frame_equal(comm, before_c)


def test_gaps_criterion_counts_items_times_residents() -> None:
    pk, comm = synthetic(2)
    gaps = pd.DataFrame({"community_id": ["C00", "C00", "C10"],
                         "subtype": ["day_care", "market", "day_care"]})
    res = pg.programme(pk, comm, cfg=ProgrammeConfig(), lifecircle=gaps)
    c = res.communities.set_index("community_id")
    assert c.at["C00", "gap_residents"] == 2 * 260.0 and c.at["C11", "gap_residents"] == 0
    p = res.packages.set_index("package_id")
    assert p.at["P01", "gap_residents"] == 520.0 and p.at["P02", "gap_residents"] == 520.0


# --------------------------------------------------------------------------------------------
# Lift candidates
# --------------------------------------------------------------------------------------------


def test_elevator_candidates_sources_and_range() -> None:
    comm = gpd.GeoDataFrame({
        "community_id": ["A", "B", "C"], "households": [120.0, 60.0, 80.0],
        "floor_area_m2": [8000.0, 4000.0, 5000.0], "package_id": ["P01", "P01", None],
        "levels": [np.nan, 6.0, 5.0], "has_elevator": pd.array([pd.NA, pd.NA, True],
                                                                dtype="boolean"),
        "n_buildings": [np.nan, 3.0, 2.0]},
        geometry=[box(0, 0, 200), shapely.Point(X0 + 500, Y0), box(900, 0, 200)], crs=CRS)
    b = gpd.GeoDataFrame({
        "building": ["residential", "residential", "apartments", "residential", "residential"],
        "levels": [5.0, 8.0, 4.0, 6.0, 6.0], "levels_tagged": [True, True, False, True, True],
        "elevator": [None, None, "yes", None, None], "osm_id": [1, 2, 3, 4, 5]},
        geometry=[box(10, 10, 20), box(50, 50, 20), box(100, 100, 20), box(910, 10, 20),
                  box(950, 50, 20)], crs=CRS)
    out = elevator_candidates(comm, buildings=b)
    # A: building 1 (5 storeys, no tag ⇒ assumed no lift); 2 is 8 storeys; 3 has a lift.
    # B: no mapped buildings ⇒ one community row from the inventory. C: listed with lifts.
    assert out["community_id"].tolist() == ["A", "B"]
    a, bb = out.iloc[0], out.iloc[1]
    assert a["osm_id"] == 1 and a["levels_source"] == "osm" and a["elevator_source"] == "assumed"
    # A's 120 households shared by floor area (footprint × storeys) of its three buildings
    share = 400 * 5 / (400 * 5 + 400 * 8 + 400 * 4)
    assert a["households"] == pytest.approx(120 * share)
    assert bb["level"] == "community" and bb["n_buildings"] == 3 and bb["n_lifts"] == 5


def test_osm_estimates_are_flagged_as_such() -> None:
    """Untagged OSM storeys are the reader's assumption, never the inventory's figure."""
    pk, comm = synthetic(1, per=1)
    b = gpd.GeoDataFrame({"building": ["residential", "apartments"], "levels": [6.0, 5.0],
                          "levels_tagged": [False, True], "elevator": [None, "no"],
                          "osm_id": [11, 12]},
                         geometry=[box(5, 5, 20), box(40, 40, 20)], crs=CRS)
    res = pg.programme(pk, comm, cfg=ProgrammeConfig(), buildings=b)
    lifts = res.elevators.set_index("osm_id")
    assert lifts.at[11, "levels_source"] == "assumed"
    assert lifts.at[11, "elevator_source"] == "assumed"
    assert lifts.at[12, "levels_source"] == "osm" and lifts.at[12, "elevator_source"] == "osm"
    c = res.communities.iloc[0]
    assert c["levels_source"] == "osm" and c["n_buildings_source"] == "osm"
    assert c["n_buildings"] == 2 and c["levels"] == 5.0  # median of the tagged ones
    assert res.packages.iloc[0]["year"] == 2026 and (lifts["year"] == 2026).all()


# --------------------------------------------------------------------------------------------
# Inventory fields
# --------------------------------------------------------------------------------------------

CN = ("小区名称,经度,纬度,区,街道,社区,建成年代,建筑面积(万㎡),户数,楼栋数,层数,电梯,物业,"
      "居民意愿,计划年度,改造类型\n"
      "东园一村,121.50,31.23,浦东新区,陆家嘴街道,东园社区,1985年,3.2,520,12,6层,无,准物业,85%,"
      "2026,基础类+完善类\n"
      "崂山五村,121.505,31.235,浦东新区,陆家嘴街道,崂山社区,80年代,2.1,300,8,5,2台,有,0.9,,提升\n"
      "乳山村,121.503,31.233,浦东新区,,,1990,,,,,,,,,\n")
EN = ("name,lon,lat,district,subdistrict,neighbourhood,built_year,floor_area_m2,households,"
      "n_buildings,storeys,lifts,property_management,consent,plan_year,renovation\n"
      "东园一村,121.50,31.23,浦东新区,陆家嘴街道,东园社区,1985,32000,520,12,6,no,准物业,85,2026,"
      "improvement\n"
      "崂山五村,121.505,31.235,浦东新区,陆家嘴街道,崂山社区,1989,21000,300,8,5,2,yes,0.9,,"
      "enhancement\n"
      "乳山村,121.503,31.233,浦东新区,,,1990,,,,,,,,,\n")


@pytest.mark.parametrize(("text", "encoding"), [(CN, "utf-8"), (CN, "gb18030"),
                                                 (EN, "utf-8")])
def test_inventory_keeps_the_project_list_fields(tmp_path: Path, text: str,
                                                 encoding: str) -> None:
    path = tmp_path / "inv.csv"
    path.write_bytes(text.encode(encoding))
    inv, _ = read_inventory(path, crs=CRS)
    a, b, c = (inv.iloc[i] for i in range(3))
    assert (a["district"], a["street"], a["neighbourhood"]) == ("浦东新区", "陆家嘴街道",
                                                               "东园社区")
    assert a["n_buildings"] == 12 and a["levels"] == 6 and a["floor_area_m2"] == 32_000
    assert not a["has_elevator"] and a["n_elevators"] == 0 and not a["property_managed"]
    assert a["consent_share"] == pytest.approx(0.85) and a["plan_year"] == 2026
    assert a["renovation_type"] == "improvement"
    assert b["has_elevator"] and b["n_elevators"] == 2 and b["property_managed"]
    assert b["consent_share"] == pytest.approx(0.9) and pd.isna(b["plan_year"])
    assert b["renovation_type"] == "enhancement"
    assert pd.isna(c["has_elevator"]) and pd.isna(c["property_managed"])
    assert pd.isna(c["consent_share"]) and pd.isna(c["renovation_type"])


def test_build_inventory_carries_the_fields(tmp_path: Path, demo_layers: Any) -> None:
    """The packages stage keeps the project-list fields for the programme stage."""

    from .conftest import demo_config

    path = tmp_path / "inv.csv"
    path.write_bytes(CN.encode("gb18030"))
    cfg = demo_config(tmp_path)
    cfg = dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs, inventory=path))
    comm = inventory_of(demo_layers, cfg)
    row = comm.set_index("name").loc["东园一村"]
    assert row["street"] == "陆家嘴街道" and row["plan_year"] == 2026
    assert row["consent_share"] == pytest.approx(0.85) and not row["has_elevator"]
    assert row["renovation_type"] == "improvement" and row["levels"] == 6


def test_neighbours_of_the_project_fields_are_other_columns(tmp_path: Path) -> None:
    """物业费 (fee), 改造内容 (works) and district_code are columns of their own, not typos."""
    path = tmp_path / "inv.csv"
    path.write_text("name,lon,lat,物业费,改造内容,district_code\nA,121.5,31.23,0.5元,屋面,330203\n",
                    encoding="utf-8")
    inv, _ = read_inventory(path, crs=CRS)
    assert pd.isna(inv.loc[0, "property_managed"]) and inv.loc[0, "renovation_type"] is None


def test_inventory_refuses_an_unknown_property_word(tmp_path: Path) -> None:
    from urbanunits.errors import DataError

    path = tmp_path / "inv.csv"
    path.write_text("name,lon,lat,物业\nA,121.5,31.23,也许\n", encoding="utf-8")
    with pytest.raises(DataError, match="物业"):
        read_inventory(path, crs=CRS)


def test_inventory_fields_reach_the_programme(tmp_path: Path) -> None:
    path = tmp_path / "inv.csv"
    path.write_text(CN, encoding="utf-8")
    inv, _ = read_inventory(path, crs=CRS)
    comm = inv.assign(community_id=[f"C{i}" for i in range(3)], is_old=True,
                      package_id=["P01", "P01", "P02"], population=np.nan)
    comm["floor_area_m2"] = comm["floor_area_m2"].fillna(10_000.0)
    comm["households"] = comm["households"].fillna(100.0)
    pk = gpd.GeoDataFrame({"package_id": ["P01", "P02"]},
                          geometry=[comm.geometry.iloc[:2].union_all().buffer(50),
                                    comm.geometry.iloc[2].buffer(50)], crs=CRS)
    pk["floor_area_m2"] = [53_000.0, 10_000.0]
    pk["households"] = [820.0, 100.0]
    res = pg.programme(pk, comm, cfg=dataclasses.replace(ProgrammeConfig(),
                                                         start_year=2026))
    p = res.packages.set_index("package_id")
    assert p.at["P01", "year"] == 2026  # 东园一村's 计划年度
    assert p.at["P01", "renovation_type"] == "enhancement"
    # consent weighted by households: (0.85 × 520 + 0.9 × 300) / 820
    assert p.at["P01", "consent_share"] == pytest.approx((0.85 * 520 + 0.9 * 300) / 820)
    c = res.communities.set_index("community_id")
    assert c.at["C0", "elevator_source"] == "inventory"
    assert c.at["C2", "consent_source"] == "unknown"
    # cost: 32,000 m² improvement + 21,000 m² enhancement + the lifts of 东园一村 (6 storeys)
    cfg = ProgrammeConfig()
    works = 32_000 * cfg.cost_improvement_yuan_m2 + 21_000 * cfg.cost_enhancement_yuan_m2
    assert p.at["P01", "works_cost_yuan"] == pytest.approx(works)
    lifts = res.elevators
    assert lifts["community_id"].tolist() == ["C0"] and lifts["n_lifts"].iloc[0] == 44


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def test_figures_colour_by_year_and_draw_the_caps() -> None:
    from matplotlib.colors import to_hex

    from urbanunits.programme_maps import STATUS_COLORS, plot_programme, plot_programme_years

    pk, comm = synthetic(3)
    cfg = ProgrammeConfig(years=[YearCap(floor_area_cap_m2=60_000.0)] * 2)
    res = pg.programme(pk, comm, cfg=cfg)
    _, ax = plot_programme(res.packages, res.communities, title="t")
    fills = {to_hex(c) for coll in ax.collections for c in coll.get_facecolors()
             if c[3] > 0}
    assert {STATUS_COLORS[s] for s in res.packages["status"]} <= fills
    _, axes = plot_programme_years(res.years)
    bars = list(axes[0].patches)
    assert len(bars) == len(res.years)  # 2 years + reserve
    assert to_hex(bars[0].get_facecolor()) == STATUS_COLORS["实施"]
    caps = list(axes[0].collections)  # one dashed cap line per capped year
    assert len(caps) == 2
    assert caps[0].get_segments()[0][0][1] == pytest.approx(6.0)  # 60,000 m² = 6 万m²


@pytest.mark.parametrize(("body", "key"), [
    ("[programme]\nyears = []\n", "programme.years"),
    ("[programme]\nelevator_min_levels = 7\nelevator_max_levels = 6\n",
     "programme.elevator_min_levels"),
    ('[programme]\ndefault_renovation_type = "deluxe"\n', "programme.default_renovation_type"),
    ('[programme]\nsolver = "cplex"\n', "programme.solver"),
    ("[[programme.years]]\nfloor_area_cap_m2 = -5.0\n", "programme.years[0].floor_area_cap_m2"),
    ("[programme]\nmin_consent_share = 1.5\n", "programme.min_consent_share"),
])
def test_programme_config_refuses_nonsense(tmp_path: Path, body: str, key: str) -> None:
    from urbanunits.config import load_config
    from urbanunits.errors import ConfigError

    p = tmp_path / "t.toml"
    p.write_text('name = "t"\n[study_area]\nbbox = [121.4865, 31.2225, 121.5125, 31.2475]\n'
                 + body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert key in info.value.one_line()
