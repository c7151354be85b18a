"""The search graph: the walk network with snapped points attached, and its Dijkstra searches.

Built once per set of snapped points by extending the network's matrix (no rebuild, no sort of
the whole matrix); one multi-source search per facility kind gives every node's distance to the
nearest facility of that kind.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import dijkstra

from urbanunits.network.graph import WalkNetwork, _undirected_min
from urbanunits.network.snap import Snap

if TYPE_CHECKING:

    from numpy.typing import ArrayLike, NDArray

__all__ = ["Router"]

logger = logging.getLogger(__name__)


class Router:
    """The network with snapped points attached, ready for multi-source searches.

    Built once per set of points (facilities and community access points together). Snapped
    points at the same place inside an edge share a virtual node there, and a point snapped to
    an end of its edge uses that network node; a point off the edge gets its own pendant node
    ``point_node[i]`` joined to that node by ``offset_m``, a point on the edge (``offset_m`` 0,
    e.g. where a street crosses a polygon) is the node itself. Searches start from, and
    distances are read at, ``point_node``.

    Node ids are the network's node positions, then the new nodes. Internally the searches run
    on the network's :attr:`~WalkNetwork.search_csr` (nodes in Hilbert order), extended, not
    rebuilt: the new entries of the nodes points attach to are inserted after their rows, and
    the rows of the new nodes appended.

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
        self._pendant_at = np.empty(0, dtype=np.intp)
        self.n_total = n
        self._csr = net.search_csr
        self._new_comp = np.empty(0, dtype=np.int32)
        if len(ok) == 0:
            return
        e, a, off = snap.edge[ok], snap.along_m[ok], snap.offset_m[ok]
        # At an end of its edge a point attaches to that node: no virtual node, no new entries
        # when it is on the street too.
        at_u = a <= 0.0
        at_v = ~at_u & (a >= net.edge_len[e])
        inner = np.flatnonzero(~(at_u | at_v))
        node = np.where(at_u, net.edge_u[e], net.edge_v[e]).astype(np.intp)
        # Virtual nodes: one per distinct (edge, position) inside an edge, chained in order
        # along it.
        e_in, a_in = e[inner], a[inner]
        order = np.lexsort((a_in, e_in))
        e_s, a_s = e_in[order], a_in[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (e_s[1:] != e_s[:-1]) | (a_s[1:] != a_s[:-1])
        vid = np.empty(len(order), dtype=np.intp)
        vid[order] = np.cumsum(new) - 1
        e_v, a_v = e_s[new], a_s[new]
        k = len(e_v)
        virtual = n + np.arange(k)
        node[inner] = n + vid
        # Pendant nodes: one per point off the edge. Not shared even between points at the same
        # place: the walk between two such points goes out to the street and back.
        off_pt = np.flatnonzero(off > 0)
        p_at, p_off = node[off_pt], off[off_pt]
        pendant = n + k + np.arange(len(off_pt))
        node[off_pt] = pendant
        self._virtual = (e_v, a_v)
        self._pendant_at = p_at
        self.point_node[ok] = node
        self.n_total = n + k + len(p_at)
        if self.n_total == n:
            return
        first = np.ones(k, dtype=bool)
        first[1:] = e_v[1:] != e_v[:-1]
        last = np.ones(k, dtype=bool)
        last[:-1] = e_v[1:] != e_v[:-1]
        prev_node = np.where(first, net.edge_u[e_v], np.roll(virtual, 1))
        prev_along = np.where(first, 0.0, np.roll(a_v, 1))
        lo, hi, w = _undirected_min(
            self.to_search(np.concatenate([prev_node, virtual[last], p_at])),
            self.to_search(np.concatenate([virtual, net.edge_v[e_v[last]], pendant])),
            np.concatenate([np.maximum(a_v - prev_along, 0.0),
                            np.maximum(net.edge_len[e_v[last]] - a_v[last], 0.0), p_off]),
            self.n_total)
        self._csr = _extend_csr(net.search_csr, np.concatenate([lo, hi]),
                                np.concatenate([hi, lo]), np.concatenate([w, w]), self.n_total)
        # Components: a virtual node is in its edge's piece, a pendant in its node's.
        comp_v = net.component[net.edge_u[e_v]]
        comp = np.concatenate([net.component, comp_v])
        self._new_comp = np.concatenate([comp_v, comp[p_at]]).astype(np.int32)

    def to_search(self, nodes: ArrayLike) -> NDArray[np.intp]:
        """Graph node ids in the order the searches use (negatives stay negative)."""
        nodes = np.asarray(nodes, dtype=np.intp)
        n = self.net.n_nodes
        base = (nodes >= 0) & (nodes < n)
        return np.where(base, self.net.rank[np.where(base, nodes, 0)], nodes)

    @cached_property
    def _from_search(self) -> NDArray[np.intp]:
        """For each graph node id, its place in the search order."""
        n = self.net.n_nodes
        return np.concatenate([self.net.rank, np.arange(n, self.n_total)]).astype(np.intp)

    @cached_property
    def csr(self) -> sp.csr_array:
        """The search graph's matrix by graph node id (built on first use)."""
        n = self.net.n_nodes
        if self.n_total == n:
            return self.net.csr
        m = self._csr
        back = np.concatenate([self.net.order, np.arange(n, self.n_total)])
        out = sp.csr_array((m.data, back[m.indices].astype(m.indices.dtype), m.indptr),
                           shape=m.shape)[self._from_search]
        out.sort_indices()
        return sp.csr_array(out)

    def node_xy(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Coordinates of every search-graph node (length ``n_total``).

        Network nodes, then virtual nodes where points attach to their edges; a pendant node is
        placed at the node it hangs from (its edge is as long as the snap offset, so
        straight-line distances from these positions never exceed network distances).
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
            at = shapely.line_interpolate_point(net.edge_lines(e_v), frac, normalized=True)
            x[net.n_nodes:net.n_nodes + k] = shapely.get_x(at)
            y[net.n_nodes:net.n_nodes + k] = shapely.get_y(at)
        x[net.n_nodes + k:], y[net.n_nodes + k:] = x[self._pendant_at], y[self._pendant_at]
        return x, y

    def search_distances(self, sources: ArrayLike, *, limit_m: float = np.inf
                         ) -> NDArray[np.float64]:
        """:meth:`distances` with sources and result in the search order (:meth:`to_search`)."""
        src = np.unique(np.asarray(sources, dtype=np.intp))
        src = src[src >= 0]
        if len(src) == 0:
            return np.full(self.n_total, np.inf)
        out = dijkstra(self._csr, directed=True, indices=src, min_only=True, limit=limit_m)
        return np.asarray(out, dtype=np.float64)

    def distances(self, sources: ArrayLike, *, limit_m: float = np.inf) -> NDArray[np.float64]:
        """Distance (m) from every graph node to the nearest source: one Dijkstra search.

        Parameters
        ----------
        sources
            Graph node ids (e.g. ``point_node[facility_positions]``); negatives ignored.
        limit_m
            Stop the search at this distance; farther nodes get inf.

        Returns
        -------
        numpy.ndarray
            Length ``n_total`` by graph node id; inf where no source is reachable within
            ``limit_m``.
        """
        d = self.search_distances(self.to_search(sources), limit_m=limit_m)
        return d[self._from_search]

    def distance_matrix(self, sources: ArrayLike, *, limit_m: float) -> NDArray[np.float64]:
        """Distances from each source separately (rows), for isochrones of few facilities."""
        src = self.to_search(sources)
        if len(src) == 0:
            return np.empty((0, self.n_total))
        out = dijkstra(self._csr, directed=True, indices=src, limit=limit_m)
        out = np.asarray(out, dtype=np.float64).reshape(len(src), self.n_total)
        return out[:, self._from_search]

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
