"""network.py against a networkx brute-force oracle: random graphs (hypothesis) and the demo."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from urbanunits.errors import CRSError, DataError
from urbanunits.network import (
    Router,
    Snap,
    WalkNetwork,
    community_access,
    min_over_entries,
    polygon_entries,
    snap_to_edges,
)
from urbanunits.sources.osm import OSMLayers

from . import oracle
from .oracle import Graph


def grid_graph(rng: np.random.Generator, rows: int, cols: int, *, drop: float,
               diagonals: float, spacing: float = 100.0) -> Graph:
    """A perturbed grid (planar: no two edges cross) with dropped edges and diagonals."""
    jitter = rng.uniform(-0.2, 0.2, (rows * cols, 2)) * spacing
    ii, jj = np.divmod(np.arange(rows * cols), cols)
    xy = np.column_stack([jj * spacing, ii * spacing]) + jitter
    pairs = []
    for i in range(rows):
        for j in range(cols):
            k = i * cols + j
            if j + 1 < cols:
                pairs.append((k, k + 1))
            if i + 1 < rows:
                pairs.append((k, k + cols))
            if i + 1 < rows and j + 1 < cols and rng.random() < diagonals:
                pairs.append((k, k + cols + 1) if rng.random() < 0.5 else (k + 1, k + cols))
    keep = rng.random(len(pairs)) >= drop
    edges = []
    for (u, v), ok in zip(pairs, keep, strict=True):
        if ok:
            straight = float(np.hypot(*(xy[u] - xy[v])))
            edges.append((u, v, straight * float(rng.uniform(1.0, 1.3))))
    return Graph(xy, edges)


def to_network(g: Graph) -> WalkNetwork:
    u, v, w = zip(*g.edges, strict=True) if g.edges else ((), (), ())
    return WalkNetwork(x=g.xy[:, 0], y=g.xy[:, 1], u=list(u), v=list(v), length_m=list(w),
                       crs="EPSG:32651")


graphs = st.builds(
    lambda seed, rows, cols, drop, diag: (seed, grid_graph(np.random.default_rng(seed), rows,
                                                           cols, drop=drop, diagonals=diag)),
    st.integers(0, 2**31 - 1), st.integers(2, 6), st.integers(2, 6),
    st.sampled_from([0.0, 0.15, 0.4]), st.sampled_from([0.0, 0.3]))


# --- node to node: exact ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(graphs, st.data())
def test_node_to_node_matches_networkx(case: tuple[int, Graph], data: st.DataObject) -> None:
    """Facilities and communities on nodes: distances equal networkx to 0.01 m, and nodes in
    other connected pieces are unreachable (inf), never a large finite number."""
    _, g = case
    n = len(g.xy)
    Gx = g.nx()
    linked = [node for node in range(n) if Gx.degree(node) > 0]
    if not linked:
        return
    net = to_network(g)
    src = data.draw(st.lists(st.sampled_from(linked), min_size=1, max_size=4, unique=True))
    pts = shapely.points(g.xy)
    router = Router(net, snap_to_edges(net, pts[src], max_snap_m=1.0))
    got = router.distances(router.point_node)[:n]
    want = nx.multi_source_dijkstra_path_length(Gx, src, weight="length")
    for node in range(n):
        if node in want:
            assert got[node] == pytest.approx(want[node], abs=0.01)
        else:
            assert got[node] == math.inf


def test_parallel_edges_and_reversed_twins_use_the_shortest() -> None:
    g = Graph(np.array([[0.0, 0.0], [100.0, 0.0], [200.0, 0.0]]),
              [(0, 1, 150.0), (0, 1, 100.0), (1, 0, 120.0), (1, 2, 100.0)])
    net = to_network(g)
    assert net.csr[0, 1] == 100.0 and net.csr[1, 0] == 100.0
    G = g.osmnx_like()
    G.add_edge(1000, 1001, length=90.0)  # a shorter parallel way, one direction only
    net2 = WalkNetwork.from_graph(G)
    router = Router(net2, snap_to_edges(net2, shapely.points([[0.0, 0.0]]), max_snap_m=1))
    d = router.distances(router.point_node)
    assert d[list(net2.node_id).index(1002)] == pytest.approx(190.0)


# --- snapping and several entry points --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(graphs)
def test_snapped_points_and_polygons_match_oracle(case: tuple[int, Graph]) -> None:
    """Random facilities and communities (points, small and large polygons) snapped to the
    nearest edge or entered through nodes: same distance as the brute-force oracle."""
    seed, g = case
    rng = np.random.default_rng(seed + 1)
    if not g.edges:
        return
    net = to_network(g)
    lo, hi = g.xy.min(axis=0) - 60, g.xy.max(axis=0) + 60
    fac = shapely.points(rng.uniform(lo, hi, (4, 2)))
    cpts = list(shapely.points(rng.uniform(lo, hi, (4, 2))))
    centres = rng.uniform(lo, hi, (4, 2))
    sizes = np.array([3.0, 3.0, 60.0, 250.0])  # tiny ones usually have no node nearby
    polys = [shapely.box(x - s / 2, y - s / 2, x + s / 2, y + s / 2)
             for (x, y), s in zip(centres, sizes, strict=True)]
    comms = np.array(cpts + polys, dtype=object)
    max_snap, buf = 40.0, 15.0

    access = community_access(net, comms, entry_buffer_m=buf, max_snap_m=max_snap)
    snap_f = snap_to_edges(net, fac, max_snap_m=max_snap)
    router = Router(net, Snap.concat(snap_f, access.snap))
    entries = access.entries(router.point_node[len(fac):])
    got = min_over_entries(router.distances(router.point_node[:len(fac)]), entries, len(comms))

    D = oracle.all_pairs(g)
    fac_att = [oracle.attach(g, p, max_snap) for p in fac]
    for i, c in enumerate(comms):
        want = oracle.community_distance(g, D, fac_att, c, entry_buffer_m=buf,
                                         max_snap_m=max_snap)
        if math.isinf(want):
            assert math.isinf(got[i]), (i, got[i])
        else:
            assert got[i] == pytest.approx(want, abs=0.01), i
    # what the snap reports agrees with the oracle, including "beyond max_snap_m"
    for p, s_edge, s_off in zip(fac, snap_f.edge, snap_f.offset_m, strict=True):
        att = oracle.attach(g, p, max_snap)
        if att is None:
            assert s_edge == -1 and s_off > max_snap
        else:
            assert s_off == pytest.approx(att.offset, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(graphs, st.integers(1, 3))
def test_islands_are_passed_over_like_the_oracle(case: tuple[int, Graph], n_islands: int
                                                 ) -> None:
    """Random grids with small footway loops added inside walled grounds: facilities and
    communities in the grounds reach the street they face, as the oracle says."""
    seed, g = case
    rng = np.random.default_rng(seed + 7)
    if not g.edges:
        return
    xy = [tuple(p) for p in g.xy]
    edges = list(g.edges)
    lo, hi = g.xy.min(axis=0), g.xy.max(axis=0)
    inside: list[shapely.Geometry] = []
    for _ in range(n_islands):
        cx, cy = rng.uniform(lo, hi)
        r = float(rng.uniform(5.0, 25.0))
        k = len(xy)
        ring = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (0, 2.1, 4.2)]
        xy += ring
        edges += [(k, k + 1, 2 * r), (k + 1, k + 2, 2 * r), (k + 2, k, 2 * r)]
        # off-centre, so that no two loop edges are equally near (a tie either way is right)
        inside += [shapely.Point(cx + 0.23 * r, cy + 0.11 * r),
                   shapely.Point(cx, cy).buffer(r * 0.6)]
    gi = Graph(np.array(xy), edges)
    net = to_network(gi)
    fac = np.array([*shapely.points(rng.uniform(lo, hi, (3, 2))), inside[0]], dtype=object)
    comms = np.array([*inside, *shapely.points(rng.uniform(lo, hi, (3, 2)))], dtype=object)
    max_snap, buf, min_nodes = 60.0, 15.0, 4

    access = community_access(net, comms, entry_buffer_m=buf, max_snap_m=max_snap,
                              min_component_nodes=min_nodes)
    snap_f = snap_to_edges(net, fac, max_snap_m=max_snap, min_component_nodes=min_nodes)
    router = Router(net, Snap.concat(snap_f, access.snap))
    entries = access.entries(router.point_node[len(fac):])
    got = min_over_entries(router.distances(router.point_node[:len(fac)]), entries, len(comms))

    D = oracle.all_pairs(gi)
    fac_att = [oracle.attach(gi, p, max_snap, min_nodes) for p in fac]
    for i, c in enumerate(comms):
        want = oracle.community_distance(gi, D, fac_att, c, entry_buffer_m=buf,
                                         max_snap_m=max_snap, min_component_nodes=min_nodes)
        if math.isinf(want):
            assert math.isinf(got[i]), (i, got[i])
        else:
            assert got[i] == pytest.approx(want, abs=0.01), i


def test_max_snap_exceeded_is_unreachable_not_zero() -> None:
    g = Graph(np.array([[0.0, 0.0], [100.0, 0.0]]), [(0, 1, 100.0)])
    net = to_network(g)
    snap = snap_to_edges(net, shapely.points([[50.0, 10.0], [50.0, 500.0]]), max_snap_m=150)
    assert list(snap.edge) == [0, -1]
    assert snap.offset_m[0] == pytest.approx(10.0)
    assert snap.offset_m[1] == pytest.approx(500.0)  # reported, not 0
    router = Router(net, snap)
    assert router.point_node[1] == -1
    d = router.distances(router.point_node[:1])
    assert d[0] == pytest.approx(60.0) and d[1] == pytest.approx(60.0)


def test_same_edge_points_see_each_other_directly() -> None:
    """Two points on one 1 km edge are 100 m apart, not 100 m + a detour via an end."""
    g = Graph(np.array([[0.0, 0.0], [1000.0, 0.0]]), [(0, 1, 1000.0)])
    net = to_network(g)
    pts = shapely.points([[450.0, 5.0], [550.0, -5.0], [550.0, 2.0]])
    router = Router(net, snap_to_edges(net, pts, max_snap_m=50))
    d = router.distances(router.point_node[:1])
    assert d[router.point_node[1]] == pytest.approx(5 + 100 + 5)
    assert d[router.point_node[2]] == pytest.approx(5 + 100 + 2)


def test_several_entry_points_take_the_nearest() -> None:
    """A compound with gates on two streets: the distance uses the better gate."""
    xy = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 100.0], [1000.0, 100.0]])
    g = Graph(xy, [(0, 1, 1000.0), (2, 3, 1000.0), (1, 3, 100.0)])
    net = to_network(g)
    compound = shapely.box(-10, -10, 10, 110)  # touches nodes 0 and 2
    ent = polygon_entries(net, [compound], entry_buffer_m=15)
    assert sorted(ent.node.tolist()) == [0, 2]
    fac = shapely.points([[990.0, 100.0]])
    router = Router(net, snap_to_edges(net, fac, max_snap_m=5))
    d = min_over_entries(router.distances(router.point_node), ent, 1)
    assert d[0] == pytest.approx(990.0)  # via node 2, not 1000 + 100 + 10 via node 0


def test_disconnected_and_empty_networks_do_not_crash() -> None:
    g = Graph(np.array([[0.0, 0.0], [100.0, 0.0], [5000.0, 0.0], [5100.0, 0.0]]),
              [(0, 1, 100.0), (2, 3, 100.0)])
    net = to_network(g)
    router = Router(net, snap_to_edges(net, shapely.points([[0.0, 1.0]]), max_snap_m=5))
    d = router.distances(router.point_node)
    assert np.isinf(d[[2, 3]]).all() and np.isfinite(d[[0, 1]]).all()
    assert router.component[0] != router.component[2]
    empty = WalkNetwork(x=[], y=[], u=[], v=[], length_m=[], crs="EPSG:32651")
    s = snap_to_edges(empty, shapely.points([[0.0, 0.0]]), max_snap_m=100)
    assert list(s.edge) == [-1] and np.isinf(s.offset_m[0])
    assert len(Router(empty, s).distances([])) == 0
    assert len(polygon_entries(empty, [shapely.box(0, 0, 1, 1)], entry_buffer_m=5)) == 0


def test_bad_graphs_are_refused() -> None:
    with pytest.raises(CRSError, match="degrees"):
        WalkNetwork(x=[0, 1], y=[0, 1], u=[0], v=[1], length_m=[1.0], crs="EPSG:4326")
    with pytest.raises(DataError, match="length"):
        WalkNetwork(x=[0, 1], y=[0, 1], u=[0], v=[1], length_m=[np.nan])
    G = nx.MultiDiGraph()
    G.add_edge(1, 2, length=1.0)
    with pytest.raises(CRSError, match="crs"):
        WalkNetwork.from_graph(G)


# --- the demo graph -----------------------------------------------------------------------------


def test_demo_graph_matches_networkx(demo_layers: OSMLayers) -> None:
    """On the real Lujiazui walk graph (two pieces split by the Huangpu), multi-source distances
    from 25 random nodes equal networkx's to 0.01 m everywhere, unreachable nodes included."""
    G = demo_layers.walk_graph
    net = WalkNetwork.from_graph(G)
    rng = np.random.default_rng(5)
    src = rng.choice(net.n_nodes, 25, replace=False)
    router = Router(net, snap_to_edges(net, net.node_points[src], max_snap_m=1.0))
    got = router.distances(router.point_node)[:net.n_nodes]
    want = nx.multi_source_dijkstra_path_length(G, set(net.node_id[src].tolist()),
                                                weight="length")
    want_arr = np.array([want.get(n, np.inf) for n in net.node_id])
    assert np.isinf(want_arr).any()  # the river splits the network
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want_arr))
    fin = np.isfinite(want_arr)
    np.testing.assert_allclose(got[fin], want_arr[fin], atol=0.01, rtol=0)


def test_demo_snapping_matches_oracle(demo_layers: OSMLayers) -> None:
    """Random points near the demo network: snap + search equals the brute-force formula."""
    net = WalkNetwork.from_graph(demo_layers.walk_graph)
    keep = net.edge_u != net.edge_v
    g = Graph(np.column_stack([net.x, net.y]),
              list(zip(net.edge_u[keep].tolist(), net.edge_v[keep].tolist(),
                       net.edge_len[keep].tolist(), strict=True)))
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = demo_layers.study_area.total_bounds
    pts = shapely.points(rng.uniform([x0, y0], [x1, y1], (12, 2)))
    snap = snap_to_edges(net, pts, max_snap_m=150)
    router = Router(net, snap)
    d = router.distances(router.point_node[:4])
    fac = [oracle.attach(g, p, 150) for p in pts[:4]]
    D = oracle.distances_from(g, fac)
    for i in range(4, 12):
        c = oracle.attach(g, pts[i], 150)
        want = (math.inf if c is None or not any(fac) else
                min(oracle.point_to_point(g, D, f, c) for f in fac if f is not None))
        got = d[router.point_node[i]] if router.point_node[i] >= 0 else math.inf
        if math.isinf(want):
            assert math.isinf(got)
        else:
            assert got == pytest.approx(want, abs=0.01)


def test_polygon_crossed_by_streets_without_nodes_enters_where_they_pass() -> None:
    """A compound crossed by two streets, no node within the buffer: it is entered at the ends
    of each street's stretch inside it, the best one counting."""
    xy = np.array([[0.0, 0.0], [1000.0, 0.0], [430.0, -500.0], [430.0, 500.0]])
    g = Graph(xy, [(0, 1, 1000.0), (2, 3, 1000.0)])
    net = to_network(g)
    box = shapely.box(400, -30, 460, 30)  # both streets cross it; their crossing is no node
    access = community_access(net, [box], entry_buffer_m=15, max_snap_m=50)
    assert len(access.nodes) == 0 and len(access.snap) == 4
    for fx, fy, want in [(900.0, 0.0, 440.0), (0.0, 0.0, 400.0), (430.0, 500.0, 470.0)]:
        router = Router(net, Snap.concat(snap_to_edges(net, shapely.points([[fx, fy]]),
                                                       max_snap_m=5), access.snap))
        got = min_over_entries(router.distances(router.point_node[:1]),
                               access.entries(router.point_node[1:]), 1)
        assert got[0] == pytest.approx(want)
