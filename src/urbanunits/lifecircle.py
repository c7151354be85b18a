"""15-minute community life circles (15分钟社区生活圈): walking distance to daily services.

For every community and facility subtype (day care, nursing home, kindergarten, health centre,
convenience store, market, …) this measures the walking distance along the pedestrian network to
the nearest facility of that subtype and checks it against the subtype's GB 50180-2018 standard
in the config. A community **meets a category** only when **every mandatory subtype** (▲ in the
standard) is within its own ``distance_m``: the levels are not inclusive, so a shopping centre
never stands in for a market or a convenience store, and a general hospital — recorded as itself,
``requirement = "none"`` — never for a community health centre. Optional items (△) and items
outside the standard are measured and reported but never decide. Results are weighted by
population per update unit and renewal package, and every community × mandatory subtype that
fails is listed as a gap.

Distances come from :mod:`urbanunits.network`: the walk graph becomes a sparse matrix once, every
facility and community is snapped to it, and each facility subtype costs one multi-source
Dijkstra search (never one per facility or community). A community's distance is the minimum
over its entry points: the network nodes inside its polygon or within ``entry_buffer_m`` of it
(plus the straight walk from the polygon to the node); for a polygon with no node nearby, the
points where streets pass through it; for a point, or a polygon with neither, its snap to the
nearest street (plus the snap distance). Pieces of the network smaller than
``min_component_nodes`` (footway loops inside walled grounds) are passed over when a street lies
within ``max_snap_m``. A community or facility farther than ``max_snap_m`` from every street, or
in a part of the network no facility can reach, is *unreachable*: ``NaN`` distance, never 0 m
and never a huge number, and the gap says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from urbanunits._search import nearest_per_owner
from urbanunits.config import Category, Config, LifeCircleConfig, Subtype
from urbanunits.crs import require_projected
from urbanunits.errors import CRSError, DataError
from urbanunits.isochrones import isochrones
from urbanunits.network import (
    Entries,
    Router,
    Snap,
    WalkNetwork,
    community_access,
    snap_component_nodes,
    snap_to_edges,
)

if TYPE_CHECKING:
    import networkx as nx
    from numpy.typing import NDArray

__all__ = [
    "GAP_REASONS",
    "LifeCircleResult",
    "coverage_by_zone",
    "isochrones",
    "life_circle",
    "mandatory",
    "standard_text",
    "standards_table",
]

logger = logging.getLogger(__name__)

#: Gap reason codes (layer ``service_gaps``, column ``reason``) and their report text.
GAP_REASONS: dict[str, str] = {
    "too_far": "最近设施超出标准步行距离 nearest facility beyond the walking standard",
    "beyond_search": "搜索范围内无设施 no facility within the search limit",
    "disconnected": "步行网络不连通 no facility on the same connected walk network",
    "no_facility": "研究范围内无此类设施 no facility of this category in the area",
    "facilities_off_network": "设施均远离步行网络 every facility is off the walk network",
    "off_network": "小区远离步行网络 community farther than max_snap_m from any path",
}


@dataclass
class LifeCircleResult:
    """Everything the life-circle stage produces.

    Attributes
    ----------
    communities
        Layer ``lifecircle``: one row per community (``community_id`` and the input's optional
        ``name``, ``population``, ``is_old``, ``unit_id``, ``package_id``), ``on_network``,
        ``n_entries``, ``access_m`` (straight metres from the community to its nearest entry);
        per subtype ``<cat>_<subtype>_dist_m`` and ``<cat>_<subtype>_ok``; per category
        ``<cat>_ok`` (every mandatory subtype met), ``<cat>_missing`` (keys of the mandatory
        subtypes not met), ``<cat>_ratio`` (largest distance ÷ standard over the mandatory
        subtypes; ≤ 1 meets, NaN when one is unreachable), ``<cat>_dist_m`` (distance of the
        subtype with that ratio), ``<cat>_minutes``, ``<cat>_minutes_elderly``; ``all_ok``,
        ``n_missing`` (categories not met); geometry.
    facilities
        Layer ``facilities``: the input facilities with ``facility_id``, ``requirement``,
        ``snap_m``, ``component_nodes`` (size of the network piece it is snapped to) and
        ``on_network``.
    gaps
        Layer ``service_gaps``: one row per community × mandatory subtype not met, with the
        standard (``distance_m``, ``level_minutes``), ``dist_m`` to the nearest facility of the
        subtype (NaN if none reachable), ``shortfall_m``, ``reason`` (a key of
        :data:`GAP_REASONS`) and ``reason_text``.
    coverage
        Layer ``lifecircle_summary``: one row per category (``subtype`` empty), per subtype and
        ``all``: requirement, standard, facilities, communities and population meeting it.
    units, packages
        Layers ``lifecircle_units`` / ``lifecircle_packages`` (population-weighted share covered
        per category) when the communities carry ``unit_id`` / ``package_id`` or zones were
        given; with the zones' geometry when given, attribute tables otherwise.
    isochrones
        Layer ``isochrones`` (walkable area within each facility's standard) when asked for.
    notes
        Report lines (snapping, missing categories, population gaps).
    seconds
        Timings of the steps.
    """

    communities: gpd.GeoDataFrame
    facilities: gpd.GeoDataFrame
    gaps: gpd.GeoDataFrame
    coverage: pd.DataFrame
    units: pd.DataFrame | None = None
    packages: pd.DataFrame | None = None
    isochrones: gpd.GeoDataFrame | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def layers(self) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
        """Output layers by GeoPackage layer name."""
        out: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {
            "lifecircle": self.communities, "facilities": self.facilities,
            "service_gaps": self.gaps, "lifecircle_summary": self.coverage}
        if self.units is not None:
            out["lifecircle_units"] = self.units
        if self.packages is not None:
            out["lifecircle_packages"] = self.packages
        if self.isochrones is not None:
            out["isochrones"] = self.isochrones
        return out

    def summary_lines(self) -> list[str]:
        """How many communities meet each standard, for the terminal and the report."""
        lines = list(self.notes)
        cov = self.coverage
        for row in cov[cov["subtype"] == ""].itertuples(index=False):
            pop = ("" if pd.isna(row.pop_share_ok)
                   else f", {100 * row.pop_share_ok:.0f}% of residents")
            if row.category == "all":
                lines.append(f"all categories: {row.n_ok}/{row.n_communities} communities meet "
                             f"every standard{pop}")
                continue
            items = []
            for sub in cov[(cov["category"] == row.category) & (cov["subtype"] != "")
                           ].itertuples(index=False):
                mark = {"mandatory": "▲", "optional": "△"}.get(sub.requirement, "·")
                fac = ("no facility" if sub.n_facilities == 0
                       else f"{sub.n_facilities} facilit{'y' if sub.n_facilities == 1 else 'ies'}")
                if sub.n_facilities_off_network:
                    fac += f", {sub.n_facilities_off_network} off the network"
                items.append(f"{mark}{sub.subtype} ≤{sub.distance_m:g} m {sub.n_ok}/"
                             f"{sub.n_communities} ({fac})")
            lines.append(f"{row.category}: {row.n_ok}/{row.n_communities} communities meet "
                         f"every ▲ item{pop} [{'; '.join(items)}]")
        return lines


def standards_table(categories: Mapping[str, Category]) -> pd.DataFrame:
    """The configured standards: one row per category × subtype."""
    cols = ["category", "subtype", "requirement", "level_minutes", "distance_m", "label",
            "gb50180"]
    rows = [{"category": k, "subtype": s, "requirement": st.requirement,
             "level_minutes": st.level_minutes, "distance_m": st.distance_m,
             "label": st.label or s, "gb50180": st.gb50180}
            for k, cat in categories.items() for s, st in cat.subtypes.items()]
    return pd.DataFrame(rows, columns=cols)


def mandatory(cat: Category) -> dict[str, Subtype]:
    """The subtypes a community must have within reach to meet the category."""
    return {k: st for k, st in cat.subtypes.items() if st.requirement == "mandatory"}


def standard_text(cat: Category) -> str:
    """The category's rule in one line, e.g. ``convenience ≤300 m ∧ market ≤500 m``."""
    return " ∧ ".join(f"{s} ≤{st.distance_m:g} m" for s, st in mandatory(cat).items())


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _same_crs(gdf: gpd.GeoDataFrame, net: WalkNetwork, what: str) -> None:
    if net.crs is None or gdf.crs is None:
        return
    if pyproj.CRS.from_user_input(gdf.crs) != net.crs:
        raise CRSError(what, f"{what} are in {gdf.crs.to_string()} but the walk graph is in "
                       f"{net.crs.to_string()}", f"reproject with {what}.to_crs(...) first")


def _check_communities(communities: gpd.GeoDataFrame, net: WalkNetwork) -> None:
    if not isinstance(communities, gpd.GeoDataFrame):
        raise DataError("communities", "not a GeoDataFrame", "pass the communities layer")
    require_projected(communities, "life_circle")
    _same_crs(communities, net, "communities")
    missing = [c for c in ("community_id", "population") if c not in communities.columns]
    if missing:
        have = ", ".join(c for c in communities.columns if c != communities.geometry.name)
        raise DataError(f"communities: column(s) {missing}", f"missing; columns: {have}",
                        "give each community an id and a population (persons)")
    dup = communities["community_id"].duplicated(keep=False)
    if dup.any():
        ids = sorted({str(v) for v in communities.loc[dup, "community_id"]})[:5]
        raise DataError("communities: community_id", f"duplicate id(s) {ids}",
                        "make community_id unique")


def _check_facilities(facilities: gpd.GeoDataFrame, net: WalkNetwork,
                      categories: Mapping[str, Category]) -> gpd.GeoDataFrame:
    if not isinstance(facilities, gpd.GeoDataFrame):
        raise DataError("facilities", "not a GeoDataFrame", "pass facilities as points")
    missing = [c for c in ("category", "subtype") if c not in facilities.columns]
    if missing:
        raise DataError(f"facilities: column(s) {missing}", "missing",
                        "use sources.facilities.collect_facilities to build them")
    if len(facilities):
        require_projected(facilities, "life_circle")
        _same_crs(facilities, net, "facilities")
    fac = facilities[facilities["category"].isin(list(categories))].copy()
    cat_arr = np.asarray(fac["category"].to_numpy(), dtype=object)
    sub_arr = np.asarray(fac["subtype"].to_numpy(), dtype=object)
    for key, cat in categories.items():
        bad = sorted({str(v) for v in set(sub_arr[cat_arr == key].tolist()) - set(cat.subtypes)})
        if bad:
            raise DataError(f"facilities: subtype of {key}", f"unknown value(s) {bad[:5]}",
                            f"use {sorted(cat.subtypes)} (config lifecircle.categories.{key})")
    if "facility_id" not in fac.columns:
        fac.insert(0, "facility_id", [f"{c}-{k + 1}" for c, k in zip(
            fac["category"], fac.groupby("category").cumcount(), strict=True)])
    if len(fac) and not (shapely.get_type_id(fac.geometry.to_numpy()) == 0).all():
        fac["geometry"] = fac.geometry.representative_point()
    return fac.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def life_circle(graph: nx.MultiDiGraph | WalkNetwork, communities: gpd.GeoDataFrame,
                facilities: gpd.GeoDataFrame, cfg: LifeCircleConfig | Config, *,
                units: gpd.GeoDataFrame | None = None,
                packages: gpd.GeoDataFrame | None = None, workers: int = 1
                ) -> LifeCircleResult:
    """Walking distance from every community to every facility category, against the standards.

    Parameters
    ----------
    graph
        Projected osmnx walk graph (edge ``length`` in metres), or a prebuilt
        :class:`~urbanunits.network.WalkNetwork`.
    communities
        Polygons (or points) in the graph's metric CRS with ``community_id`` (unique) and
        ``population`` (persons); ``name``, ``is_old``, ``unit_id``, ``package_id`` are kept
        when present.
    facilities
        Points (polygons are reduced to representative points) in the same CRS with
        ``category`` and ``subtype`` as configured; ``facility_id``, ``name``, ``source`` kept.
        Categories with no facility are reported as gaps, not errors.
    cfg
        The ``lifecircle`` config section (or a whole :class:`~urbanunits.config.Config`):
        standards, walking speeds (m/s), ``max_snap_m``, ``entry_buffer_m``,
        ``search_limit_m``, ``isochrones``.
    units
        Update units (``unit_id``, polygons): communities without ``unit_id`` are assigned by
        their representative point, and the unit summary carries unit geometry.
    packages
        Renewal packages (``package_id``, polygons), likewise.
    workers
        Processes to share the searches (one per subtype) among; worth it from about a
        million nodes, where each search takes a few tenths of a second.

    Returns
    -------
    LifeCircleResult
        Layers and report lines. Inputs are not modified.
    """
    lc = cfg.lifecircle if isinstance(cfg, Config) else cfg
    cats = lc.categories
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    net = graph if isinstance(graph, WalkNetwork) else WalkNetwork.from_graph(graph)
    seconds["network"] = time.perf_counter() - t0
    _check_communities(communities, net)
    fac = _check_facilities(facilities, net, cats)
    # Snapping needs the segment index: building it in the background overlaps the node
    # entries (components, node k-d tree, polygons).
    net.prefetch_segments()
    notes: list[str] = []
    if net.n_nodes == 0:
        notes.append("the walk graph is empty: every community is unreachable")

    t = time.perf_counter()
    n = len(communities)
    access = community_access(net, communities.geometry.to_numpy(),
                              entry_buffer_m=lc.entry_buffer_m, max_snap_m=lc.max_snap_m,
                              min_component_nodes=lc.min_component_nodes)
    snap_f = snap_to_edges(net, fac.geometry.to_numpy(), max_snap_m=lc.max_snap_m,
                           min_component_nodes=lc.min_component_nodes)
    router = Router(net, Snap.concat(snap_f, access.snap))
    q_fac = router.point_node[:len(fac)]
    entries = access.entries(router.point_node[len(fac):])
    n_entries = np.bincount(entries.owner, minlength=n)
    access_m = access.access_m(n)
    seconds["snap"] = time.perf_counter() - t

    t = time.perf_counter()
    limit = lc.search_limit_m
    cat_key = fac["category"].to_numpy()
    sub_key = fac["subtype"].to_numpy()
    keys = [(key, s) for key, cat in cats.items() for s in cat.subtypes]
    groups = [q_fac[(cat_key == key) & (sub_key == s)] for key, s in keys]
    dist_sub: dict[tuple[str, str], NDArray[np.float64]] = dict(zip(
        keys, nearest_per_owner(router, groups, entries, n, limit_m=limit, workers=workers),
        strict=True))
    seconds["search"] = time.perf_counter() - t

    out = _community_table(communities, cats, lc, dist_sub, n_entries, access_m)
    fac_out = fac.copy()
    req = {(k, s): st.requirement for k, c in cats.items() for s, st in c.subtypes.items()}
    fac_out["requirement"] = [req.get((c, t)) for c, t in
                              zip(fac_out["category"], fac_out["subtype"], strict=True)]
    fac_out["snap_m"] = np.where(np.isfinite(snap_f.offset_m), snap_f.offset_m, np.nan)
    fac_out["component_nodes"] = snap_component_nodes(net, snap_f)
    fac_out["on_network"] = snap_f.ok
    n_off_c = int((n_entries == 0).sum())
    if n_off_c:
        notes.append(f"{n_off_c} of {n} communities are farther than {lc.max_snap_m:g} m from "
                     "the walk network (unreachable)")
    n_off_f = int((~snap_f.ok).sum())
    if n_off_f:
        notes.append(f"{n_off_f} of {len(fac)} facilities are farther than {lc.max_snap_m:g} m "
                     "from the walk network and were not used")
    gaps = _gaps(out, cats, fac_out, router, entries, q_fac, lc)
    coverage = _coverage(out, cats, fac_out)
    units_sum = packages_sum = None
    if units is not None or "unit_id" in out.columns:
        out = _assign_zone(out, units, "unit_id")
        units_sum = coverage_by_zone(out, "unit_id", cats, zones=units)
    if packages is not None or "package_id" in out.columns:
        out = _assign_zone(out, packages, "package_id")
        packages_sum = coverage_by_zone(out, "package_id", cats, zones=packages)
    iso = None
    if lc.isochrones:
        t = time.perf_counter()
        iso = isochrones(router, net, fac_out, q_fac, snap_f, cats, lc)
        seconds["isochrones"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    logger.info("life circles: %d communities, %d facilities, %d searches in %.2f s",
                n, len(fac), len(dist_sub), seconds["search"])
    return LifeCircleResult(communities=out, facilities=fac_out, gaps=gaps, coverage=coverage,
                            units=units_sum, packages=packages_sum, isochrones=iso,
                            notes=notes, seconds=seconds)


def _community_table(communities: gpd.GeoDataFrame, cats: Mapping[str, Category],
                     lc: LifeCircleConfig,
                     dist_sub: Mapping[tuple[str, str], NDArray[np.float64]],
                     n_entries: NDArray[np.intp], access: NDArray[np.float64]
                     ) -> gpd.GeoDataFrame:
    keep = [c for c in ("community_id", "name", "population", "is_old", "unit_id",
                        "package_id") if c in communities.columns]
    n = len(communities)
    cols: dict[str, Any] = {c: communities[c].to_numpy() for c in keep}
    cols["population"] = pd.to_numeric(communities["population"], errors="coerce").to_numpy()
    cols["on_network"] = n_entries > 0
    cols["n_entries"] = n_entries
    cols["access_m"] = np.where(np.isfinite(access), access, np.nan)
    n_missing = np.zeros(n, dtype=np.int64)
    per_sub: dict[str, Any] = {}
    for key, cat in cats.items():
        ok = np.ones(n, dtype=bool)
        ratio = np.full(n, -1.0)
        worst = np.full(n, np.nan)
        # Which mandatory subtypes each community misses, as a row of flags: the text is then
        # built once per distinct row instead of once per community.
        unmet: list[NDArray[np.bool_]] = []
        names: list[str] = []
        for s, st in cat.subtypes.items():
            d = dist_sub[key, s]
            met = d <= st.distance_m
            per_sub[f"{key}_{s}_dist_m"] = np.where(np.isfinite(d), d, np.nan)
            per_sub[f"{key}_{s}_ok"] = met
            if st.requirement != "mandatory":
                continue
            ok &= met
            r = d / st.distance_m
            # The binding item: the one farthest beyond (or closest to) its own standard.
            take = r > ratio
            ratio = np.where(take, r, ratio)
            worst = np.where(take, d, worst)
            unmet.append(~met)
            names.append(s)
        dist = np.where(np.isfinite(worst), worst, np.nan)
        cols[f"{key}_ok"] = ok
        # One bit per mandatory subtype: the text is built once per distinct set.
        code = np.zeros(n, dtype=object if len(unmet) > 62 else np.int64)
        for bit, miss in enumerate(unmet):
            code[miss] += 1 << bit
        distinct, inverse = np.unique(code, return_inverse=True)
        text = np.array([", ".join(nm for bit, nm in enumerate(names) if (int(c) >> bit) & 1)
                         for c in distinct] + [""], dtype=object)
        cols[f"{key}_missing"] = text[np.ravel(inverse)] if n else np.empty(0, dtype=object)
        cols[f"{key}_ratio"] = np.where(np.isfinite(ratio) & (ratio >= 0), ratio, np.nan)
        cols[f"{key}_dist_m"] = dist
        cols[f"{key}_minutes"] = dist / lc.walk_speed_m_s / 60.0
        cols[f"{key}_minutes_elderly"] = dist / lc.elderly_walk_speed_m_s / 60.0
        n_missing += ~ok
    cols.update(per_sub)
    cols["n_missing"] = n_missing
    cols["all_ok"] = n_missing == 0
    return gpd.GeoDataFrame(cols, geometry=communities.geometry.to_numpy(),
                            crs=communities.crs)


_GAP_COLUMNS = ["community_id", "name", "population", "category", "category_label", "subtype",
                "subtype_label", "level_minutes", "distance_m", "dist_m", "minutes",
                "shortfall_m", "reason", "reason_text"]


def _gaps(out: gpd.GeoDataFrame, cats: Mapping[str, Category], fac: gpd.GeoDataFrame,
          router: Router, entries: Entries, q_fac: NDArray[np.intp], lc: LifeCircleConfig
          ) -> gpd.GeoDataFrame:
    # One frame built from arrays gathered per subtype: a frame per subtype and their concat
    # cost more than the rest of the gap analysis.
    comp = router.component
    ent_comp = comp[entries.node]
    on_net = out["on_network"].to_numpy()
    fac_cat = np.asarray(fac["category"].to_numpy(), dtype=object)
    fac_sub = np.asarray(fac["subtype"].to_numpy(), dtype=object)
    n = len(out)
    pos_parts: list[NDArray[np.intp]] = []
    dist_parts: list[NDArray[np.float64]] = []
    reason_parts: list[NDArray[np.object_]] = []
    items: list[tuple[str, Category, str, Subtype]] = []
    for key, cat in cats.items():
        for s, st in mandatory(cat).items():
            fail = ~out[f"{key}_{s}_ok"].to_numpy()
            if not fail.any():
                continue
            pos = np.flatnonzero(fail)
            dist = out[f"{key}_{s}_dist_m"].to_numpy()[pos]
            in_sub = (fac_cat == key) & (fac_sub == s)
            q = q_fac[in_sub & (q_fac >= 0)]
            reason = np.full(len(pos), "too_far", dtype=object)
            nan = np.isnan(dist)
            if not in_sub.any():
                reason[:] = "no_facility"
            elif len(q) == 0:
                reason[:] = "facilities_off_network"
            elif nan.any():
                # Linked: an entry in a piece of the network that holds one of the facilities.
                has_fac = np.zeros(int(comp.max()) + 1, dtype=bool)
                has_fac[comp[q]] = True
                linked = np.zeros(n, dtype=bool)
                linked[entries.owner[has_fac[ent_comp]]] = True
                reason[nan] = np.where(linked[pos[nan]], "beyond_search", "disconnected")
            reason[~on_net[pos]] = "off_network"
            pos_parts.append(pos)
            dist_parts.append(dist)
            reason_parts.append(reason)
            items.append((key, cat, s, st))
    if not items:
        return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in _GAP_COLUMNS},
                                geometry=gpd.GeoSeries([], crs=out.crs), crs=out.crs)
    counts = [len(p) for p in pos_parts]
    pos = np.concatenate(pos_parts)
    dist = np.concatenate(dist_parts)
    reason = np.concatenate(reason_parts)

    def each(values: list[Any], *, number: bool = False) -> NDArray[Any]:
        """One value per subtype (as the scalar column of a frame of its own), per gap row."""
        return np.repeat(np.array(values) if number else np.array(values, dtype=object), counts)

    distance_m = each([st.distance_m for _, _, _, st in items], number=True)
    return gpd.GeoDataFrame({
        "community_id": out["community_id"].to_numpy()[pos],
        "name": out["name"].to_numpy()[pos] if "name" in out.columns else None,
        "population": out["population"].to_numpy()[pos],
        "category": each([k for k, _, _, _ in items]),
        "category_label": each([c.label for _, c, _, _ in items]),
        "subtype": each([s for _, _, s, _ in items]),
        "subtype_label": each([st.label or s for _, _, s, st in items]),
        "level_minutes": each([st.level_minutes for _, _, _, st in items], number=True),
        "distance_m": distance_m, "dist_m": dist,
        "minutes": dist / lc.walk_speed_m_s / 60.0,
        "shortfall_m": dist - distance_m,
        "reason": reason, "reason_text": [GAP_REASONS[r] for r in reason],
        "geometry": out.geometry.to_numpy()[pos]}, geometry="geometry", crs=out.crs)


def _weights(pop: pd.Series) -> pd.Series:
    return pd.to_numeric(pop, errors="coerce").fillna(0.0).clip(lower=0.0)


def _coverage(out: gpd.GeoDataFrame, cats: Mapping[str, Category], fac: gpd.GeoDataFrame
              ) -> pd.DataFrame:
    # Plain arrays: a dozen pandas reductions per row cost more than the table is worth.
    w = _weights(out["population"]).to_numpy(dtype=np.float64)
    total = float(w.sum())
    n = len(out)
    fac_cat = np.asarray(fac["category"].to_numpy(), dtype=object)
    fac_sub = np.asarray(fac["subtype"].to_numpy(), dtype=object)
    fac_off = ~fac["on_network"].to_numpy(dtype=bool)

    def median(col: str) -> float:
        d = out[col].to_numpy(dtype=np.float64)
        d = d[~np.isnan(d)]
        return float(np.median(d)) if len(d) else np.nan

    def row(category: str, subtype: str, label: str, ok_col: str,
            fac_mask: NDArray[np.bool_], **extra: Any) -> dict[str, Any]:
        ok = out[ok_col].to_numpy(dtype=bool)
        pop_ok = float(w[ok].sum())
        return {"category": category, "subtype": subtype, "label": label, **extra,
                "n_facilities": int(fac_mask.sum()),
                "n_facilities_off_network": int((fac_mask & fac_off).sum()),
                "n_communities": n, "n_ok": int(ok.sum()),
                "share_ok": float(ok.mean()) if n else np.nan,
                "population": total, "population_ok": pop_ok,
                "pop_share_ok": pop_ok / total if total > 0 else np.nan}

    rows = []
    for key, cat in cats.items():
        in_cat = fac_cat == key
        rows.append(row(key, "", cat.label, f"{key}_ok", in_cat,
                        requirement="", level_minutes=np.nan, distance_m=np.nan,
                        standard=standard_text(cat), median_dist_m=median(f"{key}_dist_m")))
        for s, st in cat.subtypes.items():
            rows.append(row(key, s, st.label or s, f"{key}_{s}_ok", in_cat & (fac_sub == s),
                            requirement=st.requirement, level_minutes=st.level_minutes,
                            distance_m=st.distance_m, standard=st.gb50180,
                            median_dist_m=median(f"{key}_{s}_dist_m")))
    rows.append(row("all", "", "全部 All categories", "all_ok",
                    np.ones(len(fac), dtype=bool), requirement="", level_minutes=np.nan,
                    distance_m=np.nan, standard="", median_dist_m=np.nan))
    return pd.DataFrame(rows)


def _assign_zone(out: gpd.GeoDataFrame, zones: gpd.GeoDataFrame | None, key: str
                 ) -> gpd.GeoDataFrame:
    """Give communities the id of the zone holding their representative point."""
    if zones is None or (key in out.columns and out[key].notna().all()):
        return out
    if key not in zones.columns:
        raise DataError(f"{key.removesuffix('_id')}s: column {key!r}", "missing",
                        f"pass zones with a {key} column")
    require_projected(zones, "life_circle")
    pts = gpd.GeoDataFrame(geometry=out.geometry.representative_point(), crs=out.crs)
    hit = gpd.sjoin(pts, zones[[key, zones.geometry.name]].to_crs(out.crs), how="left",
                    predicate="within")
    hit = hit[~hit.index.duplicated(keep="first")]
    res = out.copy()
    assigned = hit[key].reindex(out.index)
    res[key] = res[key].where(res[key].notna(), assigned) if key in res.columns else assigned
    return res


def coverage_by_zone(lc: gpd.GeoDataFrame, key: str, categories: Mapping[str, Category], *,
                     zones: gpd.GeoDataFrame | None = None) -> pd.DataFrame:
    """Population-weighted share of residents covered per category, per unit or package.

    Parameters
    ----------
    lc
        The ``lifecircle`` layer (needs ``key``, ``population``, ``<cat>_ok``, ``all_ok``).
    key
        Zone id column, ``"unit_id"`` or ``"package_id"``.
    categories
        The configured categories.
    zones
        Zone polygons with ``key``: the result gets their geometry; without them it is an
        attribute table.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        One row per zone: ``n_communities``, ``population``, per category ``<cat>_n_ok`` and
        ``<cat>_share`` (population-weighted; NaN when the zone's population is 0),
        ``all_n_ok``, ``all_share`` (and geometry with ``zones``).
    """
    # Plain arrays of only the columns summed: copying the whole layer (geometry, every
    # distance) or pandas' grouping cost more than the sums.
    has = lc[key].notna().to_numpy()
    w = _weights(lc["population"]).to_numpy(dtype=np.float64)[has]
    # Sums per zone with bincount over the factorised ids (sorted, like groupby(sort=True)).
    codes, ids = pd.factorize(lc[key][has], sort=True)
    k = len(ids)
    pop = np.bincount(codes, weights=w, minlength=k)
    safe = np.where(pop > 0, pop, np.nan)
    cols: dict[str, Any] = {key: ids, "n_communities": np.bincount(codes, minlength=k).astype(
        np.int64), "population": pop}
    shares: dict[str, Any] = {}
    for c in [*categories, "all"]:
        ok = lc[f"{c}_ok"].to_numpy(dtype=bool)[has]
        cols[f"{c}_n_ok"] = np.bincount(codes, weights=ok, minlength=k).astype(np.int64)
        shares[f"{c}_share"] = np.bincount(codes, weights=w * ok, minlength=k) / safe
    g = pd.DataFrame(cols | shares)
    if zones is not None and key in zones.columns:
        geom = zones[[key, zones.geometry.name]].to_crs(lc.crs).drop_duplicates(key)
        res = geom.merge(g, on=key, how="right")
        return gpd.GeoDataFrame(res, geometry=zones.geometry.name, crs=lc.crs)
    # Without zone polygons the table stays attribute-only (join it on the id in GIS):
    # dissolving thousands of communities would cost more than the whole network analysis.
    return g
