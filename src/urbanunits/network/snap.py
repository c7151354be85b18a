"""Snapping points and polygons to the nearest point of the nearest walk-network edge.

Exact: vectorised point-to-segment projection over a k-d tree of the edges' segments
(``_segments.py``); shapely only for polygons, on their few candidate edges. Islands (small
unconnected pieces) are passed over when another edge lies within the snap limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely

from urbanunits.network.graph import WalkNetwork

if TYPE_CHECKING:

    from numpy.typing import ArrayLike, NDArray

__all__ = ["Snap", "crossing_snaps", "snap_component_nodes", "snap_to_edges"]

logger = logging.getLogger(__name__)


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
