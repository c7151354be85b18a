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

__all__ = ["assert_partition", "cluster_packages", "link_graph"]

logger = logging.getLogger(__name__)


def link_graph(communities: gpd.GeoDataFrame, *, link_distance_m: float,
               barriers: gpd.GeoDataFrame | None = None,
               sides: ArrayLike | None = None) -> nx.Graph:
    """Graph of communities that may share a package.

    Nodes are positions ``0..n-1``. Two communities are linked when their boundaries are within
    ``link_distance_m`` (STRtree ``dwithin``), they lie on the same side of the hard barriers
    (:func:`barrier_sides`), and the shortest segment between them does not cross a barrier
    (which also catches barriers that end inside the area, such as a rail spur).

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
    require_projected(communities, "link_graph")
    n = len(communities)
    G = nx.Graph(n_blocked=0)
    G.add_nodes_from(range(n))
    if n < 2:
        return G
    geoms = np.asarray(communities.geometry.values)
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="dwithin", distance=link_distance_m)
    keep = i < j
    i, j = i[keep], j[keep]
    if barriers is not None and not barriers.empty and i.size:
        side = (np.asarray(sides) if sides is not None else
                barrier_sides(communities.geometry, barriers, margin_m=link_distance_m)[0])
        ok = side[i] == side[j]
        same = np.flatnonzero(ok)  # pairs on different sides are blocked already
        seg = shapely.shortest_line(geoms[i[same]], geoms[j[same]])
        bgeo = np.asarray(barriers.to_crs(communities.crs).geometry.values)
        ok[same[_crossing(seg, bgeo)]] = False
        G.graph["n_blocked"] = int((~ok).sum())
        i, j = i[ok], j[ok]
    d = shapely.distance(geoms[i], geoms[j])
    G.add_edges_from((int(a), int(b), {"distance_m": float(x)})
                     for a, b, x in zip(i, j, d, strict=True))
    return G


def _crossing(lines: NDArray[Any], barriers: NDArray[Any]) -> NDArray[np.bool_]:
    """Which lines cross a barrier (shapely ``crosses``: lines, polygons).

    A line crosses a barrier only where it meets one of the barrier's straight pieces (a
    polygon's: its rim), so the pieces go in the STRtree and ``crosses`` is evaluated on the
    pairs that meet. A tree of whole barriers would test every line against every long river
    whose bounding box covers it — most of them, in a large city.
    """
    out = np.zeros(len(lines), dtype=bool)
    if len(lines) == 0 or len(barriers) == 0:
        return out
    rims = barriers.copy()
    poly = np.isin(shapely.get_type_id(barriers), [3, 6])
    rims[poly] = shapely.boundary(barriers[poly])
    parts, owner = shapely.get_parts(rims, return_index=True)
    xy, part = shapely.get_coordinates(parts, return_index=True)
    cont = part[1:] == part[:-1]
    if not cont.any():
        return out
    pieces = shapely.linestrings(np.stack([xy[:-1][cont], xy[1:][cont]], axis=1))
    piece_owner = owner[part[:-1][cont]]
    li, pi = shapely.STRtree(pieces).query(lines, predicate="intersects")
    if li.size == 0:
        return out
    pairs = np.unique(np.column_stack([li, piece_owner[pi]]), axis=0)
    hit = shapely.crosses(lines[pairs[:, 0]], barriers[pairs[:, 1]])
    out[pairs[hit, 0]] = True
    return out


# --------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------


def cluster_packages(xy: ArrayLike, graph: nx.Graph, *, floor_area_m2: ArrayLike,
                     households: ArrayLike, max_floor_area_m2: float, max_households: float,
                     min_floor_area_m2: float = 0.0, min_households: float = 0.0,
                     subdistrict: Sequence[Any] | None = None,
                     prefer_same_subdistrict: bool = True) -> NDArray[np.int64]:
    """Partition linked communities into contiguous packages within a floor and a ceiling.

    Method (deterministic: no random state, ties broken by position):

    1. **Sub-districts.** With ``prefer_same_subdistrict``, links between communities of
       different sub-districts are set aside (used again only in step 4).
    2. **Components.** Each connected component of the link graph (networkx) whose total floor
       area and households are within the ceilings is one package.
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
        Link graph over positions ``0..n-1`` (:func:`link_graph`).
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
    edges = np.array([(u, v) for u, v in graph.edges() if u < n and v < n],
                     dtype=np.int64).reshape(-1, 2)
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
    from sklearn.cluster import ward_tree

    m = len(nodes)
    # Only the pattern matters to ward_tree (it reads the rows of a LIL copy).
    conn = sp.csr_matrix(A[nodes][:, nodes])
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
            pieces.append(nodes[_leaves(children, node, m)])
        else:
            a, b = children[node - m]
            stack.extend([int(b), int(a)])
    return sorted(pieces, key=lambda p: int(p.min()))


def _leaves(children: NDArray[np.int64], node: int, m: int) -> NDArray[np.int64]:
    out: list[int] = []
    stack = [node]
    while stack:
        v = stack.pop()
        if v < m:
            out.append(v)
        else:
            stack.extend(int(c) for c in children[v - m])
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
