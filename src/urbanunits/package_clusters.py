"""Links between old communities and their clustering into contiguous renewal packages.

:func:`link_graph` links communities within ``link_distance_m`` of each other that no hard barrier
separates; :func:`cluster_packages` partitions that graph into connected packages within a floor
and a ceiling on floor area and households; :func:`assert_partition` checks the result.

All geometry work happens in the run's metric CRS (metres).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import scipy.sparse as sp
import shapely
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.csgraph import connected_components

from urbanunits.crs import require_projected
from urbanunits.package_barriers import barrier_sides

__all__ = ["assert_partition", "cluster_packages", "link_graph", "link_pairs"]

logger = logging.getLogger(__name__)


def link_graph(communities: gpd.GeoDataFrame, *, link_distance_m: float,
               barriers: gpd.GeoDataFrame | None = None,
               sides: ArrayLike | None = None) -> nx.Graph:
    """Graph of communities that may share a package.

    Nodes are positions ``0..n-1``; the edges are :func:`link_pairs`, each with its boundary
    distance.

    Parameters
    ----------
    communities
        Community geometries (polygons or points), metric CRS.
    link_distance_m
        Greatest boundary-to-boundary distance of a link (m).
    barriers
        Hard barriers (:func:`hard_barriers`), or None.
    sides
        Precomputed :func:`barrier_sides` labels (computed when None).

    Returns
    -------
    networkx.Graph
        Edges carry ``distance_m``; ``graph.graph["n_blocked"]`` counts candidate pairs that a
        barrier separated.
    """
    pairs, n_blocked = link_pairs(communities, link_distance_m=link_distance_m,
                                  barriers=barriers, sides=sides)
    G = nx.Graph(n_blocked=n_blocked)
    G.add_nodes_from(range(len(communities)))
    geoms = np.asarray(communities.geometry.values)
    d = shapely.distance(geoms[pairs[:, 0]], geoms[pairs[:, 1]])
    G.add_edges_from((int(a), int(b), {"distance_m": float(x)})
                     for (a, b), x in zip(pairs, d, strict=True))
    return G


def link_pairs(communities: gpd.GeoDataFrame, *, link_distance_m: float,
               barriers: gpd.GeoDataFrame | None = None,
               sides: ArrayLike | None = None) -> tuple[NDArray[np.int64], int]:
    """Pairs of communities that may share a package, as an array (no graph is built).

    Two communities are linked when their boundaries are within ``link_distance_m``
    (``shapely.dwithin`` on the pairs whose bounding boxes, grown by the distance, meet in one
    bulk STRtree query), they lie on the same side of the hard barriers (:func:`barrier_sides`),
    and the shortest segment between them does not cross a barrier (which also catches barriers
    that end inside the area, such as a rail spur).

    Parameters
    ----------
    communities
        Community geometries (polygons or points), metric CRS.
    link_distance_m
        Greatest boundary-to-boundary distance of a link (m).
    barriers
        Hard barriers (:func:`hard_barriers`), or None.
    sides
        Precomputed :func:`barrier_sides` labels (computed when None).

    Returns
    -------
    numpy.ndarray
        ``(m, 2)`` positions ``(i, j)`` with ``i < j``, sorted by ``i`` then ``j``.
    int
        Candidate pairs (within the distance) that a barrier separated.
    """
    require_projected(communities, "link_pairs")
    none = np.zeros((0, 2), dtype=np.int64)
    if len(communities) < 2:
        return none, 0
    geoms = np.asarray(communities.geometry.values)
    i, j = _near_pairs(geoms, link_distance_m)
    n_blocked = 0
    if barriers is not None and not barriers.empty and i.size:
        side = (np.asarray(sides) if sides is not None else
                barrier_sides(communities.geometry, barriers, margin_m=link_distance_m)[0])
        ok = side[i] == side[j]
        same = np.flatnonzero(ok)  # pairs on different sides are blocked already
        bgeo = np.asarray(barriers.to_crs(communities.crs).geometry.values)
        ok[same[_blocked(geoms, i[same], j[same], bgeo,
                         step_m=max(link_distance_m, _MIN_CHUNK_M))]] = False
        n_blocked = int((~ok).sum())
        i, j = i[ok], j[ok]
    return np.column_stack([i, j]).astype(np.int64).reshape(-1, 2), n_blocked


#: Shortest piece (m) a straight barrier segment is cut into for the STRtree (see _BarrierIndex).
_MIN_CHUNK_M = 100.0


def _near_pairs(geoms: NDArray[Any], distance_m: float) -> tuple[NDArray[np.intp],
                                                                    NDArray[np.intp]]:
    """Pairs ``i < j`` (sorted) of geometries within ``distance_m`` of each other.

    One bulk STRtree query finds the pairs whose bounding boxes, grown by the distance, meet;
    ``dwithin`` is then evaluated once per unordered pair. (A ``dwithin`` query of the tree with
    every geometry tests each pair twice, and prepares every geometry as it goes — 3-4× the
    time, for squares.)
    """
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    pos = np.flatnonzero(ok)
    g = geoms[pos]
    b = shapely.bounds(g)
    grown = shapely.box(b[:, 0] - distance_m, b[:, 1] - distance_m, b[:, 2] + distance_m,
                        b[:, 3] + distance_m)
    i, j = shapely.STRtree(g).query(grown)
    keep = i < j
    i, j = i[keep], j[keep]
    near = shapely.dwithin(g[i], g[j], distance_m)
    i, j = pos[i[near]], pos[j[near]]
    order = np.argsort(i.astype(np.int64) * len(geoms) + j)  # by i, then j
    return i[order], j[order]


class _BarrierIndex:
    """The barriers' straight pieces, in an STRtree of short boxes along each piece.

    A line crosses a barrier only where it meets one of the barrier's straight pieces (a
    polygon's: its rim). A long straight piece (a river drawn with two points, a long bank) has
    a bounding box covering much of the city, and every line inside it would be a candidate: in a
    city grown k-fold with its rivers, k^1.5 candidates. So each piece is cut along its length
    into boxes of about ``step_m`` (grown by a rounding margin, so that they cover the piece) and
    the boxes go in the tree; a box hit stands for its piece, which is then tested exactly.
    """

    def __init__(self, barriers: NDArray[Any], *, step_m: float) -> None:
        rims = barriers.copy()
        poly = np.isin(shapely.get_type_id(barriers), [3, 6])
        rims[poly] = shapely.boundary(barriers[poly])
        parts, owner = shapely.get_parts(rims, return_index=True)
        xy, part = shapely.get_coordinates(parts, return_index=True)
        cont = part[1:] == part[:-1]
        a, b = xy[:-1][cont], xy[1:][cont]
        self.pieces = shapely.linestrings(np.stack([a, b], axis=1))
        self.owner = owner[part[:-1][cont]]
        #: rounding margin (m): interpolated box corners and computed line ends are exact to
        #: a few units in the last place of the coordinates; 1e-7 of them is far more
        self.pad = 1e-7 * max(1.0, float(np.abs(xy).max())) if len(xy) else 0.0
        length = np.hypot(*(b - a).T)
        m = np.maximum(1, np.ceil(length / max(step_m, 1e-9))).astype(np.int64)
        self.chunk_piece = np.repeat(np.arange(len(a)), m)
        k = np.arange(len(self.chunk_piece)) - np.repeat(np.cumsum(m) - m, m)
        mm = m[self.chunk_piece]
        t0, t1 = (k / mm)[:, None], ((k + 1) / mm)[:, None]
        pa, pb = a[self.chunk_piece], b[self.chunk_piece]
        p0 = np.where(k[:, None] == 0, pa, pa + (pb - pa) * t0)
        p1 = np.where((k + 1 == mm)[:, None], pb, pa + (pb - pa) * t1)
        lo, hi = np.minimum(p0, p1) - self.pad, np.maximum(p0, p1) + self.pad
        self.tree = shapely.STRtree(shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]))

    def near(self, boxes: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which ``(xmin, ymin, xmax, ymax)`` boxes (grown by the margin) meet a piece's box."""
        out = np.zeros(len(boxes), dtype=bool)
        if len(boxes) and len(self.chunk_piece):
            q = shapely.box(boxes[:, 0] - self.pad, boxes[:, 1] - self.pad,
                            boxes[:, 2] + self.pad, boxes[:, 3] + self.pad)
            out[self.tree.query(q)[0]] = True
        return out

    def crossing(self, lines: NDArray[Any], barriers: NDArray[Any]) -> NDArray[np.bool_]:
        """Which lines cross a barrier (``crosses`` on the lines that meet one of its pieces)."""
        out = np.zeros(len(lines), dtype=bool)
        if len(lines) == 0 or len(self.chunk_piece) == 0:
            return out
        li, ci = self.tree.query(lines)
        if li.size == 0:
            return out
        lp = np.unique(np.column_stack([li, self.chunk_piece[ci]]), axis=0)
        lp = lp[shapely.intersects(lines[lp[:, 0]], self.pieces[lp[:, 1]])]
        if lp.size == 0:
            return out
        pairs = np.unique(np.column_stack([lp[:, 0], self.owner[lp[:, 1]]]), axis=0)
        hit = shapely.crosses(lines[pairs[:, 0]], barriers[pairs[:, 1]])
        out[pairs[hit, 0]] = True
        return out


def _blocked(geoms: NDArray[Any], i: NDArray[np.intp], j: NDArray[np.intp],
             barriers: NDArray[Any], *, step_m: float) -> NDArray[np.bool_]:
    """Which pairs a barrier separates: the shortest segment between them crosses one.

    The segment lies in the bounding box of the pair, so it is drawn only for pairs whose box
    meets a barrier piece's box (most pairs are far from any barrier).
    """
    out = np.zeros(len(i), dtype=bool)
    if len(i) == 0 or len(barriers) == 0:
        return out
    index = _BarrierIndex(barriers, step_m=step_m)
    b = shapely.bounds(geoms)
    box = np.column_stack([np.minimum(b[i, :2], b[j, :2]), np.maximum(b[i, 2:], b[j, 2:])])
    near = np.flatnonzero(index.near(box))
    if near.size:
        seg = shapely.shortest_line(geoms[i[near]], geoms[j[near]])
        out[near] = index.crossing(seg, barriers)
    return out


def _crossing(lines: NDArray[Any], barriers: NDArray[Any], *,
              step_m: float = _MIN_CHUNK_M) -> NDArray[np.bool_]:
    """Which lines cross a barrier (shapely ``crosses``: lines, polygons); see _BarrierIndex."""
    out = np.zeros(len(lines), dtype=bool)
    if len(lines) == 0 or len(barriers) == 0:
        return out
    return _BarrierIndex(barriers, step_m=step_m).crossing(lines, barriers)


# --------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------


def cluster_packages(xy: ArrayLike, graph: nx.Graph | ArrayLike, *, floor_area_m2: ArrayLike,
                     households: ArrayLike, max_floor_area_m2: float, max_households: float,
                     min_floor_area_m2: float = 0.0, min_households: float = 0.0,
                     subdistrict: Sequence[Any] | None = None,
                     prefer_same_subdistrict: bool = True) -> NDArray[np.int64]:
    """Partition linked communities into contiguous packages within a floor and a ceiling.

    Method (deterministic: no random state, ties broken by position):

    1. **Sub-districts.** With ``prefer_same_subdistrict``, links between communities of
       different sub-districts are set aside (used again only in step 4).
    2. **Components.** Each connected component of the links (a networkx graph or an edge
       array) whose total floor area and households are within the ceilings is one package.
    3. **Ceilings.** A larger component is split along its connectivity-constrained Ward
       dendrogram (:func:`sklearn.cluster.ward_tree` on community centroids, with the link graph
       as connectivity, so every tree node is a contiguous, compact group): from the root down,
       a node within both ceilings becomes a package, otherwise it is replaced by its two
       children. A single community above a ceiling stays a package of its own (reported).
    4. **Floors.** A package below either floor is merged into the linked package whose union
       stays within both ceilings and adds the least Ward variance (most compact result), first
       within its sub-district, then across; smallest packages first, repeated until nothing
       changes. Packages that still fall short (isolated or boxed in by full neighbours) are
       kept and reported.

    Ceilings and floors both bind, unlike max-p regionalisation (PySAL ``spopt``), which only
    enforces a floor and uses random restarts.

    Parameters
    ----------
    xy
        ``(n, 2)`` community centroids (m, metric CRS).
    graph
        Link graph over positions ``0..n-1`` (:func:`link_graph`), or its ``(m, 2)`` array of
        edges (:func:`link_pairs`).
    floor_area_m2, households
        Per-community totals (NaN counts as 0).
    max_floor_area_m2, max_households
        Package ceilings.
    min_floor_area_m2, min_households
        Package floors.
    subdistrict
        Sub-district per community (None values form their own group).
    prefer_same_subdistrict
        Keep packages inside one sub-district where the floors allow.

    Returns
    -------
    numpy.ndarray
        Package label per community, ``0..k-1`` ordered by each package's first community.
    """
    X = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(X)
    F = np.nan_to_num(np.asarray(floor_area_m2, dtype=float))
    H = np.nan_to_num(np.asarray(households, dtype=float))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sub = (np.array(["" if s is None or s != s else str(s) for s in subdistrict], dtype=object)
           if subdistrict is not None else np.full(n, "", dtype=object))
    if isinstance(graph, nx.Graph):
        edges = np.array([(u, v) for u, v in graph.edges() if u < n and v < n],
                         dtype=np.int64).reshape(-1, 2)
    else:
        edges = np.asarray(graph, dtype=np.int64).reshape(-1, 2)
        edges = edges[(edges < n).all(axis=1)]
    A_all = _adjacency(edges, n)
    A_in = (_adjacency(edges[sub[edges[:, 0]] == sub[edges[:, 1]]], n)
            if prefer_same_subdistrict else A_all)

    def fits(f: float, h: float) -> bool:
        return f <= max_floor_area_m2 + 1e-6 and h <= max_households + 1e-6

    labels = np.full(n, -1, dtype=np.int64)
    next_label = 0
    for nodes in _components(A_in):
        if len(nodes) == 1 or fits(F[nodes].sum(), H[nodes].sum()):
            labels[nodes] = next_label
            next_label += 1
            continue
        for piece in _ceiling_split(X, F, H, A_in, nodes, fits):
            labels[piece] = next_label
            next_label += 1
    labels = _merge_below_floor(labels, X, F, H, A_in, A_all, fits=fits,
                                min_f=min_floor_area_m2, min_h=min_households,
                                fallback=prefer_same_subdistrict)
    # Relabel 0..k-1 by first member for a stable order.
    _, first = np.unique(labels, return_index=True)
    order = np.empty(int(labels.max()) + 1, dtype=np.int64)
    order[labels[np.sort(first)]] = np.arange(len(first))
    return order[labels]


def _adjacency(edges: NDArray[np.int64], n: int) -> sp.csr_array:
    """Symmetric 0/1 adjacency (CSR, sorted indices) of an edge list over ``0..n-1``."""
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    A = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    A.sum_duplicates()
    A.data[:] = 1.0
    return A


def _components(A: sp.csr_array) -> list[NDArray[np.int64]]:
    """Connected components as sorted node arrays, ordered by their smallest node."""
    _, comp = connected_components(A, directed=False)
    order = np.argsort(comp, kind="stable")  # nodes ascending within each component
    cuts = np.flatnonzero(np.diff(comp[order])) + 1
    parts = np.split(order.astype(np.int64), cuts)
    return sorted(parts, key=lambda p: int(p[0]))


def _ceiling_split(X: NDArray[np.float64], F: NDArray[np.float64], H: NDArray[np.float64],
                   A: sp.csr_array, nodes: NDArray[np.int64], fits: Any
                   ) -> list[NDArray[np.int64]]:
    """Top-down cut of the connectivity-constrained Ward tree of one component."""
    # scikit-learn takes ~1.5 s to import and is needed only when a component is above a
    # ceiling, so runs without one never import it
    from sklearn import config_context
    from sklearn.cluster import ward_tree

    m = len(nodes)
    # Only the pattern matters to ward_tree (it reads the rows of a LIL copy).
    conn = sp.csr_matrix(A[nodes][:, nodes])
    # The arguments are built right here: scikit-learn's checks of them are skipped (a tenth of
    # the call on components of a hundred communities).
    with config_context(skip_parameter_validation=True):
        children = ward_tree(X[nodes], connectivity=conn)[0].tolist()
    # Totals of every tree node: leaves 0..m-1, merges m..2m-2 in order. Python floats: the
    # same additions as numpy's float64, without a numpy scalar per step.
    f = F[nodes].tolist() + [0.0] * (m - 1)
    h = H[nodes].tolist() + [0.0] * (m - 1)
    for k, (a, b) in enumerate(children, start=m):
        f[k] = f[a] + f[b]
        h[k] = h[a] + h[b]
    pieces: list[NDArray[np.int64]] = []
    stack = [2 * m - 2]
    while stack:
        node = stack.pop()
        if node < m or fits(f[node], h[node]):
            pieces.append(nodes[_leaves(children, node, m)])
        else:
            a, b = children[node - m]
            stack.extend([b, a])
    return sorted(pieces, key=lambda p: int(p.min()))


def _leaves(children: list[list[int]], node: int, m: int) -> NDArray[np.int64]:
    out: list[int] = []
    stack = [node]
    while stack:
        v = stack.pop()
        if v < m:
            out.append(v)
        else:
            stack.extend(children[v - m])
    return np.array(sorted(out), dtype=np.int64)


def _merge_below_floor(labels: NDArray[np.int64], X: NDArray[np.float64],
                       F: NDArray[np.float64], H: NDArray[np.float64], A_in: sp.csr_array,
                       A_all: sp.csr_array, *, fits: Any, min_f: float, min_h: float,
                       fallback: bool) -> NDArray[np.int64]:
    """Merge packages below a floor into their cheapest feasible neighbour, smallest first.

    Each package's totals are kept and recomputed only when it grows (from its members, as
    before, so that the sums are bit for bit those of a fresh computation); only the merged
    package's members are relabelled.
    """
    labels = labels.copy()
    members: dict[int, set[int]] = {}
    for v, lab in enumerate(labels.tolist()):
        members.setdefault(lab, set()).add(v)
    cache: dict[int, tuple[float, float, int, NDArray[np.float64]]] = {}

    def stats(lab: int) -> tuple[float, float, int, NDArray[np.float64]]:
        got = cache.get(lab)
        if got is None:
            idx = np.fromiter(members[lab], dtype=np.int64)
            got = cache[lab] = (float(F[idx].sum()), float(H[idx].sum()), len(idx),
                                X[idx].mean(axis=0))
        return got

    def below(lab: int) -> bool:
        f, h, _, _ = stats(lab)
        return f < min_f - 1e-6 or h < min_h - 1e-6

    def key(lab: int) -> tuple[float, int]:
        f, h, _, _ = stats(lab)
        return max(f / max(min_f, 1e-9), h / max(min_h, 1e-9)), lab

    def neighbours(lab: int, A: sp.csr_array) -> set[int]:
        idx = np.fromiter(members[lab], dtype=np.int64)
        starts, ends = A.indptr[idx], A.indptr[idx + 1]
        nb = np.concatenate([A.indices[s:e] for s, e in zip(starts, ends, strict=True)])
        return set(labels[nb].tolist()) - {lab}

    graphs = [A_in, A_all] if fallback else [A_in]
    changed = True
    while changed:
        changed = False
        pending = sorted((lab for lab in members if below(lab)), key=key)
        for lab in pending:
            if lab not in members or not below(lab):
                continue
            fa, ha, na, ca = stats(lab)
            for A in graphs:
                best: tuple[float, int] | None = None
                for other in sorted(neighbours(lab, A)):
                    fb, hb, nb, cb = stats(other)
                    if not fits(fa + fb, ha + hb):
                        continue
                    cost = na * nb / (na + nb) * float(np.sum((ca - cb) ** 2))
                    if best is None or cost < best[0]:
                        best = (cost, other)
                if best is not None:
                    keep, drop = min(lab, best[1]), max(lab, best[1])
                    moved = members.pop(drop)
                    members[keep] |= moved
                    labels[np.fromiter(moved, dtype=np.int64)] = keep
                    cache.pop(keep, None)
                    cache.pop(drop, None)
                    changed = True
                    break
    return labels


def assert_partition(labels: ArrayLike, graph: nx.Graph) -> None:
    """Check that every package is connected in the link graph (raise AssertionError if not).

    Parameters
    ----------
    labels
        Package label per community (positions ``0..n-1``).
    graph
        The link graph the packages were built from.
    """
    lab = np.asarray(labels)
    if (lab < 0).any():
        raise AssertionError(f"{int((lab < 0).sum())} communities have no package")
    for k in np.unique(lab):
        nodes = np.flatnonzero(lab == k).tolist()
        if len(nodes) > 1 and not nx.is_connected(graph.subgraph(nodes)):
            raise AssertionError(f"package {k} is not connected in the link graph: {nodes}")
