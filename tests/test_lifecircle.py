"""life_circle: known answers on tiny networks, summaries, bad input, and the demo end to end."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from urbanunits import export, maps, pipeline
from urbanunits.cli import main as cli_main
from urbanunits.config import Category, Config, LifeCircleConfig, Subtype
from urbanunits.errors import CRSError, DataError
from urbanunits.lifecircle import GAP_REASONS, life_circle
from urbanunits.network import WalkNetwork
from urbanunits.sources.osm import OSMLayers

from . import oracle
from .conftest import DEMO_OSM, ROOT, demo_config
from .oracle import Graph
from .stage_inputs import inventory_of

CRS = "EPSG:32651"
X0, Y0 = 350_000.0, 3_450_000.0  # somewhere in UTM 51N

# A category with an optional and a mandatory subtype, one with one subtype, one empty.
CATS = {
    "clinic": Category(label="医疗 Clinic", subtypes={
        "station": Subtype(distance_m=300.0, requirement="optional"),
        "centre": Subtype(distance_m=1000.0)}),
    "childcare": Category(label="托幼 Childcare", subtypes={
        "kindergarten": Subtype(distance_m=300.0)}),
    "elderly_care": Category(label="养老 Elderly", subtypes={
        "day_care": Subtype(distance_m=300.0)}),
}
LC = LifeCircleConfig(categories=CATS, max_snap_m=50.0, entry_buffer_m=15.0,
                      walk_speed_m_s=1.0, elderly_walk_speed_m_s=0.8)


def street() -> nx.MultiDiGraph:
    """A 1 km street along y=0 (nodes every 100 m), and a separate 200 m path far away."""
    g = Graph(np.array([[X0 + 100.0 * i, Y0] for i in range(11)]
                       + [[X0, Y0 + 5000.0], [X0 + 200.0, Y0 + 5000.0]]),
              [(i, i + 1, 100.0) for i in range(10)] + [(11, 12, 200.0)])
    return g.osmnx_like(CRS)


def pt(dx: float, dy: float) -> shapely.Point:
    return shapely.Point(X0 + dx, Y0 + dy)


def facilities(rows: list[tuple[str, str, float, float]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"category": [r[0] for r in rows], "subtype": [r[1] for r in rows],
                             "name": [f"{r[1]}{i}" for i, r in enumerate(rows)],
                             "source": "test"},
                            geometry=[pt(r[2], r[3]) for r in rows], crs=CRS)


def communities() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({
        "community_id": ["A", "B", "C", "D"],
        "name": ["甲", "乙", "丙", "丁"],
        "population": [100.0, 300.0, 50.0, 10.0],
        "unit_id": ["U1", "U1", "U2", "U2"],
        "package_id": ["P1", "P1", "P1", None]},
        geometry=[pt(0, 10),                                        # 10 m off the street
                  shapely.box(X0 + 880, Y0 - 30, X0 + 1010, Y0 + 80),  # holds nodes 9 and 10
                  pt(100, 5000 + 8),                                # on the far path
                  pt(450, 400)], crs=CRS)                           # 400 m from any path


def test_known_answers() -> None:
    fac = facilities([("clinic", "station", 500, 0), ("clinic", "centre", 900, -5),
                      ("childcare", "kindergarten", 250, 0)])
    res = life_circle(street(), communities(), fac, LC)
    lc = res.communities.set_index("community_id")
    # A: station 10 + 500 = 510 m (> 300, optional), centre 10 + 900 + 5 = 915 m (≤ 1000,
    # the mandatory item): met
    assert lc.at["A", "clinic_station_dist_m"] == pytest.approx(510.0)
    assert not lc.at["A", "clinic_station_ok"]
    assert lc.at["A", "clinic_centre_dist_m"] == pytest.approx(915.0)
    assert lc.at["A", "clinic_dist_m"] == pytest.approx(915.0)  # the binding mandatory item
    assert lc.at["A", "clinic_ratio"] == pytest.approx(0.915)
    assert lc.at["A", "clinic_minutes"] == pytest.approx(915 / 60)
    assert lc.at["A", "clinic_minutes_elderly"] == pytest.approx(915 / 0.8 / 60)
    assert lc.at["A", "clinic_ok"] and lc.at["A", "clinic_missing"] == ""
    assert lc.at["A", "childcare_dist_m"] == pytest.approx(260.0) and lc.at["A", "childcare_ok"]
    # B: enters through nodes 9 (x = 900) and 10; the centre is 5 m off node 9
    assert lc.at["B", "n_entries"] == 2 and lc.at["B", "access_m"] == 0.0
    assert lc.at["B", "clinic_centre_dist_m"] == pytest.approx(5.0)
    assert lc.at["B", "clinic_station_dist_m"] == pytest.approx(400.0)
    assert lc.at["B", "clinic_ok"]
    assert lc.at["B", "childcare_dist_m"] == pytest.approx(650.0)
    assert not lc.at["B", "childcare_ok"] and lc.at["B", "childcare_missing"] == "kindergarten"
    # C: on a separate path; D: too far from any path
    assert np.isnan(lc.at["C", "clinic_dist_m"]) and lc.at["C", "on_network"]
    assert np.isnan(lc.at["D", "clinic_dist_m"]) and not lc.at["D", "on_network"]
    assert lc.at["D", "access_m"] == pytest.approx(400.0)
    # the empty category fails everywhere, without an error
    assert not lc["elderly_care_ok"].any()
    assert list(lc["n_missing"]) == [1, 2, 3, 3]
    assert not lc["all_ok"].any()
    gaps = res.gaps.set_index(["community_id", "category"])
    assert gaps.at[("B", "childcare"), "reason"] == "too_far"
    assert gaps.at[("B", "childcare"), "shortfall_m"] == pytest.approx(350.0)
    assert gaps.at[("C", "clinic"), "reason"] == "disconnected"
    assert gaps.at[("D", "clinic"), "reason"] == "off_network"
    assert gaps.at[("A", "elderly_care"), "reason"] == "no_facility"
    assert ("A", "clinic") not in gaps.index
    assert len(res.gaps) == int((~lc[[f"{c}_ok" for c in CATS]]).to_numpy().sum())
    assert set(res.gaps["reason"]) <= set(GAP_REASONS)


def test_optional_items_never_decide() -> None:
    """A station 100 m away (optional, limit 300) never makes up for a centre at 1010 m."""
    comm = gpd.GeoDataFrame({"community_id": [1], "population": [1.0]}, geometry=[pt(0, 0)],
                            crs=CRS)
    ok = life_circle(street(), comm, facilities([("clinic", "station", 600, 0),
                                                 ("clinic", "centre", 990, 0)]), LC)
    assert ok.communities.at[0, "clinic_ok"]
    assert ok.communities.at[0, "clinic_dist_m"] == pytest.approx(990.0)
    bad = life_circle(street(), comm, facilities([("clinic", "station", 100, 0),
                                                  ("clinic", "centre", 1000, 10)]), LC)
    assert bad.communities.at[0, "clinic_station_ok"]
    assert not bad.communities.at[0, "clinic_ok"]
    gap = bad.gaps[bad.gaps["category"] == "clinic"]
    assert list(gap["subtype"]) == ["centre"]  # optional items are never gaps
    assert gap.iloc[0]["reason"] == "too_far"
    assert gap.iloc[0]["shortfall_m"] == pytest.approx(10.0)


@pytest.mark.parametrize(("near_m", "far_m", "ok"), [
    (250, 700, True), (250, 950, False), (400, 700, False), (400, 950, False)])
def test_every_mandatory_item_is_needed(near_m: float, far_m: float, ok: bool) -> None:
    """Two mandatory items at 300 m and 800 m: the category is met only when both are."""
    cats = {"shop": Category(label="s", subtypes={"corner": Subtype(distance_m=300.0),
                                                  "mall": Subtype(distance_m=800.0)})}
    lc = dataclasses.replace(LC, categories=cats)
    comm = gpd.GeoDataFrame({"community_id": [1], "population": [1.0]}, geometry=[pt(0, 0)],
                            crs=CRS)
    res = life_circle(street(), comm, facilities([("shop", "corner", near_m, 0),
                                                  ("shop", "mall", far_m, 0)]), lc)
    row = res.communities.iloc[0]
    assert bool(row["shop_ok"]) is ok
    assert row["shop_ratio"] == pytest.approx(max(near_m / 300, far_m / 800))
    missing = [s for s, d, lim in (("corner", near_m, 300), ("mall", far_m, 800)) if d > lim]
    assert row["shop_missing"] == ", ".join(missing)
    assert sorted(res.gaps["subtype"]) == sorted(missing)


def test_search_limit_and_facilities_off_network() -> None:
    comm = gpd.GeoDataFrame({"community_id": [1], "population": [1.0]}, geometry=[pt(0, 0)],
                            crs=CRS)
    fac = facilities([("clinic", "centre", 1000, 0), ("childcare", "kindergarten", 300, 300)])
    lc = dataclasses.replace(LC, search_limit_m=1000.0)
    res = life_circle(street(), comm, fac, lc)
    assert res.communities.at[0, "clinic_dist_m"] == pytest.approx(1000.0)
    lc2 = dataclasses.replace(LC, categories={"clinic": Category(
        label="c", subtypes={"centre": Subtype(distance_m=900.0)})}, search_limit_m=950.0)
    res2 = life_circle(street(), comm, fac[fac["category"] == "clinic"], lc2)
    assert np.isnan(res2.communities.at[0, "clinic_dist_m"])
    assert res2.gaps.iloc[0]["reason"] == "beyond_search"
    assert not res.facilities.set_index("category").at["childcare", "on_network"]
    assert res.gaps.set_index("category").at["childcare", "reason"] == "facilities_off_network"
    assert any("1 of 2 facilities" in n for n in res.notes)


def test_population_weighted_summaries_by_unit_and_package() -> None:
    fac = facilities([("clinic", "station", 500, 0), ("clinic", "centre", 900, -5),
                      ("childcare", "kindergarten", 250, 0)])
    res = life_circle(street(), communities(), fac, LC)
    u = res.units.set_index("unit_id")
    # U1: A (100 persons) meets childcare, B (300) does not → 25 %
    assert u.at["U1", "childcare_share"] == pytest.approx(0.25)
    assert u.at["U1", "clinic_share"] == pytest.approx(1.0)
    assert u.at["U1", "population"] == 400 and u.at["U1", "n_communities"] == 2
    assert u.at["U2", "clinic_share"] == 0.0
    p = res.packages.set_index("package_id")
    assert list(p.index) == ["P1"]  # D has no package
    assert p.at["P1", "clinic_share"] == pytest.approx(400 / 450)
    cov = res.coverage[res.coverage["subtype"] == ""].set_index("category")
    assert cov.at["clinic", "n_ok"] == 2 and cov.at["clinic", "pop_share_ok"] == pytest.approx(
        400 / 460)
    assert cov.at["elderly_care", "n_facilities"] == 0
    lines = res.summary_lines()
    assert any(line.startswith("clinic: 2/4 communities meet every ▲ item") for line in lines)
    sub = res.coverage.set_index(["category", "subtype"])
    assert sub.at[("clinic", "station"), "requirement"] == "optional"
    assert sub.at[("clinic", "station"), "n_ok"] == 0  # 510 m and 400 m: beyond 300 m


def test_units_from_polygons_when_communities_lack_ids() -> None:
    comm = communities().drop(columns=["unit_id", "package_id"])
    units = gpd.GeoDataFrame({"unit_id": ["W", "E"]},
                             geometry=[shapely.box(X0 - 100, Y0 - 100, X0 + 500, Y0 + 500),
                                       shapely.box(X0 + 500, Y0 - 100, X0 + 1100, Y0 + 500)],
                             crs=CRS)
    res = life_circle(street(), comm, facilities([("clinic", "station", 500, 0)]), LC,
                      units=units)
    assert list(res.communities["unit_id"].fillna("-")) == ["W", "E", "-", "W"]
    assert res.units.geometry.geom_type.eq("Polygon").all()
    assert res.packages is None


def test_inputs_are_not_modified_and_bad_inputs_are_refused() -> None:
    comm = communities()
    fac = facilities([("clinic", "station", 500, 0)])
    before_c, before_f = comm.copy(), fac.copy()
    life_circle(street(), comm, fac, LC)
    pd.testing.assert_frame_equal(comm, before_c)
    pd.testing.assert_frame_equal(fac, before_f)
    with pytest.raises(DataError, match="population"):
        life_circle(street(), comm.drop(columns="population"), fac, LC)
    with pytest.raises(DataError, match="duplicate"):
        life_circle(street(), comm.assign(community_id="X"), fac, LC)
    with pytest.raises(CRSError, match="degrees"):
        life_circle(street(), comm.to_crs("EPSG:4326"), fac, LC)
    with pytest.raises(CRSError, match="EPSG:32650"):
        life_circle(street(), comm.to_crs("EPSG:32650"), fac, LC)
    with pytest.raises(DataError, match="pharmacy"):
        life_circle(street(), comm, fac.assign(subtype="pharmacy"), LC)


def test_isochrones_cover_the_reachable_street() -> None:
    lc = dataclasses.replace(LC, isochrones=True, isochrone_buffer_m=25.0)
    fac = facilities([("childcare", "kindergarten", 550, 0)])
    res = life_circle(street(), communities(), fac, lc)
    iso = res.isochrones
    assert len(iso) == 1
    poly = iso.geometry.iloc[0]
    # 300 m both ways along the street, 25 m strip: x in [250, 850]
    assert poly.area == pytest.approx(600 * 50 + math.pi * 25**2, rel=0.02)
    assert poly.contains(pt(260, 0)) and poly.contains(pt(840, 0))
    assert not poly.contains(pt(220, 0)) and not poly.contains(pt(880, 0))


# --- the demo ----------------------------------------------------------------------------------


def _oracle_distances(net: WalkNetwork, facilities: gpd.GeoSeries,
                      communities: gpd.GeoSeries, lc: LifeCircleConfig) -> np.ndarray:
    """Each community's distance to the nearest of ``facilities`` by the networkx oracle."""
    keep = net.edge_u != net.edge_v
    g = Graph(np.column_stack([net.x, net.y]),
              list(zip(net.edge_u[keep].tolist(), net.edge_v[keep].tolist(),
                       net.edge_len[keep].tolist(), strict=True)))
    mcn = lc.min_component_nodes
    att = [oracle.attach(g, p, lc.max_snap_m, mcn) for p in facilities]
    D = oracle.distances_from(g, att)
    return np.array([oracle.community_distance(g, D, att, c, entry_buffer_m=lc.entry_buffer_m,
                                               max_snap_m=lc.max_snap_m, min_component_nodes=mcn)
                     for c in communities])


def test_demo_communities_match_networkx(demo_layers: OSMLayers, demo_cfg: Config) -> None:
    """Every demo community's distance to each subtype equals the brute-force oracle."""
    communities = inventory_of(demo_layers, demo_cfg)
    net = WalkNetwork.from_graph(demo_layers.walk_graph)
    rng = np.random.default_rng(11)
    x0, y0, x1, y1 = demo_layers.study_area.total_bounds
    xy = rng.uniform([x0, y0], [x1, y1], (6, 2))
    cats = {"k": Category(label="k", subtypes={"a": Subtype(distance_m=300.0)})}
    fac = gpd.GeoDataFrame({"category": "k", "subtype": "a"}, index=range(6),
                           geometry=shapely.points(xy), crs=CRS)
    lc = LifeCircleConfig(categories=cats, search_limit_m=1e9)
    got = life_circle(net, communities, fac, lc).communities["k_a_dist_m"].to_numpy()
    want = _oracle_distances(net, fac.geometry, communities.geometry, lc)
    assert np.isfinite(want).sum() > 20
    np.testing.assert_array_equal(np.isnan(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], atol=0.01, rtol=0)


def test_demo_childcare_verdicts_match_networkx(demo_layers: OSMLayers, demo_cfg: Config
                                                ) -> None:
    """`childcare_ok` on the demo, with its real kindergartens (one on a footway island), equals
    the verdict drawn from the brute-force oracle's distances, not from the stage's columns."""
    communities = inventory_of(demo_layers, demo_cfg)
    lc = demo_cfg.lifecircle
    res = life_circle(demo_layers.walk_graph, communities, demo_layers.facilities, lc)
    fac = res.facilities[(res.facilities["category"] == "childcare")
                         & (res.facilities["subtype"] == "kindergarten")]
    assert len(fac) >= 3
    net = WalkNetwork.from_graph(demo_layers.walk_graph)
    want = _oracle_distances(net, fac.geometry, communities.geometry, lc)
    limit = lc.categories["childcare"].subtypes["kindergarten"].distance_m
    got = res.communities["childcare_ok"].to_numpy()
    np.testing.assert_array_equal(got, want <= limit)
    assert 0 < got.sum() < len(got)  # some pass, some fail: the check has teeth


def test_demo_end_to_end(tmp_path: Path, demo_layers: OSMLayers) -> None:
    cfg = demo_config(tmp_path)
    pipeline.run_units(cfg, layers=demo_layers, draw=False)
    res = pipeline.run_lifecircle(cfg, layers=demo_layers)
    layers = set(export.list_layers(cfg.gpkg_path))
    assert {"lifecircle", "facilities", "service_gaps", "lifecircle_summary",
            "lifecircle_units", "update_units"} <= layers
    # per-unit summary: population-weighted shares recomputed from the community layer
    lcu = export.read_layer(cfg.gpkg_path, "lifecircle")
    per_unit = export.read_layer(cfg.gpkg_path, "lifecircle_units").set_index("unit_id")
    assert per_unit.geometry.notna().all()
    for uid, grp in lcu.groupby("unit_id"):
        w = grp["population"]
        if w.sum() > 0:
            want = (w * grp["childcare_ok"]).sum() / w.sum()
            assert per_unit.at[uid, "childcare_share"] == pytest.approx(want)
    lc = export.read_layer(cfg.gpkg_path, "lifecircle")
    assert len(lc) == len(demo_layers.residential) and lc["community_id"].is_unique
    n_gap_rows = 0
    for key, cat in cfg.lifecircle.categories.items():
        every = np.ones(len(lc), dtype=bool)
        for s, st in cat.subtypes.items():
            met = (lc[f"{key}_{s}_dist_m"] <= st.distance_m).to_numpy()
            if st.requirement == "mandatory":
                every &= met
                n_gap_rows += int((~met).sum())
        assert (lc[f"{key}_ok"].to_numpy() == every).all(), key
    assert (lc["all_ok"] == (lc["n_missing"] == 0)).all()
    gaps = export.read_layer(cfg.gpkg_path, "service_gaps")
    assert len(gaps) == n_gap_rows
    # Ten shopping malls but no convenience store and no market are mapped: commerce fails
    fac = export.read_layer(cfg.gpkg_path, "facilities")
    com = set(fac.loc[fac["category"] == "commerce", "subtype"])
    if not {"convenience", "market"} <= com:
        assert not lc["commerce_ok"].any()
    # 菊园幼儿园's grounds hold a 27-node footway island: it is joined to its street and serves
    # 兰园小区 across it (1,038 m through the island before)
    jy = fac[fac["name"].fillna("").str.contains("菊园幼儿园")]
    assert len(jy) == 1 and jy["component_nodes"].iloc[0] >= cfg.lifecircle.min_component_nodes
    lan = lc[lc["name"] == "兰园小区"]
    assert len(lan) == 1 and lan["childcare_kindergarten_dist_m"].iloc[0] < 300
    # a hospital alone never makes clinic_ok
    assert not (lc["clinic_ok"] & lc["clinic_health_centre_dist_m"].isna()).any()
    # no elderly-care facility is mapped in Lujiazui: a reported gap, not an error
    eld = gaps[gaps["category"] == "elderly_care"]
    assert len(eld) == 2 * len(lc) and set(eld["reason"]) == {"no_facility"}
    assert "disconnected" in set(gaps["reason"])  # Puxi compounds across the Huangpu
    text = "\n".join(res.summary)
    for key in cfg.lifecircle.categories:
        assert f"{key}: " in text
    assert "elderly_care: no facility in the area" in text
    assert [p.name for p in res.maps] == [f"lifecircle_{k}.png" for k in
                                          cfg.lifecircle.categories]
    assert all(p.stat().st_size > 50_000 for p in res.maps)


def test_map_artists(demo_layers: OSMLayers, demo_cfg: Config) -> None:
    communities = inventory_of(demo_layers, demo_cfg)
    res = life_circle(demo_layers.walk_graph, communities, demo_layers.facilities, demo_cfg)
    fig, ax = maps.plot_lifecircle(res.communities, res.facilities, "childcare",
                                   layers=demo_layers, cfg=demo_cfg)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    fac = res.facilities
    n_kg = int(((fac["category"] == "childcare") & (fac["subtype"] == "kindergarten")).sum())
    assert any("幼儿园" in t and f"m ({n_kg})" in t for t in texts)
    # the legend's classes count every community once, and failing ones match the verdicts
    counts = {t.split(" (")[0]: int(t.rsplit("(", 1)[1].rstrip(")")) for t in texts
              if t.startswith(("达标", "未达标"))}
    n_fail = int((~res.communities["childcare_ok"]).sum())
    assert sum(counts.values()) == len(res.communities)
    assert sum(v for k, v in counts.items() if k.startswith("未达标")) == n_fail
    assert fig is ax.get_figure(root=True)
    # every character on the map exists in the CJK font (no tofu boxes)
    from matplotlib.text import Text

    from .test_maps import _cmap_for_family

    path = maps.cjk_font_path()
    assert path is not None
    cmap = _cmap_for_family(path, maps.cjk_font_family())
    shown = "".join(t.get_text() for t in fig.findobj(Text))
    assert not sorted({c for c in shown if not c.isspace() and ord(c) not in cmap})


def test_bad_facility_file_stops_the_stage_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x,y\n东园卫生站,121.5,31.23\n", encoding="utf-8")
    toml = tmp_path / "cfg.toml"
    text = (ROOT / "configs" / "lujiazui.toml").read_text(encoding="utf-8")
    text = text.replace('dir = "data/processed"', f'dir = "{tmp_path / "out"}"').replace(
        'osm = "data/raw/lujiazui.osm"', f'osm = "{DEMO_OSM}"')
    toml.write_text(text + f'\n[[lifecircle.categories.clinic.files]]\npath = "{bad}"\n',
                    encoding="utf-8")
    code = cli_main(["lifecircle", "--config", str(toml), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "bad.csv: column 'lon'" in err and "lon_field" in err
    assert not (tmp_path / "out" / "lujiazui.gpkg").exists()
    assert not list((tmp_path / "out").glob("maps/*.png"))


def test_one_search_per_subtype_never_per_facility(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many facilities and communities, the stage runs one Dijkstra per subtype."""
    from urbanunits.network import router as network

    calls: list[int] = []
    real = network.dijkstra

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(len(np.atleast_1d(kwargs["indices"])))
        assert kwargs.get("min_only") is True
        return real(*args, **kwargs)

    monkeypatch.setattr(network, "dijkstra", counting)
    rows = [("clinic", "station", x, 0) for x in range(0, 1000, 50)] + [
        ("clinic", "centre", 990, 0), ("childcare", "kindergarten", 300, 0)]
    life_circle(street(), communities(), facilities(rows), LC)
    # clinic.station (20 sources), clinic.centre, childcare.kindergarten; the empty
    # elderly_care.day_care needs no search
    assert sorted(calls) == [1, 1, 20]


def test_no_facilities_at_all_and_missing_geometry() -> None:
    comm = communities()
    comm.loc[comm.index[0], "geometry"] = None
    empty = facilities([]).iloc[0:0]
    res = life_circle(street(), comm, empty, LC)
    lc = res.communities
    assert not lc.loc[0, "on_network"] and np.isnan(lc.loc[0, "clinic_dist_m"])
    assert lc[[f"{c}_dist_m" for c in CATS]].isna().all().all()
    assert set(res.gaps["reason"]) == {"no_facility", "off_network"}
    assert len(res.gaps) == len(comm) * len(CATS)
    assert res.coverage.set_index(["category", "subtype"]).at[("all", ""), "n_ok"] == 0
