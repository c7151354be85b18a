"""Update units, step 2: faces (atoms) of the noded lines and their shared edges.

Lines are noded once and polygonized into the finest faces; shared-edge lengths, and which line
runs along each edge, come from matching the faces' boundary segments exactly (vectorised).
"""

from __future__ import annotations

import logging
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
    noded = shapely.union_all(lines.geometry.values, grid_size=grid_size_m)
    # The noded lines go in as one geometry: no Python object per piece (the polygonizer takes
    # the same pieces in the same order either way).
    faces, _cuts, dangles, invalid = shapely.polygonize_full([noded])
    n_dangles = shapely.get_num_geometries(dangles)
    if n_dangles:
        logger.debug("%d dangling line piece(s) enclose nothing and were ignored", n_dangles)
    if shapely.get_num_geometries(invalid):
        logger.debug("%d invalid ring(s) from polygonize ignored",
                     shapely.get_num_geometries(invalid))
    polys = shapely.get_parts(faces)
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
