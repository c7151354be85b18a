"""Lift retrofit candidates (加装电梯): residential walk-ups of 4–6 storeys without a lift.

China's housing code (GB 50096-2011, 6.4.1) requires lifts from seven storeys up, so the old
four- to six-storey blocks were built without them; those are the buildings the retrofit
programmes target. A building is a candidate when its storeys are within the configured range
and nothing says it has a lift.

Each fact comes from the best source at hand, and the candidate says which
(``levels_source``, ``elevator_source``):

* storeys: the OSM building's ``building:levels`` (``"osm"``), else the inventory's 层数 for its
  community (``"inventory"``), else the levels the OSM reader assumed for an untagged building
  (``osm.default_building_levels``, ``"assumed"``: check these before committing funds);
* lift: the inventory's 电梯 for the community (``"inventory"``), else the building's OSM
  ``elevator`` tag (``"osm"``), else none is assumed (``"assumed"``: walk-ups of this height were
  built without one).

A community's buildings are the residential OSM buildings whose representative point lies in its
outline (:func:`community_buildings`); an inventory point, which has no outline, takes the OSM
residential area it stands in (within :data:`~urbanunits.communities.POINT_MATCH_M` m), as the
communities stage does for floor area. A community listed in the inventory without mapped
buildings gives one candidate row for the whole community (its 楼栋数 buildings,
``level = "community"``); without a 楼栋数 either, its buildings and lifts are unknown (NaN),
not guessed, and a warning names it.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from urbanunits.communities import matched_areas
from urbanunits.crs import require_projected

__all__ = ["CANDIDATE_COLUMNS", "RESIDENTIAL_BUILDINGS", "community_buildings",
           "elevator_candidates"]

logger = logging.getLogger(__name__)

#: OSM ``building`` values that can be a residential walk-up (``yes`` is most of China's map).
RESIDENTIAL_BUILDINGS = frozenset({"residential", "apartments", "yes", "dormitory", "house"})
_YES = frozenset({"yes", "true", "1", "有", "是"})
_NO = frozenset({"no", "false", "0", "无", "否"})

CANDIDATE_COLUMNS = ["candidate_id", "community_id", "community_name", "package_id", "level",
                     "osm_id", "n_buildings", "levels", "levels_source", "elevator_source",
                     "households", "n_lifts"]


def _empty(crs: object) -> gpd.GeoDataFrame:
    cols = {c: pd.Series([], dtype=object) for c in CANDIDATE_COLUMNS}
    for c in ("n_buildings", "levels", "households", "n_lifts"):
        cols[c] = pd.Series([], dtype=float)
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _flag(value: object) -> bool | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    t = str(value).strip().lower()
    return True if t in _YES else False if t in _NO else None


def community_buildings(communities: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame | None, *,
                        areas: gpd.GeoDataFrame | None = None) -> pd.Series:
    """The community each residential OSM building belongs to.

    Parameters
    ----------
    communities
        Communities (metric CRS), polygons or inventory points.
    buildings
        OSM building footprints (``building``); only :data:`RESIDENTIAL_BUILDINGS` count.
    areas
        OSM residential areas: a point community's site is the one it stands in
        (:func:`urbanunits.communities.matched_areas`); None leaves points without buildings.

    Returns
    -------
    pandas.Series
        Indexed by the labels of the buildings that fall in a community (representative point
        within its outline or site), valued by the community's position in ``communities``.
        A building counts once: a community's own outline wins over a borrowed site, a point
        standing in the site over one beside it, then the nearest point of those sharing a
        site (two listed parts of one mapped estate), then the first community.
    """
    none = pd.Series([], dtype=np.int64)
    if buildings is None or buildings.empty or communities.empty:
        return none
    crs = communities.crs
    b = buildings[buildings["building"].astype(str).isin(RESIDENTIAL_BUILDINGS)]
    b = b.to_crs(crs) if b.crs != crs else b
    geoms = communities.geometry.reset_index(drop=True)
    own = geoms.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    area = matched_areas(geoms, areas)
    sites = geoms.copy()
    if (area >= 0).any():
        assert areas is not None  # matched_areas found some
        a = areas.to_crs(crs) if areas.crs != crs else areas
        sites.iloc[np.flatnonzero(area >= 0)] = a.geometry.to_numpy()[area[area >= 0]]
    use = np.flatnonzero(own | (area >= 0))
    if b.empty or not use.size:
        return none
    pts = b.geometry.representative_point()
    tree = shapely.STRtree(np.asarray(sites.to_numpy()[use]))
    bi, si = tree.query(np.asarray(pts.values), predicate="within")
    if not bi.size:
        return none
    ci = use[si]
    g = np.asarray(geoms.values)
    hits = pd.DataFrame({"b": bi, "c": ci, "borrowed": ~own[ci],
                         # a point standing outside the site it borrows yields to one inside
                         "outside": ~shapely.intersects(g[ci], np.asarray(sites.values)[ci]),
                         "dist": shapely.distance(np.asarray(pts.values)[bi], g[ci])})
    hits.loc[~hits["borrowed"], "outside"] = False
    hits.loc[~hits["borrowed"], "dist"] = 0.0
    best = hits.sort_values(["b", "borrowed", "outside", "dist", "c"],
                            kind="stable").drop_duplicates("b")
    return pd.Series(best["c"].to_numpy(dtype=np.int64), index=b.index[best["b"].to_numpy()])


def elevator_candidates(communities: gpd.GeoDataFrame, *,
                        buildings: gpd.GeoDataFrame | None = None,
                        areas: gpd.GeoDataFrame | None = None,
                        owner: pd.Series | None = None, min_levels: int = 4,
                        max_levels: int = 6, households_per_lift: float = 12.0
                        ) -> gpd.GeoDataFrame:
    """Buildings (or whole listed communities) that are candidates for a lift retrofit.

    Parameters
    ----------
    communities
        Old communities (metric CRS): ``community_id``, ``households``, ``floor_area_m2`` and
        optionally ``name``, ``package_id``, ``levels``, ``has_elevator``, ``n_buildings``.
    buildings
        OSM building footprints (``levels``, ``levels_tagged``, ``building`` and optionally
        ``elevator``, ``osm_id``), same CRS; None uses the inventory's figures alone.
    areas
        OSM residential areas, the sites of inventory points (:func:`community_buildings`).
    owner
        :func:`community_buildings` of these communities, buildings and areas when the caller
        has it already (``areas`` is then not read).
    min_levels, max_levels
        Storeys of a candidate walk-up, ends included.
    households_per_lift
        Households one lift serves (one lift per stairwell): ``n_lifts`` = ⌈households ÷ this⌉,
        at least one per building; NaN, like ``n_buildings``, for a community row whose
        building count is unknown.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per candidate: ``candidate_id`` (``E0001``…), ``community_id``,
        ``community_name``, ``package_id``, ``level`` (``"building"`` or ``"community"``),
        ``osm_id``, ``n_buildings``, ``levels``, ``levels_source``, ``elevator_source``,
        ``households`` (the community's households shared by floor area, footprint × storeys),
        ``n_lifts``; the building footprint (or community geometry).
    """
    require_projected(communities, "elevator_candidates")
    crs = communities.crs
    if communities.empty:
        return _empty(crs)
    comm = communities.reset_index(drop=True)

    def col(name: str, default: object = np.nan) -> pd.Series:
        return comm[name] if name in comm.columns else pd.Series(default, index=comm.index)

    inv_levels = pd.to_numeric(col("levels"), errors="coerce")
    inv_lift = col("has_elevator", pd.NA).astype("boolean")
    hh = pd.to_numeric(col("households"), errors="coerce").fillna(0.0)
    rows: list[dict[str, object]] = []
    covered = np.zeros(len(comm), dtype=bool)
    if owner is None:
        owner = community_buildings(comm, buildings, areas=areas)
    if len(owner):
        assert buildings is not None  # community_buildings found some
        b = buildings.loc[owner.index]
        b = b.to_crs(crs) if b.crs != crs else b
        for ci, idx in owner.groupby(owner, sort=True).groups.items():
            ci = int(ci)
            covered[ci] = True
            bb = b.loc[idx]
            tagged = bb["levels_tagged"].astype(bool).to_numpy()
            listed_lv = inv_levels.iloc[ci]
            osm_lv = bb["levels"].to_numpy(dtype=float)  # untagged: osm.default_building_levels
            lv = np.where(tagged, osm_lv, listed_lv if pd.notna(listed_lv) else osm_lv)
            lv_src = np.where(tagged, "osm", "inventory" if pd.notna(listed_lv) else "assumed")
            lv_src = np.where(np.isnan(lv), "unknown", lv_src)
            area = bb.geometry.area.to_numpy() * np.nan_to_num(lv, nan=0.0)
            share = area / area.sum() if area.sum() > 0 else np.zeros(len(bb))
            osm_lift = [_flag(v) for v in (bb["elevator"] if "elevator" in bb.columns
                                           else [None] * len(bb))]
            listed = inv_lift.iloc[ci]
            for j, (_, brow) in enumerate(bb.iterrows()):
                if not (min_levels <= lv[j] <= max_levels):
                    continue  # NaN (unknown storeys) fails too
                if pd.notna(listed):
                    has, src = bool(listed), "inventory"
                elif osm_lift[j] is not None:
                    has, src = bool(osm_lift[j]), "osm"
                else:
                    has, src = False, "assumed"
                if has:
                    continue
                households = float(hh.iloc[ci] * share[j])
                rows.append({"community_id": comm.at[ci, "community_id"], "_ci": ci,
                             "level": "building", "osm_id": brow.get("osm_id"),
                             "n_buildings": 1.0, "levels": float(lv[j]),
                             "levels_source": str(lv_src[j]), "elevator_source": src,
                             "households": households, "geometry": brow.geometry})
    for ci in np.flatnonzero(~covered):
        lv = inv_levels.iloc[ci]
        listed = inv_lift.iloc[ci]
        if pd.isna(lv) or not (min_levels <= lv <= max_levels) or (
                pd.notna(listed) and bool(listed)):
            continue
        nb = pd.to_numeric(col("n_buildings").iloc[ci], errors="coerce")
        if nb == 0:
            continue  # listed with no building: nothing to retrofit
        rows.append({"community_id": comm.at[ci, "community_id"], "_ci": ci,
                     "level": "community", "osm_id": None,
                     "n_buildings": float(nb) if pd.notna(nb) else np.nan, "levels": float(lv),
                     "levels_source": "inventory",
                     "elevator_source": "inventory" if pd.notna(listed) else "assumed",
                     "households": float(hh.iloc[ci]), "geometry": comm.geometry.iloc[ci]})
    if not rows:
        return _empty(crs)
    out = pd.DataFrame(rows)
    ci = out.pop("_ci").to_numpy()
    out["community_name"] = col("name", None).to_numpy()[ci]
    out["package_id"] = col("package_id", None).to_numpy()[ci]
    # A community-level row stands for all its walk-ups: at least one lift per building. With
    # no count the lifts are unknown too: ⌈households ÷ per lift⌉ alone would claim lifts in
    # no known building and leave the per-building floor unchecked.
    per_lift = np.ceil(out["households"].to_numpy() / households_per_lift)
    out["n_lifts"] = np.maximum(per_lift, out["n_buildings"].to_numpy())
    unknown = out["n_buildings"].isna()
    if unknown.any():
        names = out.loc[unknown, "community_name"].astype(str).where(
            out.loc[unknown, "community_name"].notna(), out.loc[unknown, "community_id"])
        logger.warning(
            "%d communities need lifts (%s storeys, no lift) but their building count is "
            "unknown — no 楼栋数 in the inventory and no OSM building mapped in or around them: "
            "their lifts and lift costs are left blank and out of every total, cost and budget "
            "cap (their households still count as lift need): %s%s — add 楼栋数 to "
            "inputs.inventory", int(unknown.sum()), f"{min_levels}–{max_levels}",
            ", ".join(names.head(10)), " …" if unknown.sum() > 10 else "")
    out = out.sort_values(["community_id", "level", "osm_id"], key=lambda s: s.astype(str),
                          kind="stable").reset_index(drop=True)
    out.insert(0, "candidate_id", [f"E{i + 1:04d}" for i in range(len(out))])
    gdf = gpd.GeoDataFrame(out[[*CANDIDATE_COLUMNS, "geometry"]], geometry="geometry", crs=crs)
    logger.info("lift retrofit candidates: %d rows, %.0f households, %.0f lifts in %.0f "
                "buildings", len(gdf), gdf["households"].sum(), gdf["n_lifts"].sum(),
                gdf["n_buildings"].sum())
    return gdf
