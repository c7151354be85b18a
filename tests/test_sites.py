"""Sites stage: covering models against brute force, the life-circle round trip, E2SFCA by hand."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import shapely

from urbanunits.config import Category, LifeCircleConfig, SitesConfig, SiteSubtype, Subtype
from urbanunits.lifecircle import life_circle
from urbanunits.network import WalkNetwork
from urbanunits.sites import (
    combine_candidates,
    e2sfca,
    max_cover,
    osm_candidates,
    set_cover,
    suggest_sites,
)

from .oracle import Graph
from .stage_inputs import inventory_of

CRS = "EPSG:32651"
X0, Y0 = 350_000.0, 3_450_000.0

CATS = {
    "elderly_care": Category(label="养老 Elderly", subtypes={
        "day_care": Subtype(distance_m=300.0),
        "nursing_home": Subtype(distance_m=600.0)}),
    "childcare": Category(label="托幼", subtypes={
        "kindergarten": Subtype(distance_m=300.0),
        "nursery": Subtype(distance_m=300.0, requirement="optional")}),
}


def _brute_max(A: np.ndarray, w: np.ndarray, p: int) -> float:
    best = 0.0
    for k in range(1, p + 1):
        for combo in itertools.combinations(range(A.shape[1]), k):
            best = max(best, float(w[A[:, list(combo)].any(axis=1)].sum()))
    return best


def _brute_min(A: np.ndarray) -> int:
    need = A.any(axis=1)
    for k in range(A.shape[1] + 1):
        for combo in itertools.combinations(range(A.shape[1]), k):
            if (A[:, list(combo)].any(axis=1) >= need).all():
                return k
    raise AssertionError


@pytest.mark.parametrize("seed", range(25))
def test_covering_models_equal_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(3, 10)), int(rng.integers(2, 8))
    A = rng.random((n, m)) < rng.uniform(0.1, 0.5)
    w = rng.integers(0, 500, n).astype(float)
    for p in (1, 2, 3):
        res = max_cover(sp.csr_array(A), w, p=p)
        assert res.optimal and len(res.sites) <= p
        assert res.objective == pytest.approx(_brute_max(A, w, p))
        # what the sites are said to cover is what they cover, and the ranks add up
        got = A[:, res.sites].any(axis=1)
        assert float(w[got].sum()) == pytest.approx(res.objective)
        said = np.concatenate([*res.covered, np.empty(0)]).astype(int)
        assert sorted(said) == list(np.flatnonzero(got))
        assert (res.gain > 0).all()  # no site that adds no resident
    ls = set_cover(sp.csr_array(A), w)
    assert len(ls.sites) == _brute_min(A)
    assert (A[:, ls.sites].any(axis=1) >= A.any(axis=1)).all()


def test_max_cover_ranks_by_marginal_gain() -> None:
    # site 0 covers a,b; site 1 covers b,c; site 2 covers d (heavy)
    A = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=bool)
    w = np.array([10.0, 10.0, 10.0, 100.0])
    res = max_cover(sp.csr_array(A), w, p=3)
    assert list(res.sites[:1]) == [2] and list(res.gain) == [100.0, 20.0, 10.0]
    assert list(res.covered[0]) == [3]
    # p=2 takes the heavy one and one pair
    assert max_cover(sp.csr_array(A), w, p=2).objective == 120.0
    # nothing to gain: no site
    assert len(max_cover(sp.csr_array(A), np.zeros(4), p=2).sites) == 0


def test_e2sfca_hand_computed() -> None:
    # Facilities F0 (10 places), F1 (30 places); communities C0 (100 persons), C1 (50), C2 (200).
    # Catchment 300 m, weights [1.0, 0.5] for 0-150 m and 150-300 m.
    # Pairs: F0-C0 100 m (w 1), F0-C1 200 m (w .5); F1-C1 150 m (w 1, band edge), F1-C2 300 m
    # (w .5), F1-C0 301 m (outside).
    # R0 = 10 / (100 + .5*50) = 0.08; R1 = 30 / (50 + .5*200) = 0.2
    # A0 = 0.08; A1 = .5*0.08 + 0.2 = 0.24; A2 = .5*0.2 = 0.1
    a = e2sfca([0, 0, 1, 1, 1], [0, 1, 1, 2, 0], [100, 200, 150, 300, 301], [10, 30],
               [100, 50, 200], catchment_m=300.0, weights=[1.0, 0.5])
    assert a == pytest.approx([0.08, 0.24, 0.1])
    # the places handed out equal the supply reached: Σ Aᵢ Dᵢ = Σ Sⱼ (each facility reaches demand)
    assert float(np.dot(a, [100, 50, 200])) == pytest.approx(
        100 * 0.08 + 50 * 0.24 + 200 * 0.1)
    plain = e2sfca([0, 0], [0, 1], [100, 250], [30], [100, 50], catchment_m=300.0, weights=[1.0])
    assert plain == pytest.approx([0.2, 0.2])


# --------------------------------------------------------------------------------------------
# A small random city: network, communities, existing facilities, candidates
# --------------------------------------------------------------------------------------------


def _city(seed: int, *, island: bool = False) -> tuple[WalkNetwork, gpd.GeoDataFrame,
                                                        gpd.GeoDataFrame, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    side, step = 9, 100.0
    xy = [[X0 + step * i, Y0 + step * j] for j in range(side) for i in range(side)]
    edges = []
    for j in range(side):
        for i in range(side):
            a = j * side + i
            if i + 1 < side and rng.random() > 0.15:
                edges.append((a, a + 1, step * rng.uniform(1.0, 1.3)))
            if j + 1 < side and rng.random() > 0.15:
                edges.append((a, a + side, step * rng.uniform(1.0, 1.3)))
    if island:  # a footway loop inside grounds, joined to nothing
        base = len(xy)
        cx, cy = X0 + 420.0, Y0 + 430.0
        xy += [[cx, cy], [cx + 20, cy], [cx + 20, cy + 20], [cx, cy + 20]]
        edges += [(base, base + 1, 20.0), (base + 1, base + 2, 20.0), (base + 2, base + 3, 20.0),
                  (base + 3, base, 20.0)]
    G = Graph(np.array(xy), edges).osmnx_like(CRS)
    net = WalkNetwork.from_graph(G)
    n = 14
    geoms = []
    for k in range(n):
        x, y = X0 + rng.uniform(0, 800), Y0 + rng.uniform(0, 800)
        geoms.append(shapely.box(x, y, x + rng.uniform(20, 90), y + rng.uniform(20, 90))
                     if k % 2 else shapely.Point(x, y + rng.uniform(-30, 30)))
    comm = gpd.GeoDataFrame({"community_id": [f"c{k}" for k in range(n)],
                             "name": [f"小区{k}" for k in range(n)],
                             "population": rng.integers(100, 3000, n).astype(float)},
                            geometry=geoms, crs=CRS)
    fac = gpd.GeoDataFrame({"category": ["childcare", "elderly_care"],
                            "subtype": ["kindergarten", "nursing_home"], "name": ["k", "n"],
                            "source": "test"},
                           geometry=[shapely.Point(X0 + 400, Y0 + 405),
                                     shapely.Point(X0 + 100, Y0 + 95)], crs=CRS)
    k = 9
    cand_pts = [shapely.Point(X0 + rng.uniform(0, 800), Y0 + rng.uniform(0, 800))
                for _ in range(k)]
    if island:
        cand_pts[0] = shapely.Point(X0 + 430.0, Y0 + 440.0)  # inside the loop
    cand = gpd.GeoDataFrame({"candidate_id": [f"S{i + 1}" for i in range(k)],
                             "source": "register.csv", "kind": "idle", "name": None,
                             "floor_area_m2": rng.choice([100.0, 400.0, 5000.0], k),
                             "site_area_m2": np.nan, "floors": np.nan, "ownership": "区属",
                             "osm_id": None}, geometry=cand_pts, crs=CRS)
    return net, comm, fac, cand


def _cfg(max_sites: int, min_nodes: int = 1) -> tuple[LifeCircleConfig, SitesConfig]:
    lc = LifeCircleConfig(categories=CATS, max_snap_m=80.0, entry_buffer_m=15.0,
                          min_component_nodes=min_nodes)
    sc = SitesConfig(max_sites=max_sites, subtypes={
        "day_care": SiteSubtype(min_floor_area_m2=300.0, places_per_facility=30.0,
                                demand_group="age_60_plus", places_per_1000=40.0),
        "nursing_home": SiteSubtype(min_floor_area_m2=300.0),
        "kindergarten": SiteSubtype(min_floor_area_m2=1000.0)})
    return lc, sc


def _with(fac: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, key: str, sub: str
          ) -> gpd.GeoDataFrame:
    add = gpd.GeoDataFrame({"category": key, "subtype": sub, "name": sites["candidate_id"],
                            "source": "suggested"}, geometry=sites.geometry.to_numpy(), crs=CRS)
    return gpd.GeoDataFrame(pd.concat([fac, add], ignore_index=True), crs=CRS)


@pytest.mark.parametrize(("seed", "island"), [(1, False), (2, True), (3, False), (4, True)])
def test_suggestions_reproduce_in_the_life_circle_stage(seed: int, island: bool) -> None:
    net, comm, fac, cand = _city(seed, island=island)
    lc, sc = _cfg(max_sites=2, min_nodes=5 if island else 1)
    before = life_circle(net, comm, fac, lc).communities
    res = suggest_sites(net, before, life_circle(net, comm, fac, lc).facilities, cand, (lc, sc))
    assert {(r.category, r.subtype) for r in res.summary.itertuples()} == {
        (k, s) for k, s in [("elderly_care", "day_care"), ("elderly_care", "nursing_home"),
                            ("childcare", "kindergarten")]
        if not before[f"{k}_{s}_ok"].all()}
    for r in res.summary.itertuples():
        key, sub = r.category, r.subtype
        small = cand["floor_area_m2"] < sc.subtypes[sub].min_floor_area_m2
        assert r.n_too_small == int(small.sum())
        for method in ("mclp", "lscp"):
            sel = res.suggestions[(res.suggestions["subtype"] == sub)
                                  & (res.suggestions["method"] == method)]
            assert not sel["candidate_id"].isin(cand.loc[small, "candidate_id"]).any()
            after = life_circle(net, comm, _with(fac, sel, key, sub), lc).communities
            was, now = before[f"{key}_{sub}_ok"], after[f"{key}_{sub}_ok"]
            assert (now >= was).all()
            gained = set(after.loc[now & ~was, "community_id"])
            said = {c for ids in sel["community_ids"] for c in ids.split(", ") if c}
            assert gained == said
            assert sel["new_residents"].sum() == pytest.approx(
                after.loc[now & ~was, "population"].sum())
            if method == "mclp":
                assert gained == set(res.newly_covered[key, sub])
                assert len(sel) <= sc.max_sites


@pytest.mark.parametrize("seed", [5, 6])
def test_mclp_on_a_network_equals_brute_force_over_life_circle_runs(seed: int) -> None:
    """Oracle: for every subset of ≤ p candidates, the life-circle stage's own gain."""
    net, comm, fac, cand = _city(seed)
    lc, sc = _cfg(max_sites=2)
    cand = cand.assign(floor_area_m2=5000.0)
    before = life_circle(net, comm, fac, lc).communities
    res = suggest_sites(net, before, fac, cand, (lc, sc))
    key, sub = "elderly_care", "day_care"
    covers = []
    for i in range(len(cand)):
        one = life_circle(net, comm, _with(fac, cand.iloc[[i]], key, sub), lc).communities
        covers.append(one[f"{key}_{sub}_ok"].to_numpy())
    C = np.column_stack(covers) & ~before[f"{key}_{sub}_ok"].to_numpy()[:, None]
    best = _brute_max(C, comm["population"].to_numpy(), sc.max_sites)
    got = res.summary.set_index("subtype").loc[sub, "mclp_residents"]
    assert got == pytest.approx(best)
    assert res.summary.set_index("subtype").loc[sub, "lscp_sites"] == _brute_min(C)


def test_accessibility_layer_uses_age_counts_and_shares() -> None:
    net, comm, fac, cand = _city(7)
    lc, sc = _cfg(max_sites=1)
    comm = comm.assign(pop_60_plus=[np.nan if k % 3 else 100.0 for k in range(len(comm))])
    fac = gpd.GeoDataFrame(pd.concat([fac, gpd.GeoDataFrame(
        {"category": ["elderly_care"], "subtype": ["day_care"], "name": ["d"],
         "source": "t", "capacity": [12.0]},
        geometry=[shapely.Point(X0 + 400, Y0 + 400)], crs=CRS)], ignore_index=True), crs=CRS)
    lcr = life_circle(net, comm, fac, lc)
    lay = lcr.communities.assign(pop_60_plus=comm["pop_60_plus"].to_numpy())
    res = suggest_sites(net, lay, lcr.facilities, cand, (lc, sc))
    acc = res.accessibility
    dem = acc["elderly_care_day_care_demand"].to_numpy()
    exp = np.where(np.isnan(comm["pop_60_plus"]), comm["population"] * sc.share_age_60_plus, 100.0)
    assert dem == pytest.approx(exp)
    # one facility of 12 places: the places handed out equal 12 when someone is in reach
    handed = float((acc["elderly_care_day_care_access"] * dem).sum())
    assert handed == pytest.approx(12.0)
    short = acc["elderly_care_day_care_shortfall_places"]
    assert short.to_numpy() == pytest.approx(np.maximum(
        0, dem * 0.04 - acc["elderly_care_day_care_access"].to_numpy() * dem))
    assert "childcare_kindergarten_demand" not in acc.columns  # no capacity configured


def test_osm_candidates_and_register_twins() -> None:
    sites = gpd.GeoDataFrame({
        "osm_id": [1, 2, 3], "kind": ["vacant", "parking", "public"], "name": ["旧厂房", None, "x"],
        "is_building": [True, False, True], "levels": [3.0, np.nan, 2.0]},
        geometry=[shapely.box(X0, Y0, X0 + 20, Y0 + 10), shapely.box(X0 + 100, Y0, X0 + 150,
                                                                     Y0 + 40),
                  shapely.box(X0 + 300, Y0, X0 + 310, Y0 + 10)], crs=CRS)
    got = osm_candidates(sites, kinds=["vacant", "parking"], land_far=1.5)
    assert list(got["floor_area_m2"]) == pytest.approx([600.0, 3000.0])
    assert list(got["source"]) == ["osm", "osm"] and got.geometry.geom_type.eq("Point").all()
    reg = gpd.GeoDataFrame({"source": ["r.csv"], "kind": ["闲置公房"], "name": ["同一栋"],
                            "floor_area_m2": [800.0]},
                           geometry=[shapely.Point(X0 + 5, Y0 + 5)], crs=CRS)
    both = combine_candidates(reg, got, crs=CRS, osm_polygons=sites)
    assert list(both["candidate_id"]) == ["S1", "S2"]
    assert list(both["source"]) == ["r.csv", "osm"]  # the OSM twin of the register row is out


def _plain_mclp(A: np.ndarray, w: np.ndarray, p: int) -> float:
    """The textbook model, straight to milp, without reductions or the LP first."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, m = A.shape
    cons = np.vstack([np.hstack([-A.astype(float), np.eye(n)]),
                      np.r_[np.ones(m), np.zeros(n)][None, :]])
    res = milp(np.r_[np.zeros(m), -w], constraints=LinearConstraint(
        cons, -np.inf, np.r_[np.zeros(n), p]), integrality=np.r_[np.ones(m), np.zeros(n)],
        bounds=Bounds(0, 1))
    return -float(res.fun)


@pytest.mark.parametrize("seed", range(12))
def test_max_cover_on_fractional_instances_equals_the_plain_model(seed: int) -> None:
    """Overlapping discs: the LP relaxation is fractional, so reduced-cost fixing is exercised."""
    rng = np.random.default_rng(100 + seed)
    comm = rng.uniform(0, 1000, (150, 2))
    cand = rng.uniform(0, 1000, (60, 2))
    A = np.hypot(*(comm[:, None, :] - cand[None, :, :]).transpose(2, 0, 1)) <= 180.0
    w = rng.integers(1, 1000, len(comm)).astype(float)
    for p in (3, 7):
        res = max_cover(sp.csr_array(A), w, p=p)
        assert res.optimal and len(res.sites) <= p
        assert res.objective == pytest.approx(_plain_mclp(A, w, p))
        assert float(w[A[:, res.sites].any(axis=1)].sum()) == pytest.approx(res.objective)


def test_register_csv_in_gcj02_with_chinese_headers(tmp_path) -> None:
    from urbanunits.crs import wgs84_to_gcj02
    from urbanunits.sources.candidates import read_candidate_sites

    lon, lat = 121.55, 29.87
    glon, glat = wgs84_to_gcj02(np.array([lon, lon + 0.01]), np.array([lat, lat]))
    f = tmp_path / "闲置公房.csv"
    f.write_text("宁波市闲置公房清单\n名称,经度,纬度,建筑面积(㎡),占地面积,层数,产权\n"
                 f"旧粮站,{glon[0]:.8f},{glat[0]:.8f},1200,,,区国资\n"
                 f"空地,{glon[1]:.8f},{glat[1]:.8f},,800,,街道\n"
                 f"旧厂,{glon[1]:.8f},{glat[1]:.8f},,500,3,\n", encoding="gb18030")
    got = read_candidate_sites(f, crs=CRS, coord_system="gcj02", land_far=1.5)
    assert list(got["floor_area_m2"]) == [1200.0, 1200.0, 1500.0]
    assert list(got["ownership"].fillna("")) == ["区国资", "街道", ""]
    assert set(got["source"]) == {"闲置公房.csv"}
    want = gpd.GeoSeries(gpd.points_from_xy([lon], [lat]), crs="EPSG:4326").to_crs(CRS)
    assert got.geometry.iloc[0].distance(want.iloc[0]) < 1.0  # GCJ-02 offset (~500 m) undone


def test_register_vector_footprints_and_missing_file(tmp_path) -> None:
    from urbanunits.errors import InputFileError
    from urbanunits.sources.candidates import read_candidate_sites

    g = gpd.GeoDataFrame({"name": ["a"], "floors": [2]},
                         geometry=[shapely.box(X0, Y0, X0 + 30, Y0 + 20)], crs=CRS)
    g.to_file(tmp_path / "r.gpkg")
    got = read_candidate_sites(tmp_path / "r.gpkg", crs=CRS)
    assert got["floor_area_m2"].iloc[0] == pytest.approx(1200.0)
    assert got.geometry.iloc[0].within(g.geometry.iloc[0])
    with pytest.raises(InputFileError):
        read_candidate_sites(tmp_path / "none.csv", crs=CRS)


def test_osm_site_kinds(tmp_path, demo_cfg) -> None:
    """Vacant/disused, public and surface-parking polygons; buildings in use and garages not."""
    import dataclasses

    from urbanunits.sources.osm import read_osm

    x0, y0, d = 121.495, 31.230, 0.0005  # inside the demo study area
    areas = {  # closed ways: tags -> expected kind (None: not a candidate)
        201: ({"building": "yes", "disused:amenity": "school"}, "vacant"),
        202: ({"building": "yes", "vacant": "yes", "building:levels": "3"}, "vacant"),
        203: ({"landuse": "brownfield"}, "vacant"),
        204: ({"building": "government", "name": "街道办"}, "public"),
        205: ({"amenity": "parking", "parking": "surface"}, "parking"),
        206: ({"amenity": "parking"}, "parking"),
        207: ({"amenity": "parking", "parking": "multi-storey", "building": "yes"}, None),
        208: ({"amenity": "parking", "parking": "underground"}, None),
        209: ({"building": "yes"}, None),
    }
    from .synth_osm import OSMWriter

    w = OSMWriter()
    w.boxes_in_a_row(x0, y0, d, {wid: tags for wid, (tags, _) in areas.items()})
    path = w.write(tmp_path / "sites.osm")
    cfg = dataclasses.replace(demo_cfg, inputs=dataclasses.replace(demo_cfg.inputs, osm=path))
    sites = read_osm(cfg, use_cache=False, check=False).sites  # a partial extract
    got = dict(zip(sites["osm_id"].astype(int), sites["kind"], strict=True))
    assert got == {w: k for w, (_, k) in areas.items() if k is not None}
    cand = osm_candidates(sites, kinds=["vacant", "public", "parking"], land_far=1.0)
    by_id = dict(zip(cand["osm_id"].astype(int), cand["floor_area_m2"], strict=True))
    area = sites.set_index(sites["osm_id"].astype(int)).geometry.area
    assert by_id[202] == pytest.approx(3 * area[202])
    assert by_id[205] == pytest.approx(area[205])


def test_facility_file_capacity_field(tmp_path) -> None:
    from urbanunits.config import FacilityFile, default_categories
    from urbanunits.sources.facilities import read_facility_file

    f = tmp_path / "elderly.csv"
    f.write_text("name,lon,lat,beds\n幸福日间照料中心,121.55,29.87,25\n夕阳红养老院,121.551,29.871,x\n",
                 encoding="utf-8")
    ff = FacilityFile(path=f, capacity_field="beds")
    got, _ = read_facility_file(ff, "elderly_care", default_categories()["elderly_care"], crs=CRS)
    caps = dict(zip(got["subtype"], got["capacity"], strict=True))
    assert caps["day_care"] == 25.0 and np.isnan(caps["nursing_home"])


def test_demo_elderly_care_gets_sites_with_their_gain(demo_cfg, demo_layers) -> None:
    """No elderly-care facility is mapped in the demo: day-care sites come with their gain."""
    from urbanunits import units
    from urbanunits.sources.facilities import load_facilities

    cfg, layers = demo_cfg, demo_layers
    unit_result = units.update_units(layers, cfg)
    comm = inventory_of(layers, cfg, units=unit_result.units)
    area = layers.study_area.geometry.iloc[0].buffer(cfg.osm.graph_margin_m)
    fac, _ = load_facilities(cfg, layers.facilities, area=area)
    assert not (fac["category"] == "elderly_care").any()
    lcr = life_circle(layers.walk_graph, comm, fac, cfg.lifecircle)
    cand = combine_candidates(osm_candidates(layers.sites, kinds=cfg.sites.osm_kinds,
                                             land_far=cfg.sites.land_far), crs=cfg.study_area.crs)
    res = suggest_sites(layers.walk_graph, lcr.communities, lcr.facilities, cand, cfg)
    row = res.summary.set_index("subtype").loc["day_care"]
    assert row["n_missing"] == len(comm) and row["mclp_sites"] >= 1
    assert row["mclp_residents"] > 0 and row["mclp_communities"] >= 1
    sel = res.suggestions[(res.suggestions["subtype"] == "day_care")
                          & (res.suggestions["method"] == "mclp")]
    assert (sel["floor_area_m2"] >= cfg.sites.subtypes["day_care"].min_floor_area_m2).all()
    after = life_circle(layers.walk_graph, comm, _with(fac, sel, "elderly_care", "day_care"),
                        cfg.lifecircle).communities
    gained = after.loc[after["elderly_care_day_care_ok"], "community_id"]
    assert set(gained) == set(res.newly_covered["elderly_care", "day_care"])
    assert after.loc[after["elderly_care_day_care_ok"], "population"].sum() == pytest.approx(
        row["mclp_residents"])


def test_cli_sites_on_the_demo(tmp_path, demo_layers, monkeypatch) -> None:
    """`urbanunits sites` with a register in BD-09: layers, register rows first, one map."""
    from urbanunits import export, pipeline
    from urbanunits.cli import main as cli_main
    from urbanunits.crs import gcj02_to_bd09, wgs84_to_gcj02

    from .conftest import ROOT

    lon, lat = gcj02_to_bd09(*wgs84_to_gcj02(np.array([121.5055]), np.array([31.2335])))
    reg = tmp_path / "idle.csv"
    reg.write_text(f"名称,经度,纬度,建筑面积\n闲置公房,{lon[0]:.7f},{lat[0]:.7f},5000\n",
                   encoding="utf-8")
    text = (ROOT / "configs" / "lujiazui.toml").read_text(encoding="utf-8")
    text = text.replace('dir = "data/processed"', f'dir = "{tmp_path / "out"}"')
    text = text.replace("[inputs]\n", f'[inputs]\ncandidate_sites = "{reg}"\n'
                        'candidate_sites_coord_system = "bd09"\n', 1)
    text = text.replace('osm = "data/', f'osm = "{ROOT}/data/')
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(pipeline, "load_layers", lambda _cfg: demo_layers)
    assert cli_main(["sites", "--config", str(cfg_path), "-q"]) == 0
    gpkg = tmp_path / "out" / "lujiazui" / "lujiazui.gpkg"  # <output.dir>/<name>/
    assert {"site_suggestions", "accessibility", "site_candidates", "lifecircle"} <= set(
        export.list_layers(gpkg))
    cand = export.read_layer(gpkg, "site_candidates")
    assert cand["source"].iloc[0] == "idle.csv" and (cand["source"] == "osm").any()
    assert (tmp_path / "out" / "lujiazui" / "maps" / "sites_elderly_care.png").is_file()
