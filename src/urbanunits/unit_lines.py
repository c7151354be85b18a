"""Update units, step 1: the lines that bound and split blocks (see :mod:`urbanunits.units`).

Barrier lines, split roads and sub-district outlines from the parsed layers, clipped to the
study area, with short connectors closing the gaps where lines almost meet. What the OSM tags
mean (tunnels, bridges) comes decided from the ingest as typed columns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from urbanunits.crs import require_projected
from urbanunits.errors import CRSError, DataError
from urbanunits.layers import OSMLayers, line_flag

__all__ = [
    "HARD_KINDS",
    "barrier_lines",
    "prepare_lines",
    "prepare_subdistricts",
    "split_lines",
    "subdistrict_lines",
]

logger = logging.getLogger(__name__)

#: Line kinds that bound blocks and are crossed by a merge only to absorb a sliver.
HARD_KINDS: frozenset[str] = frozenset({"rail", "waterway", "water_edge"})

# Cut levels of shared edges: 0 = on a barrier line (always a cut), k = on a split line of level
# k (a cut once level k is used), _OPEN = on no line at all (never a cut).
_OPEN = np.iinfo(np.int32).max
_GRID_M = 0.01  # snap-rounding grid for noding (1 cm)
_TOUCH_M = 1e-3  # an endpoint this close to another line already meets it


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
        bridge spans over water polygons are cut away (``is_tunnel``/``is_bridge``, set by
        the ingest: :mod:`urbanunits.sources.tags`).
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
        sel = gdf[gdf[key].isin(list(classes)).to_numpy() & ~line_flag(gdf, "is_tunnel")]
        if sel.empty:
            continue
        geoms = np.array(sel.geometry.values, dtype=object)
        bridge = line_flag(sel, "is_bridge")
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
        sel = roads[(base == cls).to_numpy() & ~line_flag(roads, "is_tunnel")]
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
    geoms = np.asarray(lines.geometry.values, dtype=object)
    # Lines well inside the area are their own intersection with it: only the others are
    # clipped (simple, open lines without repeated points, which an overlay would not change).
    shapely.prepare(area)
    xy, at = shapely.get_coordinates(geoms, return_index=True)
    repeated = np.zeros(len(geoms), dtype=bool)
    repeated[at[1:][(at[1:] == at[:-1]) & (xy[1:] == xy[:-1]).all(axis=1)]] = True
    inside = (shapely.contains_properly(area, geoms) & shapely.is_simple(geoms)
              & ~shapely.is_closed(geoms) & ~repeated)
    clipped = geoms.copy()
    clipped[~inside] = shapely.intersection(geoms[~inside], area)
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
    geoms = np.asarray(lines.geometry.values, dtype=object)
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
    # Candidates: any line within tolerance_m, and the study-area outline within edge_m (two
    # queries: one at edge_m over all lines would return every line near each end).
    p, q = tree.query(ends[dang], predicate="dwithin", distance=tolerance_m)
    edge = np.flatnonzero(lines["kind"].to_numpy() == "study_area")
    if len(edge):
        pe, qe = shapely.STRtree(geoms[edge]).query(ends[dang], predicate="dwithin",
                                                     distance=edge_m)
        pair = np.unique(np.concatenate([p * len(geoms) + q, pe * len(geoms) + edge[qe]]))
        p, q = pair // len(geoms), pair % len(geoms)
    own = owner[dang[p]]
    ok = (q != own) & (cut[q] <= cut[own])
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
