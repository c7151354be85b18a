"""Isochrones: the walkable area within each facility's standard distance (optional output).

For every facility, one bounded search over the walk network (cut at its subtype's
``distance_m``); the streets reached, including the reached part of partly reached edges and the
facility's own edge, are buffered by ``lifecircle.isochrone_buffer_m`` and unioned. All geometry
in the network's metric CRS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from urbanunits.config import Category, LifeCircleConfig
from urbanunits.network import Router, Snap, WalkNetwork

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["isochrones"]


def _pieces(geom: NDArray[np.object_], start: NDArray[np.float64],
            end: NDArray[np.float64]) -> NDArray[np.object_]:
    """Sub-lines between normalised positions ``start`` < ``end`` of each line."""
    from shapely.ops import substring

    out = np.empty(len(geom), dtype=object)
    straight = shapely.get_num_coordinates(geom) == 2
    if straight.any():
        a = shapely.line_interpolate_point(geom[straight], start[straight], normalized=True)
        b = shapely.line_interpolate_point(geom[straight], end[straight], normalized=True)
        coords = np.stack([shapely.get_coordinates(a), shapely.get_coordinates(b)], axis=1)
        out[straight] = shapely.linestrings(coords)
    for i in np.flatnonzero(~straight):  # curved edges of a simplified graph only
        out[i] = substring(geom[i], start[i], end[i], normalized=True)
    return out


def isochrones(router: Router, net: WalkNetwork, facilities: gpd.GeoDataFrame,
               q_fac: NDArray[np.intp], snap: Snap, categories: Mapping[str, Category],
               lc: LifeCircleConfig) -> gpd.GeoDataFrame:
    """Walkable area within each facility's standard distance: reached streets, buffered.

    One bounded search per facility (searches are cut at the subtype's ``distance_m``, and run
    in chunks to bound memory). Partly reached edges contribute the reached part.

    Returns
    -------
    geopandas.GeoDataFrame
        ``facility_id``, ``category``, ``subtype``, ``name``, ``distance_m``, ``minutes``,
        polygon geometry.
    """
    L = net.edge_len
    safe_len = np.where(L > 0, L, 1.0)
    rows: list[dict[str, Any]] = []
    chunk = max(1, int(2e7 // max(router.n_total, 1)))
    for key, cat in categories.items():
        for s, st in cat.subtypes.items():
            T = st.distance_m
            idx = np.flatnonzero(((facilities["category"] == key)
                                  & (facilities["subtype"] == s)).to_numpy() & (q_fac >= 0))
            for lo in range(0, len(idx), chunk):
                part = idx[lo:lo + chunk]
                D = router.distance_matrix(q_fac[part], limit_m=T)
                for row, f in zip(D, part, strict=True):
                    du, dv = row[net.edge_u], row[net.edge_v]
                    ru = np.clip((T - du) / safe_len, 0.0, 1.0)  # reached from the u end
                    rv = np.clip((T - dv) / safe_len, 0.0, 1.0)
                    e_all = np.flatnonzero((ru > 0) | (rv > 0))
                    full = e_all[ru[e_all] + rv[e_all] >= 1.0]
                    part_u = e_all[(ru[e_all] > 0) & (ru[e_all] + rv[e_all] < 1.0)]
                    part_v = e_all[(rv[e_all] > 0) & (ru[e_all] + rv[e_all] < 1.0)]
                    starts = [np.zeros(len(full)), np.zeros(len(part_u)), 1.0 - rv[part_v]]
                    ends = [np.ones(len(full)), ru[part_u], np.ones(len(part_v))]
                    edges = [full, part_u, part_v]
                    reach = T - snap.offset_m[f]
                    if reach > 0:  # the facility's own edge, reached directly
                        e = snap.edge[f]
                        c = snap.along_m[f] / safe_len[e]
                        r = reach / safe_len[e]
                        edges.append(np.array([e]))
                        starts.append(np.array([max(0.0, c - r)]))
                        ends.append(np.array([min(1.0, c + r)]))
                    ei = np.concatenate(edges).astype(np.intp)
                    st_ = np.concatenate(starts)
                    en_ = np.concatenate(ends)
                    keep = en_ > st_
                    lines = _pieces(net.edge_geom[ei[keep]], st_[keep], en_[keep])
                    if len(lines) == 0:
                        continue
                    # Merging chains of segments first makes far fewer buffers to union.
                    parts = shapely.get_parts(shapely.line_merge(
                        shapely.multilinestrings(lines)))
                    poly = shapely.union_all(shapely.buffer(parts, lc.isochrone_buffer_m))
                    rows.append({"facility_id": facilities.at[f, "facility_id"],
                                 "category": key, "subtype": s,
                                 "name": facilities.at[f, "name"]
                                 if "name" in facilities else None,
                                 "distance_m": T, "minutes": T / lc.walk_speed_m_s / 60.0,
                                 "geometry": poly})
    cols = ["facility_id", "category", "subtype", "name", "distance_m", "minutes"]
    if not rows:
        return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in cols},
                                geometry=gpd.GeoSeries([], crs=facilities.crs),
                                crs=facilities.crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=facilities.crs)
