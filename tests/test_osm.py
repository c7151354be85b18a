"""Offline OSM ingest on the real Lujiazui extract: counts, formats, cache, walk semantics."""

from __future__ import annotations

import bz2
import dataclasses
import re
import shutil
from pathlib import Path

import geopandas as gpd
import osmium
import pytest
import shapely

from urbanunits.config import Config
from urbanunits.sources import osm
from urbanunits.sources.osm import OSMLayers, classify_facilities, is_walkable, read_osm

from .conftest import DEMO_OSM


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
    for name in ("roads", "water", "landuse", "residential", "buildings", "facilities"):
        gdf = getattr(L, name)
        assert gdf.crs == "EPSG:32651", name
        assert gdf.intersects(area.buffer(60)).all(), name


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
    assert list((tmp_path / "cache").glob("osm-*.pkl"))

    def boom(path: Path) -> None:
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


def test_classify_facilities_by_tag_and_name(demo_cfg: Config) -> None:
    pts = shapely.points([0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0])
    pois = gpd.GeoDataFrame({
        "osm_id": [1, 2, 3, 4, 5, 6],
        "name": ["东园幼儿园", "陆家嘴社区卫生服务中心", "某某诊所", "好德便利", "三林菜市场", "银行"],
        "amenity": ["kindergarten", None, None, None, None, "bank"],
        "shop": [None, None, None, None, None, None],
    }, geometry=pts, crs="EPSG:32651")
    out = classify_facilities(pois, demo_cfg.lifecircle.categories)
    got = {(r.osm_id, r.category, r.subtype, r.matched_by) for r in out.itertuples()}
    assert got == {
        (1, "childcare", "kindergarten", "tag"),
        (2, "clinic", "health_centre", "name"),
        (3, "clinic", "health_station", "name"),
        (4, "commerce", "convenience", "name"),
        (5, "commerce", "market", "name"),
    }


def test_study_area_polygon_follows_bbox(demo_cfg: Config) -> None:
    sa = osm.study_area_polygon(demo_cfg)
    assert sa.crs == "EPSG:32651"
    back = sa.to_crs("EPSG:4326").total_bounds
    assert back == pytest.approx(list(demo_cfg.study_area.bbox), abs=1e-6)
    assert 5e6 < sa.geometry.iloc[0].area < 8e6  # ≈ 2.5 km × 2.8 km
