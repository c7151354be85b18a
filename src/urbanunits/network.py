"""Walk network as a sparse matrix: snapping and multi-source shortest paths.

The osmnx walk graph is converted once into a symmetric CSR matrix (metres, the minimum over
parallel edges and both directions). Distances come from
:func:`scipy.sparse.csgraph.dijkstra` with ``min_only=True``: one search from *all* facilities of
a kind at once gives every node's distance to the nearest of them, so the cost is one graph
traversal per facility kind, not one per facility or per community.

Snapping
--------
Points are snapped to the nearest **edge** (not the nearest node), found exactly by vectorised
point-to-segment projection over a k-d tree of the edges' segments (``_segments.py``; shapely
only for polygons, on their few candidate edges).
Even in the unsimplified graph a straight street is one edge between two junctions, often
100–300 m long, so node snapping would add up to half of that to a 300 m standard. Each snapped
point becomes a virtual node on its edge (points on the same edge are chained in order along
it, so two points on one street see each other directly) plus a pendant node joined to it by
the straight-line snap distance. Pendant nodes have degree one, so no path runs through them,
and a search started at a facility's pendant node already includes its snap distance.

Points farther than ``max_snap_m`` from every edge are not snapped: they are *unreachable*
(``NaN`` distances, reported), never 0 m. Nodes in another connected piece of the network than
every source get ``inf`` from scipy, which callers turn into ``NaN``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyproj
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from urbanunits._segments import SegmentIndex, ball_pairs, edge_segments, point_segment
from urbanunits.errors import CRSError, DataError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import networkx as nx
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Access",
    "Entries",
    "Router",
    "Snap",
    "WalkNetwork",
    "community_access",
    "crossing_snaps",
    "min_over_entries",
    "polygon_entries",
    "snap_component_nodes",
    "snap_to_edges",
]

logger = logging.getLogger(__name__)


class WalkNetwork:
    """An undirected walk network: CSR matrix, node coordinates and an edge table for snapping.

    Parameters
    ----------
    x, y
        Node coordinates in a projected CRS (metres), one entry per node.
    u, v
        Node *positions* (0 … n-1) of the edges. Each undirected edge once; parallel edges
        are allowed (the matrix keeps the shortest, snapping sees each one).
    length_m
        Edge lengths in metres (finite, ≥ 0).
    geometry
        Edge linestrings in the same CRS; straight segments between the end nodes when omitted
        (the whole array, or single entries set to ``None``).
    node_id
        Original node ids (e.g. OSM ids), for reporting; positions when omitted.
    crs
        CRS of the coordinates.
    """

    def __init__(self, *, x: ArrayLike, y: ArrayLike, u: ArrayLike, v: ArrayLike,
                 length_m: ArrayLike, geometry: ArrayLike | None = None,
                 node_id: ArrayLike | None = None, crs: Any = None) -> None:
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        n = len(self.x)
        u_arr = np.asarray(u, dtype=np.intp)
        v_arr = np.asarray(v, dtype=np.intp)
        length = np.asarray(length_m, dtype=np.float64)
        if not (len(u_arr) == len(v_arr) == len(length)):
            raise DataError("walk graph", "edge arrays u, v, length_m differ in length",
                            "pass one value per edge")
        if len(u_arr) and (min(u_arr.min(), v_arr.min()) < 0
                           or max(u_arr.max(), v_arr.max()) >= n):
            raise DataError("walk graph", "edge end outside the node list",
                            "u and v must be node positions 0 … n-1")
        bad = ~np.isfinite(length) | (length < 0)
        if bad.any():
            raise DataError("walk graph: edge length", f"{int(bad.sum())} edge(s) have a "
                            "missing or negative length",
                            "give every edge a 'length' in metres (osmnx add_edge_lengths)")
        self.node_id = (np.arange(n, dtype=np.int64) if node_id is None
                        else np.asarray(node_id))
        self.crs = pyproj.CRS.from_user_input(crs) if crs is not None else None
        if self.crs is not None and not self.crs.is_projected:
            raise CRSError("walk graph", f"graph is in {self.crs.to_string()} (degrees)",
                           "project it first, e.g. osmnx.project_graph(G, to_crs='EPSG:32651')")
        # A loop without its own geometry is a zero-length line: useless for snapping and
        # never on a shortest path.
        geom = None if geometry is None else np.asarray(geometry, dtype=object)
        if geom is not None and len(geom) != len(u_arr):
            raise DataError("walk graph", "geometry differs in length from u, v",
                            "pass one geometry (or None) per edge")
        has_geom = (np.zeros(len(u_arr), dtype=bool) if geom is None
                    else ~shapely.is_missing(geom))
        keep = (u_arr != v_arr) | has_geom
        # 32-bit node positions where they fit: half the memory of the edge table.
        pos_t = np.int32 if n < np.iinfo(np.int32).max else np.int64
        self.edge_u, self.edge_v = u_arr[keep].astype(pos_t), v_arr[keep].astype(pos_t)
        self.edge_len = length[keep]
        self._geometry = None if geom is None or not has_geom.any() else geom[keep]
        self.csr = _symmetric_csr(self.edge_u, self.edge_v, self.edge_len, n)
        self._access_cache: dict[tuple[bytes, float, float, int], Access] = {}

    @classmethod
    def from_graph(cls, G: nx.MultiDiGraph | nx.Graph, *, weight: str = "length"
                   ) -> WalkNetwork:
        """Convert an osmnx graph (projected, edge ``length`` in metres).

        Directed edges are read as undirected (walking ignores one-way tags); an edge and its
        reverse twin are kept once as snapping targets.

        Parameters
        ----------
        G
            Projected networkx (Multi)(Di)Graph with node ``x``/``y`` and edge ``weight``.
        weight
            Edge attribute holding the length in metres.

        Returns
        -------
        WalkNetwork
            The network; ``node_id`` holds the graph's node ids.
        """
        crs = G.graph.get("crs")
        if crs is None:
            raise CRSError("walk graph", "graph has no 'crs' attribute",
                           "build it with osmnx and project it with osmnx.project_graph")
        # One pass over the adjacency straight into numpy (no per-edge Python objects beyond
        # the iteration itself): at 250k nodes this is a few tenths of a second, where a loop
        # building lists, a set of pairs and per-edge lines took seconds.
        n = G.number_of_nodes()
        try:
            xy = np.fromiter(((d["x"], d["y"]) for _, d in G.nodes(data=True)),
                             dtype=np.dtype((np.float64, 2)), count=n).reshape(n, 2)
        except KeyError as exc:
            raise DataError("walk graph", "a node has no 'x'/'y' coordinate",
                            "build the graph with osmnx") from exc
        nodes = np.fromiter(G.nodes, dtype=object, count=n)
        pos = {nd: i for i, nd in enumerate(nodes)}
        rec = np.fromiter(_edge_records(G, pos, weight),
                          dtype=[("u", np.intp), ("v", np.intp), ("w", np.float64),
                                 ("g", np.bool_)])
        m = len(rec)
        geoms = (np.fromiter(_edge_values(G, "geometry"), dtype=object, count=m)
                 if rec["g"].any() else np.full(m, None, dtype=object))
        u, v, w = rec["u"], rec["v"], rec["w"]
        if np.isnan(w).any():
            for a, b, data in G.edges(data=True):
                if weight not in data:
                    raise DataError(f"walk graph: edge {a}-{b}", f"no {weight!r} attribute",
                                    "add lengths with osmnx.distance.add_edge_lengths")
        # Keep one of each reversed pair: the one stored from the lower position.
        fwd = np.sort(u.astype(np.int64) * max(n, 1) + v)
        rev = v.astype(np.int64) * max(n, 1) + u
        at = np.minimum(np.searchsorted(fwd, rev), max(len(fwd) - 1, 0))
        keep = ~((u > v) & (fwd[at] == rev)) if len(fwd) else np.ones(0, dtype=bool)
        geometry = geoms[keep] if (~shapely.is_missing(geoms)).any() else None
        return cls(x=xy[:, 0], y=xy[:, 1], u=u[keep], v=v[keep], length_m=w[keep],
                   geometry=geometry, node_id=_node_ids(nodes), crs=crs)

    @property
    def n_nodes(self) -> int:
        """Number of network nodes."""
        return len(self.x)

    @cached_property
    def node_points(self) -> NDArray[np.object_]:
        """Nodes as shapely points."""
        return shapely.points(self.x, self.y)

    @cached_property
    def edge_geom(self) -> NDArray[np.object_]:
        """Edge linestrings (straight segments unless the graph gave geometries).

        Built on first use only (isochrones): snapping works on :attr:`segments`.
        """
        return self.edge_lines(np.arange(len(self.edge_u)))

    def edge_lines(self, edges: NDArray[np.intp]) -> NDArray[np.object_]:
        """Linestrings of the given edges (their geometry, or the straight segment)."""
        edges = np.asarray(edges, dtype=np.intp)
        if "edge_geom" in self.__dict__:
            return np.asarray(self.__dict__["edge_geom"][edges], dtype=object)
        out = np.empty(len(edges), dtype=object)
        if len(edges) == 0:
            return out
        straight = (np.ones(len(edges), dtype=bool) if self._geometry is None
                    else shapely.is_missing(self._geometry[edges]))
        u, v = self.edge_u[edges[straight]], self.edge_v[edges[straight]]
        out[straight] = shapely.linestrings(np.stack(
            [np.column_stack([self.x[u], self.y[u]]), np.column_stack([self.x[v], self.y[v]])],
            axis=1))
        if self._geometry is not None:
            out[~straight] = self._geometry[edges[~straight]]
        return out

    @cached_property
    def segments(self) -> SegmentIndex:
        """Spatial index of the edges' straight segments (snapping targets)."""
        return edge_segments(self.x, self.y, self.edge_u, self.edge_v, self._geometry)

    @property
    def geom_len_m(self) -> NDArray[np.float64]:
        """Length of each edge's geometry (m), which positions along it are scaled from."""
        return self.segments.geom_len_m

    @cached_property
    def node_kdtree(self) -> cKDTree:
        """k-d tree of the node coordinates."""
        return cKDTree(np.column_stack([self.x, self.y]), balanced_tree=False,
                       compact_nodes=False)

    @cached_property
    def component(self) -> NDArray[np.int32]:
        """Connected-component label of every node (computed once per network)."""
        if self.n_nodes == 0:
            return np.empty(0, dtype=np.int32)
        _, labels = connected_components(self.csr, directed=False)
        return np.asarray(labels, dtype=np.int32)

    @cached_property
    def component_nodes(self) -> NDArray[np.int64]:
        """Size (nodes) of the connected piece each node belongs to."""
        if self.n_nodes == 0:
            return np.empty(0, dtype=np.int64)
        return np.bincount(self.component)[self.component].astype(np.int64)

    def island_nodes(self, min_component_nodes: int) -> NDArray[np.bool_]:
        """Nodes on an *island*: a piece smaller than ``min_component_nodes`` nodes.

        The largest piece is never an island, so a small network stays usable. Islands are
        typically footway loops inside a kindergarten's or hospital's grounds that no mapped
        path joins to the street.
        """
        size = self.component_nodes
        if len(size) == 0:
            return np.zeros(0, dtype=bool)
        return (size < min_component_nodes) & (size < size.max())

    def __repr__(self) -> str:
        return (f"WalkNetwork({self.n_nodes} nodes, {len(self.edge_u)} edges, "
                f"crs={self.crs.to_string() if self.crs else None})")


def _edge_records(G: nx.MultiDiGraph | nx.Graph, pos: dict[Any, int], weight: str
                  ) -> Iterator[tuple[int, int, float, bool]]:
    """(u position, v position, weight or NaN, has a geometry) of every stored edge."""
    # The plain dicts under networkx's views: the views cost more than the rest of the loop.
    multi = G.is_multigraph()
    for a, nbrs in G._adj.items():
        i = pos[a]
        for b, kd in nbrs.items():
            j = pos[b]
            for d in (kd.values() if multi else (kd,)):
                yield i, j, d.get(weight, np.nan), "geometry" in d


def _edge_values(G: nx.MultiDiGraph | nx.Graph, key: str) -> Iterator[Any]:
    """Attribute ``key`` (or None) of every stored edge, in :func:`_edge_records` order."""
    multi = G.is_multigraph()
    for nbrs in G._adj.values():
        for kd in nbrs.values():
            for d in (kd.values() if multi else (kd,)):
                yield d.get(key)


def _node_ids(nodes: NDArray[np.object_]) -> NDArray[Any]:
    """Node ids as a typed array where they are all integers (OSM ids), else as objects."""
    try:
        return np.asarray(nodes.tolist())
    except (TypeError, ValueError):
        return nodes


def _undirected_min(u: NDArray[np.intp], v: NDArray[np.intp], w: NDArray[np.float64], n: int
                    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """One entry per unordered node pair with its minimum weight; loops dropped."""
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    off = lo != hi
    lo, hi, w = lo[off], hi[off], w[off]
    key = lo.astype(np.int64) * n + hi
    order = np.argsort(key)
    ks = key[order]
    first = np.ones(len(ks), dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    starts = np.flatnonzero(first)
    sel = order[starts]
    wmin = np.minimum.reduceat(w[order], starts) if len(starts) else w[sel]
    return lo[sel], hi[sel], wmin


def _symmetric_csr(u: NDArray[np.intp], v: NDArray[np.intp], w: NDArray[np.float64],
                   n: int) -> sp.csr_array:
    """Symmetric CSR with the minimum weight per node pair (both directions, parallels).

    scipy would *sum* duplicate entries, hence the explicit minimum. Zero-length entries stay
    explicit: csgraph treats explicit sparse zeros as edges.
    """
    lo, hi, w = _undirected_min(u, v, w, n)
    # 32-bit indices where they fit: csgraph works on int32 and would convert on every search.
    idx = np.int32 if n < np.iinfo(np.int32).max else np.int64
    # Pairs come sorted by (lo, hi): listing the (hi, lo) entries first leaves every row's
    # columns sorted, so scipy's conversion finds the matrix canonical and sorts nothing.
    csr = sp.csr_array((np.concatenate([w, w]), (np.concatenate([hi, lo]).astype(idx),
                                                 np.concatenate([lo, hi]).astype(idx))),
                       shape=(n, n))
    if csr.indices.dtype != idx and 2 * len(w) < np.iinfo(np.int32).max:
        csr.indices = csr.indices.astype(idx)
        csr.indptr = csr.indptr.astype(idx)
    return csr


# --------------------------------------------------------------------------------------------
# Snapping
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snap:
    """Where points attach to the network.

    Attributes
    ----------
    edge
        Index into the network's edge table; -1 where the point is not snapped.
    along_m
        Position of the attachment along the edge, metres from its ``u`` end (scaled to the
        edge's ``length``); NaN where not snapped.
    offset_m
        Straight-line distance from the geometry to the edge (m). For unsnapped points the
        distance to the nearest edge (> ``max_snap_m``), or inf if the network is empty or
        the geometry is missing.
    """

    edge: NDArray[np.intp]
    along_m: NDArray[np.float64]
    offset_m: NDArray[np.float64]

    @property
    def ok(self) -> NDArray[np.bool_]:
        """Whether each point is snapped."""
        return self.edge >= 0

    def __len__(self) -> int:
        return len(self.edge)

    @staticmethod
    def concat(*snaps: Snap) -> Snap:
        """Concatenate snaps in order."""
        return Snap(np.concatenate([s.edge for s in snaps]).astype(np.intp),
                    np.concatenate([s.along_m for s in snaps]),
                    np.concatenate([s.offset_m for s in snaps]))


def snap_to_edges(net: WalkNetwork, geoms: ArrayLike, *, max_snap_m: float,
                  min_component_nodes: int = 1) -> Snap:
    """Snap geometries to the nearest point of the nearest edge, avoiding islands.

    Parameters
    ----------
    net
        The walk network.
    geoms
        Shapely geometries (points or polygons) in the network's CRS.
    max_snap_m
        Maximum straight-line snap distance in metres; farther geometries stay unsnapped.
    min_component_nodes
        Pieces of the network with fewer nodes are islands (:meth:`WalkNetwork.island_nodes`):
        a geometry whose nearest edge is on an island snaps to the nearest edge of the rest of
        the network when one lies within ``max_snap_m`` (a kindergarten whose grounds hold an
        unconnected footway loop is joined to the street it faces), else it keeps the island.

    Returns
    -------
    Snap
        One entry per geometry.
    """
    g = np.asarray(geoms, dtype=object)
    n = len(g)
    edge = np.full(n, -1, dtype=np.intp)
    along = np.full(n, np.nan)
    offset = np.full(n, np.inf)
    if n == 0 or len(net.edge_u) == 0 or len(net.segments) == 0:
        return Snap(edge, along, offset)
    idx = np.flatnonzero(~(shapely.is_missing(g) | shapely.is_empty(g)))
    if len(idx) == 0:
        return Snap(edge, along, offset)
    e, d, a = _nearest_edges(net, g[idx])
    ok = d <= max_snap_m
    if min_component_nodes > 1 and ok.any():
        island = net.island_nodes(min_component_nodes)
        on_island = ok & island[net.edge_u[e]]
        if on_island.any():
            e2, d2, a2 = _nearest_edges(net, g[idx[on_island]], within_m=max_snap_m,
                                        allowed=~island[net.edge_u])
            better = d2 <= max_snap_m
            pos = np.flatnonzero(on_island)[better]
            e[pos], d[pos], a[pos] = e2[better], d2[better], a2[better]
    offset[idx] = d  # for the unsnapped: how far they are, for the report
    e, a = e[ok], a[ok]
    edge[idx[ok]] = e
    glen = net.geom_len_m[e]
    frac = np.where(glen > 0, a / np.where(glen > 0, glen, 1.0), 0.0)
    along[idx[ok]] = np.clip(frac, 0.0, 1.0) * net.edge_len[e]
    return Snap(edge, along, offset)


def _nearest_edges(net: WalkNetwork, g: NDArray[np.object_], *,
                   within_m: float | None = None, allowed: NDArray[np.bool_] | None = None
                   ) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
    """Nearest edge of each geometry: edge, distance, metres along the edge's geometry.

    Points are projected onto segments in numpy. Other geometries go through shapely, but only
    against the edges that can be nearest: with ``c`` the centre of the bounding box and ``R``
    its half-diagonal, the nearest edge lies within ``d0 + 2R`` of ``c``, where ``d0`` is the
    distance from ``c`` to its own nearest segment (or within ``within_m + R``). With
    ``within_m``, only edges that close count (edge -1, distance inf where none); ``allowed``
    (per edge) restricts the choice further.
    """
    index = net.segments
    n = len(g)
    edge = np.full(n, -1, dtype=np.intp)
    dist = np.full(n, np.inf)
    along = np.full(n, np.nan)
    point = shapely.get_type_id(g) == 0
    if point.any():
        seg, d, a = index.nearest(shapely.get_x(g[point]), shapely.get_y(g[point]),
                                  within_m=within_m, allowed=allowed)
        edge[point] = np.where(seg >= 0, index.edge(np.maximum(seg, 0)), -1)
        dist[point], along[point] = d, a
    other = np.flatnonzero(~point)
    if len(other):
        b = shapely.bounds(g[other])
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        r = np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2
        if within_m is None:
            _, d0, _ = index.nearest(cx, cy)
            q, e = index.near_edges(cx, cy, d0 + 2 * r)
        else:
            q, e = index.near_edges(cx, cy, within_m + r)
        if allowed is not None:
            q, e = q[allowed[e]], e[allowed[e]]
        lines = net.edge_lines(e)
        d = shapely.distance(g[other][q], lines)
        if within_m is not None:
            q, e, d, lines = q[d <= within_m], e[d <= within_m], d[d <= within_m], \
                lines[d <= within_m]
        order = np.lexsort((e, d, q))
        first = np.ones(len(order), dtype=bool)
        first[1:] = q[order][1:] != q[order][:-1]
        best = order[first]
        target = shapely.get_point(shapely.shortest_line(g[other][q[best]], lines[best]), 1)
        pos = other[q[best]]
        edge[pos] = e[best]
        dist[pos] = d[best]
        along[pos] = shapely.line_locate_point(lines[best], target)
    return edge, dist, along


def snap_component_nodes(net: WalkNetwork, snap: Snap) -> NDArray[np.float64]:
    """Nodes in the piece of network each snapped point is on (NaN where unsnapped)."""
    out = np.full(len(snap), np.nan)
    ok = snap.ok
    if ok.any():
        out[ok] = net.component_nodes[net.edge_u[snap.edge[ok]]]
    return out


# --------------------------------------------------------------------------------------------
# Community entry points
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entries:
    """Entry points of communities: a node and the straight-line metres from the community.

    Attributes
    ----------
    owner
        Community position (0 … n-1) each entry belongs to.
    node
        Node index in the graph the distances are read from.
    offset_m
        Metres to add to the node's distance.
    """

    owner: NDArray[np.intp]
    node: NDArray[np.intp]
    offset_m: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.owner)

    @staticmethod
    def concat(*entries: Entries) -> Entries:
        """Concatenate entry tables."""
        return Entries(np.concatenate([e.owner for e in entries]).astype(np.intp),
                       np.concatenate([e.node for e in entries]).astype(np.intp),
                       np.concatenate([e.offset_m for e in entries]))


def polygon_entries(net: WalkNetwork, geoms: ArrayLike, *, entry_buffer_m: float) -> Entries:
    """Network nodes inside each polygon or within ``entry_buffer_m`` of it.

    Only nodes with at least one edge count. Points and missing geometries get no node
    entries (points use their snap).

    Parameters
    ----------
    net
        The walk network.
    geoms
        Community geometries in the network's CRS.
    entry_buffer_m
        Nodes up to this many metres outside a polygon are entry points too.

    Returns
    -------
    Entries
        Node entries with ``offset_m`` = distance from the node to the polygon (0 inside).
    """
    g = np.asarray(geoms, dtype=object)
    poly = shapely.get_type_id(g) >= 3  # not a Point/LineString: polygons, multi-parts
    idx = np.flatnonzero(poly & ~shapely.is_empty(g))
    if len(idx) == 0 or net.n_nodes == 0:
        empty = np.empty(0, dtype=np.intp)
        return Entries(empty, empty, np.empty(0))
    # In slices of polygons, so that the candidate pairs in flight stay a few MB.
    parts = [_entries_of(net, g, idx[i:i + 1000], entry_buffer_m)
             for i in range(0, len(idx), 1000)]
    return Entries(np.concatenate([p[0] for p in parts]).astype(np.intp),
                   np.concatenate([p[1] for p in parts]).astype(np.intp),
                   np.concatenate([p[2] for p in parts]))


def _entries_of(net: WalkNetwork, g: NDArray[np.object_], idx: NDArray[np.intp],
                entry_buffer_m: float
                ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """:func:`polygon_entries` of the polygons ``g[idx]``: owner, node, offset, sorted."""
    # Candidate nodes: a square window around each bounding box (k-d tree, Chebyshev metric),
    # then the exact bounding box grown by the buffer, then the exact distance.
    b = shapely.bounds(g[idx])
    half = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2 + entry_buffer_m
    src, node = ball_pairs(net.node_kdtree, np.column_stack([(b[:, 0] + b[:, 2]) / 2,
                                                            (b[:, 1] + b[:, 3]) / 2]),
                           half * (1 + 1e-9) + 1e-6, p=np.inf)
    x, y = net.x[node], net.y[node]
    near = np.diff(net.csr.indptr)[node] > 0  # an isolated node is no way in
    near &= x >= b[src, 0] - entry_buffer_m
    near &= x <= b[src, 2] + entry_buffer_m
    near &= y >= b[src, 1] - entry_buffer_m
    near &= y <= b[src, 3] + entry_buffer_m
    src, node, x, y = src[near], node[near], x[near], y[near]
    owner = idx[src]
    offset = np.zeros(len(owner))
    out = ~shapely.contains_xy(g[owner], x, y)
    # Outside (or on the edge of) a polygon, the distance is to its boundary: exact in numpy.
    offset[out] = _boundary_distance(g[idx], src[out], x[out], y[out])
    keep = offset <= entry_buffer_m
    order = np.lexsort((node[keep], owner[keep]))
    return owner[keep][order], node[keep][order], offset[keep][order]


def _boundary_distance(polys: NDArray[np.object_], which: NDArray[np.intp],
                       x: NDArray[np.float64], y: NDArray[np.float64],
                       chunk: int = 200_000) -> NDArray[np.float64]:
    """Distance from each point to the boundary of ``polys[which]`` (point-to-segment)."""
    out = np.full(len(which), np.inf)
    if len(which) == 0:
        return out
    parts, pidx = shapely.get_parts(shapely.boundary(polys), return_index=True)
    coords, w = shapely.get_coordinates(parts, return_index=True)
    same = w[1:] == w[:-1]
    seg = np.column_stack([coords[:-1][same], coords[1:][same]])
    seg_poly = pidx[w[:-1][same]]
    start = np.searchsorted(seg_poly, np.arange(len(polys)))
    count = np.bincount(seg_poly, minlength=len(polys))
    c = count[which]
    # pairs in chunks so that (pairs × boundary segments) stays bounded
    cum = np.cumsum(c)
    lo = 0
    while lo < len(which):
        base = int(cum[lo - 1]) if lo else 0
        hi = min(max(int(np.searchsorted(cum, base + chunk, side="right")), lo + 1), len(which))
        cc = c[lo:hi]
        first = np.cumsum(cc) - cc
        rep = np.repeat(np.arange(lo, hi), cc)
        sidx = (np.repeat(start[which[lo:hi]] - first, cc) + np.arange(int(cc.sum())))
        d, _ = point_segment(x[rep], y[rep], seg[sidx])
        has = cc > 0
        if has.any():
            out[lo:hi][has] = np.minimum.reduceat(d, first[has])
        lo = hi
    return out


def crossing_snaps(net: WalkNetwork, geoms: ArrayLike, *, min_component_nodes: int = 1
                   ) -> tuple[NDArray[np.intp], Snap]:
    """Where edges pass through polygons: the first and last point of each edge inside each.

    Along an edge the distance to anywhere is ``min(a + D(u), L - a + D(v))`` for position
    ``a``, so over the part of the edge inside a polygon the best entry is one of that part's
    two ends: these two points (snap distance 0) stand for the whole crossing.

    Parameters
    ----------
    net
        The walk network.
    geoms
        Polygons in the network's CRS.

    min_component_nodes
        Edges on islands (pieces with fewer nodes) are not entries.

    Returns
    -------
    tuple
        Polygon position of each snap point, and the snap points.
    """
    g = np.asarray(geoms, dtype=object)
    empty = (np.empty(0, dtype=np.intp),
             Snap(np.empty(0, dtype=np.intp), np.empty(0), np.empty(0)))
    if len(g) == 0 or len(net.edge_u) == 0:
        return empty
    valid = np.flatnonzero(~(shapely.is_missing(g) | shapely.is_empty(g)))
    b = shapely.bounds(g[valid])
    poly, edge = net.segments.near_edges((b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                                         np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2)
    poly = valid[poly]
    if min_component_nodes > 1:
        main = ~net.island_nodes(min_component_nodes)[net.edge_u[edge]]
        poly, edge = poly[main], edge[main]
    lines = net.edge_lines(edge)
    hit = shapely.intersects(lines, g[poly])
    poly, edge, lines = poly[hit], edge[hit], lines[hit]
    if len(poly) == 0:
        return empty
    coords, which = shapely.get_coordinates(shapely.intersection(lines, g[poly]),
                                            return_index=True)
    frac = shapely.line_locate_point(lines[which], shapely.points(coords), normalized=True)
    lo = np.full(len(poly), np.inf)
    hi = np.full(len(poly), -np.inf)
    np.minimum.at(lo, which, frac)
    np.maximum.at(hi, which, frac)
    ok = np.isfinite(lo)
    two = ok & (hi > lo)  # a touch is one point, not two
    e = np.concatenate([edge[ok], edge[two]]).astype(np.intp)
    along = np.clip(np.concatenate([lo[ok], hi[two]]), 0.0, 1.0) * net.edge_len[e]
    owner = np.concatenate([poly[ok], poly[two]]).astype(np.intp)
    return owner, Snap(e, along, np.zeros(len(e)))


@dataclass(frozen=True)
class Access:
    """How communities reach the network, before the snap points are attached.

    Attributes
    ----------
    nodes
        Entries at network nodes inside or near polygons.
    snap_owner
        Community of each snap point.
    snap
        Snap points still to attach (see :meth:`entries`): where streets cross polygons that
        have no node entry, and the nearest street point of points and of polygons neither
        holding a node nor crossed by a street.
    """

    nodes: Entries
    snap_owner: NDArray[np.intp]
    snap: Snap

    def entries(self, point_node: NDArray[np.intp]) -> Entries:
        """All entries, given the graph node of each snap point (-1 where unsnapped)."""
        on = point_node >= 0
        return Entries.concat(self.nodes, Entries(self.snap_owner[on], point_node[on],
                                                  np.zeros(int(on.sum()))))

    def access_m(self, n_owners: int) -> NDArray[np.float64]:
        """Straight metres from each community to its nearest entry (inf if none found)."""
        out = np.full(n_owners, np.inf)
        np.minimum.at(out, self.nodes.owner, self.nodes.offset_m)
        np.minimum.at(out, self.snap_owner, self.snap.offset_m)
        return out


def community_access(net: WalkNetwork, geoms: ArrayLike, *, entry_buffer_m: float,
                     max_snap_m: float, min_component_nodes: int = 1) -> Access:
    """Entry points of communities (polygons or points).

    A polygon is entered through every network node inside it or within ``entry_buffer_m``
    (plus the straight walk to the node). A polygon with no such node but crossed by streets is
    entered where they pass through it. Points, and polygons with neither, use their nearest
    street point within ``max_snap_m`` (plus the snap distance); beyond it they have no entry.
    Islands (pieces of fewer than ``min_component_nodes`` nodes, see
    :meth:`WalkNetwork.island_nodes`) are passed over at each step: a community whose only
    nodes are an unconnected footway loop inside it is entered from the street it faces, and
    keeps the island only when no other street lies within ``max_snap_m``.

    Parameters
    ----------
    net
        The walk network.
    geoms
        Community geometries in the network's CRS.
    entry_buffer_m
        Metres around a polygon in which nodes are entry points.
    max_snap_m
        Maximum snap distance in metres.
    min_component_nodes
        Pieces of the network with fewer nodes are islands; 1 turns this off.

    Returns
    -------
    Access
        Node entries and the snap points to attach to a :class:`Router`. Kept on the network
        for the same geometries and options (the last few), so a second analysis of the same
        communities does not snap them again.
    """
    g = np.asarray(geoms, dtype=object)
    key = (_geometry_digest(g), float(entry_buffer_m), float(max_snap_m),
           int(min_component_nodes))
    cache = net._access_cache
    if key not in cache:
        if len(cache) >= 2:
            cache.pop(next(iter(cache)))
        cache[key] = _community_access(net, g, entry_buffer_m=entry_buffer_m,
                                       max_snap_m=max_snap_m,
                                       min_component_nodes=min_component_nodes)
    return cache[key]


def _geometry_digest(g: NDArray[np.object_]) -> bytes:
    """A digest of the geometries' WKB (exact coordinates), missing ones included."""
    h = hashlib.blake2b(digest_size=16)
    for w in shapely.to_wkb(g, hex=False):
        h.update(b"-" if w is None else len(w).to_bytes(8, "little") + w)
    return h.digest()


def _community_access(net: WalkNetwork, g: NDArray[np.object_], *, entry_buffer_m: float,
                      max_snap_m: float, min_component_nodes: int) -> Access:
    """:func:`community_access` without the cache."""
    n = len(g)
    nodes = polygon_entries(net, g, entry_buffer_m=entry_buffer_m)
    island = (net.island_nodes(min_component_nodes) if min_component_nodes > 1
              else np.zeros(net.n_nodes, dtype=bool))
    if island.any() and len(nodes):
        main = ~island[nodes.node]
        nodes = Entries(nodes.owner[main], nodes.node[main], nodes.offset_m[main])
    rest = np.flatnonzero(np.bincount(nodes.owner, minlength=n) == 0)
    cross_owner, cross = crossing_snaps(net, g[rest], min_component_nodes=min_component_nodes)
    cross_owner = rest[cross_owner]
    rest = rest[~np.isin(rest, cross_owner)]
    near = snap_to_edges(net, g[rest], max_snap_m=max_snap_m,
                         min_component_nodes=min_component_nodes)
    if not island.any():
        return Access(nodes, np.concatenate([cross_owner, rest]).astype(np.intp),
                      Snap.concat(cross, near))
    # Communities with no way in but through an island: entered as if there were no islands
    # (their nodes, then the streets crossing them, then their snap).
    on_main = near.ok.copy()
    on_main[on_main] = ~island[net.edge_u[near.edge[on_main]]]
    stranded = rest[~on_main]
    plain = _community_access(net, g[stranded], entry_buffer_m=entry_buffer_m,
                              max_snap_m=max_snap_m, min_component_nodes=1)
    nodes = Entries.concat(nodes, Entries(stranded[plain.nodes.owner], plain.nodes.node,
                                          plain.nodes.offset_m))
    kept = Snap(near.edge[on_main], near.along_m[on_main], near.offset_m[on_main])
    owner = np.concatenate([cross_owner, rest[on_main], stranded[plain.snap_owner]])
    return Access(nodes, owner.astype(np.intp), Snap.concat(cross, kept, plain.snap))


def min_over_entries(dist: NDArray[np.float64], entries: Entries, n_owners: int
                     ) -> NDArray[np.float64]:
    """Per owner, the minimum of ``dist[node] + offset_m`` over its entries (inf if none)."""
    out = np.full(n_owners, np.inf)
    if len(entries):
        np.minimum.at(out, entries.owner, dist[entries.node] + entries.offset_m)
    return out


# --------------------------------------------------------------------------------------------
# Shortest paths
# --------------------------------------------------------------------------------------------


class Router:
    """The network with snapped points attached, ready for multi-source searches.

    Built once per set of points (facilities and community access points together). Snapped
    points at the same place on an edge share a virtual node there; a point off the edge gets its
    own pendant node ``point_node[i]`` joined to it by ``offset_m``, a point on the edge
    (``offset_m`` 0, e.g. where a street crosses a polygon) is its virtual node. Searches start
    from, and distances are read at, ``point_node``.

    The network's matrix is extended, not rebuilt: the new entries of the end nodes of snapped
    edges are inserted after their rows, and the rows of the new nodes appended.

    Parameters
    ----------
    net
        The walk network.
    snap
        Snapped points.
    """

    def __init__(self, net: WalkNetwork, snap: Snap) -> None:
        self.net = net
        self.snap = snap
        n = net.n_nodes
        ok = np.flatnonzero(snap.ok)
        self.point_node = np.full(len(snap), -1, dtype=np.intp)
        self._virtual = (np.empty(0, dtype=np.intp), np.empty(0))
        self._pendant_of = np.empty(0, dtype=np.intp)
        if len(ok) == 0:
            self.n_total = n
            self.csr = net.csr
            self._new_comp = np.empty(0, dtype=np.int32)
            return
        e, a, off = snap.edge[ok], snap.along_m[ok], snap.offset_m[ok]
        # Virtual nodes: one per distinct (edge, position), chained in order along each edge.
        order = np.lexsort((a, e))
        e_s, a_s = e[order], a[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (e_s[1:] != e_s[:-1]) | (a_s[1:] != a_s[:-1])
        vid = np.empty(len(order), dtype=np.intp)
        vid[order] = np.cumsum(new) - 1
        e_v, a_v = e_s[new], a_s[new]
        k = len(e_v)
        virtual = n + np.arange(k)
        # Pendant nodes: one per point off the edge. Not shared even between points at the same
        # place: the walk between two such points goes out to the street and back.
        off_pt = np.flatnonzero(off > 0)
        p_vid, p_off = vid[off_pt], off[off_pt]
        pendant = n + k + np.arange(len(off_pt))
        node = n + vid
        node[off_pt] = pendant
        self._virtual = (e_v, a_v)
        self._pendant_of = p_vid
        self.point_node[ok] = node
        self.n_total = n + k + len(p_vid)
        first = np.ones(k, dtype=bool)
        first[1:] = e_v[1:] != e_v[:-1]
        last = np.ones(k, dtype=bool)
        last[:-1] = e_v[1:] != e_v[:-1]
        prev_node = np.where(first, net.edge_u[e_v], np.roll(virtual, 1))
        prev_along = np.where(first, 0.0, np.roll(a_v, 1))
        lo, hi, w = _undirected_min(
            np.concatenate([prev_node, virtual[last], virtual[p_vid]]),
            np.concatenate([virtual, net.edge_v[e_v[last]], pendant]),
            np.concatenate([np.maximum(a_v - prev_along, 0.0),
                            np.maximum(net.edge_len[e_v[last]] - a_v[last], 0.0), p_off]),
            self.n_total)
        self.csr = _extend_csr(net.csr, np.concatenate([lo, hi]), np.concatenate([hi, lo]),
                               np.concatenate([w, w]), self.n_total)
        # Components: a virtual node is in its edge's piece, a pendant in its virtual node's.
        comp_v = net.component[net.edge_u[e_v]]
        self._new_comp = np.concatenate([comp_v, comp_v[p_vid]]).astype(np.int32)

    def node_xy(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Coordinates of every search-graph node (length ``n_total``).

        Network nodes, then virtual nodes where points attach to their edges; a pendant node is
        placed at its virtual node (its edge is as long as the snap offset, so straight-line
        distances from these positions never exceed network distances).
        """
        net = self.net
        e_v, a_v = self._virtual
        x = np.empty(self.n_total)
        y = np.empty(self.n_total)
        x[:net.n_nodes], y[:net.n_nodes] = net.x, net.y
        k = len(e_v)
        if k:
            length = net.edge_len[e_v]
            frac = np.divide(a_v, length, out=np.zeros(k), where=length > 0)
            at = shapely.line_interpolate_point(net.edge_geom[e_v], frac, normalized=True)
            vx, vy = shapely.get_x(at), shapely.get_y(at)
            x[net.n_nodes:net.n_nodes + k], y[net.n_nodes:net.n_nodes + k] = vx, vy
            x[net.n_nodes + k:], y[net.n_nodes + k:] = vx[self._pendant_of], vy[self._pendant_of]
        return x, y

    def distances(self, sources: ArrayLike, *, limit_m: float = np.inf) -> NDArray[np.float64]:
        """Distance (m) from every graph node to the nearest source: one Dijkstra search.

        Parameters
        ----------
        sources
            Graph node indices (e.g. ``point_node[facility_positions]``); negatives ignored.
        limit_m
            Stop the search at this distance; farther nodes get inf.

        Returns
        -------
        numpy.ndarray
            Length ``n_total``; inf where no source is reachable within ``limit_m``.
        """
        src = np.unique(np.asarray(sources, dtype=np.intp))
        src = src[src >= 0]
        if len(src) == 0:
            return np.full(self.n_total, np.inf)
        out = dijkstra(self.csr, directed=True, indices=src, min_only=True, limit=limit_m)
        return np.asarray(out, dtype=np.float64)

    def distance_matrix(self, sources: ArrayLike, *, limit_m: float) -> NDArray[np.float64]:
        """Distances from each source separately (rows), for isochrones of few facilities."""
        src = np.asarray(sources, dtype=np.intp)
        if len(src) == 0:
            return np.empty((0, self.n_total))
        out = dijkstra(self.csr, directed=True, indices=src, limit=limit_m)
        return np.asarray(out, dtype=np.float64).reshape(len(src), self.n_total)

    @cached_property
    def component(self) -> NDArray[np.int32]:
        """Connected-component label of every graph node (from the network's, not recomputed)."""
        return np.concatenate([self.net.component, self._new_comp]).astype(np.int32)


def _extend_csr(base: sp.csr_array, rows: NDArray[np.intp], cols: NDArray[np.intp],
                w: NDArray[np.float64], n_total: int) -> sp.csr_array:
    """``base`` grown to ``n_total`` nodes with new entries, each touching a new node.

    No entry collides with the base (each has a new node at one end), so the base's arrays are
    copied once around the new entries, which go at the end of their rows: no sort of the
    whole matrix. Zero-length entries stay explicit (csgraph reads them as edges).
    """
    n = base.shape[0]
    order = np.lexsort((cols, rows))
    rows, cols, w = rows[order], cols[order], w[order]
    in_base = rows < n
    at = base.indptr[rows[in_base] + 1]  # end of the row; equal spots keep their order
    idx_dtype = np.int64 if n_total >= np.iinfo(np.int32).max else base.indices.dtype
    nnz = base.nnz
    total = nnz + len(rows)
    # Filled in place (one copy of the base arrays, no np.insert + concatenate temporaries).
    indices = np.empty(total, dtype=idx_dtype)
    data = np.empty(total, dtype=np.float64)
    head = nnz + len(at)
    new_pos = at + np.arange(len(at))
    keep = np.ones(head, dtype=bool)
    keep[new_pos] = False
    indices[:head][keep] = base.indices
    data[:head][keep] = base.data
    indices[new_pos] = cols[in_base]
    data[new_pos] = w[in_base]
    indices[head:] = cols[~in_base]
    data[head:] = w[~in_base]
    count = np.zeros(n_total, dtype=np.int64)
    count[:n] = np.diff(base.indptr)
    count += np.bincount(rows, minlength=n_total)
    indptr = np.concatenate([[0], np.cumsum(count)]).astype(idx_dtype)
    return sp.csr_array((data, indices, indptr), shape=(n_total, n_total))
