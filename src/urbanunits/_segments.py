"""Vectorised geometry kernels for the walk network: a segment index and node windows.

Snapping used to build a shapely ``LineString`` per edge and an ``STRtree`` over them: at city
scale those objects were a third of a life-circle run and most of its memory. Here the edges are
plain coordinate arrays cut into straight segments, and a :class:`scipy.spatial.cKDTree` holds
points sampled along them (every point of a segment lies within ``half_m`` of one of its
samples). The nearest segment to a point is found exactly in two steps:

1. the nearest *sample* gives a segment, whose exact distance ``u0`` bounds the answer;
2. the nearest segment lies within ``u0``, so one of its samples lies within ``u0 + half_m``:
   every sample in that ball is a candidate, and exact point-to-segment distances decide.

Shapely is used only on the few candidate edges of polygons (see ``network/snap.py``).
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
import shapely
from scipy.spatial import cKDTree

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["SegmentIndex", "ball_pairs", "edge_segments", "point_segment"]


def edge_segments(x: NDArray[np.float64], y: NDArray[np.float64], u: NDArray[np.intp],
                  v: NDArray[np.intp], geometry: NDArray[np.object_] | None) -> SegmentIndex:
    """Cut edges into straight segments and index them.

    Edges without a geometry (``None``) are the segment between their end nodes and cost no
    memory of their own (they point at the node table); curved edges contribute one segment
    per pair of consecutive vertices (of each part).
    """
    m = len(u)
    curved = (np.zeros(m, dtype=bool) if geometry is None
              else ~shapely.is_missing(geometry))
    if not curved.any():
        return SegmentIndex(x, y, u, v)
    assert geometry is not None
    straight = np.flatnonzero(~curved)
    cidx = np.flatnonzero(curved)
    parts, pidx = shapely.get_parts(geometry[cidx], return_index=True)
    coords, w = shapely.get_coordinates(parts, return_index=True)
    same = np.flatnonzero(w[1:] == w[:-1])
    n = len(x)
    cedge = cidx[pidx[w[same]]]
    clen = np.hypot(coords[same + 1, 0] - coords[same, 0], coords[same + 1, 1] - coords[same, 1])
    # metres along the edge at each segment's start: a cumulative sum restarted per edge
    csum = np.cumsum(clen)
    first = np.ones(len(cedge), dtype=bool)
    first[1:] = cedge[1:] != cedge[:-1]
    base = np.maximum.accumulate(np.where(first, np.arange(len(cedge)), 0))
    cstart = csum - clen - (csum - clen)[base]
    vx = np.concatenate([x, coords[:, 0]])
    vy = np.concatenate([y, coords[:, 1]])
    sa = np.concatenate([u[straight], n + same]).astype(np.intp)
    sb = np.concatenate([v[straight], n + same + 1]).astype(np.intp)
    edge = np.concatenate([straight, cedge]).astype(np.intp)
    start = np.concatenate([np.zeros(len(straight)), cstart])
    return SegmentIndex(vx, vy, sa, sb, edge=edge, start_m=start, n_edges=m)


def point_segment(px: NDArray[np.float64], py: NDArray[np.float64], seg: NDArray[np.float64]
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Distance from each point to its segment and the position of the foot (0 … 1)."""
    ax, ay, bx, by = seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3]
    dx, dy = bx - ax, by - ay
    l2 = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(l2 > 0, ((px - ax) * dx + (py - ay) * dy) / l2, 0.0)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy)), t


def ball_pairs(tree: cKDTree, pts: NDArray[np.float64], r: NDArray[np.float64] | float, *,
               p: float = 2.0) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """All (query, tree point) pairs within ``r`` (per query) as two flat arrays."""
    if len(pts) == 0 or tree.n == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    lists = tree.query_ball_point(pts, r, p=p, return_sorted=False)
    lens = np.fromiter((len(a) for a in lists), dtype=np.intp, count=len(lists))
    total = int(lens.sum())
    if total == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    hit = np.fromiter(chain.from_iterable(lists), dtype=np.intp, count=total)
    return np.repeat(np.arange(len(pts), dtype=np.intp), lens), hit


class SegmentIndex:
    """Straight segments with a k-d tree over points sampled along them.

    Parameters
    ----------
    vx, vy
        Vertex coordinates (the network's nodes, then curved edges' vertices).
    sa, sb
        Vertex positions of each segment's ends.
    edge
        Edge of each segment; segment ``i`` is edge ``i`` when omitted (straight edges only).
    start_m
        Metres along the edge's geometry where each segment starts (0 when omitted).
    n_edges
        Number of edges (for :attr:`geom_len_m`).
    """

    def __init__(self, vx: NDArray[np.float64], vy: NDArray[np.float64], sa: NDArray[np.intp],
                 sb: NDArray[np.intp], *, edge: NDArray[np.intp] | None = None,
                 start_m: NDArray[np.float64] | None = None, n_edges: int | None = None
                 ) -> None:
        self.vx, self.vy, self.sa, self.sb = vx, vy, sa, sb
        self._edge, self._start = edge, start_m
        k = len(sa)
        # Whole-array work in slices of segments: the temporaries stay a few MB (this runs in
        # a background thread, whose freed blocks the rest of the run would not reuse).
        step = 1 << 16
        length = np.empty(k)
        for lo in range(0, k, step):
            length[lo:lo + step] = self.length(np.arange(lo, min(lo + step, k)))
        self.geom_len_m = (length if edge is None else np.bincount(
            edge, weights=length, minlength=n_edges or 0).astype(np.float64))
        if k == 0:
            self.sample_seg = np.empty(0, dtype=np.int32)
            self.half_m = 0.0
            self.tree = cKDTree(np.empty((0, 2)))
            return
        # Sample spacing about twice the typical segment: most segments get one sample (their
        # midpoint), long ones several, so the candidate balls stay small everywhere.
        spacing = max(2.0 * float(np.median(length)), 1.0)
        n_samp = np.maximum(np.ceil(length / spacing), 1).astype(np.int32)
        self.half_m = float((length / (2 * n_samp)).max())
        del length
        first = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(n_samp, out=first[1:])
        sid = np.empty(int(first[-1]), dtype=np.int32)
        pts = np.empty((len(sid), 2))
        for lo in range(0, k, step):
            hi = min(lo + step, k)
            a0, a1 = int(first[lo]), int(first[hi])
            ns = n_samp[lo:hi]
            sid_part = np.repeat(np.arange(lo, hi, dtype=np.int32), ns)
            f = (np.arange(a0, a1) - np.repeat(first[lo:hi], ns) + 0.5) / n_samp[sid_part]
            a, b = sa[sid_part], sb[sid_part]
            pts[a0:a1, 0] = vx[a] + f * (vx[b] - vx[a])
            pts[a0:a1, 1] = vy[a] + f * (vy[b] - vy[a])
            sid[a0:a1] = sid_part
        self.sample_seg = sid
        self.tree = cKDTree(pts, balanced_tree=False, compact_nodes=False, copy_data=False)

    def __len__(self) -> int:
        return len(self.sa)

    def ends(self, s: NDArray[np.intp]) -> NDArray[np.float64]:
        """Segment ends ``(len(s), 4)``: ``ax, ay, bx, by``."""
        a, b = self.sa[s], self.sb[s]
        return np.column_stack([self.vx[a], self.vy[a], self.vx[b], self.vy[b]])

    def length(self, s: NDArray[np.intp]) -> NDArray[np.float64]:
        """Segment lengths (m)."""
        a, b = self.sa[s], self.sb[s]
        return np.hypot(self.vx[b] - self.vx[a], self.vy[b] - self.vy[a])

    def edge(self, s: NDArray[np.intp]) -> NDArray[np.intp]:
        """Edge of each segment."""
        return np.asarray(s, dtype=np.intp) if self._edge is None else self._edge[s]

    def start_m(self, s: NDArray[np.intp]) -> NDArray[np.float64]:
        """Metres along its edge's geometry where each segment starts."""
        return np.zeros(len(s)) if self._start is None else self._start[s]

    def nearest(self, px: NDArray[np.float64], py: NDArray[np.float64], *,
                allowed: NDArray[np.bool_] | None = None, within_m: float | None = None
                ) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
        """Exact nearest segment of each point.

        Ties go to the lowest edge, then the segment nearest its start (GEOS's order).

        Parameters
        ----------
        px, py
            Point coordinates.
        allowed
            Per edge, whether it may be chosen (all when omitted); needs ``within_m``.
        within_m
            Only segments this close count (searched directly, without the bounding step).

        Returns
        -------
        tuple
            Segment position (-1 where none), distance (m; inf where none), and metres along
            the edge's geometry of the nearest point.
        """
        pts = np.column_stack([px, py])
        if within_m is None:
            _, i0 = self.tree.query(pts, k=1)
            u0, _ = point_segment(px, py, self.ends(self.sample_seg[i0]))
            # A hair of slack so rounding never drops the segment that set the bound.
            r = u0 + self.half_m + 1e-6 * (1.0 + u0)
        else:
            r = np.full(len(px), within_m + self.half_m + 1e-6 * (1.0 + within_m))
        q, hit = ball_pairs(self.tree, pts, r)
        s = self.sample_seg[hit].astype(np.intp)
        if allowed is not None:
            ok = allowed[self.edge(s)]
            q, s = q[ok], s[ok]
        d, t = point_segment(px[q], py[q], self.ends(s))
        start = self.start_m(s)
        order = np.lexsort((start, self.edge(s), d, q))
        first = np.ones(len(order), dtype=bool)
        qo = q[order]
        first[1:] = qo[1:] != qo[:-1]
        best = order[first]  # at most one per query, in query order (q sorts first)
        seg = np.full(len(px), -1, dtype=np.intp)
        dist = np.full(len(px), np.inf)
        along = np.full(len(px), np.nan)
        sb = s[best]
        seg[q[best]] = sb
        dist[q[best]] = d[best]
        along[q[best]] = start[best] + t[best] * self.length(sb)
        return seg, dist, along

    def near_edges(self, cx: NDArray[np.float64], cy: NDArray[np.float64],
                   r: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Unique (query, edge) pairs with a segment of the edge possibly within ``r`` of a centre.

        Every edge with a point within ``r`` of the centre is included (a superset).
        """
        q, hit = ball_pairs(self.tree, np.column_stack([cx, cy]), r + self.half_m + 1e-6)
        if len(q) == 0:
            return q, hit
        e = self.edge(self.sample_seg[hit].astype(np.intp))
        m = int(e.max()) + 1
        key = np.unique(q.astype(np.int64) * m + e)
        return (key // m).astype(np.intp), (key % m).astype(np.intp)
