"""Gross floor area of areas from building footprints × storeys (used by units and packages).

One concept shared by two stages: the units stage measures each unit's residential floor area, the
packages stage each community's. Kept apart from both so that neither stage imports the other.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from urbanunits._years import parse_years as parse_year
from urbanunits.crs import require_projected

__all__ = ["estimate_floor_area"]


def estimate_floor_area(communities: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, *,
                        fallback_far: float) -> pd.DataFrame:
    """Gross floor area of each community from building footprints × levels.

    Each footprint counts with the part of it inside the community (so a building on a boundary
    is shared by area), times its ``levels`` (tagged ``building:levels``, ``height`` / 3 m, or the
    config default). Communities without any footprint get site area × ``fallback_far``.

    Parameters
    ----------
    communities
        Community polygons (points get NaN), metric CRS.
    buildings
        Footprints with ``levels`` and ``levels_tagged`` (:class:`~urbanunits.sources.osm.
        OSMLayers` ``buildings``), same CRS; ``start_date`` is used when present.
    fallback_far
        Floor-area ratio assumed where no footprint is mapped.

    Returns
    -------
    pandas.DataFrame
        ``floor_area_m2``, ``footprint_m2``, ``n_buildings``, ``levels_tagged_share`` (share of
        the footprint area whose levels were tagged), ``buildings_year`` (median building
        ``start_date``, NaN if none), ``floor_area_method`` (``"footprints×levels"``,
        ``"site×fallback_far"`` or ``"none"`` for points), indexed like ``communities``.
    """
    require_projected(communities, "estimate_floor_area")
    n = len(communities)
    geoms = np.asarray(communities.geometry.values)
    is_poly = np.isin(shapely.get_type_id(geoms), [3, 6]) & ~shapely.is_empty(geoms)
    floor = np.zeros(n)
    foot = np.zeros(n)
    tagged = np.zeros(n)
    nb = np.zeros(n, dtype=np.int64)
    year = np.full(n, np.nan)
    if not buildings.empty and is_poly.any():
        if buildings.crs != communities.crs:
            buildings = buildings.to_crs(communities.crs)
        bgeo = np.asarray(buildings.geometry.values)
        tree = shapely.STRtree(bgeo)
        c_i, b_i = tree.query(geoms, predicate="intersects")
        keep = is_poly[c_i]
        c_i, b_i = c_i[keep], b_i[keep]
        # Most footprints lie wholly inside one community: take their area directly and
        # intersect only the ones on a boundary (about 3× faster than intersecting every pair).
        shapely.prepare(geoms)
        inside = shapely.contains_properly(geoms[c_i], bgeo[b_i])
        inter = shapely.area(bgeo[b_i])
        cut = ~inside
        inter[cut] = shapely.area(shapely.intersection(geoms[c_i[cut]], bgeo[b_i[cut]]))
        levels = buildings["levels"].to_numpy(dtype=float)[b_i]
        lt = buildings["levels_tagged"].to_numpy(dtype=bool)[b_i]
        floor = np.bincount(c_i, weights=inter * levels, minlength=n).astype(float)
        foot = np.bincount(c_i, weights=inter, minlength=n).astype(float)
        tagged = np.bincount(c_i, weights=inter * lt, minlength=n).astype(float)
        barea = shapely.area(bgeo[b_i])
        mostly = inter > 0.5 * np.maximum(barea, 1e-9)
        nb = np.bincount(c_i[mostly], minlength=n)
        if "start_date" in buildings.columns:
            by = parse_year(buildings["start_date"]).to_numpy()[b_i]
            ok = mostly & np.isfinite(by)
            if ok.any():
                med = pd.Series(by[ok]).groupby(c_i[ok]).median()
                year[med.index.to_numpy()] = med.to_numpy()
    site = np.where(is_poly, shapely.area(geoms), 0.0)
    method = np.where(foot > 0, "footprints×levels", "site×fallback_far")
    method = np.where(is_poly, method, "none")
    floor = np.where(foot > 0, floor, site * fallback_far)
    floor = np.where(is_poly, floor, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(foot > 0, tagged / np.where(foot > 0, foot, 1.0), np.nan)
    return pd.DataFrame({"floor_area_m2": floor, "footprint_m2": foot, "n_buildings": nb,
                         "levels_tagged_share": share, "buildings_year": year,
                         "floor_area_method": method}, index=communities.index)
