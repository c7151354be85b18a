"""Update units (更新单元): barrier lines → faces → blocks → units, with classes and stable ids.

Method
------
1. **Lines.** Barrier lines are the configured road classes, surface rail, rivers/canals, the
   outlines of water bodies of at least ``min_area_m2`` (smaller ponds stay inside their block),
   sub-district (街道) boundaries and the study-area outline. Tunnels (``tunnel`` set and not
   ``no``) are not barriers. Bridge spans over water are cut away, so a bridge never splits the
   water it crosses; the river itself still separates its banks. Minor roads of the
   ``split_highways`` classes (tertiary, then residential) are added as *split lines*: they only
   cut blocks that are too large.
2. **Faces.** A dangling end of a line that stops within ``snap_tolerance_m`` of another line
   is extended to it (lines that "almost meet"); one within max(50 m, 4 × ``snap_tolerance_m``)
   of the study-area edge is extended to the edge, since extracts cut roads there. All lines are
   then noded together with snap rounding on a 1 cm grid and polygonized into the finest faces
   (*atoms*); dangles that still lead nowhere are ignored by the polygonizer. Shared-edge
   lengths between atoms, and which kind of line runs along each shared edge, come from matching
   the atoms' boundary segments: all atoms come from one noding, so neighbours share identical
   vertices and the match is exact and vectorised (no pairwise geometry work).
3. **Water.** Atoms that are at least ``min_water_share`` water are dropped.
4. **Blocks.** Atoms joined across edges that lie on no barrier line form barrier-bounded blocks
   (connected components, :func:`scipy.sparse.csgraph.connected_components`).
5. **Split.** A block above ``max_area_m2`` is cut along the first split class, then the first
   two, and so on; at each level tiny pieces are merged back (step 6 within the block). The first
   level whose parts are all within bounds is used; failing that, the level that puts the most
   area within bounds; failing that, the block stays whole and is reported.
6. **Merge.** Blocks below ``min_area_m2`` or thinner than ``sliver_width_m`` (2·area/perimeter,
   about the width of a long strip: dual-carriageway medians, corner triangles) are merged,
   smallest first, into the neighbour with the longest shared edge in the same sub-district. A
   small block merges only across a road and only if the result stays within ``max_area_m2``; a
   sliver joins the block it runs along whatever the size, and crosses rail or water only when
   it has no road edge. Sub-district boundaries are never crossed. Blocks that cannot merge stay
   as units and are reported with the reason.
7. **Attributes, classes and ids.** See :func:`classify_units` for the class rules and
   :func:`assign_unit_ids` for the id scheme.

A study area with no barrier line inside it is a single block (then split along minor roads if it
is too large); a warning says so. A study area that is all water is a :class:`DataError`.

All geometry is in the run's projected, metric CRS (metres, m²).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from urbanunits.catalog import CLASS_COLORS, CLASS_LABELS
from urbanunits.config import Config, UnitsConfig
from urbanunits.crs import require_projected
from urbanunits.errors import CRSError, DataError
from urbanunits.floor_area import estimate_floor_area
from urbanunits.sources.osm import OSMLayers

__all__ = [
    "CLASS_COLORS",
    "CLASS_LABELS",
    "HARD_KINDS",
    "ClassRules",
    "UnitsResult",
    "assign_subdistricts",
    "assign_unit_ids",
    "barrier_lines",
    "class_counts_line",
    "classify_units",
    "face_adjacency",
    "label_blocks",
    "merge_small",
    "polygonize_blocks",
    "prepare_lines",
    "prepare_subdistricts",
    "reclassify_units",
    "recount_old_communities",
    "residential_floor_area",
    "split_large",
    "split_lines",
    "subdistrict_lines",
    "update_units",
    "water_share",
]

logger = logging.getLogger(__name__)

#: Line kinds that bound blocks and are crossed by a merge only to absorb a sliver.
HARD_KINDS: frozenset[str] = frozenset({"rail", "waterway", "water_edge"})

_SHARE_CLASSES = ("residential", "commercial", "industrial", "green", "public")
_DOMINANT_TO_CLASS = {"residential": "residential_upgrading", "commercial": "commercial_mixed",
                      "industrial": "industrial_transformation", "green": "green_open_space",
                      "public": "public_service"}

# Cut levels of shared edges: 0 = on a barrier line (always a cut), k = on a split line of level
# k (a cut once level k is used), _OPEN = on no line at all (never a cut).
_OPEN = np.iinfo(np.int32).max
_GRID_M = 0.01  # snap-rounding grid for noding (1 cm)
_TOUCH_M = 1e-3  # an endpoint this close to another line already meets it


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------


def _is_set(col: pd.Series) -> pd.Series:
    """OSM yes-like flag: present and not ``no``."""
    s = col.astype("object")
    return s.notna() & (s.astype(str).str.lower() != "no")


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype="object")


def _lines_only(geoms: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
    """Explode to non-empty LineStrings, with the index of the input each came from."""
    parts, idx = shapely.get_parts(geoms, return_index=True)
    parts, idx2 = shapely.get_parts(parts, return_index=True)  # collections of multis
    idx = idx[idx2]
    keep = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 0)
    return parts[keep], idx[keep]


def _line_frame(geoms: NDArray[Any], *, kind: str | Sequence[str], osm_class: Any = None,
                split_level: int = 0, crs: Any) -> gpd.GeoDataFrame:
    parts, idx = _lines_only(np.asarray(geoms, dtype=object))
    kinds = np.asarray(kind, dtype=object)[idx] if not isinstance(kind, str) else kind
    classes = (np.asarray(osm_class, dtype=object)[idx]
               if osm_class is not None and not isinstance(osm_class, str) else osm_class)
    return gpd.GeoDataFrame({"kind": kinds, "osm_class": classes,
                             "split_level": np.full(len(parts), split_level, dtype=np.int32)},
                            geometry=parts, crs=crs)


def _empty_lines(crs: Any) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"kind": pd.Series(dtype="object"),
                             "osm_class": pd.Series(dtype="object"),
                             "split_level": pd.Series(dtype="int32")},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _repair(gdf: gpd.GeoDataFrame, what: str) -> gpd.GeoDataFrame:
    """Make polygons valid (counted in the log) and keep their polygonal parts."""
    if gdf.empty:
        return gdf
    geoms = gdf.geometry.values
    bad = ~shapely.is_valid(geoms)
    if not bad.any():
        return gdf
    logger.warning("repaired %d invalid polygon(s) in %s", int(bad.sum()), what)
    fixed = np.array(geoms, dtype=object)
    for k in np.flatnonzero(bad):
        parts = shapely.get_parts(shapely.get_parts(shapely.make_valid(fixed[k])))
        polys = parts[shapely.get_type_id(parts) == 3]
        fixed[k] = shapely.union_all(polys) if len(polys) else shapely.Polygon()
    out = gdf.copy()
    out["geometry"] = fixed
    return out[~out.geometry.is_empty]


def _water_union(water: gpd.GeoDataFrame) -> Any:
    if water is None or water.empty:
        return shapely.Polygon()
    water = _repair(water, "water polygons")
    return shapely.union_all(water.geometry.values)


def barrier_lines(layers: OSMLayers, *, highways: Sequence[str], railways: Sequence[str],
                  waterways: Sequence[str], water_edges: bool = True,
                  min_water_body_m2: float = 0.0) -> gpd.GeoDataFrame:
    """Lines that bound blocks: main roads, surface rail, rivers/canals and water-body outlines.

    Parameters
    ----------
    layers
        Parsed OSM layers in a metric CRS.
    highways, railways, waterways
        OSM classes (``highway``/``railway``/``waterway`` values) that are barriers.
    water_edges
        Add the outlines of water bodies.
    min_water_body_m2
        Only water bodies (after dissolving touching ones) at least this large (m²) are barriers;
        smaller ponds stay inside their block.

    Returns
    -------
    geopandas.GeoDataFrame
        LineStrings with ``kind`` (``road``, ``rail``, ``waterway``, ``water_edge``),
        ``osm_class`` and ``split_level`` (0), in the layers' CRS. Tunnels are left out and
        bridge spans over water polygons are cut away.
    """
    crs = layers.study_area.crs
    require_projected(layers.study_area, "barrier_lines")
    water = _water_union(layers.water)
    frames = []
    for kind, gdf, key, classes in (("road", layers.roads, "highway", highways),
                                    ("rail", layers.railways, "railway", railways),
                                    ("waterway", layers.waterways, "waterway", waterways)):
        if gdf is None or gdf.empty or key not in gdf.columns:
            continue
        sel = gdf[gdf[key].isin(list(classes)) & ~_is_set(_col(gdf, "tunnel"))]
        if sel.empty:
            continue
        geoms = np.array(sel.geometry.values, dtype=object)
        bridge = _is_set(_col(sel, "bridge")).to_numpy()
        if kind != "waterway" and bridge.any() and not water.is_empty:
            # A bridge over a river must not cut the water face in two; the banks are split by
            # the water's own outline and centre line.
            geoms[bridge] = shapely.difference(geoms[bridge], water)
        frames.append(_line_frame(geoms, kind=kind, osm_class=sel[key].to_numpy(), crs=crs))
    if water_edges and not water.is_empty:
        bodies = shapely.get_parts(water)
        bodies = bodies[shapely.area(bodies) >= min_water_body_m2]
        if len(bodies):
            frames.append(_line_frame(shapely.boundary(bodies), kind="water_edge",
                                      osm_class="water", crs=crs))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _empty_lines(crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)


def split_lines(layers: OSMLayers, *, split_highways: Sequence[str]) -> gpd.GeoDataFrame:
    """Minor roads used to split oversize blocks, one level per class in order.

    Parameters
    ----------
    layers
        Parsed OSM layers in a metric CRS.
    split_highways
        ``highway`` classes tried in order (``_link`` variants count as their class).

    Returns
    -------
    geopandas.GeoDataFrame
        LineStrings with ``kind="split"``, ``osm_class`` and ``split_level`` (1 for the first
        class, 2 for the second...). Tunnels are left out.
    """
    crs = layers.study_area.crs
    roads = layers.roads
    if roads is None or roads.empty or not split_highways:
        return _empty_lines(crs)
    base = roads["highway"].astype(str).str.removesuffix("_link")
    frames = []
    for level, cls in enumerate(split_highways, start=1):
        sel = roads[(base == cls) & ~_is_set(_col(roads, "tunnel"))]
        if not sel.empty:
            frames.append(_line_frame(sel.geometry.values, kind="split", osm_class=cls,
                                      split_level=level, crs=crs))
    if not frames:
        return _empty_lines(crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)


def prepare_subdistricts(subdistricts: gpd.GeoDataFrame | None, *, crs: Any,
                         study_area: Any = None) -> gpd.GeoDataFrame | None:
    """Check, re-project, repair and clip sub-district polygons.

    Parameters
    ----------
    subdistricts
        Polygons with a ``subdistrict`` (or ``name``) column; ``None`` passes through.
    crs
        The run's metric CRS; other CRSs are re-projected to it.
    study_area
        Optional polygon to clip to.

    Returns
    -------
    geopandas.GeoDataFrame or None
        ``subdistrict`` and geometry, one row per name, sorted by name.
    """
    if subdistricts is None:
        return None
    if subdistricts.crs is None:
        raise CRSError("sub-district boundaries", "have no CRS",
                       "set the CRS of the boundary file (e.g. EPSG:4326 or EPSG:4490)")
    name = "subdistrict" if "subdistrict" in subdistricts.columns else "name"
    if name not in subdistricts.columns:
        raise DataError("sub-district boundaries", "no 'subdistrict' or 'name' column",
                        "set inputs.subdistrict_name_field to the name column")
    sd = gpd.GeoDataFrame({"subdistrict": subdistricts[name].astype(str)},
                          geometry=subdistricts.geometry.values, crs=subdistricts.crs)
    sd = sd[sd.geometry.notna() & ~sd.geometry.is_empty]
    if sd.crs != crs:
        sd = sd.to_crs(crs)
    sd = _repair(sd, "sub-district boundaries")
    if study_area is not None:
        sd = sd.assign(geometry=shapely.intersection(sd.geometry.values, study_area))
        sd = sd[~sd.geometry.is_empty & (sd.geometry.area > 0)]
    if sd.empty:
        logger.warning("no sub-district polygon overlaps the study area; ignoring them")
        return None
    sd = sd.dissolve(by="subdistrict", as_index=False)
    return sd.sort_values("subdistrict").reset_index(drop=True)


def subdistrict_lines(subdistricts: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """Sub-district boundaries as lines (``kind="subdistrict"``); clip them first."""
    if subdistricts is None or subdistricts.empty:
        return _empty_lines(None)
    return _line_frame(shapely.boundary(subdistricts.geometry.values), kind="subdistrict",
                       osm_class="subdistrict", crs=subdistricts.crs)


def _study_geom(study_area: Any) -> Any:
    if isinstance(study_area, gpd.GeoDataFrame | gpd.GeoSeries):
        return shapely.union_all(study_area.geometry.values if isinstance(
            study_area, gpd.GeoDataFrame) else study_area.values)
    return study_area


def _cut_level(lines: gpd.GeoDataFrame) -> NDArray[np.int32]:
    kind = lines["kind"].to_numpy() if "kind" in lines.columns else np.full(len(lines), "road")
    lvl = (lines["split_level"].to_numpy(dtype=np.int32) if "split_level" in lines.columns
           else np.zeros(len(lines), dtype=np.int32))
    return np.where(kind == "split", lvl, 0).astype(np.int32)


def prepare_lines(lines: gpd.GeoDataFrame, study_area: Any, *, snap_tolerance_m: float,
                  edge_snap_m: float = 0.0) -> gpd.GeoDataFrame:
    """Clip lines to the study area, add its outline and close gaps of up to ``snap_tolerance_m``.

    A line end that touches no other line but lies within ``snap_tolerance_m`` of one is joined to
    the nearest point of that line by a short connector (``connector=True``, same ``kind``). A
    barrier end joins only barriers; a split-road end joins barriers or split roads of its level
    or a lower one. Ends that already meet the target near the gap (overshoots) are left alone.
    Ends within ``edge_snap_m`` of the study-area outline are joined to it: extracts cut lines
    near their edge, so a road that stops just short of it usually continues beyond.

    Parameters
    ----------
    lines
        Lines with ``kind`` and ``split_level`` (see :func:`barrier_lines`), metric CRS.
    study_area
        Polygon, or a GeoDataFrame/GeoSeries of polygons, in the same CRS.
    snap_tolerance_m
        Largest gap closed, in metres (0 disables snapping).
    edge_snap_m
        Largest gap to the study-area outline closed, in metres (at least
        ``snap_tolerance_m``).

    Returns
    -------
    geopandas.GeoDataFrame
        The clipped lines, the study-area outline (``kind="study_area"``) and connectors.
    """
    require_projected(lines, "prepare_lines")
    area = _study_geom(study_area)
    crs = lines.crs
    lines = lines if "kind" in lines.columns else lines.assign(kind="road")
    lines = lines if "split_level" in lines.columns else lines.assign(split_level=0)
    clipped = shapely.intersection(lines.geometry.values, area)
    parts, idx = _lines_only(clipped)
    base = lines.iloc[idx].drop(columns="geometry").reset_index(drop=True)
    out = gpd.GeoDataFrame(base, geometry=parts, crs=crs)
    out = out[out["kind"] != "study_area"]
    ring = _line_frame(shapely.boundary(np.array([area], dtype=object)), kind="study_area",
                       osm_class="study_area", crs=crs)
    out = gpd.GeoDataFrame(pd.concat([out, ring], ignore_index=True), crs=crs)
    out["connector"] = False
    if max(snap_tolerance_m, edge_snap_m) > 0 and len(out) > 1:
        conn = _connectors(out, tolerance_m=snap_tolerance_m,
                           edge_m=max(edge_snap_m, snap_tolerance_m))
        if not conn.empty:
            out = gpd.GeoDataFrame(pd.concat([out, conn], ignore_index=True), crs=crs)
    return out


def _connectors(lines: gpd.GeoDataFrame, *, tolerance_m: float, edge_m: float
                ) -> gpd.GeoDataFrame:
    geoms = lines.geometry.values
    cut = _cut_level(lines)
    open_ = ~shapely.is_closed(geoms)
    owner = np.concatenate([np.flatnonzero(open_)] * 2)
    ends = np.concatenate([shapely.get_point(geoms[open_], 0), shapely.get_point(geoms[open_], -1)])
    tree = shapely.STRtree(geoms)
    p, q = tree.query(ends, predicate="dwithin", distance=_TOUCH_M)
    met = np.zeros(len(ends), dtype=bool)
    met[p[q != owner[p]]] = True
    dang = np.flatnonzero(~met)
    if not len(dang):
        return lines.iloc[0:0].assign(connector=pd.Series(dtype=bool))
    p, q = tree.query(ends[dang], predicate="dwithin", distance=edge_m)
    own = owner[dang[p]]
    is_edge = (lines["kind"].to_numpy() == "study_area")[q]
    within = is_edge | shapely.dwithin(ends[dang[p]], geoms[q], tolerance_m)
    ok = within & (q != own) & (cut[q] <= cut[own])
    p, q, own = p[ok], q[ok], own[ok]
    if not len(p):
        return lines.iloc[0:0].assign(connector=pd.Series(dtype=bool))
    pts = ends[dang[p]]
    # Overshoot: the line already meets the target near this end; no connector needed.
    meet = shapely.intersection(geoms[own], geoms[q])
    near = ~shapely.is_empty(meet) & (shapely.distance(pts, meet) <= tolerance_m * 1.5)
    p, q, own, pts = p[~near], q[~near], own[~near], pts[~near]
    if not len(p):
        return lines.iloc[0:0].assign(connector=pd.Series(dtype=bool))
    d = shapely.distance(pts, geoms[q])
    order = np.lexsort((q, d, p))
    first = order[np.r_[True, p[order][1:] != p[order][:-1]]]
    conn = shapely.shortest_line(pts[first], geoms[q[first]])
    rows = lines.iloc[own[first]].drop(columns="geometry").reset_index(drop=True)
    out = gpd.GeoDataFrame(rows, geometry=conn, crs=lines.crs)
    out["connector"] = True
    out = out[shapely.length(out.geometry.values) > 0]
    logger.info("closed %d gap(s) between lines (up to %.0f m; %.0f m to the study-area edge)",
                len(out), tolerance_m, edge_m)
    return out


# --------------------------------------------------------------------------------------------
# Faces and their adjacency
# --------------------------------------------------------------------------------------------


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
    faces, _cuts, dangles, invalid = shapely.polygonize_full(shapely.get_parts(noded))
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
    rings, ring_poly = shapely.get_rings(polys, return_index=True)
    ring_face = poly_face[ring_poly]
    seg, ring_idx = _segments(rings)
    seg_face = ring_face[ring_idx]
    a, b = seg[:, 0], seg[:, 1]
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    key = np.column_stack([lo, hi])
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    shared = counts[inv[order]] == 2
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


# --------------------------------------------------------------------------------------------
# Blocks: components, aggregation, merging, splitting
# --------------------------------------------------------------------------------------------


def _canonical(labels: NDArray[np.intp]) -> NDArray[np.intp]:
    """Renumber labels 0..m-1 in order of first appearance."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.intp)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv.ravel()]


def label_blocks(n: int, adjacency: pd.DataFrame, *, level: int = 0,
                 groups: NDArray[Any] | None = None) -> NDArray[np.intp]:
    """Connected components of faces joined across edges that are not cuts at ``level``.

    Parameters
    ----------
    n
        Number of faces.
    adjacency
        :func:`face_adjacency` table (positions ``i``, ``j``; ``max_cut``).
    level
        0 gives barrier-bounded blocks; k also cuts along split roads of levels 1..k.
    groups
        Optional group codes per face (sub-district): faces in different groups never join.

    Returns
    -------
    numpy.ndarray
        Block label per face, numbered 0.. in order of each block's first face.
    """
    i = adjacency["i"].to_numpy(dtype=np.intp)
    j = adjacency["j"].to_numpy(dtype=np.intp)
    join = adjacency["max_cut"].to_numpy() > level
    if groups is not None:
        g = np.asarray(groups)
        join &= g[i] == g[j]
    m = coo_matrix((np.ones(int(join.sum())), (i[join], j[join])), shape=(n, n))
    _, lab = connected_components(m, directed=False)
    return _canonical(lab.astype(np.intp))


def _aggregate(labels: NDArray[np.intp], area: NDArray[np.float64],
               perim: NDArray[np.float64], adjacency: pd.DataFrame
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], pd.DataFrame]:
    """Areas, perimeters and adjacency of groups of faces (exact, from shared lengths)."""
    m = int(labels.max()) + 1 if len(labels) else 0
    a = np.bincount(labels, area, minlength=m).astype(float)
    li = labels[adjacency["i"].to_numpy(dtype=np.intp)]
    lj = labels[adjacency["j"].to_numpy(dtype=np.intp)]
    length = adjacency["length_m"].to_numpy()
    internal = li == lj
    p = (np.bincount(labels, perim, minlength=m)
         - 2 * np.bincount(li[internal], length[internal], minlength=m)).astype(float)
    ext = adjacency[~internal].assign(i=np.minimum(li, lj)[~internal],
                                      j=np.maximum(li, lj)[~internal])
    adj = ext.groupby(["i", "j"], sort=True).agg(length_m=("length_m", "sum"),
                                                 hard_m=("hard_m", "sum"),
                                                 max_cut=("max_cut", "max")).reset_index()
    return a, p, adj


def _thin(area: float, perim: float, sliver_width_m: float) -> bool:
    return sliver_width_m > 0 and perim > 0 and 2.0 * area / perim < sliver_width_m


def _merge(area: NDArray[np.float64], perim: NDArray[np.float64], groups: NDArray[Any],
           adjacency: pd.DataFrame, *, min_area_m2: float, max_area_m2: float,
           sliver_width_m: float) -> NDArray[np.intp]:
    """Greedy merge of deficient blocks; returns the root block of each block.

    A priority queue holds blocks that are too small or too thin, smallest first. Each is merged
    into one neighbour of its group; adjacency is kept as a dict per block and summed on merge,
    so each merge costs O(degree). This is the textbook region-merging loop; no library offers it
    over a shared-edge table with these preferences.
    """
    n = len(area)
    area = area.astype(float).copy()
    perim = perim.astype(float).copy()
    adj: list[dict[int, list[float]]] = [{} for _ in range(n)]
    for i, j, ln, hd in zip(adjacency["i"].to_numpy(), adjacency["j"].to_numpy(),
                            adjacency["length_m"].to_numpy(), adjacency["hard_m"].to_numpy(),
                            strict=True):
        if groups[i] == groups[j]:
            adj[i][j] = [ln, hd]
            adj[j][i] = [ln, hd]
    parent = np.arange(n)
    # Thinness is a property of the original faces: a block that absorbs a sliver may get a
    # "tail" that lowers its 2·area/perimeter, and must not start a cascade of merges.
    sliver = np.array([_thin(area[k], perim[k], sliver_width_m) for k in range(n)], dtype=bool)

    def deficient(k: int) -> bool:
        return bool(area[k] < min_area_m2 or sliver[k])

    heap = [(area[k], k) for k in range(n) if deficient(k)]
    heapq.heapify(heap)
    while heap:
        a_k, k = heapq.heappop(heap)
        if parent[k] != k or a_k != area[k] or not deficient(k):
            continue
        # Candidate key: tier, longest shared edge, then the smaller neighbour (balanced
        # units), then the lower index (determinism). A sliver joins the block it runs along
        # (longest edge) whatever the resulting size; a small block only joins where the
        # result stays within max_area_m2. Rail and water are crossed only by slivers.
        best: tuple[int, float, float, int] | None = None
        for nb, (ln, hd) in adj[k].items():
            soft = ln - hd
            if sliver[k]:
                cand = (0, -soft, area[nb], nb) if soft > 0 else (1, -ln, area[nb], nb)
            elif soft > 0 and area[k] + area[nb] <= max_area_m2:
                cand = (0, -soft, area[nb], nb)
            else:
                continue
            if best is None or cand < best:
                best = cand
        if best is None:
            continue
        nb = best[3]
        ln_k = adj[k][nb][0]
        parent[k] = nb
        area[nb] += area[k]
        perim[nb] = perim[nb] + perim[k] - 2.0 * ln_k
        sliver[nb] = sliver[nb] and _thin(area[nb], perim[nb], sliver_width_m)
        for c, (ln, hd) in adj[k].items():
            if c == nb:
                continue
            e = adj[nb].setdefault(c, [0.0, 0.0])
            e[0] += ln
            e[1] += hd
            adj[c][nb] = e
            del adj[c][k]
        del adj[nb][k]
        adj[k] = {}
        if deficient(nb):
            heapq.heappush(heap, (area[nb], nb))
    # Path compression: follow parents to the surviving root.
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root


def merge_small(blocks: gpd.GeoDataFrame | pd.DataFrame, adjacency: pd.DataFrame | None = None,
                *, min_area_m2: float, max_area_m2: float = math.inf,
                sliver_width_m: float = 0.0, group_col: str | None = None) -> pd.Series:
    """Merge blocks that are too small or too thin into neighbours.

    Smallest first, each block below ``min_area_m2`` or thinner than ``sliver_width_m``
    (2·area/perimeter) joins the neighbour in the same group with the longest shared edge. A
    small block only joins across a road (not rail or water) and only where the merged area
    stays ≤ ``max_area_m2``. A sliver joins the block it runs along whatever the resulting size,
    across rail or water only when it has no road edge. Thinness is judged on the blocks as
    given, so a block that absorbed a sliver is not treated as one. Blocks left without a
    candidate stay as they are.

    Parameters
    ----------
    blocks
        Blocks in positional order, with ``area_m2`` and ``perimeter_m`` columns or polygon
        geometry in a metric CRS.
    adjacency
        :func:`face_adjacency`-style table on positions; computed from the geometry when
        ``None`` (then the blocks must share vertices along common edges).
    min_area_m2
        Smallest acceptable area (m²).
    max_area_m2
        A merge may not make a block larger than this (m²), except to absorb a sliver.
    sliver_width_m
        Blocks thinner than this (m) are merged whatever their area; 0 disables.
    group_col
        Column whose values must match for two blocks to merge (e.g. ``subdistrict``).

    Returns
    -------
    pandas.Series
        Integer merge label per block (0.., in order of first block), indexed like ``blocks``.
    """
    if isinstance(blocks, gpd.GeoDataFrame):
        require_projected(blocks, "merge_small")
    area = (blocks["area_m2"].to_numpy(dtype=float) if "area_m2" in blocks.columns
            else np.asarray(blocks.geometry.area, dtype=float))
    perim = (blocks["perimeter_m"].to_numpy(dtype=float) if "perimeter_m" in blocks.columns
             else np.asarray(blocks.geometry.length, dtype=float))
    if adjacency is None:
        assert isinstance(blocks, gpd.GeoDataFrame)
        adjacency = face_adjacency(blocks.reset_index(drop=True))
    groups = (pd.factorize(blocks[group_col].astype("object").fillna("\0none"))[0]
              if group_col else np.zeros(len(blocks), dtype=np.intp))
    root = _merge(area, perim, groups, adjacency, min_area_m2=min_area_m2,
                  max_area_m2=max_area_m2, sliver_width_m=sliver_width_m)
    return pd.Series(_canonical(root), index=blocks.index, name="merge_label")


@dataclass
class _SplitInfo:
    level: int = 0
    reason: str = ""


def split_large(faces: gpd.GeoDataFrame | pd.DataFrame, adjacency: pd.DataFrame,
                block_labels: NDArray[np.intp], *, min_area_m2: float, max_area_m2: float,
                sliver_width_m: float = 0.0, level_names: Sequence[str] = ("tertiary",
                                                                          "residential"),
                groups: NDArray[Any] | None = None) -> tuple[NDArray[np.intp], pd.DataFrame]:
    """Split blocks above ``max_area_m2`` along split roads, one road class at a time.

    For an oversize block, level k cuts it along split roads of levels 1..k (see
    :func:`face_adjacency`); pieces too small or thin are merged back within the block
    (:func:`merge_small` rules). The first level whose parts all lie within
    [``min_area_m2``, ``max_area_m2``] is used; otherwise the level with the most area within
    bounds (lowest level on ties); otherwise the block is left whole.

    Parameters
    ----------
    faces
        Atoms in positional order with ``area_m2`` and ``perimeter_m``.
    adjacency
        :func:`face_adjacency` of the atoms (with ``max_cut``).
    block_labels
        Barrier-bounded block of each atom (:func:`label_blocks` at level 0).
    min_area_m2, max_area_m2
        Size bounds (m²).
    sliver_width_m
        Parts thinner than this (m) are merged back.
    level_names
        Name of each split level (the ``split_highways`` classes), for messages.
    groups
        Group code per atom (sub-district); parts never join across groups.

    Returns
    -------
    labels : numpy.ndarray
        New block label per atom (0.., in order of first atom).
    info : pandas.DataFrame
        Per new block: ``origin`` (``"barriers"`` or ``"split: tertiary, ..."``) and
        ``split_note`` (why an oversize block could not be brought within bounds, else "").
    """
    area = faces["area_m2"].to_numpy(dtype=float)
    perim = faces["perimeter_m"].to_numpy(dtype=float)
    labels = np.asarray(block_labels, dtype=np.intp)
    b_area, _, _ = _aggregate(labels, area, perim, adjacency)
    n_blocks = len(b_area)
    info = [_SplitInfo() for _ in range(n_blocks)]
    over = np.flatnonzero(b_area > max_area_m2)
    final = labels.copy()
    if len(over):
        in_over = np.isin(labels, over)
        i = adjacency["i"].to_numpy(dtype=np.intp)
        j = adjacency["j"].to_numpy(dtype=np.intp)
        cut = adjacency["max_cut"].to_numpy()
        same_block = labels[i] == labels[j]
        has_split = np.zeros(n_blocks, dtype=bool)
        has_split[labels[i][same_block & (cut >= 1) & (cut < _OPEN)]] = True
        g = np.zeros(len(labels), dtype=np.intp) if groups is None else np.asarray(groups)
        best: dict[int, tuple[int, bool, float, NDArray[np.intp]]] = {}
        for level in range(1, len(level_names) + 1):
            sub = label_blocks(len(labels), adjacency, level=level,
                               groups=labels * (int(g.max()) + 1) + g)
            s_area, s_perim, s_adj = _aggregate(sub, area, perim, adjacency)
            parent = np.zeros(len(s_area), dtype=np.intp)
            parent[sub] = labels
            root = _merge(s_area, s_perim, parent, s_adj, min_area_m2=min_area_m2,
                          max_area_m2=max_area_m2, sliver_width_m=sliver_width_m)
            part = _canonical(root[sub])  # part label per atom
            p_area = np.bincount(part, area).astype(float)
            _pick_level(best, over, labels, part, p_area, level, min_area_m2, max_area_m2,
                        in_over)
        offset = n_blocks
        for b in over:
            choice = best.get(int(b))
            names = ", ".join(level_names[: choice[0]]) if choice else ""
            if choice is None or choice[2] <= 0:
                info[b].reason = (f"no {' or '.join(level_names)} road crosses it"
                                  if not has_split[b] else
                                  f"splitting along {', '.join(level_names)} roads gives no "
                                  "part within bounds")
                continue
            level, all_ok, _, part = choice
            atoms = np.flatnonzero(labels == b)
            final[atoms] = offset + part[atoms]
            offset += int(part.max()) + 1
            info[b].level = level
            if not all_ok:
                info[b].reason = (f"split along {names} roads; parts above the maximum remain "
                                  "(no further road to split them)")
    new = _canonical(final)
    m = int(new.max()) + 1 if len(new) else 0
    origin = np.empty(m, dtype=object)
    note = np.empty(m, dtype=object)
    first_atom = np.unique(new, return_index=True)[1]
    for k, a in enumerate(first_atom):
        inf = info[labels[a]]
        origin[k] = ("barriers" if inf.level == 0 else
                     "split: " + ", ".join(level_names[: inf.level]))
        note[k] = inf.reason
    return new, pd.DataFrame({"origin": origin, "split_note": note})


def _pick_level(best: dict[int, tuple[int, bool, float, NDArray[np.intp]]],
                over: NDArray[np.intp], labels: NDArray[np.intp], part: NDArray[np.intp],
                p_area: NDArray[np.float64], level: int, min_area_m2: float,
                max_area_m2: float, in_over: NDArray[np.bool_]) -> None:
    """Keep, per oversize block, the best split level so far (see :func:`split_large`)."""
    idx = np.flatnonzero(in_over)
    pairs = pd.DataFrame({"b": labels[idx], "p": part[idx]}).drop_duplicates()
    pa = p_area[pairs["p"].to_numpy()]
    pairs["ok"] = (pa >= min_area_m2) & (pa <= max_area_m2)
    pairs["ok_area"] = np.where(pairs["ok"], pa, 0.0)
    s = pairs.groupby("b").agg(n=("p", "size"), all_ok=("ok", "all"),
                               ok_area=("ok_area", "sum"))
    for b in over:
        r = s.loc[int(b)]
        cand = (level, bool(r["all_ok"]) and int(r["n"]) > 1, float(r["ok_area"]), part)
        prev = best.get(int(b))
        if prev is None or (not prev[1] and (cand[1] or cand[2] > prev[2])):
            best[int(b)] = cand


# --------------------------------------------------------------------------------------------
# Attributes and classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassRules:
    """Thresholds of the unit-class rules (see :func:`reclassify_units`).

    Attributes
    ----------
    min_share
        A land use must cover at least this share of a unit to give it its class.
    old_residential_share
        Residential land share needed, besides ``min_old_floor_share``, for old-community
        renewal.
    min_historic_share
        Share of the unit that designated conservation areas must cover for historic
        conservation (``units.min_historic_share``).
    min_old_floor_share
        Share of the unit's residential floor area that old communities must hold for
        old-community renewal (``units.min_old_floor_share``).
    """

    min_share: float = 0.3
    old_residential_share: float = 0.2
    min_historic_share: float = 0.25
    min_old_floor_share: float = 0.5

    @classmethod
    def from_config(cls, units_cfg: UnitsConfig) -> ClassRules:
        """The rules with the thresholds the config sets (``[units]``)."""
        return cls(min_historic_share=units_cfg.min_historic_share,
                   min_old_floor_share=units_cfg.min_old_floor_share)


def _num(df: pd.DataFrame, name: str, default: float = 0.0) -> NDArray[np.float64]:
    if name not in df.columns:
        return np.full(len(df), default)
    return np.nan_to_num(df[name].to_numpy(dtype=float), nan=default)


def reclassify_units(units: gpd.GeoDataFrame, *, rules: ClassRules = ClassRules()
                     ) -> gpd.GeoDataFrame:
    """Apply the class rules to units that already carry shares and counts.

    Rules, first match wins:

    1. ``historic_conservation`` (历史风貌保护): designated conservation areas cover at least
       ``min_historic_share`` of the unit (``historic_share``). Historic points and small
       monuments (``n_historic_points``) never decide the class.
    2. ``old_community_renewal`` (老旧小区改造): old communities hold at least
       ``min_old_floor_share`` of the unit's residential floor area (``old_floor_share`` =
       ``old_floor_area_m2`` / ``residential_floor_area_m2``, set here) and
       ``share_residential`` ≥ ``old_residential_share``. Old communities are only known after
       the packages stage, which fills ``n_old_communities``/``old_floor_area_m2`` and calls this
       function again.
    3. The land use with the largest share, if that share is ≥ ``min_share``: residential →
       ``residential_upgrading`` (居住品质提升), commercial → ``commercial_mixed``
       (商业商务综合), industrial → ``industrial_transformation`` (产业转型), public →
       ``public_service`` (公共服务), green → ``green_open_space`` (绿地开敞空间).
    4. Otherwise ``general_renewal`` (综合更新): OSM land use too sparse to say more.

    Parameters
    ----------
    units
        Units with ``share_*``, ``historic_share``, ``n_old_communities``,
        ``old_floor_area_m2`` and ``residential_floor_area_m2`` columns (missing ones count as
        0; without ``residential_floor_area_m2`` the old communities' floor area is all the
        residential floor area there is).
    rules
        Thresholds.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy with ``old_floor_share``, ``unit_class`` and ``class_label`` set.
    """
    out = units.copy()
    shares = np.column_stack([_num(out, f"share_{c}") for c in _SHARE_CLASSES])
    dom = shares.argmax(axis=1) if len(out) else np.zeros(0, dtype=int)
    dom_share = shares.max(axis=1) if len(out) else np.zeros(0)
    cls = np.array([_DOMINANT_TO_CLASS[_SHARE_CLASSES[d]] for d in dom], dtype=object)
    cls[dom_share < rules.min_share] = "general_renewal"
    old = _num(out, "old_floor_area_m2")
    # The old communities are part of the housing: their floor area (an inventory's figure may
    # exceed the OSM estimate) bounds the residential floor area from below.
    total = np.maximum(_num(out, "residential_floor_area_m2"), old)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["old_floor_share"] = np.round(np.where(total > 0, old / np.where(total > 0, total, 1),
                                                   0.0), 4)
    n_old = _num(out, "n_old_communities")
    cls[(n_old >= 1) & (out["old_floor_share"].to_numpy() >= rules.min_old_floor_share)
        & (_num(out, "share_residential") >= rules.old_residential_share)] = \
        "old_community_renewal"
    cls[_num(out, "historic_share") >= rules.min_historic_share] = "historic_conservation"
    out["unit_class"] = cls
    out["class_label"] = [CLASS_LABELS[c] for c in cls]
    return out


def class_counts_line(units: pd.DataFrame) -> str:
    """One summary line: how many units of each class (most frequent first)."""
    counts = units["unit_class"].value_counts()
    return f"classes ({len(counts)}): " + ", ".join(
        f"{CLASS_LABELS.get(c, c)} {n}" for c, n in counts.items())


def _overlap_share(units: gpd.GeoDataFrame, polys: gpd.GeoDataFrame) -> NDArray[np.float64]:
    out = np.zeros(len(units))
    if polys.empty or units.empty:
        return out
    parts = shapely.get_parts(shapely.union_all(polys.geometry.values))
    p, q = shapely.STRtree(parts).query(units.geometry.values, predicate="intersects")
    np.add.at(out, p, shapely.area(shapely.intersection(units.geometry.values[p], parts[q])))
    return np.clip(out / units.geometry.area.to_numpy(), 0.0, 1.0)


def _count_in(units: gpd.GeoDataFrame, features: gpd.GeoDataFrame | None) -> NDArray[np.int64]:
    if features is None or features.empty or units.empty:
        return np.zeros(len(units), dtype=np.int64)
    pts = shapely.point_on_surface(features.geometry.values)
    _, q = shapely.STRtree(units.geometry.values).query(pts, predicate="within")
    return np.bincount(q, minlength=len(units)).astype(np.int64)


def _polygon_only(geoms: NDArray[Any]) -> NDArray[Any]:
    """The polygonal part of each geometry (intersections may add stray lines and points)."""
    out = geoms.copy()
    mixed = np.flatnonzero(shapely.get_type_id(geoms) == 7)
    for k in mixed:
        parts = [g for g in shapely.get_parts(geoms[k]) if shapely.get_type_id(g) in (3, 6)]
        out[k] = shapely.union_all(parts) if parts else shapely.Polygon()
    return out


def residential_floor_area(units: gpd.GeoDataFrame, landuse: gpd.GeoDataFrame | None,
                           buildings: gpd.GeoDataFrame | None, *, fallback_far: float
                           ) -> NDArray[np.float64]:
    """Gross residential floor area of each unit (m²).

    The residential land (``luclass == "residential"``, overlapping polygons counted once) is cut
    by the units; each piece counts as a community does in
    :func:`urbanunits.floor_area.estimate_floor_area`: the building footprints inside it × their
    levels, or, where no footprint is mapped, its area × ``fallback_far``.

    Parameters
    ----------
    units
        Unit polygons, metric CRS.
    landuse
        Land-use polygons with ``luclass``, same CRS.
    buildings
        Footprints with ``levels`` and ``levels_tagged``, same CRS.
    fallback_far
        Floor-area ratio of residential land with no mapped footprint.

    Returns
    -------
    numpy.ndarray
        Floor area per unit, aligned with ``units``.
    """

    out = np.zeros(len(units))
    if landuse is None or landuse.empty or units.empty:
        return out
    res = landuse[landuse["luclass"] == "residential"]
    if res.empty:
        return out
    parts = shapely.get_parts(shapely.union_all(res.geometry.values))
    ui, pi = shapely.STRtree(parts).query(units.geometry.values, predicate="intersects")
    pieces = _polygon_only(shapely.intersection(units.geometry.values[ui], parts[pi]))
    keep = shapely.area(pieces) > 0
    if not keep.any():
        return out
    frame = gpd.GeoDataFrame(geometry=pieces[keep], crs=units.crs)
    blds = buildings if buildings is not None and "levels_tagged" in buildings.columns else \
        gpd.GeoDataFrame({"levels": [], "levels_tagged": []}, geometry=[], crs=units.crs)
    est = estimate_floor_area(frame, blds, fallback_far=fallback_far)
    np.add.at(out, ui[keep], np.nan_to_num(est["floor_area_m2"].to_numpy(dtype=float)))
    return out


def classify_units(units: gpd.GeoDataFrame, *, landuse: gpd.GeoDataFrame | None = None,
                   residential: gpd.GeoDataFrame | None = None,
                   historic: gpd.GeoDataFrame | None = None,
                   heritage_areas: gpd.GeoDataFrame | None = None,
                   buildings: gpd.GeoDataFrame | None = None, fallback_far: float = 1.5,
                   rules: ClassRules = ClassRules()) -> gpd.GeoDataFrame:
    """Land-use shares, counts and the unit class (rules in :func:`reclassify_units`).

    Parameters
    ----------
    units
        Unit polygons in a metric CRS.
    landuse
        Polygons with ``luclass`` in residential, commercial, industrial, green, public
        (:class:`~urbanunits.sources.osm.OSMLayers` ``landuse``).
    residential
        Named communities; counted by a point on their surface.
    historic
        Historic/heritage features (points or polygons) with a ``designated`` column
        (:class:`~urbanunits.sources.osm.OSMLayers` ``historic``): designated areas give
        ``historic_share``, the rest (or all, without the column) are counted by a point on their
        surface.
    heritage_areas
        More designated conservation areas (``inputs.heritage_areas``), polygons.
    buildings
        Footprints with ``levels`` and ``levels_tagged``, for the residential floor area
        (:func:`residential_floor_area`).
    fallback_far
        Floor-area ratio of residential land with no mapped footprint
        (``packages.fallback_far``).
    rules
        Class thresholds.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy with ``share_residential``, ``share_commercial``, ``share_industrial``,
        ``share_green``, ``share_public`` (0–1 of the unit's area; a landuse polygon nested in
        another counts for both, so shares may sum above 1), ``historic_share`` (0–1 of the
        unit covered by designated conservation areas), ``n_residential_areas``,
        ``n_historic_points``, ``residential_floor_area_m2``, ``n_old_communities`` (0),
        ``old_floor_area_m2`` (0.0), ``old_floor_share``, ``unit_class`` and ``class_label``.
    """
    require_projected(units, "classify_units")
    out = units.copy()

    def to_units(gdf: gpd.GeoDataFrame | None, what: str) -> gpd.GeoDataFrame | None:
        if gdf is None or gdf.empty:
            return None
        return _repair(gdf.to_crs(units.crs) if gdf.crs != units.crs else gdf, what)

    lu = to_units(landuse, "land-use polygons")
    for c in _SHARE_CLASSES:
        sel = lu[lu["luclass"] == c] if lu is not None else None
        out[f"share_{c}"] = np.round(_overlap_share(out, sel), 4) if sel is not None \
            else np.zeros(len(out))
    hist = to_units(historic, "historic features")
    areas = [] if heritage_areas is None else [heritage_areas]
    if hist is not None:
        # Only designated polygons measure; points and undesignated monuments are counted.
        flag = (hist["designated"].fillna(False).astype(bool).to_numpy()
                if "designated" in hist.columns else np.zeros(len(hist), dtype=bool))
        flag = flag & np.isin(shapely.get_type_id(hist.geometry.values), [3, 6])
        areas.append(hist[flag])
        hist = hist[~flag]
    parts = [a.to_crs(units.crs)[["geometry"]] for a in areas if not a.empty]
    hareas = to_units(gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=units.crs),
                      "heritage areas") if parts else None
    out["historic_share"] = (np.round(_overlap_share(out, hareas), 4) if hareas is not None
                             else np.zeros(len(out)))
    out["n_residential_areas"] = _count_in(out, residential)
    out["n_historic_points"] = _count_in(out, hist)
    b = buildings.to_crs(units.crs) if buildings is not None and not buildings.empty \
        and buildings.crs != units.crs else buildings
    out["residential_floor_area_m2"] = np.round(
        residential_floor_area(out, lu, b, fallback_far=fallback_far), 0)
    if "n_old_communities" not in out.columns:
        out["n_old_communities"] = np.zeros(len(out), dtype=np.int64)
    if "old_floor_area_m2" not in out.columns:
        out["old_floor_area_m2"] = np.zeros(len(out), dtype=float)
    return reclassify_units(out, rules=rules)


def recount_old_communities(units: gpd.GeoDataFrame, communities: pd.DataFrame, *,
                            rules: ClassRules = ClassRules()) -> gpd.GeoDataFrame:
    """Count the packages stage's communities into the units and re-apply the class rules.

    Parameters
    ----------
    units
        Update units with ``unit_id`` and the columns :func:`classify_units` adds.
    communities
        Old and new communities with ``unit_id``, ``is_old`` and ``floor_area_m2``
        (:func:`urbanunits.packages.build_inventory`; ``unit_id`` None outside every unit).
    rules
        Class thresholds (:meth:`ClassRules.from_config`).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy with ``n_old_communities``, ``old_floor_area_m2`` (sums over the old
        communities in each unit) and ``residential_floor_area_m2`` (the larger of the
        land-use estimate and the communities' total, so that an inventory's floor areas are
        never outweighed by a missing OSM estimate), then the classes.
    """
    out = units.copy()
    comm = communities[communities["unit_id"].notna()]
    floor = comm["floor_area_m2"].astype(float).fillna(0.0)
    old = comm["is_old"].astype(bool)
    total = floor.groupby(comm["unit_id"]).sum()
    old_floor = floor[old].groupby(comm.loc[old, "unit_id"]).sum()
    n_old = old[old].groupby(comm.loc[old, "unit_id"]).size()
    ids = out["unit_id"]
    out["n_old_communities"] = ids.map(n_old).fillna(0).astype(np.int64).to_numpy()
    out["old_floor_area_m2"] = ids.map(old_floor).fillna(0.0).astype(float).to_numpy()
    own = _num(out, "residential_floor_area_m2")
    out["residential_floor_area_m2"] = np.maximum(
        own, ids.map(total).fillna(0.0).astype(float).to_numpy()).round(0)
    return reclassify_units(out, rules=rules)


# --------------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------------


def assign_unit_ids(units: gpd.GeoDataFrame, *, band_m: float,
                    subdistrict_order: Sequence[str] | None = None) -> pd.Series:
    """Stable ids ordered by sub-district, then position (rows north to south, west to east).

    Units are sorted by sub-district (``subdistrict_order``, else by name; units outside every
    sub-district last), then by the row of ``band_m`` metres their surface point falls in,
    counted from the northern edge, then by x. Ids are ``U001``... without sub-districts, and
    ``S01-U001``... with them (``S00`` outside every sub-district). The same geometry always
    gets the same id.

    Parameters
    ----------
    units
        Units in a metric CRS with a ``subdistrict`` column (may be all null).
    band_m
        Height of the reading rows (m).
    subdistrict_order
        Sub-district names in id order (default: sorted names present).

    Returns
    -------
    pandas.Series
        ``unit_id`` indexed like ``units``.
    """
    require_projected(units, "assign_unit_ids")
    if units.empty:
        return pd.Series([], index=units.index, dtype="object", name="unit_id")
    sd = units["subdistrict"] if "subdistrict" in units.columns else pd.Series(
        [None] * len(units), index=units.index)
    names = list(subdistrict_order) if subdistrict_order is not None else sorted(
        {str(s) for s in sd.dropna()})
    rank = {s: k + 1 for k, s in enumerate(names)}
    sd_rank = np.array([rank.get(s, len(rank) + 1) if s is not None and s == s else len(rank) + 1
                        for s in sd])
    pts = shapely.point_on_surface(units.geometry.values)
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    top = units.total_bounds[3]
    row = np.floor((top - y) / max(band_m, 1.0)).astype(int)
    order = np.lexsort((np.round(y, 3) * -1, np.round(x, 3), row, sd_rank))
    ids = np.empty(len(units), dtype=object)
    with_sd = bool(rank)
    width = max(3, len(str(len(units))))
    counter: dict[int, int] = {}
    for k in order:
        r = int(sd_rank[k])
        counter[r] = counter.get(r, 0) + 1
        num = f"U{counter[r]:0{width}d}"
        ids[k] = f"S{(r if r <= len(rank) else 0):02d}-{num}" if with_sd else num
    return pd.Series(ids, index=units.index, name="unit_id")


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


@dataclass
class UnitsResult:
    """What :func:`update_units` produced.

    Attributes
    ----------
    units
        Layer ``update_units``: one row per unit (see :func:`update_units`).
    blocks
        Layer ``blocks``: the barrier-bounded blocks (or their parts, where a block was split)
        that units are made of.
    report
        Units outside the size bounds: ``unit_id``, ``subdistrict``, ``area_m2``,
        ``size_status``, ``reason``.
    barriers
        The prepared lines (barriers, split roads, sub-district and study-area outlines,
        connectors), for maps and checks.
    min_area_m2, max_area_m2
        The size bounds used.
    timings
        Seconds per step.
    """

    units: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    report: pd.DataFrame
    barriers: gpd.GeoDataFrame
    min_area_m2: float
    max_area_m2: float
    timings: dict[str, float] = field(default_factory=dict)

    def share_within_bounds(self) -> float:
        """Share (0–1) of units whose area lies within the bounds."""
        if self.units.empty:
            return 0.0
        return float((self.units["size_status"] == "within").mean())

    def summary_lines(self) -> list[str]:
        """Counts, classes, share within bounds and out-of-bound reasons, for the terminal."""
        u = self.units
        n_sd = u["subdistrict"].nunique(dropna=True)
        lines = [f"units: {len(u)}" + (f" in {n_sd} sub-districts" if n_sd else "")
                 + f", from {len(self.blocks)} blocks; land area {u['area_m2'].sum() / 1e4:.1f} ha"]
        lines.append(class_counts_line(u))
        n_ok = int((u["size_status"] == "within").sum())
        lines.append(f"within {self.min_area_m2 / 1e4:g}–{self.max_area_m2 / 1e4:g} ha: "
                     f"{n_ok} of {len(u)} ({100 * self.share_within_bounds():.1f} %)")
        for r in self.report.itertuples(index=False):
            lines.append(f"  {r.unit_id}: {r.area_m2 / 1e4:.2f} ha, {r.size_status} — {r.reason}")
        return lines


def _small_reasons(units: gpd.GeoDataFrame, adj: pd.DataFrame, *, max_area_m2: float
                   ) -> list[str]:
    """Why each unit below the minimum could not merge (post hoc, from unit adjacency)."""
    sd = units["subdistrict"].astype("object").fillna("\0none").to_numpy()
    area = units["area_m2"].to_numpy()
    nbrs: dict[int, list[tuple[int, float, float]]] = {}
    for i, j, ln, hd in adj[["i", "j", "length_m", "hard_m"]].itertuples(index=False):
        nbrs.setdefault(int(i), []).append((int(j), ln, hd))
        nbrs.setdefault(int(j), []).append((int(i), ln, hd))
    out = []
    for k in range(len(units)):
        nb = nbrs.get(k, [])
        same = [(j, ln, hd) for j, ln, hd in nb if sd[j] == sd[k]]
        if not nb:
            out.append("isolated: bounded only by water, the study-area edge or dropped faces")
        elif not same:
            out.append("its only neighbours lie in other sub-districts")
        elif all(ln - hd <= 0 for _, ln, hd in same):
            out.append("separated from its neighbours by river, rail or water")
        elif all(area[k] + area[j] > max_area_m2 for j, ln, hd in same if ln - hd > 0):
            out.append("merging with any neighbour would exceed the maximum area")
        else:
            out.append("not merged")
    return out


def update_units(layers: OSMLayers, cfg: Config, *,
                 subdistricts: gpd.GeoDataFrame | None = None,
                 heritage_areas: gpd.GeoDataFrame | None = None,
                 rules: ClassRules | None = None) -> UnitsResult:
    """Divide the study area into update units (更新单元).

    See the module docstring for the method. Options come from ``cfg.units``.

    Parameters
    ----------
    layers
        Parsed OSM layers (metric CRS).
    cfg
        Run configuration.
    subdistricts
        Sub-district polygons (``subdistrict`` or ``name`` column; any CRS, re-projected).
        Units never cross their boundaries and merge only within one sub-district.
    heritage_areas
        Designated conservation areas besides OSM's (``inputs.heritage_areas``, read by
        :func:`urbanunits.sources.heritage.read_heritage_areas`).
    rules
        Unit-class thresholds (default: :meth:`ClassRules.from_config` of ``cfg.units``).

    Returns
    -------
    UnitsResult
        ``units`` columns: ``unit_id``, ``subdistrict``, ``area_m2``, ``size_status``
        (``within``, ``below_min`` or ``above_max``), ``size_note`` (why a unit is out of
        bounds, else ""), ``n_blocks``, ``share_residential``,
        ``share_commercial``, ``share_industrial``, ``share_green``, ``share_public``,
        ``historic_share``, ``n_residential_areas``, ``n_historic_points``,
        ``residential_floor_area_m2``, ``n_old_communities``, ``old_floor_area_m2``,
        ``old_floor_share``, ``unit_class``, ``class_label``, geometry (see
        :func:`classify_units`). ``blocks`` columns: ``block_id``,
        ``unit_id``, ``subdistrict``, ``area_m2``, ``origin``, ``sliver``, geometry.
    """
    u = cfg.units
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def tick(step: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[step] = now - t
        t = now

    require_projected(layers.study_area, "update_units")
    crs = layers.study_area.crs
    area = _study_geom(layers.study_area)
    if area is None or area.is_empty:
        raise DataError("study area", "is empty", "check study_area in the config")
    sd = prepare_subdistricts(subdistricts, crs=crs, study_area=area)
    # Repair input polygons once (counted in the log), not in every helper that reads them.
    layers = dataclasses.replace(layers, water=_repair(layers.water, "water polygons"),
                                 landuse=_repair(layers.landuse, "land-use polygons"))

    bar = barrier_lines(layers, highways=u.barrier_highways, railways=u.barrier_railways,
                        waterways=u.barrier_waterways, water_edges=u.water_edges,
                        min_water_body_m2=u.min_area_m2)
    n_inside = int(shapely.intersects(bar.geometry.values, area).sum()) if len(bar) else 0
    if n_inside == 0:
        logger.warning("no barrier lines (%s) inside the study area: it is one block",
                       ", ".join([*u.barrier_highways[:3], "..."]))
    spl = split_lines(layers, split_highways=u.split_highways)
    parts = [f for f in (bar, spl, subdistrict_lines(sd)) if not f.empty]
    raw = (gpd.GeoDataFrame(pd.concat([f.set_crs(crs, allow_override=True) for f in parts],
                                      ignore_index=True), crs=crs)
           if parts else _empty_lines(crs))
    # OSM ingest keeps lines up to this far beyond the study area, so a line that stops this
    # close to the edge was cut by the extract rather than ending there.
    edge_snap_m = max(50.0, 4 * u.snap_tolerance_m)
    lines = prepare_lines(raw, area, snap_tolerance_m=u.snap_tolerance_m, edge_snap_m=edge_snap_m)
    tick("lines")

    atoms = polygonize_blocks(lines, area, grid_size_m=_GRID_M)
    adj = face_adjacency(atoms, lines)
    tick("faces")

    ws = water_share(atoms, layers.water)
    land = ws < u.min_water_share
    if not land.any():
        raise DataError("study area", "no land left after removing water faces",
                        "check study_area and units.min_water_share")
    keep = np.flatnonzero(land)
    remap = np.full(len(atoms), -1)
    remap[keep] = np.arange(len(keep))
    atoms = atoms.iloc[keep].reset_index(drop=True)
    atoms["water_share"] = ws[keep]
    adj = adj.assign(i=remap[adj["i"]], j=remap[adj["j"]])
    adj = adj[(adj["i"] >= 0) & (adj["j"] >= 0)].reset_index(drop=True)
    logger.info("%d faces, %d dropped as water", len(land), int((~land).sum()))
    atoms["subdistrict"] = assign_subdistricts(atoms, sd).to_numpy()
    groups = pd.factorize(atoms["subdistrict"].astype("object").fillna("\0none"))[0]
    tick("water")

    blocks0 = label_blocks(len(atoms), adj, level=0, groups=groups)
    labels, info = split_large(atoms, adj, blocks0, min_area_m2=u.min_area_m2,
                               max_area_m2=u.max_area_m2, sliver_width_m=u.sliver_width_m,
                               level_names=u.split_highways, groups=groups)
    tick("split")

    b_area, b_perim, b_adj = _aggregate(labels, atoms["area_m2"].to_numpy(),
                                        atoms["perimeter_m"].to_numpy(), adj)
    b_sd = np.empty(len(b_area), dtype=object)
    b_sd[labels] = atoms["subdistrict"].to_numpy()
    blocks_tab = pd.DataFrame({"area_m2": b_area, "perimeter_m": b_perim, "subdistrict": b_sd})
    merge = merge_small(blocks_tab, b_adj, min_area_m2=u.min_area_m2, max_area_m2=u.max_area_m2,
                        sliver_width_m=u.sliver_width_m, group_col="subdistrict").to_numpy()
    tick("merge")

    unit_of_atom = merge[labels]
    units = _dissolve(atoms, unit_of_atom, crs)
    blocks = _dissolve(atoms, labels, crs)
    m_area, _, u_adj = _aggregate(merge, b_area, b_perim, b_adj)
    units["area_m2"] = shapely.area(units.geometry.values)
    u_sd = np.empty(len(m_area), dtype=object)
    u_sd[merge] = b_sd
    units["subdistrict"] = u_sd
    units["n_blocks"] = np.bincount(merge, minlength=len(units))
    status = np.where(units["area_m2"] < u.min_area_m2, "below_min",
                      np.where(units["area_m2"] > u.max_area_m2, "above_max", "within"))
    units["size_status"] = status
    tick("dissolve")

    units = classify_units(units, landuse=layers.landuse, residential=layers.residential,
                           historic=layers.historic, heritage_areas=heritage_areas,
                           buildings=layers.buildings, fallback_far=cfg.packages.fallback_far,
                           rules=rules or ClassRules.from_config(u))
    tick("classify")

    # Rows about one typical unit high read naturally on the map.
    band = math.sqrt(float(np.median(units["area_m2"])))
    units["unit_id"] = assign_unit_ids(units, band_m=band, subdistrict_order=(
        list(sd["subdistrict"]) if sd is not None else None))
    reasons = np.array([""] * len(units), dtype=object)
    small = np.flatnonzero(status == "below_min")
    if len(small):
        why = _small_reasons(units, u_adj, max_area_m2=u.max_area_m2)
        reasons[small] = [why[k] for k in small]
    for k in np.flatnonzero(status == "above_max"):
        notes = [n for n in info["split_note"].to_numpy()[merge == k] if n]
        reasons[k] = notes[0] if notes else "grew above the maximum absorbing slivers"
    units["size_note"] = reasons
    report = pd.DataFrame({"unit_id": units["unit_id"], "subdistrict": units["subdistrict"],
                           "area_m2": units["area_m2"].round(1), "size_status": status,
                           "reason": reasons})
    report = report[report["size_status"] != "within"].sort_values("unit_id")
    report = report.reset_index(drop=True)

    cols = ["unit_id", "subdistrict", "area_m2", "size_status", "size_note", "n_blocks",
            *[f"share_{c}" for c in _SHARE_CLASSES], "historic_share", "n_residential_areas",
            "n_historic_points", "residential_floor_area_m2", "n_old_communities",
            "old_floor_area_m2", "old_floor_share", "unit_class", "class_label", "geometry"]
    units["area_m2"] = units["area_m2"].round(1)
    id_of_label = units["unit_id"].to_numpy()  # units are still in merge-label order here
    units = units[cols].sort_values("unit_id").reset_index(drop=True)

    blocks["unit_id"] = id_of_label[merge]
    blocks["subdistrict"] = b_sd
    blocks["area_m2"] = np.round(shapely.area(blocks.geometry.values), 1)
    blocks["origin"] = info["origin"].to_numpy()
    blocks["sliver"] = [_thin(a, p, u.sliver_width_m) for a, p in zip(b_area, b_perim,
                                                                        strict=True)]
    pts = shapely.point_on_surface(blocks.geometry.values)
    order = np.lexsort((np.round(shapely.get_x(pts), 3), -np.round(shapely.get_y(pts), 3),
                        blocks["unit_id"].to_numpy()))
    blocks = blocks.iloc[order].reset_index(drop=True)
    blocks.insert(0, "block_id", [f"B{k + 1:0{max(4, len(str(len(blocks))))}d}"
                                  for k in range(len(blocks))])
    blocks = blocks[["block_id", "unit_id", "subdistrict", "area_m2", "origin", "sliver",
                     "geometry"]]
    tick("attributes")
    logger.info("update units: %d units from %d blocks (%d faces)", len(units), len(blocks),
                len(atoms))
    return UnitsResult(units=units, blocks=blocks, report=report, barriers=lines,
                       min_area_m2=u.min_area_m2, max_area_m2=u.max_area_m2, timings=timings)


def _dissolve(atoms: gpd.GeoDataFrame, labels: NDArray[np.intp], crs: Any) -> gpd.GeoDataFrame:
    """Union atoms by label (coverage union: exact and fast for edge-matched faces)."""
    m = int(labels.max()) + 1
    order = np.argsort(labels, kind="stable")
    geoms = atoms.geometry.values[order]
    bounds = np.searchsorted(labels[order], np.arange(m + 1))
    out = np.empty(m, dtype=object)
    for k in range(m):
        g = geoms[bounds[k]:bounds[k + 1]]
        out[k] = g[0] if len(g) == 1 else shapely.coverage_union_all(g)
    bad = ~shapely.is_valid(out)
    if bad.any():
        logger.warning("repaired %d invalid unit polygon(s) after union", int(bad.sum()))
        out[bad] = shapely.make_valid(out[bad])
    return gpd.GeoDataFrame(geometry=shapely.normalize(out), crs=crs)
