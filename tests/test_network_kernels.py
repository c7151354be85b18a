"""The vectorised snapping kernels against shapely, on curved edges, holes and touches."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanunits.network import (
    Router,
    Snap,
    WalkNetwork,
    crossing_snaps,
    min_over_entries,
    polygon_entries,
    snap_to_edges,
)
from urbanunits.network.entries import _boundary_distance


def _curvy(seed: int) -> tuple[WalkNetwork, np.ndarray]:
    """Nodes on a jittered grid; every other edge a bent polyline with 1–4 inner vertices."""
    rng = np.random.default_rng(seed)
    side = 5
    ii, jj = np.divmod(np.arange(side * side), side)
    x = jj * 100.0 + rng.uniform(-20, 20, side * side)
    y = ii * 100.0 + rng.uniform(-20, 20, side * side)
    u = np.concatenate([np.arange(side * side).reshape(side, side)[:, :-1].ravel(),
                        np.arange(side * side).reshape(side, side)[:-1, :].ravel()])
    v = np.concatenate([np.arange(side * side).reshape(side, side)[:, 1:].ravel(),
                        np.arange(side * side).reshape(side, side)[1:, :].ravel()])
    geoms = np.empty(len(u), dtype=object)
    for k in range(0, len(u), 2):
        inner = rng.integers(1, 5)
        t = np.sort(rng.uniform(0.1, 0.9, inner))
        px = x[u[k]] + t * (x[v[k]] - x[u[k]]) + rng.uniform(-30, 30, inner)
        py = y[u[k]] + t * (y[v[k]] - y[u[k]]) + rng.uniform(-30, 30, inner)
        geoms[k] = shapely.LineString(np.column_stack([np.r_[x[u[k]], px, x[v[k]]],
                                                       np.r_[y[u[k]], py, y[v[k]]]]))
    lines = np.array([g if g is not None else shapely.LineString([(x[a], y[a]), (x[b], y[b])])
                      for g, a, b in zip(geoms, u, v, strict=True)], dtype=object)
    length = shapely.length(lines) * 1.1  # lengths need not equal the drawn length
    net = WalkNetwork(x=x, y=y, u=u, v=v, length_m=length, geometry=geoms, crs="EPSG:32651")
    return net, lines


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_points_and_polygons_snap_to_curved_edges_like_shapely(seed: int) -> None:
    net, lines = _curvy(seed)
    rng = np.random.default_rng(seed + 1)
    pts = shapely.points(rng.uniform(-60, 460, (40, 2)))
    boxes = shapely.box(*rng.uniform(-60, 460, (2, 10)), *(rng.uniform(-60, 460, (2, 10))
                                                           + 15)).ravel()
    geoms = np.concatenate([pts, boxes[:10]])
    snap = snap_to_edges(net, geoms, max_snap_m=40.0)
    for i, g in enumerate(geoms):
        d = shapely.distance(g, lines)
        best = float(d.min())
        assert snap.offset_m[i] == pytest.approx(best, abs=1e-7)
        if best > 40.0:
            assert snap.edge[i] == -1
            continue
        e = snap.edge[i]
        assert d[e] == pytest.approx(best, abs=1e-7)  # a nearest edge (ties either way)
        near = shapely.get_point(shapely.shortest_line(g, lines[e]), 1)
        want = shapely.line_locate_point(lines[e], near, normalized=True) * net.edge_len[e]
        if np.sum(np.isclose(d, best, atol=1e-7)) == 1 and shapely.get_type_id(g) == 0:
            assert snap.along_m[i] == pytest.approx(want, abs=1e-6)


def test_boundary_distance_handles_holes_and_multipolygons() -> None:
    rng = np.random.default_rng(3)
    ring = shapely.Polygon([(0, 0), (100, 0), (100, 100), (0, 100)],
                           [[(30, 30), (70, 30), (70, 70), (30, 70)]])
    multi = shapely.MultiPolygon([shapely.box(200, 0, 250, 50),
                                  shapely.Polygon([(300, 0), (360, 10), (330, 80)])])
    polys = np.array([ring, multi], dtype=object)
    xy = rng.uniform(-20, 380, (500, 2))
    which = rng.integers(0, 2, 500)
    got = _boundary_distance(polys, which, xy[:, 0], xy[:, 1], chunk=37)
    want = shapely.distance(shapely.boundary(polys[which]), shapely.points(xy))
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_entries_equal_a_plain_dwithin_query() -> None:
    net, _ = _curvy(5)
    rng = np.random.default_rng(9)
    lo = rng.uniform(-50, 420, (60, 2))
    polys = shapely.box(lo[:, 0], lo[:, 1], lo[:, 0] + rng.uniform(1, 90, 60),
                        lo[:, 1] + rng.uniform(1, 90, 60))
    ent = polygon_entries(net, polys, entry_buffer_m=12.0)
    pts = shapely.points(net.x, net.y)
    ci, ni = shapely.STRtree(pts).query(polys, predicate="dwithin", distance=12.0)
    assert sorted(zip(ent.owner.tolist(), ent.node.tolist(), strict=True)) == sorted(
        zip(ci.tolist(), ni.tolist(), strict=True))
    np.testing.assert_allclose(ent.offset_m[np.lexsort((ent.node, ent.owner))],
                               shapely.distance(polys[ci], pts[ni])[np.lexsort((ni, ci))],
                               atol=1e-9)


def test_a_touching_street_is_one_entry_and_equal_points_share_a_node() -> None:
    net = WalkNetwork(x=[0.0, 100.0], y=[0.0, 0.0], u=[0], v=[1], length_m=[100.0],
                      crs="EPSG:32651")
    touch = shapely.box(40, 0, 60, 20)  # lies on the street along 40–60 m
    corner = shapely.box(60, -20, 80, 0).union(shapely.box(10, 0, 20, 10))
    owner, snap = crossing_snaps(net, [touch, shapely.Point(30, 0)])
    assert sorted(zip(owner.tolist(), snap.along_m.tolist(), strict=True)) == [
        (0, 40.0), (0, 60.0), (1, 30.0)]
    owner, snap = crossing_snaps(net, [corner])
    assert len(owner) == 2  # two touching parts: one stretch each end, no doubles
    same = Snap(np.array([0, 0, 0]), np.array([25.0, 25.0, 25.0]), np.array([0.0, 0.0, 3.0]))
    router = Router(net, same)
    assert router.point_node[0] == router.point_node[1]  # on the street: the same node
    assert router.n_total == 2 + 1 + 1  # one virtual node, one pendant
    d = router.distances(router.point_node[:1])
    assert d[router.point_node[2]] == pytest.approx(3.0)
    np.testing.assert_array_equal(router.component, [0, 0, 0, 0])


def test_from_graph_keeps_one_of_each_reversed_pair_and_curves() -> None:
    G = nx.MultiDiGraph(crs="EPSG:32651")
    G.add_node("a", x=0.0, y=0.0)
    G.add_node("b", x=100.0, y=0.0)
    G.add_node("c", x=100.0, y=50.0)
    bend = shapely.LineString([(100, 0), (130, 25), (100, 50)])
    G.add_edge("a", "b", length=100.0)
    G.add_edge("b", "a", length=100.0)
    G.add_edge("b", "c", length=80.0, geometry=bend)
    G.add_edge("c", "b", length=80.0, geometry=bend.reverse())
    G.add_edge("a", "c", length=200.0)  # one direction only
    net = WalkNetwork.from_graph(G)
    assert list(net.node_id) == ["a", "b", "c"]
    assert sorted(zip(net.edge_u.tolist(), net.edge_v.tolist(), strict=True)) == [
        (0, 1), (0, 2), (1, 2)]
    snap = snap_to_edges(net, [shapely.Point(140, 25)], max_snap_m=20.0)
    assert net.edge_u[snap.edge[0]] == 1 and snap.offset_m[0] == pytest.approx(10.0)
    assert snap.along_m[0] == pytest.approx(40.0)  # half way round the bend


def test_searches_shared_with_a_worker_process_give_the_same_distances() -> None:
    from urbanunits._search import nearest_per_owner
    from urbanunits.network import community_access

    net, _ = _curvy(11)
    rng = np.random.default_rng(12)
    fac = shapely.points(rng.uniform(0, 400, (9, 2)))
    comms = shapely.points(rng.uniform(0, 400, (30, 2)))
    access = community_access(net, comms, entry_buffer_m=10.0, max_snap_m=80.0)
    router = Router(net, Snap.concat(snap_to_edges(net, fac, max_snap_m=80.0), access.snap))
    entries = access.entries(router.point_node[len(fac):])
    groups = [router.point_node[:3], router.point_node[3:5], router.point_node[5:9]]
    one = nearest_per_owner(router, groups, entries, len(comms), limit_m=300.0)
    two = nearest_per_owner(router, groups, entries, len(comms), limit_m=300.0, workers=2)
    for a, b, g in zip(one, two, groups, strict=True):
        np.testing.assert_array_equal(a, b)
        want = min_over_entries(router.distances(g), entries, len(comms))
        np.testing.assert_array_equal(a, np.where(want <= 300.0, want, np.inf))
    assert any(np.isinf(a).any() for a in one) and any(np.isfinite(a).any() for a in one)


def test_community_access_is_reused_only_for_identical_geometries() -> None:
    from urbanunits.network import community_access

    net, _ = _curvy(4)
    polys = shapely.box([10.0, 150.0], [10.0, 150.0], [60.0, 170.0], [60.0, 170.0])
    a = community_access(net, polys, entry_buffer_m=10.0, max_snap_m=80.0)
    assert community_access(net, polys.copy(), entry_buffer_m=10.0, max_snap_m=80.0) is a
    assert community_access(net, polys, entry_buffer_m=11.0, max_snap_m=80.0) is not a
    moved = shapely.box([10.0, 150.0], [10.0, 150.0], [60.0, 170.0], [60.0, 170.5])
    b = community_access(net, moved, entry_buffer_m=10.0, max_snap_m=80.0)
    assert b is not a
    fresh, _ = _curvy(4)
    c = community_access(fresh, moved, entry_buffer_m=10.0, max_snap_m=80.0)
    np.testing.assert_array_equal(b.nodes.node, c.nodes.node)
    np.testing.assert_array_equal(b.snap.along_m, c.snap.along_m)


@pytest.mark.parametrize("bits", [4, 8])
def test_hilbert_key_walks_every_cell_of_a_square_one_step_at_a_time(bits: int) -> None:
    from urbanunits.network.graph import hilbert_key

    side = 1 << bits
    yy, xx = np.divmod(np.arange(side * side), side)
    key = hilbert_key(xx.astype(float), yy.astype(float), bits=bits)
    np.testing.assert_array_equal(np.sort(key), np.arange(side * side))  # a bijection
    order = np.argsort(key)
    steps = np.abs(np.diff(xx[order])) + np.abs(np.diff(yy[order]))
    assert steps.max() == 1  # consecutive cells are neighbours: the locality the order buys


def test_search_order_is_internal_matrices_by_node_position_unchanged() -> None:
    rng = np.random.default_rng(5)
    n = 60
    x, y = rng.uniform(0, 500, n), rng.uniform(0, 500, n)
    u, v = rng.integers(0, n, 150), rng.integers(0, n, 150)
    w = np.hypot(x[u] - x[v], y[u] - y[v]) + rng.uniform(0, 5, 150)
    net = WalkNetwork(x=x, y=y, u=u, v=v, length_m=w, crs="EPSG:32651")
    assert not np.array_equal(net.order, np.arange(n))  # the test needs a real permutation
    np.testing.assert_array_equal(net.order[net.rank], np.arange(n))
    # Independent matrix by node position: the minimum per pair, both directions.
    dense = np.full((n, n), np.inf)
    for a, b, c in zip(u, v, w, strict=True):
        if a != b:
            dense[a, b] = dense[b, a] = min(dense[a, b], c)
    got = net.csr.toarray()
    np.testing.assert_array_equal(np.where(np.isinf(dense), 0.0, dense), got)
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_weighted_edges_from((int(a), int(b), dense[a, b])
                              for a, b in zip(*np.nonzero(np.isfinite(dense)), strict=True))
    want_deg = np.array([G.degree(i) for i in range(n)])
    np.testing.assert_array_equal(net.degree, want_deg)
    lab = net.component
    for comp in nx.connected_components(G):
        assert len({int(lab[i]) for i in comp}) == 1
    assert len(np.unique(lab)) == nx.number_connected_components(G)
    # Points at an edge end use the node; inside an edge a virtual node; off it a pendant.
    e = int(np.flatnonzero(net.edge_len > 1)[0])
    L = float(net.edge_len[e])
    snap = Snap(np.array([e, e, e, e]), np.array([0.0, L, L / 2, 0.0]),
                np.array([0.0, 0.0, 0.0, 4.0]))
    router = Router(net, snap)
    assert router.point_node[0] == net.edge_u[e] and router.point_node[1] == net.edge_v[e]
    assert router.n_total == n + 2  # one virtual node, one pendant (hung on edge_u)
    sources = [int(net.edge_u[e])]
    d = router.distances(sources)
    want = nx.single_source_dijkstra_path_length(G, sources[0], weight="weight")
    for i in range(n):
        assert d[i] == pytest.approx(want.get(i, np.inf))
    assert d[router.point_node[2]] == pytest.approx(min(L / 2, want[int(net.edge_v[e])] + L / 2))
    assert d[router.point_node[3]] == pytest.approx(4.0)
    # The router's matrix by graph node id: the network's, plus the new nodes' entries.
    m = router.csr.toarray()
    np.testing.assert_array_equal(m[:n, :n], got)
    assert m[router.point_node[3], net.edge_u[e]] == 4.0
    assert m[router.point_node[2], net.edge_u[e]] == pytest.approx(L / 2)
    np.testing.assert_array_equal(router.distance_matrix(sources, limit_m=np.inf)[0], d)


@pytest.mark.parametrize("child", ["works", "raises", "is killed"])
def test_shared_searches_give_every_row_even_when_a_child_fails(child: str) -> None:
    import os
    import signal

    from urbanunits._search import _shared_run

    parent = os.getpid()

    def one(i: int) -> np.ndarray:
        if os.getpid() != parent:
            if child == "raises":
                raise RuntimeError("child")
            if child == "is killed":  # as the OOM killer would, in the middle of its search
                os.kill(os.getpid(), signal.SIGKILL)
        return np.arange(4, dtype=float) + 10 * i

    got = _shared_run(one, 7, 4, 3)
    assert len(got) == 7
    for i, row in enumerate(got):
        np.testing.assert_array_equal(row, np.arange(4) + 10 * i)


def test_shared_searches_beyond_what_the_pipe_holds() -> None:
    from urbanunits._search import _shared_run

    k = 40_000  # 160 KB of indices: more than any pipe holds; the rest run in the parent
    got = _shared_run(lambda i: np.full(2, float(i)), k, 2, 2)
    np.testing.assert_array_equal(np.stack(got)[:, 0], np.arange(k))
