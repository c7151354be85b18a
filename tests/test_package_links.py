"""Links and package outlines against brute force on random layouts.

:func:`urbanunits.package_clusters.link_pairs` finds the candidate pairs with one bulk
bounding-box query, tests ``dwithin`` once per pair, and tests barrier crossings only for pairs
whose box meets one of the short boxes cut along each barrier piece. The oracles here measure every
pair with ``shapely.distance`` and test every segment against every whole barrier. The outline
helpers of :mod:`urbanunits.packages` union groups of one size in one call and skip the union of a
single polygon; the oracle is one ``union_all`` per group.
"""

from __future__ import annotations

import gc
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely

from urbanunits import packages as pk
from urbanunits.config import PackagesConfig
from urbanunits.package_clusters import link_graph, link_pairs

CRS = "EPSG:32651"
X0, Y0 = 355_000.0, 3_455_000.0


def _layout(seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None, float]:
    """Squares, discs, bare points and two-part communities; long straight rivers, river strips,
    spurs ending inside the area and a moat."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 120))
    origin = np.array([X0, Y0])
    width = float(rng.uniform(800, 4000))
    xy = rng.uniform(0, width, size=(n, 2)) + origin
    kind = rng.integers(0, 4, n)
    geoms: list[Any] = []
    for (x, y), k in zip(xy, kind, strict=True):
        s = float(rng.uniform(10, 150))
        if k == 0:
            geoms.append(shapely.box(x - s / 2, y - s / 2, x + s / 2, y + s / 2))
        elif k == 1:
            geoms.append(shapely.Point(x, y).buffer(s / 2, quad_segs=int(rng.integers(1, 5))))
        elif k == 2:
            geoms.append(shapely.Point(x, y))
        else:
            geoms.append(shapely.MultiPolygon([shapely.box(x, y, x + s, y + s / 3),
                                               shapely.box(x, y + s, x + s / 3, y + 2 * s)]))
    comm = gpd.GeoDataFrame({"community_id": [f"C{i:03d}" for i in range(n)]},
                            geometry=geoms, crs=CRS)
    bars: list[Any] = []
    for _ in range(int(rng.integers(0, 6))):
        t = int(rng.integers(0, 4))
        a, c = rng.uniform(0, width, 2)
        if t == 0:  # one straight piece across the whole area
            bars.append(shapely.LineString([(X0 + a, Y0 - 200), (X0 + c, Y0 + width + 200)]))
        elif t == 1:  # a spur that ends inside
            bars.append(shapely.LineString(rng.uniform(0, width, (int(rng.integers(2, 6)), 2))
                                           + origin))
        elif t == 2:  # a river strip (polygon)
            bars.append(shapely.LineString([(X0 - 200, Y0 + a), (X0 + width + 200, Y0 + c)])
                        .buffer(float(rng.uniform(3, 40))))
        else:  # a moat
            bars.append(shapely.Point(X0 + a, Y0 + c).buffer(float(rng.uniform(100, 600)))
                        .exterior.buffer(5.0))
    barriers = (gpd.GeoDataFrame({"kind": "river", "name": [None] * len(bars)}, geometry=bars,
                                 crs=CRS) if bars else None)
    return comm, barriers, float(rng.uniform(20, 400))


def _brute_pairs(comm: gpd.GeoDataFrame, barriers: gpd.GeoDataFrame | None,
                 d: float) -> tuple[list[tuple[int, int]], int]:
    g = list(comm.geometry)
    bar = list(barriers.geometry) if barriers is not None else []
    sides = (pk.barrier_sides(comm.geometry, barriers, margin_m=d)[0] if bar
             else np.zeros(len(g), dtype=np.int64))
    want: list[tuple[int, int]] = []
    blocked = 0
    for i in range(len(g)):
        for j in range(i + 1, len(g)):
            if g[i].distance(g[j]) > d:
                continue
            seg = shapely.shortest_line(g[i], g[j])
            if bar and (sides[i] != sides[j] or any(seg.crosses(b) for b in bar)):
                blocked += 1
                continue
            want.append((i, j))
    return want, blocked


@pytest.mark.parametrize("seed", range(25))
def test_link_pairs_match_every_pair_measured(seed: int) -> None:
    comm, barriers, d = _layout(seed)
    want, blocked = _brute_pairs(comm, barriers, d)
    pairs, n_blocked = link_pairs(comm, link_distance_m=d, barriers=barriers)
    assert pairs.tolist() == [list(p) for p in want]  # sorted by i, then j
    assert n_blocked == blocked
    G = link_graph(comm, link_distance_m=d, barriers=barriers)
    assert sorted(G.edges()) == want
    assert G.graph["n_blocked"] == blocked


def test_link_pairs_cases_exercised() -> None:
    """The random layouts above do link, block and leave pairs apart."""
    n_links = n_blocked = 0
    for seed in range(25):
        comm, barriers, d = _layout(seed)
        pairs, blocked = link_pairs(comm, link_distance_m=d, barriers=barriers)
        n_links += len(pairs)
        n_blocked += blocked
    assert n_links > 500
    assert n_blocked > 50


def test_link_distance_is_inclusive() -> None:
    # squares 60 m wide on whole metres: gaps of exactly 150 m link, 150.5 m do not
    xs = [0.0, 210.0, 420.5]
    comm = gpd.GeoDataFrame({"community_id": ["A", "B", "C"]}, geometry=[
        shapely.box(X0 + x, Y0, X0 + x + 60, Y0 + 60) for x in xs], crs=CRS)
    pairs, _ = link_pairs(comm, link_distance_m=150.0)
    assert pairs.tolist() == [[0, 1]]


def test_link_pairs_skip_empty_geometries() -> None:
    comm = gpd.GeoDataFrame({"community_id": ["A", "B", "C"]}, geometry=[
        shapely.box(X0, Y0, X0 + 10, Y0 + 10), shapely.Polygon(),
        shapely.box(X0 + 20, Y0, X0 + 30, Y0 + 10)], crs=CRS)
    pairs, _ = link_pairs(comm, link_distance_m=50.0)
    assert pairs.tolist() == [[0, 2]]


def _wkb(geoms: Any) -> list[bytes]:
    return list(shapely.to_wkb(np.asarray(geoms, dtype=object)))


def test_union_groups_equal_one_union_per_group() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1000, size=(300, 2))
    geoms = np.array(list(shapely.buffer(shapely.points(xy), rng.uniform(5, 60, 300),
                                         quad_segs=2)), dtype=object)
    geoms[0] = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])  # invalid bow tie
    geoms[1] = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(0.5, 0, 2, 1)])
    geoms[2] = shapely.Polygon()
    geoms[3] = shapely.Polygon([(0, 0), (0, 1), (1, 1), (1, 0)])  # clockwise
    lab = np.concatenate([np.arange(6), rng.integers(6, 80, 294)])  # groups of 1 to ~10
    order = np.argsort(lab, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(lab[order])) + 1)
    got = pk._union_groups(geoms, groups)
    want = [shapely.union_all(geoms[g]) for g in groups]
    assert _wkb(got) == _wkb(want)
    assert len({len(g) for g in groups}) > 3


def test_polygonal_all_equals_polygonal_of_each() -> None:
    geoms = np.array([
        shapely.box(0, 0, 1, 1),
        shapely.Polygon([(0, 0), (0, 1), (1, 1), (1, 0)]),
        shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)]),
        shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.LineString([(5, 5), (6, 6)])]),
        shapely.LineString([(0, 0), (1, 1)]),
        shapely.Polygon(),
        shapely.GeometryCollection(),
    ], dtype=object)
    assert _wkb(pk._polygonal_all(geoms)) == _wkb([pk._polygonal(g) for g in geoms])


def test_stage_restores_the_collector_threshold() -> None:
    comm = gpd.GeoDataFrame({
        "community_id": ["A", "B"], "name": ["甲", "乙"], "is_old": True,
        "floor_area_m2": 20_000.0, "households": 300.0},
        geometry=[shapely.box(X0, Y0, X0 + 50, Y0 + 50),
                  shapely.box(X0 + 100, Y0, X0 + 150, Y0 + 50)], crs=CRS)
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        res = pk.renewal_packages(comm, cfg=PackagesConfig())
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)
    assert len(res.packages) == 1
