"""Update units, step 2: faces (atoms) of the noded lines and their shared edges.

Lines are noded with snap rounding and polygonized into the finest faces; shared-edge lengths,
and which line runs along each edge, come from matching the faces' boundary segments exactly
(vectorised). Many lines are noded and polygonized tile by tile (:func:`_tiled_faces`), with the
same faces as all at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from urbanunits.crs import require_projected
from urbanunits.unit_lines import (
    _GRID_M,
    _OPEN,
    HARD_KINDS,
    _cut_level,
    _study_geom,
    _water_union,
    prepare_lines,
)

__all__ = [
    "assign_subdistricts",
    "face_adjacency",
    "polygonize_blocks",
    "water_share",
]

logger = logging.getLogger(__name__)

# Lines per tile when noding and polygonizing. GEOS's snap-rounding index (a k-d tree of every
# vertex and crossing) and the polygonizer's graph grow with their input and outgrow the
# processor's caches: per line, noding 117k lines at once took about 1.6x as long as in tiles of
# 4k, polygonizing 2-3x. At 25k lines the tiles' extra work (their overlap, the second pass)
# still cancels the gain, so fewer than _TILED_FROM lines are done at once.
_TILE_LINES = 4000
_TILED_FROM = 40_000
# A tile also takes the lines this far beyond its edges (m), so that faces near its edge come out
# whole; a longer line piece grows the tile, a face that still crosses out is made in a second
# pass.
_HALO_M = 250.0
# Inside its box shrunk by this much (m), a tile's noding equals the global one: snap rounding only
# moves points by up to half a grid cell, so only lines within that distance matter.
_MARGIN_M = 1.0


def _faces_at_once(geoms: NDArray[Any], grid_size_m: float) -> NDArray[Any]:
    """Faces of all lines noded together (snap rounding) and polygonized."""
    noded = shapely.union_all(geoms, grid_size=grid_size_m)
    faces, _cuts, dangles, invalid = shapely.polygonize_full(shapely.get_parts(noded))
    n_dangles = shapely.get_num_geometries(dangles)
    if n_dangles:
        logger.debug("%d dangling line piece(s) enclose nothing and were ignored", n_dangles)
    if shapely.get_num_geometries(invalid):
        logger.debug("%d invalid ring(s) from polygonize ignored",
                     shapely.get_num_geometries(invalid))
    return shapely.get_parts(faces)


def _in_box(xy: NDArray[np.float64], box: Sequence[float], *, closed: bool = False
            ) -> NDArray[np.bool_]:
    """Points in ``box`` (x0, y0, x1, y1); the upper edges are open unless ``closed``."""
    if closed:
        return ((xy[:, 0] >= box[0]) & (xy[:, 1] >= box[1]) & (xy[:, 0] <= box[2])
                & (xy[:, 1] <= box[3]))
    return (xy[:, 0] >= box[0]) & (xy[:, 1] >= box[1]) & (xy[:, 0] < box[2]) & (xy[:, 1] < box[3])


def _within_box(lo: NDArray[np.float64], hi: NDArray[np.float64], box: Sequence[float]
                ) -> NDArray[np.bool_]:
    return (lo[:, 0] >= box[0]) & (lo[:, 1] >= box[1]) & (hi[:, 0] <= box[2]) & (hi[:, 1] <= box[3])


def _before(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Row-wise a < b in (x, y) order."""
    return (a[:, 0] < b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] < b[:, 1]))


def _seg_keys(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Segments as (lower end, upper end) rows, whichever way they run."""
    swap = _before(b, a)[:, None]
    return np.column_stack([np.where(swap, b, a), np.where(swap, a, b)])


def _count_equal(keys: NDArray[np.float64], ref: NDArray[np.float64]) -> NDArray[np.intp]:
    """How many rows of ``ref`` equal each row of ``keys`` (exact)."""
    both = np.concatenate([ref, keys])
    order = np.lexsort(both.T[::-1])
    srt = both[order]
    grp = np.cumsum(np.r_[True, (srt[1:] != srt[:-1]).any(axis=1)]) - 1
    is_ref = order < len(ref)
    n_ref = np.bincount(grp[is_ref], minlength=int(grp[-1]) + 1 if len(grp) else 0)
    out = np.zeros(len(keys), dtype=np.intp)
    out[order[~is_ref] - len(ref)] = n_ref[grp[~is_ref]]
    return out


def _tiled_faces(geoms: NDArray[Any], *, grid_size_m: float, n_tiles: int
                 ) -> NDArray[Any] | None:
    """The faces of :func:`_faces_at_once`, noded and polygonized tile by tile.

    Each tile nodes the lines within ``_HALO_M`` of it (clipped to that box) and keeps what
    lies in its box shrunk by ``_MARGIN_M``, where its noding equals the global one: the line
    pieces and faces whose first point (lowest x, then y) lies in the tile. A piece that starts
    or ends in the tile but leaves that box grows the tile until it fits. A face that leaves it
    is made in a second pass: the pieces that do not have kept faces on both sides are
    polygonized together, which gives each missing face whole (all its edges are there) besides
    unions of kept faces, which are dropped (a point inside them lies in a kept face).

    Returns ``None`` when a tile would have to grow past half of the lines' extent (a very long
    piece, e.g. a river bank crossed by nothing): then it is cheaper to do all at once.
    """
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    w, h = x1 - x0, y1 - y0
    nx = max(1, round(math.sqrt(n_tiles * w / max(h, 1e-9))))
    ny = max(1, round(n_tiles / nx))
    xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    # The outer tiles reach to infinity, so a point snapped just beyond the bounds is kept.
    cx, cy = xs.copy(), ys.copy()
    cx[0], cy[0], cx[-1], cy[-1] = -np.inf, -np.inf, np.inf, np.inf
    limit = 0.5 * (w + 2 * _HALO_M) * (h + 2 * _HALO_M)
    tree = shapely.STRtree(geoms)
    kept: list[NDArray[Any]] = []
    rest: list[NDArray[Any]] = []
    n_grown = 0
    for i in range(nx):
        for j in range(ny):
            core = (cx[i], cy[j], cx[i + 1], cy[j + 1])
            box = [xs[i] - _HALO_M, ys[j] - _HALO_M, xs[i + 1] + _HALO_M, ys[j + 1] + _HALO_M]
            while True:
                sel = np.sort(tree.query(shapely.box(*box)))
                if not len(sel):
                    break
                noded = shapely.union_all(shapely.clip_by_rect(geoms[sel], *box),
                                          grid_size=grid_size_m)
                if shapely.get_type_id(noded) == 1:
                    noded = shapely.multilinestrings([noded])
                if shapely.get_type_id(noded) != 5:
                    sel = sel[:0]
                    break
                _, xy, (off, _) = shapely.to_ragged_array(np.array([noded], dtype=object))
                start, stop = off[:-1], off[1:] - 1
                lo, hi = np.minimum.reduceat(xy, start), np.maximum.reduceat(xy, start)
                inner = (box[0] + _MARGIN_M, box[1] + _MARGIN_M, box[2] - _MARGIN_M,
                         box[3] - _MARGIN_M)
                grow = ~_within_box(lo, hi, inner) & (_in_box(xy[start], core, closed=True)
                                                      | _in_box(xy[stop], core, closed=True))
                if not grow.any():
                    break
                n_grown += 1
                box = [min(box[0], lo[grow, 0].min() - _HALO_M),
                       min(box[1], lo[grow, 1].min() - _HALO_M),
                       max(box[2], hi[grow, 0].max() + _HALO_M),
                       max(box[3], hi[grow, 1].max() + _HALO_M)]
                if (box[2] - box[0]) * (box[3] - box[1]) > limit:
                    logger.debug("a line piece spans most of the area: noding all at once")
                    return None
            if not len(sel):
                continue
            first, last = xy[start], xy[stop]
            mine = np.flatnonzero(_in_box(np.where(_before(last, first)[:, None], last, first),
                                          core))
            faces = shapely.normalize(shapely.get_parts(shapely.polygonize([noded])))
            if len(faces):
                _, fxy, (ring_off, poly_off) = shapely.to_ragged_array(faces)
                f_lo, f_hi = shapely.bounds(faces)[:, :2], shapely.bounds(faces)[:, 2:]
                take = (_in_box(fxy[ring_off[poly_off[:-1]]], core)
                        & _within_box(f_lo, f_hi, inner))
                kept.append(faces[take])
                # boundary segments of the kept faces (not the jumps between rings)
                ring = np.repeat(np.arange(len(ring_off) - 1), np.diff(ring_off))
                ring_poly = np.repeat(np.arange(len(faces)), np.diff(poly_off))
                seg = (ring[:-1] == ring[1:]) & take[ring_poly[ring[:-1]]]
                sides = _count_equal(_seg_keys(xy[start[mine]], xy[start[mine] + 1]),
                                     _seg_keys(fxy[:-1][seg], fxy[1:][seg]))
                mine = mine[sides < 2]
            n_pts = (stop - start + 1)[mine]
            ends = np.cumsum(n_pts)
            pick = (np.arange(ends[-1] if len(ends) else 0)
                    + np.repeat(start[mine] - (ends - n_pts), n_pts))
            rest.append(shapely.linestrings(xy[pick], indices=np.repeat(np.arange(len(mine)),
                                                                          n_pts)))
    acc = np.concatenate(kept) if kept else np.empty(0, dtype=object)
    left = np.concatenate(rest) if rest else np.empty(0, dtype=object)
    extra = shapely.get_parts(shapely.polygonize(left)) if len(left) else left
    if len(extra):
        hit = shapely.STRtree(acc).query(shapely.point_on_surface(extra),
                                         predicate="intersects")[0]
        new = np.ones(len(extra), dtype=bool)
        new[hit] = False
        extra = shapely.normalize(extra[new])
    logger.debug("faces in %d tiles (%d grown): %d, and %d from the second pass of %d pieces",
                 nx * ny, n_grown, len(acc), len(extra), len(left))
    return np.concatenate([acc, extra])


def polygonize_blocks(lines: gpd.GeoDataFrame, study_area: Any, *, snap_tolerance_m: float = 0.0,
                      grid_size_m: float = _GRID_M) -> gpd.GeoDataFrame:
    """Polygonize lines into the faces they enclose inside the study area.

    Parameters
    ----------
    lines
        Lines in a metric CRS (any ``kind``); see :func:`prepare_lines`.
    study_area
        Polygon(s) in the same CRS; its outline closes the faces at the edge.
    snap_tolerance_m
        Close gaps of up to this many metres first (:func:`prepare_lines`); 0 when the lines are
        already prepared.
    grid_size_m
        Snap-rounding grid for noding, in metres. Ends that stop a hair short of a line (clipping,
        float noise) are noded at this precision.

    Returns
    -------
    geopandas.GeoDataFrame
        ``face`` (0..n-1), ``area_m2``, ``perimeter_m`` and normalized polygon geometry, sorted by
        position (x, then y of the centroid) so that the order does not depend on line order.
    """
    require_projected(lines, "polygonize_blocks")
    area = _study_geom(study_area)
    if snap_tolerance_m > 0 or "connector" not in lines.columns:
        lines = prepare_lines(lines, area, snap_tolerance_m=snap_tolerance_m)
    geoms = np.asarray(lines.geometry.values, dtype=object)
    polys = (_tiled_faces(geoms, grid_size_m=grid_size_m, n_tiles=len(geoms) // _TILE_LINES)
             if len(geoms) >= _TILED_FROM else None)
    if polys is None:
        polys = _faces_at_once(geoms, grid_size_m)
    if len(polys):
        inside = shapely.intersects(area, shapely.point_on_surface(polys))
        polys = shapely.normalize(polys[inside])
    return _face_frame(polys, lines.crs)


def _face_frame(polys: NDArray[Any], crs: Any) -> gpd.GeoDataFrame:
    c = shapely.centroid(polys)
    a = shapely.area(polys)
    order = np.lexsort((a, np.round(shapely.get_y(c), 3), np.round(shapely.get_x(c), 3)))
    polys = polys[order]
    return gpd.GeoDataFrame({"face": np.arange(len(polys)), "area_m2": a[order],
                             "perimeter_m": shapely.length(polys)}, geometry=polys, crs=crs)


def _segments(geoms: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Two-point segments (n, 2, 2) of lines or polygon rings, with the input index of each."""
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    same = idx[:-1] == idx[1:]
    seg = np.stack([coords[:-1][same], coords[1:][same]], axis=1)
    return seg, idx[:-1][same]


def face_adjacency(faces: gpd.GeoDataFrame, lines: gpd.GeoDataFrame | None = None, *,
                   tolerance_m: float = 5 * _GRID_M) -> pd.DataFrame:
    """Shared boundary lengths between faces, and which lines run along them.

    Faces must come from one polygonization (or otherwise share identical vertices along common
    edges, like the cells of a regular grid): boundary segments are matched exactly, which is
    vectorised and free of floating-point tolerance problems.

    Parameters
    ----------
    faces
        Polygons in a metric CRS, in positional order.
    lines
        Lines (``kind``, ``split_level``) the faces were made from; ``None`` treats every shared
        edge as open (on no line).
    tolerance_m
        A shared segment whose midpoint is this close to a line lies on that line (metres).

    Returns
    -------
    pandas.DataFrame
        One row per adjacent pair: ``i`` < ``j`` (positions in ``faces``), ``length_m`` (shared
        length), ``hard_m`` (length along rail, waterways or water edges) and ``max_cut``: the
        largest cut level of its segments (0 = on a barrier, k = on a split road of level k, a
        very large number = on no line). Two faces are connected at split level k when
        ``max_cut > k``.
    """
    require_projected(faces, "face_adjacency")
    empty = pd.DataFrame({"i": pd.Series(dtype=np.intp), "j": pd.Series(dtype=np.intp),
                          "length_m": pd.Series(dtype=float), "hard_m": pd.Series(dtype=float),
                          "max_cut": pd.Series(dtype=np.int64)})
    if len(faces) < 2:
        return empty
    polys, poly_face = shapely.get_parts(faces.geometry.values, return_index=True)
    # Polygons without holes are their one ring: their segments come straight from their
    # coordinates, with no ring objects made. (The result does not depend on segment order.)
    holed = shapely.get_num_interior_rings(polys) > 0
    seg0, at0 = _segments(polys[~holed])
    rings, ring_poly = shapely.get_rings(polys[holed], return_index=True)
    seg1, ring_idx = _segments(rings)
    seg = np.concatenate([seg0, seg1]) if len(seg1) else seg0
    seg_face = np.concatenate([poly_face[~holed][at0], poly_face[holed][ring_poly][ring_idx]])
    a, b = seg[:, 0], seg[:, 1]
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    key = np.column_stack([lo, hi])
    # Group equal segments: a stable lexicographic sort (what np.unique(axis=0) does, without
    # its structured-array copies), then runs of equal rows.
    order = np.lexsort(key.T[::-1])
    sk = key[order]
    grp = np.cumsum(np.r_[True, (sk[1:] != sk[:-1]).any(axis=1)]) - 1
    shared = np.bincount(grp)[grp] == 2
    o2 = order[shared].reshape(-1, 2)  # both sides of each shared segment
    fi, fj = seg_face[o2[:, 0]], seg_face[o2[:, 1]]
    real = fi != fj
    o2, fi, fj = o2[real], fi[real], fj[real]
    if not len(o2):
        return empty
    s = o2[:, 0]
    length = np.hypot(hi[s, 0] - lo[s, 0], hi[s, 1] - lo[s, 1])
    cut = np.full(len(s), _OPEN, dtype=np.int64)
    hard = np.zeros(len(s), dtype=bool)
    if lines is not None and not lines.empty:
        lseg, lidx = _segments(lines.geometry.values)
        lcut = _cut_level(lines)[lidx]
        kinds = (lines["kind"].to_numpy() if "kind" in lines.columns
                 else np.full(len(lines), "road", dtype=object))
        lhard = np.isin(kinds, list(HARD_KINDS))[lidx]
        mids = shapely.points((lo[s] + hi[s]) / 2.0)
        p, q = shapely.STRtree(shapely.linestrings(lseg)).query(
            mids, predicate="dwithin", distance=tolerance_m)
        np.minimum.at(cut, p, lcut[q])
        np.logical_or.at(hard, p, lhard[q])
    i, j = np.minimum(fi, fj), np.maximum(fi, fj)
    df = pd.DataFrame({"i": i, "j": j, "length_m": length, "hard_m": np.where(hard, length, 0.0),
                       "max_cut": cut})
    out = df.groupby(["i", "j"], sort=True).agg(length_m=("length_m", "sum"),
                                                 hard_m=("hard_m", "sum"),
                                                 max_cut=("max_cut", "max")).reset_index()
    return out


def water_share(faces: gpd.GeoDataFrame, water: gpd.GeoDataFrame | None) -> NDArray[np.float64]:
    """Share (0–1) of each face's area covered by water polygons (overlaps counted once)."""
    require_projected(faces, "water_share")
    out = np.zeros(len(faces))
    if water is None or water.empty or faces.empty:
        return out
    parts = shapely.get_parts(_water_union(water))
    p, q = shapely.STRtree(parts).query(faces.geometry.values, predicate="intersects")
    inter = shapely.area(shapely.intersection(faces.geometry.values[p], parts[q]))
    np.add.at(out, p, inter)
    return np.clip(out / np.maximum(faces["area_m2"].to_numpy(), 1e-9), 0.0, 1.0)


def assign_subdistricts(faces: gpd.GeoDataFrame, subdistricts: gpd.GeoDataFrame | None
                        ) -> pd.Series:
    """Sub-district of each face: the one holding a point on its surface (first by name).

    Parameters
    ----------
    faces
        Polygons in a metric CRS.
    subdistricts
        Prepared sub-districts (:func:`prepare_subdistricts`) or ``None``.

    Returns
    -------
    pandas.Series
        Names (``None`` outside every sub-district), indexed like ``faces``.
    """
    out = pd.Series([None] * len(faces), index=faces.index, dtype="object")
    if subdistricts is None or subdistricts.empty or faces.empty:
        return out
    sd = subdistricts.sort_values("subdistrict")
    pts = shapely.point_on_surface(faces.geometry.values)
    p, q = shapely.STRtree(sd.geometry.values).query(pts, predicate="within")
    if len(p):
        order = np.lexsort((q, p))  # several matches (overlapping polygons): first by name
        p, q = p[order], q[order]
        first = np.r_[True, p[1:] != p[:-1]]
        out.iloc[p[first]] = sd["subdistrict"].to_numpy()[q[first]]
    return out
