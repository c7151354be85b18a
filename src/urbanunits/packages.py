"""Renewal packages (片区化改造): find the old communities and bundle neighbours into packages.

Ningbo renews old residential communities (老旧小区) in packages rather than one community at a
time, so that financing, construction and shared public assets are planned together. This module

1. builds the **community inventory** (:func:`build_inventory`): the user's file when
   ``inputs.inventory`` is set, otherwise the named OSM residential areas, each classed old or
   new by documented, configurable rules (:func:`classify_communities`);
2. **estimates** floor area from building footprints × levels, households from floor area and
   population from households or a population raster (:func:`estimate_floor_area`);
3. **links** old communities whose boundaries are within ``link_distance_m`` and that are not
   separated by a hard barrier — river, rail, optionally trunk roads (:func:`link_graph`);
4. **clusters** the link graph into contiguous packages with a floor and a ceiling on floor area and
   households (:func:`cluster_packages`) and describes them (:func:`renewal_packages`).

All geometry work happens in the run's metric CRS (metres, m²).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from numpy.typing import ArrayLike, NDArray

from urbanunits._years import parse_years
from urbanunits.config import Config
from urbanunits.crs import require_projected
from urbanunits.errors import ConfigError, DataError
from urbanunits.floor_area import estimate_floor_area
from urbanunits.sources.inventory import PROGRAMME_FIELDS

if TYPE_CHECKING:
    from urbanunits.sources.inventory import InventoryReport
    from urbanunits.sources.osm import OSMLayers

__all__ = [
    "PackagesReport",
    "PackagesResult",
    "apply_overrides",
    "assert_partition",
    "barrier_sides",
    "build_inventory",
    "classify_communities",
    "cluster_packages",
    "estimate_floor_area",
    "hard_barriers",
    "link_graph",
    "name_stem",
    "parse_year",
    "renewal_packages",
]

logger = logging.getLogger(__name__)

#: Radius (m) given to point communities (CSV inventories) when drawing package outlines.
POINT_RADIUS_M = 30.0
#: A CSV point takes the estimates of the OSM residential area within this distance (m).
POINT_MATCH_M = 50.0

_WATERWAYS = {"river", "canal"}
_WATER_KINDS = {"river", "canal", "riverbank"}
_RAILWAYS = {"rail", "light_rail", "narrow_gauge"}
_ROADS = {"motorway", "trunk", "primary"}


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


def _largest_overlap(geoms: gpd.GeoSeries, zones: gpd.GeoDataFrame, column: str) -> pd.Series:
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


# --------------------------------------------------------------------------------------------
# Inventory
# --------------------------------------------------------------------------------------------


def _ids(n: int, prefix: str) -> list[str]:
    width = max(3, len(str(n)))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(n)]


def _population(gdf: gpd.GeoDataFrame, households: pd.Series, cfg: Config
                ) -> tuple[pd.Series, pd.Series]:
    """Population and method: raster zonal sums for polygons when configured, else households."""
    pop = households * cfg.packages.persons_per_household
    method = pd.Series("households×persons_per_household", index=gdf.index, dtype=object)
    if cfg.inputs.population_raster is not None:
        from urbanunits.sources.population import zonal_sums

        poly = gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
        if poly.any():
            sums = zonal_sums(gdf.geometry[poly], cfg.inputs.population_raster)
            pop = pop.astype(float)
            pop[poly] = sums
            method[poly] = "raster"
    return pop, method


def _check_inventory_datum(inv: gpd.GeoDataFrame, layers: OSMLayers, path: Path) -> None:
    """An inventory of points that declares no datum: stop if it is GCJ-02/BD-09 (web maps)."""
    from urbanunits.sources.facilities import check_datum, street_lines

    pts = inv[inv.geometry.geom_type == "Point"]
    if len(pts) == 0:
        return
    ll = pts.geometry.to_crs("EPSG:4326")
    check_datum(ll.x.to_numpy(), ll.y.to_numpy(), street_lines(layers.roads), path=path,
                key="inputs.inventory_coord_system",
                names=pts["name"] if "name" in pts.columns else None, reference=layers.pois)


def build_inventory(layers: OSMLayers, cfg: Config, *,
                    units: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """All communities (old and new) with attributes and estimates.

    From ``cfg.inputs.inventory`` when set (see :mod:`urbanunits.sources.inventory`), otherwise
    from the named OSM residential areas classed by :func:`classify_communities` with the
    ``[packages]`` rules.

    The inventory is the authority: every row is a community, and old (rule ``"inventory"``)
    because the bureau listed it, unless the file has a ``status`` column, whose old/new is kept
    (rule ``"inventory:status"``). Rows built after ``packages.built_by_year`` that are still
    old, and rows marked new although built by it, are kept as the file says and named in a
    warning. ``cfg.inputs.community_overrides`` then wins over every rule (rule ``"override"``,
    :func:`apply_overrides`). Warnings count the communities called old by a name alone
    (``old_by_name_only``) and those no rule could date (rule ``"none"``, counted as not old).

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
        Run configuration.
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
    p = cfg.packages
    crs = cfg.study_area.crs
    inv_report: InventoryReport | None = None
    if cfg.inputs.inventory is not None:
        from urbanunits.sources.inventory import read_inventory

        inv, inv_report = read_inventory(
            cfg.inputs.inventory, crs=crs,
            coord_system=cfg.inputs.inventory_coord_system or "wgs84",  # unset reads as WGS84
            on_missing_coords=cfg.inputs.inventory_on_missing_coords,
            sheet=cfg.inputs.inventory_sheet)
        if not cfg.inputs.inventory_coord_system:
            _check_inventory_datum(inv, layers, Path(cfg.inputs.inventory))
        df = _inventory_estimates(inv, layers, cfg)
        df["source"] = Path(cfg.inputs.inventory).name
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
        pop, pop_method = _population(gdf0, households, cfg)
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
    if cfg.inputs.community_overrides is not None:
        from urbanunits.sources.inventory import read_overrides

        df = apply_overrides(df, read_overrides(cfg.inputs.community_overrides),
                             source=str(cfg.inputs.community_overrides))
    _warn_uncertain(df, source="inventory" if cfg.inputs.inventory is not None else "osm")
    df["households"] = df["households"].round(0)
    df["population"] = df["population"].round(0)
    df["floor_area_m2"] = df["floor_area_m2"].round(0)
    sa = shapely.union_all(layers.study_area.to_crs(crs).geometry.values)
    df["in_study_area"] = df.geometry.intersects(sa)
    df["unit_id"] = None
    df["subdistrict"] = None
    if units is not None:
        df = _with_units(df, units)
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
            "none of the %d residential areas has a construction year (start_date, "
            "building:age) or matches packages.old_name_patterns/new_name_patterns, so which "
            "are old is unknown: all are kept as not old (old_rule = 'none') and no package "
            "can be formed — give an old-community list in inputs.inventory, or configure "
            "packages.old_name_patterns for this region's names", n)
    elif none.any():
        shown = ", ".join(df.loc[none, "name"].astype(str).head(10))
        logger.warning("%d of %d residential areas have no construction year and match no name "
                       "rule, so their age is unknown; they are counted as not old (old_rule = "
                       "'none'): %s%s — list the old ones in inputs.community_overrides or give "
                       "inputs.inventory", int(none.sum()), n, shown,
                       " …" if none.sum() > 10 else "")


def _inventory_estimates(inv: gpd.GeoDataFrame, layers: OSMLayers, cfg: Config
                         ) -> gpd.GeoDataFrame:
    """Classify inventory rows and fill their missing floor area, households and population."""
    p = cfg.packages
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
        tree = shapely.STRtree(np.asarray(res.geometry.values))
        sub = inv[pts]
        qi, ri = tree.query_nearest(np.asarray(sub.geometry.values), max_distance=POINT_MATCH_M,
                                    all_matches=False)
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
    pop_est, pop_method = _population(inv, hh, cfg)
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


def _with_units(df: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fill ``unit_id`` (largest overlap) and ``subdistrict`` (the unit's) from the units."""
    if "unit_id" not in units.columns:
        raise DataError("update_units", "has no 'unit_id' column",
                        "pass the update_units layer of the units stage")
    require_projected(units, "renewal_packages")
    df = df.copy()
    df["unit_id"] = _largest_overlap(df.geometry, units, "unit_id")
    if "subdistrict" in units.columns:
        lut = units.set_index("unit_id")["subdistrict"]
        lut = lut[~lut.index.duplicated()]
        df["subdistrict"] = df["unit_id"].map(lut).astype(object)
        df.loc[df["subdistrict"].isna(), "subdistrict"] = None
    return df


# --------------------------------------------------------------------------------------------
# Barriers and links
# --------------------------------------------------------------------------------------------


def hard_barriers(layers: OSMLayers, *, kinds: Sequence[str]) -> gpd.GeoDataFrame:
    """Hard barriers a package may not cross, from the OSM layers.

    Parameters
    ----------
    layers
        Parsed OSM layers.
    kinds
        Any of ``"river"`` (``waterway=river|canal`` lines not in culverts/tunnels, plus water
        polygons tagged river/canal/riverbank or crossed by such a line — ponds are not
        barriers), ``"rail"`` (surface ``rail``/``light_rail``/``narrow_gauge``; metro in tunnels
        is not), ``"motorway"``, ``"trunk"``, ``"primary"`` (surface roads of that class).

    Returns
    -------
    geopandas.GeoDataFrame
        ``kind``, ``name`` and line or polygon geometry in the layers' CRS.
    """
    crs = layers.study_area.crs
    frames: list[gpd.GeoDataFrame] = []

    def surface(df: gpd.GeoDataFrame) -> pd.Series:
        t = df["tunnel"] if "tunnel" in df.columns else pd.Series(None, index=df.index)
        return ~t.astype("string").isin(["yes", "culvert", "building_passage"]).fillna(False)

    def add(df: gpd.GeoDataFrame, kind: str) -> None:
        if not df.empty:
            frames.append(gpd.GeoDataFrame({"kind": kind, "name": df["name"].astype(object)},
                                           geometry=df.geometry.values, crs=crs))

    for kind in kinds:
        if kind == "river":
            ww = layers.waterways
            ww = ww[ww["waterway"].isin(_WATERWAYS) & surface(ww)]
            add(ww, "river")
            w = layers.water
            if not w.empty:
                hit = w["kind"].isin(_WATER_KINDS)
                if not ww.empty:
                    hit |= w.intersects(shapely.union_all(ww.geometry.values))
                add(w[hit], "river")
        elif kind == "rail":
            r = layers.railways
            add(r[r["railway"].isin(_RAILWAYS) & surface(r)], "rail")
        elif kind in _ROADS:
            r = layers.roads
            add(r[(r["highway"] == kind) & surface(r)], kind)
        else:
            raise ConfigError("packages.hard_barriers", f"unknown barrier class {kind!r}",
                              "use river, rail, motorway, trunk or primary")
    if not frames:
        return gpd.GeoDataFrame({"kind": [], "name": []}, geometry=gpd.GeoSeries([], crs=crs),
                                crs=crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)


def barrier_sides(geoms: gpd.GeoSeries, barriers: gpd.GeoDataFrame | None, *,
                  margin_m: float) -> tuple[NDArray[np.int64], gpd.GeoSeries]:
    """Which side of the barriers each geometry lies on.

    The barrier lines (and outlines of barrier polygons) are noded together with a frame around
    the geometries' extent (grown by ``margin_m``) and polygonised into faces; faces inside
    barrier polygons (the river itself) are dropped. Each geometry takes the face containing its
    representative point (the nearest face if that point lies on a barrier or in the water).
    Two geometries on different faces cannot be joined without crossing a barrier.

    Parameters
    ----------
    geoms
        Community geometries, metric CRS.
    barriers
        Barrier lines/polygons (:func:`hard_barriers`), same CRS; None or empty ⇒ one side.
    margin_m
        Frame margin around the extent (m).

    Returns
    -------
    numpy.ndarray
        Face index per geometry.
    geopandas.GeoSeries
        The land faces (polygons).
    """
    require_projected(geoms, "barrier_sides")
    n = len(geoms)
    if n == 0:
        return np.zeros(0, dtype=np.int64), gpd.GeoSeries([], crs=geoms.crs)
    frame = shapely.box(*geoms.total_bounds).buffer(margin_m, join_style="mitre")
    if barriers is None or barriers.empty:
        return np.zeros(n, dtype=np.int64), gpd.GeoSeries([frame], crs=geoms.crs)
    if barriers.crs != geoms.crs:
        barriers = barriers.to_crs(geoms.crs)
    bg = np.asarray(barriers.geometry.values)
    bg = bg[shapely.intersects(bg, frame)]
    polys = bg[np.isin(shapely.get_type_id(bg), [3, 6])]
    lines = np.concatenate([bg[~np.isin(shapely.get_type_id(bg), [3, 6])],
                            shapely.boundary(polys), [frame.boundary]])
    lines = shapely.intersection(lines, frame)
    noded = shapely.union_all(shapely.get_parts(lines))
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    if polys.size:
        water = shapely.union_all(polys)
        shapely.prepare(water)
        faces = faces[~shapely.contains(water, shapely.point_on_surface(faces))]
    tree = shapely.STRtree(faces)
    pts = shapely.point_on_surface(np.asarray(geoms.values))
    side = np.full(n, -1, dtype=np.int64)
    pi, fi = tree.query(pts, predicate="within")
    side[pi] = fi
    miss = np.flatnonzero(side < 0)
    if miss.size:
        qi, fj = tree.query_nearest(pts[miss], all_matches=False)
        side[miss[qi]] = fj
    return side, gpd.GeoSeries(faces, crs=geoms.crs)


def link_graph(communities: gpd.GeoDataFrame, *, link_distance_m: float,
               barriers: gpd.GeoDataFrame | None = None,
               sides: ArrayLike | None = None) -> nx.Graph:
    """Graph of communities that may share a package.

    Nodes are positions ``0..n-1``. Two communities are linked when their boundaries are within
    ``link_distance_m`` (STRtree ``dwithin``), they lie on the same side of the hard barriers
    (:func:`barrier_sides`), and the shortest segment between them does not cross a barrier
    (which also catches barriers that end inside the area, such as a rail spur).

    Parameters
    ----------
    communities
        Community geometries (polygons or points), metric CRS.
    link_distance_m
        Greatest boundary-to-boundary distance of a link (m).
    barriers
        Hard barriers (:func:`hard_barriers`), or None.
    sides
        Precomputed :func:`barrier_sides` labels (computed when None).

    Returns
    -------
    networkx.Graph
        Edges carry ``distance_m``; ``graph.graph["n_blocked"]`` counts candidate pairs that a
        barrier separated.
    """
    require_projected(communities, "link_graph")
    n = len(communities)
    G = nx.Graph(n_blocked=0)
    G.add_nodes_from(range(n))
    if n < 2:
        return G
    geoms = np.asarray(communities.geometry.values)
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="dwithin", distance=link_distance_m)
    keep = i < j
    i, j = i[keep], j[keep]
    if barriers is not None and not barriers.empty and i.size:
        side = (np.asarray(sides) if sides is not None else
                barrier_sides(communities.geometry, barriers, margin_m=link_distance_m)[0])
        ok = side[i] == side[j]
        seg = shapely.shortest_line(geoms[i], geoms[j])
        bgeo = np.asarray(barriers.to_crs(communities.crs).geometry.values)
        btree = shapely.STRtree(bgeo)
        si, _ = btree.query(seg, predicate="crosses")
        ok[si] = False
        G.graph["n_blocked"] = int((~ok).sum())
        i, j = i[ok], j[ok]
    d = shapely.distance(geoms[i], geoms[j])
    G.add_edges_from((int(a), int(b), {"distance_m": float(x)})
                     for a, b, x in zip(i, j, d, strict=True))
    return G


# --------------------------------------------------------------------------------------------
# Clustering
# --------------------------------------------------------------------------------------------


def cluster_packages(xy: ArrayLike, graph: nx.Graph, *, floor_area_m2: ArrayLike,
                     households: ArrayLike, max_floor_area_m2: float, max_households: float,
                     min_floor_area_m2: float = 0.0, min_households: float = 0.0,
                     subdistrict: Sequence[Any] | None = None,
                     prefer_same_subdistrict: bool = True) -> NDArray[np.int64]:
    """Partition linked communities into contiguous packages within a floor and a ceiling.

    Method (deterministic: no random state, ties broken by position):

    1. **Sub-districts.** With ``prefer_same_subdistrict``, links between communities of
       different sub-districts are set aside (used again only in step 4).
    2. **Components.** Each connected component of the link graph (networkx) whose total floor
       area and households are within the ceilings is one package.
    3. **Ceilings.** A larger component is split along its connectivity-constrained Ward
       dendrogram (:func:`sklearn.cluster.ward_tree` on community centroids, with the link graph
       as connectivity, so every tree node is a contiguous, compact group): from the root down,
       a node within both ceilings becomes a package, otherwise it is replaced by its two
       children. A single community above a ceiling stays a package of its own (reported).
    4. **Floors.** A package below either floor is merged into the linked package whose union
       stays within both ceilings and adds the least Ward variance (most compact result), first
       within its sub-district, then across; smallest packages first, repeated until nothing
       changes. Packages that still fall short (isolated or boxed in by full neighbours) are
       kept and reported.

    Ceilings and floors both bind, unlike max-p regionalisation (PySAL ``spopt``), which only
    enforces a floor and uses random restarts.

    Parameters
    ----------
    xy
        ``(n, 2)`` community centroids (m, metric CRS).
    graph
        Link graph over positions ``0..n-1`` (:func:`link_graph`).
    floor_area_m2, households
        Per-community totals (NaN counts as 0).
    max_floor_area_m2, max_households
        Package ceilings.
    min_floor_area_m2, min_households
        Package floors.
    subdistrict
        Sub-district per community (None values form their own group).
    prefer_same_subdistrict
        Keep packages inside one sub-district where the floors allow.

    Returns
    -------
    numpy.ndarray
        Package label per community, ``0..k-1`` ordered by each package's first community.
    """
    X = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(X)
    F = np.nan_to_num(np.asarray(floor_area_m2, dtype=float))
    H = np.nan_to_num(np.asarray(households, dtype=float))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sub = (np.array(["" if s is None or s != s else str(s) for s in subdistrict], dtype=object)
           if subdistrict is not None else np.full(n, "", dtype=object))
    G_all = nx.Graph()
    G_all.add_nodes_from(range(n))
    G_all.add_edges_from((u, v) for u, v in graph.edges() if u < n and v < n)
    G_in = G_all.copy()
    if prefer_same_subdistrict:
        G_in.remove_edges_from([(u, v) for u, v in G_all.edges() if sub[u] != sub[v]])

    def fits(f: float, h: float) -> bool:
        return f <= max_floor_area_m2 + 1e-6 and h <= max_households + 1e-6

    labels = np.full(n, -1, dtype=np.int64)
    next_label = 0
    for comp in sorted(nx.connected_components(G_in), key=min):
        nodes = np.array(sorted(comp))
        if len(nodes) == 1 or fits(F[nodes].sum(), H[nodes].sum()):
            labels[nodes] = next_label
            next_label += 1
            continue
        for piece in _ceiling_split(X, F, H, G_in, nodes, fits):
            labels[piece] = next_label
            next_label += 1
    labels = _merge_below_floor(labels, X, F, H, G_in, G_all, fits=fits,
                                min_f=min_floor_area_m2, min_h=min_households,
                                fallback=prefer_same_subdistrict)
    # Relabel 0..k-1 by first member for a stable order.
    first: dict[int, int] = {}
    for pos, lab in enumerate(labels):
        first.setdefault(int(lab), pos)
    order = {lab: k for k, lab in enumerate(sorted(first, key=first.__getitem__))}
    return np.array([order[int(v)] for v in labels], dtype=np.int64)


def _ceiling_split(X: NDArray[np.float64], F: NDArray[np.float64], H: NDArray[np.float64],
                   G: nx.Graph, nodes: NDArray[np.int64], fits: Any) -> list[NDArray[np.int64]]:
    """Top-down cut of the connectivity-constrained Ward tree of one component."""
    m = len(nodes)
    pos = {int(v): k for k, v in enumerate(nodes)}
    sub = G.subgraph(nodes.tolist())
    rows = [pos[u] for u, v in sub.edges()] + [pos[v] for u, v in sub.edges()]
    cols = [pos[v] for u, v in sub.edges()] + [pos[u] for u, v in sub.edges()]
    conn = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(m, m)).tocsr()
    # scikit-learn takes ~1.5 s to import and is needed only when a component is above a
    # ceiling, so runs without one never import it
    from sklearn.cluster import ward_tree

    children = ward_tree(X[nodes], connectivity=conn)[0]
    # Totals of every tree node: leaves 0..m-1, merges m..2m-2 in order.
    f = np.concatenate([F[nodes], np.zeros(m - 1)])
    h = np.concatenate([H[nodes], np.zeros(m - 1)])
    for k, (a, b) in enumerate(children):
        f[m + k] = f[a] + f[b]
        h[m + k] = h[a] + h[b]
    pieces: list[NDArray[np.int64]] = []
    stack = [2 * m - 2]
    while stack:
        node = stack.pop()
        if node < m or fits(f[node], h[node]):
            pieces.append(nodes[_leaves(children, node, m)])
        else:
            a, b = children[node - m]
            stack.extend([int(b), int(a)])
    return sorted(pieces, key=lambda p: int(p.min()))


def _leaves(children: NDArray[np.int64], node: int, m: int) -> NDArray[np.int64]:
    out: list[int] = []
    stack = [node]
    while stack:
        v = stack.pop()
        if v < m:
            out.append(v)
        else:
            stack.extend(int(c) for c in children[v - m])
    return np.array(sorted(out), dtype=np.int64)


def _merge_below_floor(labels: NDArray[np.int64], X: NDArray[np.float64],
                       F: NDArray[np.float64], H: NDArray[np.float64], G_in: nx.Graph,
                       G_all: nx.Graph, *, fits: Any, min_f: float, min_h: float,
                       fallback: bool) -> NDArray[np.int64]:
    labels = labels.copy()
    members: dict[int, set[int]] = {}
    for v, lab in enumerate(labels):
        members.setdefault(int(lab), set()).add(v)

    def stats(lab: int) -> tuple[float, float, int, NDArray[np.float64]]:
        idx = np.fromiter(members[lab], dtype=np.int64)
        return float(F[idx].sum()), float(H[idx].sum()), len(idx), X[idx].mean(axis=0)

    def below(lab: int) -> bool:
        f, h, _, _ = stats(lab)
        return f < min_f - 1e-6 or h < min_h - 1e-6

    def neighbours(lab: int, G: nx.Graph) -> set[int]:
        return {int(labels[u]) for v in members[lab] for u in G.neighbors(v)} - {lab}

    graphs = [G_in, G_all] if fallback else [G_in]
    changed = True
    while changed:
        changed = False
        pending = sorted((lab for lab in members if below(lab)),
                         key=lambda lab: (max(stats(lab)[0] / max(min_f, 1e-9),
                                              stats(lab)[1] / max(min_h, 1e-9)), lab))
        for lab in pending:
            if lab not in members or not below(lab):
                continue
            fa, ha, na, ca = stats(lab)
            for G in graphs:
                best: tuple[float, int] | None = None
                for other in sorted(neighbours(lab, G)):
                    fb, hb, nb, cb = stats(other)
                    if not fits(fa + fb, ha + hb):
                        continue
                    cost = na * nb / (na + nb) * float(np.sum((ca - cb) ** 2))
                    if best is None or cost < best[0]:
                        best = (cost, other)
                if best is not None:
                    keep, drop = min(lab, best[1]), max(lab, best[1])
                    members[keep] |= members.pop(drop)
                    labels[list(members[keep])] = keep
                    changed = True
                    break
    return labels


def assert_partition(labels: ArrayLike, graph: nx.Graph) -> None:
    """Check that every package is connected in the link graph (raise AssertionError if not).

    Parameters
    ----------
    labels
        Package label per community (positions ``0..n-1``).
    graph
        The link graph the packages were built from.
    """
    lab = np.asarray(labels)
    if (lab < 0).any():
        raise AssertionError(f"{int((lab < 0).sum())} communities have no package")
    for k in np.unique(lab):
        nodes = np.flatnonzero(lab == k).tolist()
        if len(nodes) > 1 and not nx.is_connected(graph.subgraph(nodes)):
            raise AssertionError(f"package {k} is not connected in the link graph: {nodes}")


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


@dataclass
class PackagesReport:
    """What the planner should check.

    Attributes
    ----------
    oversize
        ``(package_id, community name, floor_area_m2, households)`` for single communities
        above a ceiling (kept as a package of their own).
    below_floor
        Package ids below a floor (isolated or boxed in by full neighbours).
    cross_subdistrict
        Package ids spanning more than one sub-district (only to reach a floor).
    outside_study_area
        ``community_id`` of inventory rows outside the study area (not packaged).
    no_floor_area
        ``community_id`` of old communities whose floor area is unknown (counted as 0).
    n_blocked_links
        Community pairs within ``link_distance_m`` that a hard barrier separated.
    inventory
        Notes from reading the inventory (skipped rows, duplicate names), if one was used.
    """

    oversize: list[tuple[str, str, float, float]] = field(default_factory=list)
    below_floor: list[str] = field(default_factory=list)
    cross_subdistrict: list[str] = field(default_factory=list)
    outside_study_area: list[str] = field(default_factory=list)
    no_floor_area: list[str] = field(default_factory=list)
    n_blocked_links: int = 0
    inventory: InventoryReport | None = None

    @property
    def skipped_rows(self) -> list[int]:
        """Inventory rows skipped for lack of coordinates."""
        return list(self.inventory.skipped_rows) if self.inventory is not None else []

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        out: list[str] = []
        if self.inventory is not None:
            out += self.inventory.lines()
        for pid, name, f, h in self.oversize:
            out.append(f"package {pid} is one community above a ceiling: {name} "
                       f"({f:,.0f} m², {h:,.0f} households)")
        if self.below_floor:
            out.append(f"below a floor (no feasible neighbour): {', '.join(self.below_floor)}")
        if self.cross_subdistrict:
            out.append(f"span sub-districts (to reach a floor): "
                       f"{', '.join(self.cross_subdistrict)}")
        if self.outside_study_area:
            out.append(f"{len(self.outside_study_area)} communities outside the study area, "
                       f"not packaged: {', '.join(self.outside_study_area[:10])}")
        if self.no_floor_area:
            out.append(f"no floor area (counted as 0): {', '.join(self.no_floor_area[:10])}")
        if self.n_blocked_links:
            out.append(f"{self.n_blocked_links} close pairs separated by hard barriers")
        return out


@dataclass
class PackagesResult:
    """Output of :func:`renewal_packages`.

    Attributes
    ----------
    communities
        All communities with ``package_id`` (layer ``communities``).
    packages
        One row per package (layer ``renewal_packages``).
    unit_counts
        Per update unit (``unit_id``): ``n_old_communities``, ``old_floor_area_m2`` and
        ``package_ids``; None without units. The pipeline joins them to the units and
        re-derives the classes (:func:`urbanunits.units.recount_old_communities`).
    links
        The link graph as lines between nearest points (``from_id``, ``to_id``, ``distance_m``).
    report
        Items to check.
    """

    communities: gpd.GeoDataFrame
    packages: gpd.GeoDataFrame
    unit_counts: pd.DataFrame | None
    links: gpd.GeoDataFrame
    report: PackagesReport

    def summary_lines(self) -> list[str]:
        """Counts, size spread and report lines for the terminal."""
        c = self.communities
        old = c[c["is_old"]]
        pk = self.packages
        rules = (c["old_rule"].astype(str) if "old_rule" in c.columns
                 else pd.Series("", index=c.index))
        unknown = int(((rules == "none") & ~c["is_old"]).sum())
        head = f"communities: {len(c)} ({len(old)} old, {len(c) - len(old) - unknown} new"
        head += f", {unknown} of unknown age counted as not old)" if unknown else ")"
        out = [head]
        if len(old) and "old_rule" in c.columns:
            # what the old ones rest on: a year, the inventory, an override, or a name alone
            basis = rules[c["is_old"]].str.split(":").str[0].value_counts()
            out.append("  old by: " + ", ".join(f"{k} {v}" for k, v in basis.items()))
        out.append(f"packages: {len(pk)}")
        if len(pk):
            for col, unit in (("n_communities", ""), ("floor_area_m2", " m²"),
                              ("households", "")):
                v = pk[col].astype(float).dropna()
                out.append(f"  {col}: min {v.min():,.0f}, median {v.median():,.0f}, "
                           f"max {v.max():,.0f}{unit}" if len(v) else f"  {col}: unknown")
        return out + self.report.lines()


def _join(values: Any, sep: str = ";") -> str:
    vals = [str(v) for v in values if v is not None and v == v and str(v) != ""]
    return sep.join(dict.fromkeys(vals))


def renewal_packages(communities: gpd.GeoDataFrame, cfg: Config, *,
                     units: gpd.GeoDataFrame | None = None,
                     barriers: gpd.GeoDataFrame | None = None,
                     subdistricts: gpd.GeoDataFrame | None = None) -> PackagesResult:
    """Group the old communities into renewal packages and describe them.

    Old communities inside the study area are linked (:func:`link_graph`, ``link_distance_m``,
    ``barriers``) and clustered (:func:`cluster_packages`, floors and ceilings from
    ``[packages]``). Each package's outline is the convex hull of its members, clipped to the
    union of the update units (land) and to its side of the barriers, plus the members
    themselves; CSV point members count as discs of :data:`POINT_RADIUS_M` m.

    Parameters
    ----------
    communities
        :func:`build_inventory` output (metric CRS).
    cfg
        Run configuration (``[packages]``).
    units
        Update units (``unit_id``, optional ``subdistrict``): fill ``unit_id``/``subdistrict``
        and get ``n_old_communities``/``old_floor_area_m2``.
    barriers
        Hard barriers (:func:`hard_barriers`); None ⇒ none.
    subdistricts
        Sub-district polygons (``subdistrict`` column), used when ``units`` lack them.

    Returns
    -------
    PackagesResult
        ``communities`` with ``package_id``; ``packages`` with ``package_id``,
        ``n_communities``, ``member_ids``, ``member_names``, ``floor_area_m2``, ``households``,
        ``population``, ``unit_ids``, ``subdistricts``, ``polsby_popper`` (4πA/P² of the
        outline, 1 = circle), ``fill_ratio`` (members' area / outline area), ``span_m``
        (diameter of the smallest enclosing circle), ``above_ceiling``, ``below_floor``;
        ``unit_counts`` (old communities per unit); ``links``; ``report``.
    """
    require_projected(communities, "renewal_packages")
    p = cfg.packages
    needed = {"community_id", "name", "is_old", "floor_area_m2", "households"}
    missing = needed - set(communities.columns)
    if missing:
        raise DataError("communities", f"missing columns {sorted(missing)}",
                        "build them with packages.build_inventory")
    if communities["community_id"].duplicated().any():
        dup = communities.loc[communities["community_id"].duplicated(), "community_id"]
        raise DataError("communities: community_id", f"duplicate ids {sorted(set(dup))[:10]}",
                        "make the ids unique")
    comm = communities.copy()
    for col in ("unit_id", "subdistrict"):
        if col not in comm.columns:
            comm[col] = None
    if "in_study_area" not in comm.columns:
        comm["in_study_area"] = True
    if units is not None:
        comm = _with_units(comm, units)
    if subdistricts is not None and not subdistricts.empty and comm["subdistrict"].isna().all():
        comm["subdistrict"] = _largest_overlap(comm.geometry, subdistricts, "subdistrict")
    if "population" not in comm.columns:
        comm["population"] = comm["households"] * p.persons_per_household

    sel = (comm["is_old"].astype(bool) & comm["in_study_area"].astype(bool)).to_numpy()
    old = comm[sel].sort_values("community_id")
    geoms = old.geometry
    sides, faces = barrier_sides(geoms, barriers, margin_m=p.link_distance_m)
    G = link_graph(old, link_distance_m=p.link_distance_m, barriers=barriers, sides=sides)
    xy = np.column_stack([geoms.centroid.x, geoms.centroid.y]) if len(old) else np.zeros((0, 2))
    labels = cluster_packages(
        xy, G, floor_area_m2=old["floor_area_m2"].to_numpy(dtype=float),
        households=old["households"].to_numpy(dtype=float),
        max_floor_area_m2=p.max_floor_area_m2, max_households=p.max_households,
        min_floor_area_m2=p.min_floor_area_m2, min_households=p.min_households,
        subdistrict=old["subdistrict"].tolist(),
        prefer_same_subdistrict=p.prefer_same_subdistrict)
    k = int(labels.max()) + 1 if labels.size else 0
    width = max(2, len(str(k)))
    pids = [f"P{i + 1:0{width}d}" for i in range(k)]
    comm["package_id"] = None
    comm.loc[old.index, "package_id"] = [pids[v] for v in labels]

    packages = _describe(old.assign(_lab=labels), pids, faces, sides, units, cfg)
    report = PackagesReport(n_blocked_links=int(G.graph.get("n_blocked", 0)),
                            inventory=communities.attrs.get("inventory_report"))
    for _, row in packages[packages["above_ceiling"]].iterrows():
        report.oversize.append((row["package_id"], row["member_names"],
                                float(row["floor_area_m2"]), float(row["households"])))
    report.below_floor = packages.loc[packages["below_floor"], "package_id"].tolist()
    report.cross_subdistrict = [pid for pid, subs in zip(packages["package_id"],
                                                         packages["subdistricts"], strict=True)
                                if ";" in str(subs)]
    report.outside_study_area = comm.loc[~comm["in_study_area"].astype(bool),
                                         "community_id"].astype(str).tolist()
    report.no_floor_area = old.loc[old["floor_area_m2"].isna(), "community_id"].tolist()

    links = _links(old, G)
    counts = _unit_counts(units, comm) if units is not None else None
    lead = ["community_id", "name", "is_old", "old_rule", "old_by_name_only", "built_year",
            "built_year_text", "floor_area_m2",
            "households", "population", "unit_id", "subdistrict", "package_id"]
    rest = [c for c in comm.columns if c not in lead and c != comm.geometry.name]
    comm = gpd.GeoDataFrame(comm[[c for c in lead if c in comm.columns] + rest],
                            geometry=comm.geometry, crs=comm.crs)
    for _, row in packages.iterrows():
        logger.debug("%s: %s", row["package_id"], row["member_names"])
    return PackagesResult(communities=comm, packages=packages, unit_counts=counts,
                          links=links,
                          report=report)


def _describe(old: gpd.GeoDataFrame, pids: list[str], faces: gpd.GeoSeries,
              sides: NDArray[np.int64], units: gpd.GeoDataFrame | None,
              cfg: Config) -> gpd.GeoDataFrame:
    """One row per package: totals, members, outline and shape measures."""
    p = cfg.packages
    crs = old.crs
    cols = ["package_id", "n_communities", "member_ids", "member_names", "floor_area_m2",
            "households", "population", "unit_ids", "subdistricts", "polsby_popper",
            "fill_ratio", "span_m", "above_ceiling", "below_floor"]
    if old.empty:
        empty = {c: pd.Series([], dtype=object) for c in cols}
        for c in ("n_communities",):
            empty[c] = pd.Series([], dtype="int64")
        for c in ("floor_area_m2", "households", "population", "polsby_popper", "fill_ratio",
                  "span_m"):
            empty[c] = pd.Series([], dtype=float)
        for c in ("above_ceiling", "below_floor"):
            empty[c] = pd.Series([], dtype=bool)
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    g = np.asarray(old.geometry.values)
    is_pt = shapely.get_type_id(g) == 0
    shapes = np.where(is_pt, shapely.buffer(g, POINT_RADIUS_M), g)
    lab = old["_lab"].to_numpy()
    k = len(pids)
    members = [shapely.union_all(shapes[lab == i]) for i in range(k)]
    hulls = shapely.convex_hull(np.asarray(members))
    land = None
    if units is not None and not units.empty:
        land = shapely.union_all(units.to_crs(crs).geometry.values)
    face_arr = np.asarray(faces.values)
    outlines = []
    for i in range(k):
        region = shapely.union_all(face_arr[np.unique(sides[lab == i])])
        hull = shapely.intersection(hulls[i], region)
        if land is not None:
            hull = shapely.intersection(hull, land)
        outline = shapely.union_all([hull, members[i]])
        outlines.append(_polygonal(outline))
    outline_arr = np.asarray(outlines)
    area = shapely.area(outline_arr)
    perim = shapely.length(outline_arr)
    member_area = shapely.area(np.asarray(members))
    df = pd.DataFrame({"_lab": lab, "community_id": old["community_id"].to_numpy(),
                       "name": old["name"].to_numpy(),
                       "floor_area_m2": old["floor_area_m2"].to_numpy(dtype=float),
                       "households": old["households"].to_numpy(dtype=float),
                       "population": old["population"].to_numpy(dtype=float),
                       "unit_id": old["unit_id"].to_numpy(), "sub": old["subdistrict"].to_numpy()})
    grp = df.groupby("_lab", sort=True)
    tot = grp[["floor_area_m2", "households", "population"]].sum(min_count=1)
    n_c = grp.size()
    out = gpd.GeoDataFrame({
        "package_id": pids,
        "n_communities": n_c.to_numpy(),
        "member_ids": grp["community_id"].agg(_join).to_numpy(),
        "member_names": grp["name"].agg(lambda s: _join(s, "、")).to_numpy(),
        "floor_area_m2": tot["floor_area_m2"].round(0).to_numpy(),
        "households": tot["households"].round(0).to_numpy(),
        "population": tot["population"].round(0).to_numpy(),
        "unit_ids": grp["unit_id"].agg(lambda s: _join(sorted(s.dropna().astype(str)))
                                       ).to_numpy(),
        "subdistricts": grp["sub"].agg(lambda s: _join(sorted(s.dropna().astype(str)))
                                       ).to_numpy(),
        "polsby_popper": np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2,
                                  np.nan).round(3),
        "fill_ratio": np.where(area > 0, member_area / np.maximum(area, 1e-9), np.nan).round(3),
        "span_m": (2 * shapely.minimum_bounding_radius(outline_arr)).round(0),
    }, geometry=outline_arr, crs=crs)
    # Flags from the unrounded totals, with the tolerance cluster_packages uses.
    f = tot["floor_area_m2"].fillna(0).to_numpy()
    h = tot["households"].fillna(0).to_numpy()
    out["above_ceiling"] = (f > p.max_floor_area_m2 + 1e-6) | (h > p.max_households + 1e-6)
    out["below_floor"] = (f < p.min_floor_area_m2 - 1e-6) | (h < p.min_households - 1e-6)
    return out[[*cols, "geometry"]]


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [q for q in shapely.get_parts(geom) if q.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _links(old: gpd.GeoDataFrame, G: nx.Graph) -> gpd.GeoDataFrame:
    ids = old["community_id"].to_numpy()
    g = np.asarray(old.geometry.values)
    e = np.array(sorted(G.edges()), dtype=np.int64).reshape(-1, 2)
    return gpd.GeoDataFrame({"from_id": ids[e[:, 0]], "to_id": ids[e[:, 1]],
                             "distance_m": shapely.distance(g[e[:, 0]], g[e[:, 1]]).round(1)},
                            geometry=shapely.shortest_line(g[e[:, 0]], g[e[:, 1]]), crs=old.crs)


def _unit_counts(units: gpd.GeoDataFrame, comm: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per unit: old communities, their floor area and the packages they belong to.

    The stage only counts; the pipeline joins the counts to the units and re-applies the units
    stage's class rules (:func:`urbanunits.units.recount_old_communities`), so that one stage
    writes the ``update_units`` layer.
    """
    old = comm[comm["is_old"].astype(bool) & comm["unit_id"].notna()]
    grp = old.groupby("unit_id")
    count = grp.size().to_dict()
    floor = grp["floor_area_m2"].sum().to_dict()
    pk = old[old["package_id"].notna()].groupby("unit_id")["package_id"].agg(
        lambda s: _join(sorted(s))).to_dict()
    ids = units["unit_id"].tolist()
    return pd.DataFrame({"unit_id": ids,
                         "n_old_communities": [int(count.get(u, 0)) for u in ids],
                         "old_floor_area_m2": [float(floor.get(u, 0.0)) for u in ids],
                         "package_ids": [str(pk.get(u, "")) for u in ids]})
