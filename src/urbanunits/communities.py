"""Communities (小区) for the packages stage: the inventory, old/new rules, overrides, estimates.

:func:`build_inventory` turns the user's inventory (read by
:func:`urbanunits.sources.inputs.load_communities`) or, lacking one, the named OSM residential areas
into one row per community: old or new by the first rule that applies
(:func:`classify_communities`, overridden by the planner's list through :func:`apply_overrides`),
with floor area, households and population where the source gives them and flagged estimates
where it does not (:func:`~urbanunits.floor_area.estimate_floor_area`, the population raster's
area-weighted sums). No file is opened here.

All geometry work happens in the run's metric CRS (metres, m²).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from urbanunits._fields import PROGRAMME_FIELDS
from urbanunits._raster import CountGrid, area_weighted_sums
from urbanunits._years import parse_years
from urbanunits.config import PackagesConfig
from urbanunits.crs import require_projected
from urbanunits.errors import ConfigError, DataError
from urbanunits.floor_area import estimate_floor_area

if TYPE_CHECKING:
    from urbanunits.layers import OSMLayers
    from urbanunits.sources.inputs import CommunityInputs
    from urbanunits.sources.inventory import InventoryReport

__all__ = [
    "POINT_MATCH_M",
    "apply_overrides",
    "build_inventory",
    "classify_communities",
    "largest_overlap",
    "matched_areas",
    "name_stem",
    "parse_year",
    "with_units",
]

logger = logging.getLogger(__name__)

#: A CSV point takes the estimates of the OSM residential area within this distance (m).
POINT_MATCH_M = 50.0

# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def parse_year(values: pd.Series) -> pd.Series:
    """The latest construction year each value allows, as float (NaN where none).

    Handles OSM ``start_date`` and inventory forms: ``1985``, ``1985-06-01``, ``~1985``,
    ``1985年``, ``before 1990`` (1989), decades ``1980s``/``80年代``/``上世纪80年代``/``八十年代``
    (1989) and ranges ``1980-1985``/``1980至1985`` (1985); see :mod:`urbanunits._years`.
    """
    return parse_years(values)


#: Trailing words that say nothing about a community's age — 小区/社区/住宅区 and part markers
#: (-北区, 二期, (东区)) — are left out when the name rules look for the type word.
_GENERIC_SUFFIX = re.compile(
    r"(?:[-—–·\s]*[(（]?(?:[东南西北中]|[一二三四五六七八九十\d]+)[期区][)）]?"
    r"|(?:住宅|居住)?小区|社区|住宅区|生活区)+$")


def name_stem(name: str) -> str:
    """The name without generic trailing words (万科城小区 → 万科城, 滨江花园-北区 → 滨江花园)."""
    return _GENERIC_SUFFIX.sub("", name).rstrip() or name


def _last_match(names: Sequence[str], patterns: Sequence[str]
                ) -> tuple[NDArray[np.int64], list[str | None]]:
    """For each name, the largest end position of any pattern match (-1 if none) and its pattern."""
    compiled = []
    for p in patterns:
        try:
            compiled.append((p, re.compile(p)))
        except re.error as exc:
            raise ConfigError(f"packages name pattern {p!r}", f"not a valid regex ({exc})",
                              "fix the pattern (Python regex syntax)") from exc
    end = np.full(len(names), -1, dtype=np.int64)
    which: list[str | None] = [None] * len(names)
    for i, name in enumerate(names):
        for p, rx in compiled:
            for m in rx.finditer(name):
                if m.end() > end[i]:
                    end[i], which[i] = m.end(), p
    return end, which


def _best(a: tuple[NDArray[np.int64], list[str | None]],
          b: tuple[NDArray[np.int64], list[str | None]]
          ) -> tuple[NDArray[np.int64], list[str | None]]:
    """Element-wise later-ending match of two :func:`_last_match` results."""
    take_b = b[0] > a[0]
    return (np.where(take_b, b[0], a[0]),
            [pb if t else pa for t, pa, pb in zip(take_b, a[1], b[1], strict=True)])


def classify_communities(names: pd.Series, *, start_date: pd.Series | None = None,
                         building_age: pd.Series | None = None,
                         buildings_year: pd.Series | None = None, built_by_year: int = 2000,
                         old_name_patterns: Sequence[str] = (),
                         new_name_patterns: Sequence[str] = ()) -> pd.DataFrame:
    """Class communities as old (老旧小区) or not, by the first rule that applies.

    Rules, in order (the rule used is returned in ``old_rule``):

    1. a year in the residential area's ``start_date``: old if built in or before
       ``built_by_year`` (rule ``"year:start_date"``); an imprecise date counts as the latest
       year it allows (``1980s`` → 1989, ``1980-1985`` → 1985);
    2. a year in ``building:age`` (rule ``"year:building:age"``);
    3. the median ``start_date`` of the buildings inside (rule ``"year:buildings_start_date"``);
    4. the name. Chinese community names end in a type word that dates them: 新村, 一村/二村…,
       工房, 宿舍, 公房, …大楼 are typical of 1950s–1990s work-unit and municipal housing,
       while 花园, 公馆, 名苑, 天下, 壹号, 公寓, …苑/园/府/湾/城 are developers' marketing words
       of the commercial-housing era. Generic trailing words (小区, 社区, 住宅区, -北区, 二期) are
       not evidence of age: the patterns are also tried on the name without them (万科城小区 is
       judged as 万科城), and an old match lying in those words never beats a new match. When
       patterns from both lists match, the match that ends later in the name wins (御桥新村 is
       old, 世贸滨江花园-北区 new, 花园新村 old); a tie goes to "new". Rules read
       ``"name_old:<pattern>"`` or ``"name_new:<pattern>"``, and ``old_by_name_only`` is true
       for the communities called old by a name alone;
    5. otherwise not old (rule ``"none"``): the age is unknown.

    Parameters
    ----------
    names
        Community names.
    start_date, building_age, buildings_year
        OSM tag values aligned with ``names`` (any may be None).
    built_by_year
        Built in or before this year ⇒ old.
    old_name_patterns, new_name_patterns
        Regular expressions (Python syntax) searched in the names.

    Returns
    -------
    pandas.DataFrame
        ``is_old`` (bool), ``old_rule`` (str), ``old_by_name_only`` (bool), ``built_year``
        (float, NaN when unknown) and ``built_year_text`` (the tag value the year came from),
        indexed like ``names``.
    """
    idx = names.index
    nm = names.fillna("").astype(str).str.strip().tolist()
    built = pd.Series(np.nan, index=idx)
    text = pd.Series(None, index=idx, dtype=object)
    rule = pd.Series("none", index=idx, dtype=object)
    is_old = pd.Series(False, index=idx)
    decided = pd.Series(False, index=idx)
    for label, src in (("start_date", start_date), ("building:age", building_age),
                       ("buildings_start_date", buildings_year)):
        if src is None:
            continue
        src = src.reindex(idx)
        yr = parse_year(src) if label != "buildings_start_date" else src.astype(float)
        hit = yr.notna() & ~decided
        built[hit] = yr[hit]
        text[hit] = (src[hit].astype(str) if label != "buildings_start_date"
                     else "median start_date of the buildings inside")
        is_old[hit] = yr[hit] <= built_by_year
        rule[hit] = f"year:{label}"
        decided |= hit
    stems = [name_stem(n) for n in nm]
    old_stem = _last_match(stems, old_name_patterns)
    old_end, old_p = _best(_last_match(nm, old_name_patterns), old_stem)
    new_end, new_p = _best(_last_match(nm, new_name_patterns),
                           _last_match(stems, new_name_patterns))
    # An old match in the generic suffix (a user's 小区$) loses to any new match: only the
    # stem's own type words then compete.
    in_suffix = (old_end > np.array([len(st) for st in stems], dtype=np.int64)) & (new_end >= 0)
    old_end = np.where(in_suffix, old_stem[0], old_end)
    old_p = [ps if t else p for t, p, ps in zip(in_suffix, old_p, old_stem[1], strict=True)]
    use_old = (old_end > new_end) & ~decided.to_numpy()
    use_new = (new_end >= old_end) & (new_end >= 0) & ~decided.to_numpy()
    is_old[use_old] = True
    rule[use_old] = [f"name_old:{old_p[i]}" for i in np.flatnonzero(use_old)]
    rule[use_new] = [f"name_new:{new_p[i]}" for i in np.flatnonzero(use_new)]
    return pd.DataFrame({"is_old": is_old.astype(bool), "old_rule": rule.astype(str),
                         "old_by_name_only": pd.Series(use_old, index=idx),
                         "built_year": built, "built_year_text": text})


# --------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------


def largest_overlap(geoms: gpd.GeoSeries, zones: gpd.GeoDataFrame, column: str) -> pd.Series:
    """Value of ``zones[column]`` for the zone covering the largest part of each geometry.

    Points take the zone that contains them (or the nearest within 1 m, for points on an edge).
    """
    out = pd.Series([None] * len(geoms), index=geoms.index, dtype=object)
    if zones is None or zones.empty or column not in zones.columns or len(geoms) == 0:
        return out
    if zones.crs != geoms.crs:
        zones = zones.to_crs(geoms.crs)
    g = np.asarray(geoms.values)
    z = np.asarray(zones.geometry.values)
    tree = shapely.STRtree(z)
    gi, zi = tree.query(g, predicate="intersects")
    if gi.size:
        poly = np.isin(shapely.get_type_id(g[gi]), [3, 6])
        # Points and lines score 1 per zone they touch; polygons by shared area.
        score = np.where(poly, shapely.area(shapely.intersection(g[gi], z[zi])), 1.0)
        df = pd.DataFrame({"g": gi, "z": zi, "s": score}).sort_values(
            ["g", "s", "z"], ascending=[True, False, True])
        best = df.drop_duplicates("g")
        vals = zones[column].to_numpy()[best["z"].to_numpy()]
        out.iloc[best["g"].to_numpy()] = vals
    miss = np.flatnonzero(out.isna().to_numpy() & ~shapely.is_empty(g))
    if miss.size:
        gi2, zi2 = tree.query_nearest(g[miss], max_distance=1.0, all_matches=False)
        out.iloc[miss[gi2]] = zones[column].to_numpy()[zi2]
    return out


def matched_areas(geoms: gpd.GeoSeries, areas: gpd.GeoDataFrame | None) -> NDArray[np.int64]:
    """The OSM residential area a point community stands for: position in ``areas`` or -1.

    An inventory point marks a community but not its extent; the residential area it stands in
    is taken as its site (for the floor-area estimate here, and the programme stage's building
    counts): the smallest of those that contain it (one phase of an estate mapped inside the
    whole), else the nearest within :data:`POINT_MATCH_M` m. Polygons keep their own outline
    (-1), as do points with no area that near.
    """
    out = np.full(len(geoms), -1, dtype=np.int64)
    if areas is None or areas.empty or len(geoms) == 0:
        return out
    if areas.crs != geoms.crs:
        areas = areas.to_crs(geoms.crs)
    g = np.asarray(geoms.values)
    pts = np.flatnonzero(~np.isin(shapely.get_type_id(g), [3, 6]) & ~shapely.is_empty(g))
    if pts.size:
        a = np.asarray(areas.geometry.values)
        tree = shapely.STRtree(a)
        qi, ri = tree.query(g[pts], predicate="within")
        if qi.size:
            order = np.lexsort((ri, shapely.area(a[ri]), qi))  # per point, smallest first
            first = order[np.r_[True, qi[order][1:] != qi[order][:-1]]]
            out[pts[qi[first]]] = ri[first]
        rest = pts[out[pts] < 0]
        qi, ri = tree.query_nearest(g[rest], max_distance=POINT_MATCH_M, all_matches=False)
        out[rest[qi]] = ri
    return out


# --------------------------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------------------------


def _ids(n: int, prefix: str) -> list[str]:
    width = max(3, len(str(n)))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(n)]


def _population(gdf: gpd.GeoDataFrame, households: pd.Series, *, persons_per_household: float,
                grid: CountGrid | None) -> tuple[pd.Series, pd.Series]:
    """Population and method: raster zonal sums for polygons when given a grid, else households."""
    pop = households * persons_per_household
    method = pd.Series("households×persons_per_household", index=gdf.index, dtype=object)
    if grid is not None:
        poly = gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
        if poly.any():
            sums = area_weighted_sums(gdf.geometry[poly], grid)
            pop = pop.astype(float)
            pop[poly] = sums
            method[poly] = "raster"
    return pop, method


def build_inventory(layers: OSMLayers, *, cfg: PackagesConfig,
                    inputs: CommunityInputs | None = None,
                    units: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """All communities (old and new) with attributes and estimates.

    From the inventory in ``inputs`` when there is one (``inputs.inventory``, read by
    :func:`urbanunits.sources.inputs.load_communities`), otherwise from the named OSM residential
    areas classed by :func:`classify_communities` with the ``[packages]`` rules.

    The inventory is the authority: every row is a community, and old (rule ``"inventory"``)
    because the bureau listed it, unless the file has a ``status`` column, whose old/new is kept
    (rule ``"inventory:status"``). Rows built after ``packages.built_by_year`` that are still
    old, and rows marked new although built by it, are kept as the file says and named in a
    warning. The overrides (``inputs.community_overrides``) then win over every rule (rule
    ``"override"``, :func:`apply_overrides`). Warnings count the communities called old by a
    name alone (``old_by_name_only``) and those no rule could date (rule ``"none"``, counted as
    not old).

    Estimates fill what the source lacks and are flagged: floor area from footprints × levels
    (:func:`estimate_floor_area`; a CSV point borrows the estimate of the OSM residential area
    within :data:`POINT_MATCH_M` m, else the median of the inventory's known floor areas),
    households = floor area / ``m2_per_household``, population = households ×
    ``persons_per_household`` or the population raster's area-weighted zonal sum.

    Parameters
    ----------
    layers
        Parsed OSM layers (metric CRS).
    cfg
        The ``[packages]`` section (rules, estimates).
    inputs
        The inventory, overrides and population raster
        (:func:`urbanunits.sources.inputs.load_communities`); None: OSM residential areas, no
        override, population from households.
    units
        Update units (``unit_id``, optional ``subdistrict``); fills ``unit_id``/``subdistrict``.

    Returns
    -------
    geopandas.GeoDataFrame
        ``community_id`` (``C001``… in OSM id order, or the inventory's ``id``), ``name``,
        ``is_old``, ``old_rule``, ``old_by_name_only``, ``built_year`` (latest year the source
        allows), ``built_year_text`` (as written), ``floor_area_m2``, ``households``,
        ``population``, ``unit_id``, ``subdistrict``, ``floor_area_estimated``,
        ``households_estimated``, ``population_estimated``, ``floor_area_method``,
        ``population_method``, ``levels_tagged_share``, ``site_area_m2``, ``in_study_area``,
        ``source``, ``osm_id``, the inventory's project-list fields
        (:data:`urbanunits.sources.inventory.PROGRAMME_FIELDS`, inventories only), geometry
        (polygons; points for CSV inventories). Reading notes
        (skipped rows, duplicate names) are in ``.attrs["inventory_report"]``.
    """
    p = cfg
    crs = layers.study_area.crs
    inv = inputs.inventory if inputs is not None else None
    grid = inputs.population if inputs is not None else None
    inv_report: InventoryReport | None = None
    if inputs is not None and inv is not None:
        inv_report = inputs.inventory_report
        df = _inventory_estimates(inv, layers, p, grid=grid)
        df["source"] = inputs.inventory_source
        ids = inv["inv_id"]
        df.insert(0, "community_id", ids.astype(object) if ids.notna().all()
                  else _ids(len(inv), "C"))
        df["osm_id"] = pd.array([pd.NA] * len(df), dtype="Int64")
    else:
        res = layers.residential
        if res.empty:
            raise DataError(f"{layers.source}: residential areas",
                            "the study area has no named residential areas "
                            "(landuse=residential with a name) in this extract",
                            "enlarge study_area or give an old-community inventory in "
                            "inputs.inventory (CSV with lon/lat, or polygons)")
        res = res.sort_values(["osm_type", "osm_id"], key=lambda s: s.astype(str)
                              if s.name == "osm_type" else s).reset_index(drop=True)
        est = estimate_floor_area(res, layers.buildings, fallback_far=p.fallback_far)
        cls = classify_communities(
            res["name"], start_date=res.get("start_date"), building_age=res.get("building_age"),
            buildings_year=est["buildings_year"], built_by_year=p.built_by_year,
            old_name_patterns=p.old_name_patterns, new_name_patterns=p.new_name_patterns)
        households = est["floor_area_m2"] / p.m2_per_household
        gdf0 = gpd.GeoDataFrame(geometry=res.geometry, crs=res.crs)
        pop, pop_method = _population(gdf0, households,
                                      persons_per_household=p.persons_per_household, grid=grid)
        df = gpd.GeoDataFrame({
            "community_id": _ids(len(res), "C"), "name": res["name"].astype(str),
            "is_old": cls["is_old"], "old_rule": cls["old_rule"],
            "old_by_name_only": cls["old_by_name_only"], "built_year": cls["built_year"],
            "built_year_text": cls["built_year_text"], "floor_area_m2": est["floor_area_m2"],
            "households": households, "population": pop,
            "floor_area_estimated": True, "households_estimated": True,
            "population_estimated": True,
            "floor_area_method": est["floor_area_method"], "population_method": pop_method,
            "levels_tagged_share": est["levels_tagged_share"],
            "site_area_m2": res.geometry.area, "source": "osm",
            "osm_id": res["osm_id"].astype("Int64")}, geometry=res.geometry, crs=res.crs)
    if inputs is not None and inputs.overrides is not None:
        df = apply_overrides(df, inputs.overrides,
                             source=inputs.overrides_source or "community_overrides")
    _warn_uncertain(df, source="inventory" if inv is not None else "osm")
    df["households"] = df["households"].round(0)
    df["population"] = df["population"].round(0)
    df["floor_area_m2"] = df["floor_area_m2"].round(0)
    sa = shapely.union_all(layers.study_area.to_crs(crs).geometry.values)
    df["in_study_area"] = df.geometry.intersects(sa)
    df["unit_id"] = None
    df["subdistrict"] = None
    if units is not None:
        df = with_units(df, units)
    cols = ["community_id", "name", "is_old", "old_rule", "old_by_name_only", "built_year",
            "built_year_text", "floor_area_m2", "households", "population", "unit_id",
            "subdistrict", "floor_area_estimated",
            "households_estimated", "population_estimated", "floor_area_method",
            "population_method", "levels_tagged_share", "site_area_m2", "in_study_area",
            "source", "osm_id"]
    cols += [c for c in PROGRAMME_FIELDS if c in df.columns]
    out = gpd.GeoDataFrame(df[cols], geometry=df.geometry, crs=crs).reset_index(drop=True)
    out.attrs["inventory_report"] = inv_report
    logger.info("communities: %d (%d old) from %s", len(out), int(out["is_old"].sum()),
                out["source"].iloc[0] if len(out) else "-")
    return out


def _rows_text(frame: pd.DataFrame, mask: pd.Series | NDArray[np.bool_], limit: int = 10) -> str:
    """``name (line N, '1985年')`` for the first ``limit`` rows of an inventory frame."""
    sub = frame[np.asarray(mask)]
    items = [f"{r['name']} (line {int(r['row'])}, {r['built_year_text']!r})"
             for _, r in sub.head(limit).iterrows()]
    return ", ".join(items) + (" …" if len(sub) > limit else "")


def _warn_inventory_years(inv: pd.DataFrame, is_old: pd.Series, has_status: NDArray[np.bool_],
                          built_by_year: int) -> None:
    """Name inventory rows whose year disagrees with their (kept) old/new status."""
    late = (inv["built_year"] > built_by_year).to_numpy() & is_old.to_numpy()
    if late.any():
        why = ("its status column says old" if has_status[late].all()
               else "the inventory lists them")
        logger.warning(
            "inventory: %d row(s) built after packages.built_by_year = %d are kept as old "
            "because %s: %s — if the file lists new communities too, mark them new in a status "
            "column (old/new) or in inputs.community_overrides", int(late.sum()), built_by_year,
            why, _rows_text(inv, late))
    early = (inv["built_year"] <= built_by_year).to_numpy() & ~is_old.to_numpy() & has_status
    if early.any():
        logger.warning("inventory: %d row(s) marked new are built by packages.built_by_year = %d "
                       "and kept as new, as the status column says: %s", int(early.sum()),
                       built_by_year, _rows_text(inv, early))


def _name_key(name: str) -> str:
    """Names compared loosely: full-width forms folded (（东区） = (东区)), spaces dropped."""
    return "".join(unicodedata.normalize("NFKC", name).split())


def apply_overrides(communities: pd.DataFrame, overrides: pd.DataFrame, *,
                    source: str = "community_overrides") -> pd.DataFrame:
    """Set ``is_old`` from a planner's override list; it wins over every rule.

    Each override row names its community by ``community_id``, else ``osm_id``, else ``name``
    (compared ignoring spaces and full-/half-width differences; a name shared by several
    communities sets them all, with a warning); the first of the three
    given is used. Matched communities get ``old_rule = "override"`` and
    ``old_by_name_only = False``.

    Parameters
    ----------
    communities
        :func:`build_inventory` rows (``community_id``, ``name``, ``osm_id``, ``is_old``,
        ``old_rule``, ``old_by_name_only``).
    overrides
        :func:`urbanunits.sources.inventory.read_overrides` output (``row``, ``community_id``,
        ``osm_id``, ``name``, ``is_old``).
    source
        The file, named in messages.

    Returns
    -------
    pandas.DataFrame
        A copy of ``communities`` with the overrides applied.

    Raises
    ------
    DataError
        When two rows give one community different statuses.
    """
    out = communities.copy()
    ids = out["community_id"].astype(str).to_numpy()
    osm = (out["osm_id"].astype("Int64") if "osm_id" in out.columns
           else pd.Series(pd.NA, index=out.index, dtype="Int64"))
    shown = out["name"].astype(str).to_numpy()
    names = np.array([_name_key(n) for n in shown])
    decided: dict[int, tuple[bool, int]] = {}  # position → (is_old, override row)
    unmatched: list[str] = []
    shared: list[str] = []
    for _, r in overrides.iterrows():
        if r["community_id"] is not None and not pd.isna(r["community_id"]):
            key, hit = f"community_id {r['community_id']}", ids == str(r["community_id"])
        elif not pd.isna(r["osm_id"]):
            key, hit = f"osm_id {r['osm_id']}", (osm == int(r["osm_id"])).fillna(False).to_numpy()
        else:
            key, hit = f"name {r['name']}", names == _name_key(str(r["name"]))
        pos = np.flatnonzero(hit)
        if pos.size == 0:
            unmatched.append(f"line {int(r['row'])} ({key})")
            continue
        if pos.size > 1:
            shared.append(f"{r['name']} ×{pos.size} (line {int(r['row'])})")
        for i in pos:
            prev = decided.get(int(i))
            if prev is not None and prev[0] != bool(r["is_old"]):
                raise DataError(f"{source}: lines {prev[1]} and {int(r['row'])}",
                                f"give community {ids[i]} ({shown[i]}) different statuses",
                                "keep one of the two rows")
            decided[int(i)] = (bool(r["is_old"]), int(r["row"]))
    if unmatched:
        logger.warning("%s: %d override row(s) match no community and are ignored: %s — check "
                       "the name or id against communities (community_id, osm_id, name)",
                       source, len(unmatched), ", ".join(unmatched[:10]))
    if shared:
        logger.warning("%s: names shared by several communities, all set: %s — give "
                       "community_id to set one", source, ", ".join(shared[:10]))
    if decided:
        pos = np.fromiter(decided, dtype=np.int64)
        col = out.columns.get_loc
        out.iloc[pos, col("is_old")] = [decided[int(i)][0] for i in pos]
        out.iloc[pos, col("old_rule")] = "override"
        out.iloc[pos, col("old_by_name_only")] = False
        logger.info("%s: %d community status(es) set by override", source, len(pos))
    out["is_old"] = out["is_old"].astype(bool)
    out["old_by_name_only"] = out["old_by_name_only"].astype(bool)
    return out


def _warn_uncertain(df: pd.DataFrame, *, source: str) -> None:
    """Say how many communities were classed by name alone, and how many not at all."""
    n = len(df)
    by_name = df["old_by_name_only"].astype(bool)
    if by_name.any():
        logger.warning("%d of %d old communities are old by their name only (old_by_name_only = "
                       "true; no construction year): check them, and list any that are not in "
                       "inputs.community_overrides", int(by_name.sum()), int(df["is_old"].sum()))
    if source != "osm":
        return
    none = (df["old_rule"] == "none").to_numpy()
    if none.all() and n:
        logger.warning(
            "none of the %d communities has a construction year (start_date, "
            "building:age) or matches packages.old_name_patterns/new_name_patterns, so which "
            "are old is unknown: all are kept as not old (old_rule = 'none') and no package "
            "can be formed — give an old-community list in inputs.inventory, or configure "
            "packages.old_name_patterns for this region's names", n)
    elif none.any():
        shown = ", ".join(df.loc[none, "name"].astype(str).head(10))
        logger.warning("%d of %d communities have no construction year and match no name "
                       "rule, so their age is unknown; they are counted as not old (old_rule = "
                       "'none'): %s%s — list the old ones in inputs.community_overrides or give "
                       "inputs.inventory", int(none.sum()), n, shown,
                       " …" if none.sum() > 10 else "")


def _inventory_estimates(inv: gpd.GeoDataFrame, layers: OSMLayers, p: PackagesConfig, *,
                         grid: CountGrid | None) -> gpd.GeoDataFrame:
    """Classify inventory rows and fill their missing floor area, households and population."""
    year = inv["built_year"]
    status = inv["status"].astype("boolean")
    has_status = status.notna().to_numpy()
    is_old = pd.Series(np.where(has_status, status.fillna(True).to_numpy(dtype=bool), True),
                       index=inv.index)
    rule = np.where(has_status, "inventory:status", "inventory")
    _warn_inventory_years(inv, is_old, has_status, p.built_by_year)
    is_poly = inv.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    est_floor = pd.Series(np.nan, index=inv.index)
    method = pd.Series("inventory", index=inv.index, dtype=object)
    site = pd.Series(np.where(is_poly, inv.geometry.area, np.nan), index=inv.index)
    tagged = pd.Series(np.nan, index=inv.index)
    need = inv["floor_area_m2"].isna().to_numpy()
    if (need & is_poly).any():
        sub = inv[need & is_poly]
        est = estimate_floor_area(sub, layers.buildings, fallback_far=p.fallback_far)
        est_floor[sub.index] = est["floor_area_m2"]
        method[sub.index] = est["floor_area_method"]
        tagged[sub.index] = est["levels_tagged_share"]
    pts = need & ~is_poly
    if pts.any() and not layers.residential.empty:
        res = layers.residential
        est = estimate_floor_area(res, layers.buildings, fallback_far=p.fallback_far)
        sub = inv[pts]
        area = matched_areas(sub.geometry, res)
        qi, ri = np.flatnonzero(area >= 0), area[area >= 0]
        idx = sub.index[qi]
        est_floor[idx] = est["floor_area_m2"].to_numpy()[ri]
        method[idx] = "osm residential area (" + res["name"].astype(str).to_numpy()[ri] + ")"
        site[idx] = res.geometry.area.to_numpy()[ri]
    still = need & est_floor.isna().to_numpy()
    known = inv["floor_area_m2"].dropna()
    if still.any() and not known.empty:
        est_floor[still] = float(known.median())
        method[still] = "inventory median"
    floor = inv["floor_area_m2"].fillna(est_floor)
    if floor.isna().any():
        logger.warning("%d inventory row(s) have no floor area and nothing to estimate it from",
                       int(floor.isna().sum()))
        method[floor.isna()] = "unknown"
    hh = inv["households"].fillna(floor / p.m2_per_household)
    pop_est, pop_method = _population(inv, hh, persons_per_household=p.persons_per_household,
                                      grid=grid)
    has_pop = inv["population"].notna()
    pop = inv["population"].where(has_pop, pop_est)
    pop_method = pop_method.where(~has_pop, "inventory")
    return gpd.GeoDataFrame({
        "name": inv["name"], "is_old": is_old.astype(bool), "old_rule": rule,
        "old_by_name_only": False, "built_year": year,
        "built_year_text": inv["built_year_text"], "floor_area_m2": floor, "households": hh,
        "population": pop,
        "floor_area_estimated": inv["floor_area_m2"].isna(),
        "households_estimated": inv["households"].isna(),
        "population_estimated": ~has_pop, "floor_area_method": method,
        "population_method": pop_method, "levels_tagged_share": tagged,
        "site_area_m2": site,
        # the bureau's project-list fields, for the programme stage
        **{c: inv[c] for c in PROGRAMME_FIELDS if c in inv.columns}},
        geometry=inv.geometry, crs=inv.crs)


def with_units(df: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fill ``unit_id`` (largest overlap) and ``subdistrict`` (the unit's) from the units."""
    if "unit_id" not in units.columns:
        raise DataError("update_units", "has no 'unit_id' column",
                        "pass the update_units layer of the units stage")
    require_projected(units, "renewal_packages")
    df = df.copy()
    df["unit_id"] = largest_overlap(df.geometry, units, "unit_id")
    if "subdistrict" in units.columns:
        lut = units.set_index("unit_id")["subdistrict"]
        lut = lut[~lut.index.duplicated()]
        df["subdistrict"] = df["unit_id"].map(lut).astype(object)
        df.loc[df["subdistrict"].isna(), "subdistrict"] = None
    return df
