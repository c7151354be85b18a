"""The clustering against its first, plain implementation on random inputs: same labels.

``reference_clusters`` is :func:`urbanunits.package_clusters.cluster_packages` as first written —
networkx graphs and subgraph views, each package's totals recomputed from its members on every
use, every member relabelled on a merge. The stage now runs on sparse adjacency with cached totals;
the partition must not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree
from sklearn.cluster import ward_tree

from urbanunits.package_clusters import assert_partition, cluster_packages


def reference_clusters(xy: ArrayLike, graph: nx.Graph, *, floor_area_m2: ArrayLike,
                     households: ArrayLike, max_floor_area_m2: float, max_households: float,
                     min_floor_area_m2: float = 0.0, min_households: float = 0.0,
                     subdistrict: Sequence[Any] | None = None,
                     prefer_same_subdistrict: bool = True) -> NDArray[np.int64]:
    """The clustering as first written (networkx graphs, stats recomputed on every use)."""
    X = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(X)
    F = np.nan_to_num(np.asarray(floor_area_m2, dtype=float))
    H = np.nan_to_num(np.asarray(households, dtype=float))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sub = (np.array(["" if s is None or s != s else str(s) for s in subdistrict], dtype=object)
           if subdistrict is not None else np.full(n, "", dtype=object))
    G_all = nx.Graph()
    G_all.add_nodes_from(range(n))
    G_all.add_edges_from((u, v) for u, v in graph.edges() if u < n and v < n)
    G_in = G_all.copy()
    if prefer_same_subdistrict:
        G_in.remove_edges_from([(u, v) for u, v in G_all.edges() if sub[u] != sub[v]])

    def fits(f: float, h: float) -> bool:
        return f <= max_floor_area_m2 + 1e-6 and h <= max_households + 1e-6

    labels = np.full(n, -1, dtype=np.int64)
    next_label = 0
    for comp in sorted(nx.connected_components(G_in), key=min):
        nodes = np.array(sorted(comp))
        if len(nodes) == 1 or fits(F[nodes].sum(), H[nodes].sum()):
            labels[nodes] = next_label
            next_label += 1
            continue
        for piece in _ref_ceiling_split(X, F, H, G_in, nodes, fits):
            labels[piece] = next_label
            next_label += 1
    labels = _ref_merge_below_floor(labels, X, F, H, G_in, G_all, fits=fits,
                                min_f=min_floor_area_m2, min_h=min_households,
                                fallback=prefer_same_subdistrict)
    # Relabel 0..k-1 by first member for a stable order.
    first: dict[int, int] = {}
    for pos, lab in enumerate(labels):
        first.setdefault(int(lab), pos)
    order = {lab: k for k, lab in enumerate(sorted(first, key=first.__getitem__))}
    return np.array([order[int(v)] for v in labels], dtype=np.int64)


def _ref_ceiling_split(X: NDArray[np.float64], F: NDArray[np.float64], H: NDArray[np.float64],
                   G: nx.Graph, nodes: NDArray[np.int64], fits: Any) -> list[NDArray[np.int64]]:
    """Top-down cut of the connectivity-constrained Ward tree of one component."""
    m = len(nodes)
    pos = {int(v): k for k, v in enumerate(nodes)}
    sub = G.subgraph(nodes.tolist())
    rows = [pos[u] for u, v in sub.edges()] + [pos[v] for u, v in sub.edges()]
    cols = [pos[v] for u, v in sub.edges()] + [pos[u] for u, v in sub.edges()]
    conn = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(m, m)).tocsr()
    children = ward_tree(X[nodes], connectivity=conn)[0]
    # Totals of every tree node: leaves 0..m-1, merges m..2m-2 in order.
    f = np.concatenate([F[nodes], np.zeros(m - 1)])
    h = np.concatenate([H[nodes], np.zeros(m - 1)])
    for k, (a, b) in enumerate(children):
        f[m + k] = f[a] + f[b]
        h[m + k] = h[a] + h[b]
    pieces: list[NDArray[np.int64]] = []
    stack = [2 * m - 2]
    while stack:
        node = stack.pop()
        if node < m or fits(f[node], h[node]):
            pieces.append(nodes[_ref_leaves(children, node, m)])
        else:
            a, b = children[node - m]
            stack.extend([int(b), int(a)])
    return sorted(pieces, key=lambda p: int(p.min()))


def _ref_leaves(children: NDArray[np.int64], node: int, m: int) -> NDArray[np.int64]:
    out: list[int] = []
    stack = [node]
    while stack:
        v = stack.pop()
        if v < m:
            out.append(v)
        else:
            stack.extend(int(c) for c in children[v - m])
    return np.array(sorted(out), dtype=np.int64)


def _ref_merge_below_floor(labels: NDArray[np.int64], X: NDArray[np.float64],
                       F: NDArray[np.float64], H: NDArray[np.float64], G_in: nx.Graph,
                       G_all: nx.Graph, *, fits: Any, min_f: float, min_h: float,
                       fallback: bool) -> NDArray[np.int64]:
    labels = labels.copy()
    members: dict[int, set[int]] = {}
    for v, lab in enumerate(labels):
        members.setdefault(int(lab), set()).add(v)

    def stats(lab: int) -> tuple[float, float, int, NDArray[np.float64]]:
        idx = np.fromiter(members[lab], dtype=np.int64)
        return float(F[idx].sum()), float(H[idx].sum()), len(idx), X[idx].mean(axis=0)

    def below(lab: int) -> bool:
        f, h, _, _ = stats(lab)
        return f < min_f - 1e-6 or h < min_h - 1e-6

    def neighbours(lab: int, G: nx.Graph) -> set[int]:
        return {int(labels[u]) for v in members[lab] for u in G.neighbors(v)} - {lab}

    graphs = [G_in, G_all] if fallback else [G_in]
    changed = True
    while changed:
        changed = False
        pending = sorted((lab for lab in members if below(lab)),
                         key=lambda lab: (max(stats(lab)[0] / max(min_f, 1e-9),
                                              stats(lab)[1] / max(min_h, 1e-9)), lab))
        for lab in pending:
            if lab not in members or not below(lab):
                continue
            fa, ha, na, ca = stats(lab)
            for G in graphs:
                best: tuple[float, int] | None = None
                for other in sorted(neighbours(lab, G)):
                    fb, hb, nb, cb = stats(other)
                    if not fits(fa + fb, ha + hb):
                        continue
                    cost = na * nb / (na + nb) * float(np.sum((ca - cb) ** 2))
                    if best is None or cost < best[0]:
                        best = (cost, other)
                if best is not None:
                    keep, drop = min(lab, best[1]), max(lab, best[1])
                    members[keep] |= members.pop(drop)
                    labels[list(members[keep])] = keep
                    changed = True
                    break
    return labels


def _random_case(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    centres = rng.uniform(0, 5_000, size=(max(1, n // 20), 2))
    xy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 200, size=(n, 2))
    pairs = cKDTree(xy).query_pairs(r=float(rng.uniform(80, 250)), output_type="ndarray")
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(map(tuple, pairs[rng.random(len(pairs)) < 0.9].tolist()))
    floor = rng.lognormal(10, 0.8, n)
    floor[rng.random(n) < 0.05] = np.nan
    subs: list[Any] = [None, "甲", "乙", "丙"]
    sub = [subs[k] for k in rng.integers(0, 4, n)] if rng.random() < 0.7 else None
    cap = float(rng.uniform(1, 10)) * float(np.nanmedian(floor)) * 3
    return {"xy": xy, "graph": G, "floor_area_m2": floor, "households": floor / 70.0,
            "max_floor_area_m2": cap, "max_households": cap / 60.0,
            "min_floor_area_m2": cap * float(rng.uniform(0, 0.6)),
            "min_households": cap / 60.0 * float(rng.uniform(0, 0.4)),
            "subdistrict": sub, "prefer_same_subdistrict": bool(rng.random() < 0.7)}


@pytest.mark.parametrize("seed", range(40))
def test_same_labels_as_the_reference(seed: int) -> None:
    case = _random_case(seed)
    xy, G = case.pop("xy"), case.pop("graph")
    got = cluster_packages(xy, G, **case)
    want = reference_clusters(xy, G, **case)
    np.testing.assert_array_equal(got, want)
    assert_partition(got, G)
    # the floors did bind somewhere, so the merge step was exercised
    if seed == 0:
        assert len(np.unique(got)) < len(np.unique(reference_clusters(
            xy, G, **{**case, "min_floor_area_m2": 0.0, "min_households": 0.0})))


@pytest.mark.parametrize("seed", range(10))
def test_crossing_pieces_agree_with_whole_barriers(seed: int) -> None:
    """Testing ``crosses`` only where a line meets a barrier's piece finds the same lines."""
    import shapely

    from urbanunits.package_clusters import _crossing

    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 300, size=(6, 40, 2)), axis=1)
    rivers = list(shapely.linestrings(walk))
    ponds = list(shapely.buffer(shapely.points(rng.uniform(-3000, 3000, (8, 2))),
                                rng.uniform(50, 600, 8)))
    holed = shapely.Polygon(shapely.box(-500, -500, 500, 500).exterior.coords,
                            [shapely.box(-200, -200, 200, 200).exterior.coords])
    barriers = np.array([*rivers, *ponds, holed, shapely.MultiPolygon(ponds[:2]),
                         shapely.MultiLineString(rivers[:2]), shapely.Point(0, 0)], dtype=object)
    a = rng.uniform(-4000, 4000, (3000, 2))
    b = a + rng.normal(0, 400, (3000, 2))
    b[:50] = a[:50]  # zero-length lines, as between touching communities
    lines = shapely.linestrings(np.stack([a, b], axis=1))
    want = np.zeros(len(lines), dtype=bool)
    want[shapely.STRtree(barriers).query(lines, predicate="crosses")[0]] = True
    got = _crossing(lines, barriers)
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < len(lines)


@pytest.mark.parametrize("step_m", [0.5, 37.0, 1e6])
def test_crossing_long_straight_barriers_cut_into_boxes(step_m: float) -> None:
    """Long two-point barriers are cut into boxes along their length: the same lines cross."""
    import shapely

    from urbanunits.package_clusters import _crossing

    rng = np.random.default_rng(5)
    ends = rng.uniform(0, 5000, size=(7, 4))
    barriers = np.array([*shapely.linestrings(ends.reshape(-1, 2, 2)),
                         shapely.box(1000, 1000, 1003, 4000),  # a thin strip: its rim
                         shapely.LineString([(0, 0), (5000, 5000)])], dtype=object)
    a = rng.uniform(0, 5000, (4000, 2))
    b = a + rng.normal(0, 200, (4000, 2))
    b[:40] = a[:40]
    b[40:80] = a[40:80] + np.array([0.0, 1e-9])  # a hair's length
    lines = shapely.linestrings(np.stack([a, b], axis=1))
    # lines that end exactly on the diagonal barrier: touching is not crossing
    on = rng.uniform(100, 4900, 20)
    lines[80:100] = shapely.linestrings(np.stack([np.column_stack([on, on]),
                                                  np.column_stack([on + 50, on - 50])], axis=1))
    want = np.zeros(len(lines), dtype=bool)
    want[shapely.STRtree(barriers).query(lines, predicate="crosses")[0]] = True
    got = _crossing(lines, barriers, step_m=step_m)
    np.testing.assert_array_equal(got, want)
    assert 0 < got.sum() < len(lines)


@pytest.mark.parametrize("seed", range(10))
def test_edge_array_gives_the_same_labels_as_the_graph(seed: int) -> None:
    case = _random_case(seed)
    xy, G = case.pop("xy"), case.pop("graph")
    edges = np.array(list(G.edges()), dtype=np.int64).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    shuffled = edges[rng.permutation(len(edges))][:, ::-1]  # any order, either direction
    np.testing.assert_array_equal(cluster_packages(xy, shuffled, **case),
                                  cluster_packages(xy, G, **case))
