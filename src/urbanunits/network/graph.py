"""The walk network as a symmetric sparse matrix, with node coordinates and an edge table.

Built from arrays (node coordinates, edge ends and lengths: what the OSM ingest produces) or
converted from an osmnx graph. The matrix holds the minimum length over parallel edges and both
directions; connected components are computed once per network.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyproj
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from urbanunits._segments import SegmentIndex, edge_segments
from urbanunits.errors import CRSError, DataError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import networkx as nx
    from numpy.typing import ArrayLike, NDArray

    from urbanunits.network.entries import Access

__all__ = ["WalkNetwork"]

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
        # Searches run on the nodes renumbered along a Hilbert curve: nodes near each other on
        # the ground sit near each other in memory, so a search front touches few cache lines.
        # ``order[i]`` is the node at search position ``i``, ``rank`` its inverse; everything
        # public stays in the caller's node positions.
        self.order, self.rank = _search_order(self.x, self.y, pos_t)
        self.search_csr = _symmetric_csr(self.rank[self.edge_u], self.rank[self.edge_v],
                                         self.edge_len, n)
        self._segments: SegmentIndex | None = None
        self._segments_job: Future[SegmentIndex] | None = None
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

    @cached_property
    def csr(self) -> sp.csr_array:
        """The symmetric matrix in the caller's node positions (built on first use).

        The engine searches :attr:`search_csr` (the same graph, nodes in :attr:`order`).
        """
        return _symmetric_csr(self.edge_u, self.edge_v, self.edge_len, self.n_nodes)

    @cached_property
    def degree(self) -> NDArray[np.intp]:
        """Number of distinct neighbours of every node (0: isolated)."""
        return np.diff(self.search_csr.indptr)[self.rank]

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

    @property
    def segments(self) -> SegmentIndex:
        """Spatial index of the edges' straight segments (snapping targets), built once."""
        if self._segments is None:
            job, self._segments_job = self._segments_job, None
            if job is None:
                self._segments = edge_segments(self.x, self.y, self.edge_u, self.edge_v,
                                               self._geometry)
            else:
                self._segments = job.result()
                _trim_heap()
        return self._segments

    def wait_background(self) -> None:
        """Wait for a background build started by :meth:`prefetch_segments`, if any.

        Call before forking: a thread running then would leave the locks it holds held in the
        child.
        """
        if self._segments_job is not None:
            _ = self.segments

    def prefetch_segments(self) -> None:
        """Start building :attr:`segments` in a background thread, if not built yet.

        Most of the build (the k-d tree, numpy on whole arrays) runs without the GIL, so it
        overlaps whatever the caller does next on a machine with a core to spare;
        :attr:`segments` waits for it.
        """
        if self._segments is not None or self._segments_job is not None:
            return
        pool = ThreadPoolExecutor(1, thread_name_prefix="walk-segments")
        self._segments_job = pool.submit(edge_segments, self.x, self.y, self.edge_u,
                                         self.edge_v, self._geometry)
        pool.shutdown(wait=False)

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
        _, labels = connected_components(self.search_csr, directed=False)
        return np.asarray(labels, dtype=np.int32)[self.rank]

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


def _trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc only; elsewhere nothing).

    A thread allocates from a heap of its own, whose freed blocks the main thread never
    reuses: after the background build its temporaries would stay resident for the whole run.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            # CDLL(None) is the process's own symbols on POSIX; Windows raises TypeError
            _MALLOC_TRIM = (ctypes.CDLL(None).malloc_trim if sys.platform.startswith("linux")
                            else False)
        except (AttributeError, OSError, TypeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


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


def _hilbert_tables(bits: int) -> tuple[NDArray[np.uint32], NDArray[np.uint8]]:
    """Hilbert-curve steps over ``bits`` bits of x and y at once, for each of the 4 states.

    The state is how the quadrant being refined is turned: (x, y swapped, both complemented).
    Indexed by ``state << 2 bits | x chunk << bits | y chunk``: the curve's 2·``bits`` digits and
    the next state.
    """
    size = 1 << bits
    digits = np.zeros(4 * size * size, dtype=np.uint32)
    nxt = np.zeros(4 * size * size, dtype=np.uint8)
    for state in range(4):
        for xc in range(size):
            for yc in range(size):
                swap, comp, d = state >> 1, state & 1, 0
                for b in range(bits - 1, -1, -1):
                    rx, ry = ((xc >> b) & 1) ^ comp, ((yc >> b) & 1) ^ comp
                    if swap:
                        rx, ry = ry, rx
                    d = (d << 2) | ((3 * rx) ^ ry)
                    if ry == 0:  # the lower-left/right quadrants are turned
                        comp ^= rx
                        swap ^= 1
                i = (state << (2 * bits)) | (xc << bits) | yc
                digits[i], nxt[i] = d, (swap << 1) | comp
    return digits, nxt


_HILBERT_BITS = 4
_HILBERT = _hilbert_tables(_HILBERT_BITS)


def hilbert_key(x: NDArray[np.float64], y: NDArray[np.float64], *, bits: int = 16
                ) -> NDArray[np.uint32]:
    """Position along a Hilbert curve over the points' bounding square.

    ``bits`` per axis: a multiple of 4, at most 16. Points close in the key are close on the
    ground; missing coordinates count as the corner.
    """
    if bits % _HILBERT_BITS or not 0 < bits <= 16:
        raise ValueError("bits must be 4, 8, 12 or 16")
    n = len(x)
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    y = np.nan_to_num(np.asarray(y, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x0, y0 = float(x.min()), float(y.min())
    span = max(float(x.max()) - x0, float(y.max()) - y0)
    scale = ((1 << bits) - 1) / span if span > 0 else 0.0
    xi = ((x - x0) * scale).astype(np.uint32)
    yi = ((y - y0) * scale).astype(np.uint32)
    digits, nxt = _HILBERT
    k = _HILBERT_BITS
    mask = np.uint32((1 << k) - 1)
    key = np.zeros(n, dtype=np.uint32)
    state = np.zeros(n, dtype=np.uint32)
    for shift in range(bits - k, -1, -k):
        sh = np.uint32(shift)
        idx = ((state << np.uint32(2 * k)) | ((xi >> sh) & mask) << np.uint32(k)
               | ((yi >> sh) & mask))
        key = (key << np.uint32(2 * k)) | digits[idx]
        state = nxt[idx].astype(np.uint32)
    return key


def _search_order(x: NDArray[np.float64], y: NDArray[np.float64], pos_t: type
                  ) -> tuple[NDArray[np.integer], NDArray[np.integer]]:
    """Nodes sorted along a Hilbert curve (``order``) and each node's place in it (``rank``)."""
    n = len(x)
    key = hilbert_key(x, y)
    # Two stable passes over 16-bit halves (numpy radix-sorts 16-bit keys): twice as fast
    # as one sort of the 32-bit keys, and ties keep the input order.
    low = np.argsort((key & np.uint32(0xFFFF)).astype(np.uint16), kind="stable")
    high = np.argsort((key >> np.uint32(16)).astype(np.uint16)[low], kind="stable")
    order: NDArray[np.integer] = low[high].astype(pos_t)
    del low, high
    rank: NDArray[np.integer] = np.empty(n, dtype=pos_t)
    rank[order] = np.arange(n, dtype=pos_t)
    return order, rank


def _undirected_min(u: NDArray[np.integer], v: NDArray[np.integer], w: NDArray[np.float64],
                    n: int
                    ) -> tuple[NDArray[np.integer], NDArray[np.integer], NDArray[np.float64]]:
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
    # 32-bit indices where they fit: csgraph works on int32 and would convert on every search.
    idx = np.int32 if n < np.iinfo(np.int32).max else np.int64
    lo: NDArray[np.integer] = np.minimum(u, v).astype(idx)
    hi: NDArray[np.integer] = np.maximum(u, v).astype(idx)
    off = lo != hi
    if not off.all():
        lo, hi, w = lo[off], hi[off], w[off]
    m = len(lo)
    # Most networks have no parallel edges: scipy's conversion (linear, in C) then gives the
    # matrix directly. The entries carry edge numbers; had it summed any (parallels), there
    # are fewer entries than twice the edges, and the pairs are sorted for their minimum.
    csr = sp.csr_array((np.tile(np.arange(1, m + 1, dtype=np.float64), 2),
                        (np.concatenate([hi, lo]), np.concatenate([lo, hi]))), shape=(n, n))
    if csr.nnz == 2 * m:
        csr.data = w[csr.data.astype(np.intp) - 1]
    else:
        lo, hi, w = _undirected_min(lo, hi, w, n)
        # Pairs come sorted by (lo, hi): listing the (hi, lo) entries first leaves every row's
        # columns sorted, so scipy's conversion finds the matrix canonical and sorts nothing.
        csr = sp.csr_array((np.concatenate([w, w]), (np.concatenate([hi, lo]).astype(idx),
                                                     np.concatenate([lo, hi]).astype(idx))),
                           shape=(n, n))
    if csr.indices.dtype != idx and 2 * len(w) < np.iinfo(np.int32).max:
        csr.indices = csr.indices.astype(idx)
        csr.indptr = csr.indptr.astype(idx)
    return csr
