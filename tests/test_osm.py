"""Offline OSM ingest on the real Lujiazui extract: counts, formats, cache, walk semantics."""

from __future__ import annotations

import bz2
import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import geopandas as gpd
import osmium
import pytest
import shapely

from urbanunits.config import Config
from urbanunits.sources import osm, osm_cache
from urbanunits.sources.classify import classify_facilities
from urbanunits.sources.osm import OSMLayers, is_walkable, read_osm

from .conftest import DEMO_OSM
from .synth_osm import OSMWriter


def test_demo_counts(demo_layers: OSMLayers) -> None:
    L = demo_layers
    assert L.walk_graph.number_of_nodes() >= 3000
    assert L.walk_graph.graph["crs"] == "EPSG:32651"
    assert L.residential["name"].notna().sum() >= 30
    assert len(L.facilities) >= 10
    assert "黄浦江" in set(L.waterways["name"].dropna())
    assert len(L.water) > 0 and len(L.buildings) > 0 and len(L.landuse) > 0
    # Everything is in the metric CRS and inside (or, for the graph, near) the study area.
    area = L.study_area.geometry.iloc[0]
    for name in ("roads", "water", "landuse", "residential"):
        gdf = getattr(L, name)
        assert gdf.crs == "EPSG:32651", name
        assert gdf.intersects(area.buffer(60)).all(), name
    # compounds are kept whole; buildings and facilities reach the graph margin
    assert (L.residential.area > L.residential.intersection(area).area + 1).any()
    for name in ("buildings", "facilities"):
        assert getattr(L, name).intersects(area.buffer(500 + 1)).all(), name


def test_walk_graph_is_walkable_and_measured(demo_layers: OSMLayers) -> None:
    G = demo_layers.walk_graph
    highways = {d["highway"] for _, _, d in G.edges(data=True)}
    assert not highways & {"cycleway", "motorway", "motorway_link", "construction", "proposed"}
    assert "footway" in highways
    for u, v, d in list(G.edges(data=True))[:500]:
        straight = ((G.nodes[u]["x"] - G.nodes[v]["x"]) ** 2
                    + (G.nodes[u]["y"] - G.nodes[v]["y"]) ** 2) ** 0.5
        # osmnx lengths are great-circle metres; projected straight lines agree within 0.5 %
        assert d["length"] == pytest.approx(straight, rel=5e-3, abs=0.05)


def test_walk_filter_matches_osmnx() -> None:
    """Our predicate excludes exactly the highway values osmnx's walk filter excludes."""
    from osmnx import _overpass

    text = _overpass._get_network_filter("walk")
    m = re.search(r'\["highway"!~"([^"]+)"\]', text)
    assert m is not None
    rx = re.compile(m.group(1))
    for value in ["footway", "steps", "service", "primary", "residential", "cycleway",
                  "motorway", "motorway_link", "construction", "proposed", "path", "corridor",
                  "trunk", "pedestrian", "platform", "bus_guideway"]:
        assert is_walkable({"highway": value}) == (rx.search(value) is None), value
    assert not is_walkable({"highway": "footway", "access": "private"})
    assert not is_walkable({"highway": "primary", "foot": "no"})
    assert not is_walkable({"highway": "primary", "sidewalk": "separate"})
    assert not is_walkable({"building": "yes"})


def _copy_to(src: Path, dest: Path) -> Path:
    with osmium.SimpleWriter(str(dest)) as writer:
        for obj in osmium.FileProcessor(str(src)):
            writer.add(obj)
    return dest


def _signature(L: OSMLayers) -> dict[str, object]:
    sig: dict[str, object] = {"nodes": L.walk_graph.number_of_nodes(),
                              "edges": L.walk_graph.number_of_edges()}
    for name in ("roads", "railways", "waterways", "water", "landuse", "residential",
                 "buildings", "pois", "facilities", "historic"):
        gdf = getattr(L, name)
        sig[name] = (len(gdf), round(float(gdf.geometry.area.sum() + gdf.geometry.length.sum()), 1))
    return sig


@pytest.mark.slow
def test_pbf_and_bz2_give_the_same_layers(tmp_path: Path, demo_cfg: Config,
                                          demo_layers: OSMLayers) -> None:
    pbf = _copy_to(DEMO_OSM, tmp_path / "demo.osm.pbf")
    bz = tmp_path / "demo.osm.bz2"
    bz.write_bytes(bz2.compress(DEMO_OSM.read_bytes()))
    want = _signature(demo_layers)
    for path in (pbf, bz):
        got = _signature(read_osm(demo_cfg, path=path, use_cache=False))
        assert got == want, path.name


def test_second_run_uses_cache(tmp_path: Path, demo_cfg: Config, monkeypatch: pytest.MonkeyPatch
                               ) -> None:
    from urbanunits.config import Output

    cfg = dataclasses.replace(demo_cfg, output=Output(dir=tmp_path))
    first = read_osm(cfg)
    assert list((tmp_path / "cache").glob("osm-*.gpkg"))

    def boom(path: Path, *_: object) -> None:
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(osm, "_parse", boom)
    second = read_osm(cfg)
    assert _signature(second) == _signature(first)
    # A changed file invalidates the cache.
    changed = tmp_path / "changed.osm"
    shutil.copy(DEMO_OSM, changed)
    with changed.open("a") as fh:
        fh.write("\n")
    with pytest.raises(AssertionError, match="parsed again"):
        read_osm(cfg, path=changed)


def test_classified_facilities_are_cached_with_their_rules(
        tmp_path: Path, demo_cfg: Config, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import pandas as pd

    from urbanunits.config import Output

    cfg = dataclasses.replace(demo_cfg, output=Output(dir=tmp_path))
    first = read_osm(cfg)
    (cached,) = (tmp_path / "cache").glob("facilities-*.gpkg")
    lc = cfg.lifecircle

    def classified(layers: OSMLayers, categories: dict[str, Any]) -> pd.DataFrame:
        return pd.DataFrame(classify_facilities(layers.pois, categories,
                                                contradicting_tags=lc.contradicting_tags))

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("classified again despite the cache")

    with monkeypatch.context() as m:
        m.setattr(osm_cache, "classify_facilities", boom)
        second = read_osm(cfg)
    # read back exactly as classifying the points of interest gives them
    pd.testing.assert_frame_equal(pd.DataFrame(second.facilities),
                                  classified(second, dict(lc.categories)), check_exact=True)
    assert second.facilities.crs == first.facilities.crs and len(second.facilities)
    # other rules are not answered from the first rules' file
    fewer = dict(list(lc.categories.items())[1:])
    other = dataclasses.replace(cfg, lifecircle=dataclasses.replace(lc, categories=fewer))
    third = read_osm(other)
    assert set(third.facilities["category"]) <= set(fewer)
    pd.testing.assert_frame_equal(pd.DataFrame(third.facilities), classified(third, fewer))
    assert len(list((tmp_path / "cache").glob("facilities-*.gpkg"))) == 2
    # a damaged file is classified again (with a warning) and rewritten
    cached.write_bytes(b"not a GeoPackage")
    with caplog.at_level(logging.WARNING, logger="urbanunits.sources._cache"):
        fourth = read_osm(cfg)
    assert any("ignoring unusable cache" in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(pd.DataFrame(fourth.facilities),
                                  pd.DataFrame(first.facilities))
    assert cached.read_bytes()[:16] == b"SQLite format 3\x00"


def test_caches_unused_for_a_month_are_removed_and_reading_marks_use(
        tmp_path: Path, demo_cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    from urbanunits.config import Output

    cfg = dataclasses.replace(demo_cfg, output=Output(dir=tmp_path))
    read_osm(cfg)
    cache = tmp_path / "cache"
    ours = sorted(cache.glob("*.gpkg"))
    assert [p.name[:4] for p in ours] == ["faci", "osm-"]
    old = time.time() - (osm_cache.MAX_UNUSED_DAYS + 1) * 86400
    recent = time.time() - (osm_cache.MAX_UNUSED_DAYS - 1) * 86400
    for name, t in (("osm-gone.gpkg", old), ("facilities-gone-r1.gpkg", old),
                    ("osm-recent.gpkg", recent), ("facilities-recent-r1.gpkg", recent),
                    ("units-old.gpkg", old)):
        (cache / name).write_bytes(b"x")
        os.utime(cache / name, (t, t))
    for p in ours:  # last used a month ago, and read now: kept
        os.utime(p, (old, old))

    def boom(path: Path, *_: object) -> None:
        raise AssertionError("parsed again despite the cache")

    with monkeypatch.context() as m:
        m.setattr(osm, "_parse", boom)
        read_osm(cfg)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [p.name for p in ours] + ["osm-recent.gpkg", "facilities-recent-r1.gpkg",
                                  "units-old.gpkg"])
    assert all(p.stat().st_mtime > recent for p in ours)
    # off: nothing is removed
    os.utime(cache / "osm-recent.gpkg", (old, old))
    read_osm(cfg, use_cache=False)
    assert (cache / "osm-recent.gpkg").exists()


def test_classify_facilities_by_tag_and_name(demo_cfg: Config) -> None:
    pts = shapely.points([0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0])
    pois = gpd.GeoDataFrame({
        "osm_id": [1, 2, 3, 4, 5, 6],
        "name": ["东园幼儿园", "陆家嘴社区卫生服务中心", "某某诊所", "好德便利", "三林菜市场", "银行"],
        "amenity": ["kindergarten", None, None, None, None, "bank"],
        "shop": [None, None, None, None, None, None],
    }, geometry=pts, crs="EPSG:32651")
    out = classify_facilities(pois, demo_cfg.lifecircle.categories,
                              contradicting_tags=demo_cfg.lifecircle.contradicting_tags)
    got = {(r.osm_id, r.category, r.subtype, r.matched_by) for r in out.itertuples()}
    assert got == {
        (1, "childcare", "kindergarten", "name:幼儿园"),  # the name decides before the tag
        (2, "clinic", "health_centre", "name:卫生服务中心"),
        (3, "clinic", "health_station", "name:诊所"),
        (4, "commerce", "convenience", "name:好德"),
        (5, "commerce", "market", "name:菜市场"),
    }


def test_study_area_polygon_follows_bbox(demo_cfg: Config) -> None:
    sa = osm.study_area_polygon(demo_cfg)
    assert sa.crs == "EPSG:32651"
    back = sa.to_crs("EPSG:4326").total_bounds
    assert back == pytest.approx(list(demo_cfg.study_area.bbox), abs=1e-6)
    assert 5e6 < sa.geometry.iloc[0].area < 8e6  # ≈ 2.5 km × 2.8 km


def _bbox_around(x0: float, y0: float, x1: float, y1: float) -> tuple[float, ...]:
    ll = gpd.GeoSeries([shapely.box(x0, y0, x1, y1)], crs="EPSG:32651").to_crs("EPSG:4326")
    return tuple(float(v) for v in ll.total_bounds)


def test_facilities_in_the_margin_are_kept(demo_cfg: Config, demo_layers: OSMLayers,
                                           tmp_path: Path) -> None:
    """A facility just outside the study area is still there for communities near the edge."""
    from urbanunits.config import OSMConfig, Output, StudyArea

    fac = demo_layers.facilities
    target = fac[fac["name"] == "上海东方医院"].geometry.iloc[0]
    # study area whose east edge is 200 m west of the hospital
    bbox = _bbox_around(target.x - 1500, target.y - 800, target.x - 200, target.y + 800)
    for margin, expect in ((500.0, True), (100.0, False)):
        cfg = dataclasses.replace(
            demo_cfg, study_area=StudyArea(bbox=bbox, crs="EPSG:32651"),  # type: ignore[arg-type]
            osm=OSMConfig(graph_margin_m=margin), output=Output(dir=tmp_path))
        layers = read_osm(cfg)
        assert ("上海东方医院" in set(layers.facilities["name"])) is expect, margin
        area = layers.study_area.geometry.iloc[0]
        assert layers.facilities.intersects(area.buffer(margin + 1)).all()


def test_cache_follows_the_boundary_file(demo_cfg: Config, tmp_path: Path) -> None:
    from urbanunits.config import Output, StudyArea

    boundary = tmp_path / "area.geojson"

    def write_box(half_m: float) -> None:
        c = (358000.0, 3456500.0)
        gpd.GeoDataFrame(geometry=[shapely.box(c[0] - half_m, c[1] - half_m, c[0] + half_m,
                                               c[1] + half_m)], crs="EPSG:32651").to_crs(
            "EPSG:4490").to_file(boundary)

    cfg = dataclasses.replace(demo_cfg, study_area=StudyArea(boundary=boundary),
                              output=Output(dir=tmp_path / "out"))
    write_box(600)
    big = read_osm(cfg).study_area.geometry.iloc[0].area
    write_box(300)
    small = read_osm(cfg).study_area.geometry.iloc[0].area
    assert big == pytest.approx(1200**2, rel=0.01)
    assert small == pytest.approx(600**2, rel=0.01)


def test_distorting_metric_crs_is_refused(demo_cfg: Config) -> None:
    from urbanunits.config import StudyArea
    from urbanunits.errors import CRSError

    cfg = dataclasses.replace(demo_cfg, study_area=StudyArea(
        bbox=demo_cfg.study_area.bbox, crs="EPSG:3857"))
    with pytest.raises(CRSError, match=r"misstates areas by 3\d %"):
        osm.study_area_polygon(cfg)
    for ok in ("EPSG:32651", "EPSG:4549", "EPSG:4550"):
        osm.study_area_polygon(dataclasses.replace(cfg, study_area=StudyArea(
            bbox=demo_cfg.study_area.bbox, crs=ok)))


def test_historic_layer_flags_designated_areas(tmp_path: Path, demo_cfg: Config) -> None:
    """Historic districts, heritage and heritage protected areas are designated; a statue isn't."""
    x0, y0, d = 121.495, 31.230, 0.001  # inside the demo study area
    areas = {  # closed ways: tags -> expected `designated` (None: not in the layer)
        101: ({"historic": "district", "name": "老街"}, True),
        102: ({"boundary": "protected_area", "protect_class": "22"}, True),
        103: ({"boundary": "protected_area", "protect_class": "2"}, None),  # nature reserve
        104: ({"building": "yes", "heritage": "4"}, True),
        105: ({"historic": "memorial"}, False),
    }
    w = OSMWriter()
    w.node(x0, y0, {"historic": "memorial", "memorial": "statue"}, nid=1)
    w.boxes_in_a_row(x0, y0, d, {wid: tags for wid, (tags, _) in areas.items()})
    path = w.write(tmp_path / "historic.osm")
    cfg = dataclasses.replace(demo_cfg, inputs=dataclasses.replace(demo_cfg.inputs, osm=path))
    hist = read_osm(cfg, use_cache=False, check=False).historic  # a partial extract
    got = dict(zip(hist["osm_id"].astype(int), hist["designated"], strict=True))
    want = {wid: flag for wid, (_, flag) in areas.items() if flag is not None}
    assert got == {1: False, **want}
    assert hist.set_index(hist["osm_id"].astype(int)).at[102, "historic"] == "protected_area"


def test_walk_check_matches_the_tag_predicates() -> None:
    """The parse's memoised walk test agrees with ``is_walkable`` and the sidewalk rule."""
    import itertools

    memo: dict[tuple[str | None, ...], tuple[bool, bool]] = {}
    choices = {"highway": ["footway", "motorway", "service"], "access": [None, "private", "yes"],
               "sidewalk": [None, "no", "both", "", "separate"], "sidewalk:left": [None, "yes"]}
    for combo in itertools.product(*choices.values()):
        tags = {k: v for k, v in zip(choices, combo, strict=True) if v is not None}
        values = tuple(tags.get(k) for k in osm._WALK_KEYS)
        for _ in range(2):  # computed, then read from the memo
            walkable, sidewalk = osm._walk_check(values, memo)
            assert walkable == is_walkable(tags), tags
            assert sidewalk == any(tags.get(k, "no") not in {"no", "none", "separate"}
                                   for k in ("sidewalk", "sidewalk:both", "sidewalk:left",
                                             "sidewalk:right")), tags


def test_clip_equals_cutting_every_feature() -> None:
    """``_clip`` skips most overlays but returns exactly what intersecting each feature gives."""
    area = shapely.Point(0, 0).buffer(100.0)
    geoms = [shapely.LineString([(0, 0), (10, 5)]),  # simple line inside: kept as is
             shapely.LineString([(0, 0), (10, 0), (10, 10), (5, 0), (0, 10)]),  # touches itself
             shapely.LineString([(50, 0), (150, 0)]),  # crosses the edge
             shapely.MultiPolygon([shapely.box(0, 0, 10, 10)]),  # inside, one part
             shapely.box(-5, -5, 5, 5).difference(shapely.box(-1, -1, 1, 1)),  # with a hole
             shapely.box(90, -10, 120, 10),  # crosses
             shapely.box(200, 200, 210, 210)]  # outside: dropped
    gdf = gpd.GeoDataFrame({"osm_id": range(len(geoms))}, geometry=geoms, crs="EPSG:32651")
    out = osm._clip(gdf, area)
    cut = shapely.intersection(gdf.geometry.values, area)
    keep = ~shapely.is_empty(cut)
    assert out["osm_id"].tolist() == gdf["osm_id"][keep].tolist()
    assert shapely.equals_exact(out.geometry.values, cut[keep], tolerance=0).all()
    assert out.geometry.iloc[1].geom_type == "MultiLineString"  # normalised as the overlay does
    assert osm._clip(gdf, area, keep_whole=True).geometry.iloc[1] == geoms[1]
