"""How communities enter the walk network: node entries, street crossings and snaps.

A polygon is entered through the network nodes inside it or near it, else where streets cross
it, else at its nearest street point; a point at its nearest street point. The result of
:func:`community_access` is kept on the network, so a second analysis of the same communities
does not snap them again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely

from urbanunits._segments import ball_pairs, point_segment
from urbanunits.network.graph import WalkNetwork
from urbanunits.network.snap import Snap, crossing_snaps, snap_to_edges

if TYPE_CHECKING:

    from numpy.typing import ArrayLike, NDArray

__all__ = ["Access", "Entries", "community_access", "min_over_entries", "polygon_entries"]

logger = logging.getLogger(__name__)


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
    near = net.degree[node] > 0  # an isolated node is no way in
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
