"""Renewal packages (片区化改造): bundle neighbouring old communities into packages.

Ningbo renews old residential communities (老旧小区) in packages rather than one community at a
time, so that financing, construction and shared public assets are planned together. The stage
is spread over four modules:

1. :mod:`urbanunits.communities` builds the **community inventory** (:func:`build_inventory`):
   the user's file when ``inputs.inventory`` is set, otherwise the named OSM residential areas,
   each classed old or new by documented, configurable rules (:func:`classify_communities`), and
   **estimates** floor area, households and population;
2. :mod:`urbanunits.package_barriers` finds the **hard barriers** — river, rail, optionally trunk
   roads (:func:`hard_barriers`, :func:`barrier_sides`);
3. :mod:`urbanunits.package_clusters` **links** old communities whose boundaries are within
   ``link_distance_m`` and that no barrier separates (:func:`link_graph`) and **clusters** the link
   graph into contiguous packages with a floor and a ceiling on floor area and households
   (:func:`cluster_packages`);
4. this module runs them and **describes** the packages (:func:`renewal_packages`). Its namespace
   re-exports the public names of the other three.

All geometry work happens in the run's metric CRS (metres, m²).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from urbanunits._gc import fewer_gc_sweeps
from urbanunits.communities import (
    POINT_MATCH_M,
    apply_overrides,
    build_inventory,
    classify_communities,
    largest_overlap,
    name_stem,
    parse_year,
    with_units,
)
from urbanunits.config import PackagesConfig
from urbanunits.crs import require_projected
from urbanunits.errors import DataError
from urbanunits.floor_area import estimate_floor_area
from urbanunits.package_barriers import barrier_sides, hard_barriers
from urbanunits.package_clusters import (
    assert_partition,
    cluster_packages,
    link_graph,
    link_pairs,
)

if TYPE_CHECKING:
    from urbanunits.sources.inventory import InventoryReport

__all__ = [
    "POINT_MATCH_M",
    "POINT_RADIUS_M",
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
    "link_pairs",
    "name_stem",
    "parse_year",
    "renewal_packages",
]

logger = logging.getLogger(__name__)

#: Radius (m) given to point communities (CSV inventories) when drawing package outlines.
POINT_RADIUS_M = 30.0


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


def renewal_packages(communities: gpd.GeoDataFrame, *, cfg: PackagesConfig,
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
        The ``[packages]`` section (link distance, floors and ceilings).
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
    with fewer_gc_sweeps():
        return _renewal_packages(communities, cfg=cfg, units=units, barriers=barriers,
                                 subdistricts=subdistricts)


def _renewal_packages(communities: gpd.GeoDataFrame, *, cfg: PackagesConfig,
                      units: gpd.GeoDataFrame | None, barriers: gpd.GeoDataFrame | None,
                      subdistricts: gpd.GeoDataFrame | None) -> PackagesResult:
    require_projected(communities, "renewal_packages")
    p = cfg
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
        comm = with_units(comm, units)
    if subdistricts is not None and not subdistricts.empty and comm["subdistrict"].isna().all():
        comm["subdistrict"] = largest_overlap(comm.geometry, subdistricts, "subdistrict")
    if "population" not in comm.columns:
        comm["population"] = comm["households"] * p.persons_per_household

    sel = (comm["is_old"].astype(bool) & comm["in_study_area"].astype(bool)).to_numpy()
    old = comm[sel].sort_values("community_id")
    geoms = old.geometry
    sides, faces = barrier_sides(geoms, barriers, margin_m=p.link_distance_m)
    # the links as an array: a networkx graph of them would only be read back into arrays
    pairs, n_blocked = link_pairs(old, link_distance_m=p.link_distance_m, barriers=barriers,
                                  sides=sides)
    cen = shapely.centroid(np.asarray(geoms.values))
    xy = np.column_stack([shapely.get_x(cen), shapely.get_y(cen)]).reshape(-1, 2)
    labels = cluster_packages(
        xy, pairs, floor_area_m2=old["floor_area_m2"].to_numpy(dtype=float),
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

    packages = _describe(old.assign(_lab=labels), pids, faces, sides, units, p)
    report = PackagesReport(n_blocked_links=n_blocked,
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

    links = _links(old, pairs)
    counts = _unit_counts(units, comm) if units is not None else None
    lead = ["community_id", "name", "is_old", "old_rule", "old_by_name_only", "built_year",
            "built_year_text", "floor_area_m2",
            "households", "population", "unit_id", "subdistrict", "package_id"]
    rest = [c for c in comm.columns if c not in lead and c != comm.geometry.name]
    comm = gpd.GeoDataFrame(comm[[c for c in lead if c in comm.columns] + rest],
                            geometry=comm.geometry, crs=comm.crs)
    if logger.isEnabledFor(logging.DEBUG):  # a row-by-row walk, only when it is shown
        for pid, names in zip(packages["package_id"], packages["member_names"], strict=True):
            logger.debug("%s: %s", pid, names)
    return PackagesResult(communities=comm, packages=packages, unit_counts=counts,
                          links=links,
                          report=report)


def _describe(old: gpd.GeoDataFrame, pids: list[str], faces: gpd.GeoSeries,
              sides: NDArray[np.int64], units: gpd.GeoDataFrame | None,
              p: PackagesConfig) -> gpd.GeoDataFrame:
    """One row per package: totals, members, outline and shape measures."""
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
    shapes = g.copy()
    shapes[is_pt] = shapely.buffer(g[is_pt], POINT_RADIUS_M)  # polygons are drawn as they are
    lab = old["_lab"].to_numpy()
    # Positions of each package's members (labels 0..k-1), ascending: one sort, not k masks.
    order = np.argsort(lab, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(lab[order])) + 1)
    members = _union_groups(shapes, groups)
    hulls = shapely.convex_hull(members)
    land = None
    if units is not None and not units.empty:
        land = shapely.union_all(units.to_crs(crs).geometry.values)
    face_arr = np.asarray(faces.values)
    regions: dict[tuple[int, ...], shapely.Geometry] = {}  # most packages share one face
    region_of = np.empty(len(groups), dtype=object)
    for i, gi in enumerate(groups):
        key = tuple(np.unique(sides[gi]).tolist())
        region = regions.get(key)
        if region is None:
            region = regions[key] = shapely.union_all(face_arr[list(key)])
        region_of[i] = region
    # the same GEOS operations per package as one call each over all packages
    clipped = shapely.intersection(hulls, region_of)
    if land is not None:
        clipped = shapely.intersection(clipped, land)
    outlines = _polygonal_all(shapely.union_all(np.column_stack([clipped, members]), axis=1))
    outline_arr = outlines
    area = shapely.area(outline_arr)
    perim = shapely.length(outline_arr)
    member_area = shapely.area(members)
    df = pd.DataFrame({"_lab": lab,
                       "floor_area_m2": old["floor_area_m2"].to_numpy(dtype=float),
                       "households": old["households"].to_numpy(dtype=float),
                       "population": old["population"].to_numpy(dtype=float)})
    grp = df.groupby("_lab", sort=True)
    tot = grp[["floor_area_m2", "households", "population"]].sum(min_count=1)
    n_c = grp.size()
    ids, names = old["community_id"].to_numpy(), old["name"].to_numpy()
    unit_ids, subs = old["unit_id"].to_numpy(), old["subdistrict"].to_numpy()
    out = gpd.GeoDataFrame({
        "package_id": pids,
        "n_communities": n_c.to_numpy(),
        "member_ids": [_join(ids[gi]) for gi in groups],
        "member_names": [_join(names[gi], "、") for gi in groups],
        "floor_area_m2": tot["floor_area_m2"].round(0).to_numpy(),
        "households": tot["households"].round(0).to_numpy(),
        "population": tot["population"].round(0).to_numpy(),
        "unit_ids": [_join(_present(unit_ids[gi])) for gi in groups],
        "subdistricts": [_join(_present(subs[gi])) for gi in groups],
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


def _present(values: NDArray[Any]) -> list[str]:
    """The values that are not None/NaN, as sorted strings."""
    return sorted(str(v) for v in values if not pd.isna(v))


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    parts = [q for q in shapely.get_parts(geom) if q.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _polygonal_all(geoms: NDArray[Any]) -> NDArray[Any]:
    """:func:`_polygonal` of each geometry; a non-empty polygon is its own result.

    (GEOS returns the union of a single polygon unchanged, a copy: most outlines are one
    polygon, and the union is skipped for them.)
    """
    out = geoms.copy()
    for k in np.flatnonzero((shapely.get_type_id(geoms) != 3) | shapely.is_empty(geoms)):
        out[k] = _polygonal(geoms[k])
    return out


def _union_groups(geoms: NDArray[Any], groups: list[NDArray[np.intp]]) -> NDArray[Any]:
    """``shapely.union_all(geoms[g])`` for each group ``g`` (positions, in order).

    Groups of one size are unioned in one call (a ``(groups, size)`` array along ``axis=1``,
    the same GEOS union per row); a group of one polygon is the polygon itself (GEOS returns
    the union of a single polygon unchanged).
    """
    out = np.empty(len(groups), dtype=object)
    sizes = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
    for size in np.unique(sizes):
        idx = np.flatnonzero(sizes == size)
        rows = geoms[np.stack([groups[k] for k in idx])]
        if size == 1:
            one = rows[:, 0]
            keep = (shapely.get_type_id(one) == 3) & ~shapely.is_empty(one)
            out[idx[keep]] = one[keep]
            idx, rows = idx[~keep], rows[~keep]
            if idx.size == 0:
                continue
        out[idx] = shapely.union_all(rows, axis=1)
    return out


def _links(old: gpd.GeoDataFrame, e: NDArray[np.int64]) -> gpd.GeoDataFrame:
    """The links (``(m, 2)`` positions, sorted) as lines between nearest points.

    Communities that touch or overlap have no gap to draw: their link has no geometry (a line
    of two equal points is invalid in GIS), and ``distance_m`` 0.
    """
    ids = old["community_id"].to_numpy()
    g = np.asarray(old.geometry.values)
    dist = shapely.distance(g[e[:, 0]], g[e[:, 1]])
    lines = shapely.shortest_line(g[e[:, 0]], g[e[:, 1]])
    lines[shapely.length(lines) == 0] = None
    return gpd.GeoDataFrame({"from_id": ids[e[:, 0]], "to_id": ids[e[:, 1]],
                             "distance_m": dist.round(1)}, geometry=lines, crs=old.crs)


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
