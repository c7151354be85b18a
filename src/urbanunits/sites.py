"""Sites for new facilities: candidate sites, maximal and set covering, supply and demand.

The life-circle stage says which communities lack a facility subtype within its GB 50180 walking
distance. This stage says where a new facility would help most, on sites that exist: idle public
buildings and vacant land from a user register (盘活存量闲置公房) and, from OSM, vacant or disused
buildings, public and government buildings, and surface car parks.

* **Candidates** too small for a subtype (``sites.subtypes.<key>.min_floor_area_m2``) are not
  offered for it; the count is reported.
* **Maximal covering (MCLP)**: per mandatory subtype that some community misses, choose at most
  ``max_sites`` candidates that bring the most residents, not yet within the standard, within it.
  **Set covering (LSCP)**: the fewest candidates that bring every such community a candidate can
  reach within it. Both are integer programs solved exactly by HiGHS through
  :func:`scipy.optimize.milp` (:mod:`urbanunits.covering`).
* **Supply and demand**: an enhanced two-step floating catchment area index (E2SFCA, Luo & Qi
  2009) of places per person of the subtype's age group, and the places missing to reach the
  configured target.

Distances are those of :func:`urbanunits.lifecircle.life_circle`: the same snapping (islands
included), the same community entries and the same router, with one search per candidate cut at
the standard distance. Adding the suggested sites as facilities and running the life-circle stage
again therefore gives exactly the coverage gain reported here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from urbanunits.config import Config, LifeCircleConfig, SitesConfig, SiteSubtype
from urbanunits.covering import Cover, max_cover, set_cover
from urbanunits.crs import require_projected
from urbanunits.errors import DataError
from urbanunits.lifecircle import mandatory
from urbanunits.network import Router, Snap, WalkNetwork, community_access, snap_to_edges

if TYPE_CHECKING:
    import networkx as nx
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CANDIDATE_COLUMNS",
    "Cover",
    "Reach",
    "SitesResult",
    "combine_candidates",
    "e2sfca",
    "max_cover",
    "osm_candidates",
    "reach_matrix",
    "set_cover",
    "suggest_sites",
]

logger = logging.getLogger(__name__)

#: Columns of a candidate-site frame (plus point geometry).
CANDIDATE_COLUMNS = ["candidate_id", "source", "kind", "name", "floor_area_m2", "site_area_m2",
                     "floors", "ownership", "osm_id"]

#: Age-group head-count columns read from the communities, by demand group.
AGE_COLUMNS = {"age_0_3": "pop_0_3", "age_3_6": "pop_3_6", "age_60_plus": "pop_60_plus"}


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------


def _candidate_frame(df: pd.DataFrame, geometry: Any, crs: Any) -> gpd.GeoDataFrame:
    cols = {c: (df[c].to_numpy() if c in df.columns else np.full(len(df), None, dtype=object))
            for c in CANDIDATE_COLUMNS}
    for c in ("floor_area_m2", "site_area_m2", "floors"):
        cols[c] = pd.to_numeric(pd.Series(cols[c]), errors="coerce").to_numpy(dtype=float)
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(geometry, crs=crs).to_numpy(), crs=crs)


def osm_candidates(sites: gpd.GeoDataFrame, *, kinds: list[str] | tuple[str, ...],
                   land_far: float) -> gpd.GeoDataFrame:
    """Candidate sites from the OSM layer ``sites`` (see :mod:`urbanunits.sources.osm`).

    Parameters
    ----------
    sites
        Polygons in a metric CRS with ``osm_id``, ``kind`` (``vacant``, ``public``,
        ``parking``), ``name``, ``is_building`` and ``levels``.
    kinds
        Kinds to keep.
    land_far
        Floor area offered per m² of land that holds no building (vacant land, car parks).

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`CANDIDATE_COLUMNS` with ``source = "osm"`` and representative points; a
        building offers footprint × levels, land its area × ``land_far``.
    """
    if sites is None or sites.empty:
        return _candidate_frame(pd.DataFrame(), [], getattr(sites, "crs", None))
    require_projected(sites, "osm_candidates")
    s = sites[sites["kind"].isin(list(kinds))]
    area = s.geometry.area.to_numpy()
    building = s["is_building"].fillna(False).to_numpy(dtype=bool)
    levels = pd.to_numeric(s["levels"], errors="coerce").to_numpy(dtype=float)
    floors = np.where(building, levels, np.nan)
    floor_area = np.where(building, area * np.nan_to_num(levels, nan=1.0), area * land_far)
    df = pd.DataFrame({"source": "osm", "kind": s["kind"].to_numpy(),
                       "name": s["name"].to_numpy(), "floor_area_m2": floor_area,
                       "site_area_m2": area, "floors": floors, "ownership": None,
                       "osm_id": s["osm_id"].to_numpy()})
    return _candidate_frame(df, s.geometry.representative_point().to_numpy(), sites.crs)


def combine_candidates(*frames: gpd.GeoDataFrame | None, crs: Any,
                       osm_polygons: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Concatenate candidate frames and number them ``S1``, ``S2`` … in order.

    Parameters
    ----------
    *frames
        Candidate frames (:data:`CANDIDATE_COLUMNS`, points), the most trusted first.
    crs
        The metric CRS of the result.
    osm_polygons
        The OSM ``sites`` polygons: an OSM candidate whose polygon holds a candidate of an
        earlier frame (the register's record of the same building) is left out.

    Returns
    -------
    geopandas.GeoDataFrame
        All candidates with a unique ``candidate_id``.
    """
    parts = [f.to_crs(crs) for f in frames if f is not None and len(f)]
    if not parts:
        return _candidate_frame(pd.DataFrame(), [], crs)
    out = pd.concat(parts, ignore_index=True)
    if osm_polygons is not None and len(osm_polygons) and (out["source"] != "osm").any():
        pts = out[out["source"] != "osm"]
        hit = gpd.sjoin(osm_polygons[["osm_id", osm_polygons.geometry.name]].to_crs(crs),
                        gpd.GeoDataFrame(geometry=pts.geometry, crs=crs), predicate="intersects")
        twin = (out["source"] == "osm") & out["osm_id"].isin(hit["osm_id"])
        if twin.any():
            logger.info("%d OSM candidate(s) hold a register site and were left out",
                        int(twin.sum()))
            out = out[~twin]
    out = out.reset_index(drop=True)
    out["candidate_id"] = [f"S{i + 1}" for i in range(len(out))]
    return gpd.GeoDataFrame(out, geometry="geometry", crs=crs)


# --------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """Walking distances from points to communities, only the pairs within a limit.

    Attributes
    ----------
    point, community
        Positions of the pairs (0 … n-1 of the inputs).
    dist_m
        Distance of each pair (metres), at most the limit.
    snap
        How the points were snapped (``snap.ok`` false: off the network, in no pair).
    n_points, n_communities
        Sizes of the inputs.
    seconds
        Timings: ``snap`` (snapping and router), ``search`` (bounded searches and minima).
    """

    point: NDArray[np.intp]
    community: NDArray[np.intp]
    dist_m: NDArray[np.float64]
    snap: Snap
    n_points: int
    n_communities: int
    seconds: dict[str, float] = field(default_factory=dict)

    def within(self, limit_m: float, points: NDArray[np.bool_] | None = None
               ) -> sp.csr_array:
        """Boolean community × point matrix of the pairs within ``limit_m`` (and ``points``)."""
        keep = self.dist_m <= limit_m
        if points is not None:
            keep &= points[self.point]
        return sp.csr_array((np.ones(int(keep.sum()), dtype=bool),
                             (self.community[keep], self.point[keep])),
                            shape=(self.n_communities, self.n_points))


def reach_matrix(net: WalkNetwork, communities: ArrayLike, points: ArrayLike, *,
                 limit_m: float, lc: LifeCircleConfig, max_cells: float = 2e7) -> Reach:
    """Walking distances from each point to each community, cut at ``limit_m``.

    Snapping, community entries and islands are exactly those of the life-circle stage (its
    ``max_snap_m``, ``entry_buffer_m`` and ``min_component_nodes``). One bounded Dijkstra search
    runs from each point; searches run in chunks of at most ``max_cells`` distances in memory.

    Parameters
    ----------
    net
        The walk network.
    communities
        Community geometries in the network's CRS.
    points
        Point geometries (candidate sites or facilities) in the network's CRS.
    limit_m
        Longest distance of interest (m).
    lc
        The ``lifecircle`` config section.
    max_cells
        Memory bound of one chunk (distances held at once).

    Returns
    -------
    Reach
        The pairs within ``limit_m``.
    """
    t0 = time.perf_counter()
    g_comm = np.asarray(communities, dtype=object)
    g_pts = np.asarray(points, dtype=object)
    n, m = len(g_comm), len(g_pts)
    access = community_access(net, g_comm, entry_buffer_m=lc.entry_buffer_m,
                              max_snap_m=lc.max_snap_m, min_component_nodes=lc.min_component_nodes)
    snap = snap_to_edges(net, g_pts, max_snap_m=lc.max_snap_m,
                         min_component_nodes=lc.min_component_nodes)
    # Points first, then the communities' snap points: the router the life-circle stage builds.
    router = Router(net, Snap.concat(snap, access.snap))
    q = router.point_node[:m]
    entries = access.entries(router.point_node[m:])
    order = np.argsort(entries.owner, kind="stable")
    owner, node, offset = entries.owner[order], entries.node[order], entries.offset_m[order]
    t1 = time.perf_counter()
    ok = np.flatnonzero(q >= 0)
    pt_parts: list[NDArray[np.intp]] = []
    cm_parts: list[NDArray[np.intp]] = []
    d_parts: list[NDArray[np.float64]] = []
    if len(owner) and len(ok):
        px, py = router.node_xy()
        # A walk of d metres stays within d metres of its start (edges are at least as long
        # as the straight line), so the searches from a tile of points need only the nodes
        # within limit_m of the tile; the slack covers lengths a little below the projected
        # geometry (map-projection scale, rounding).
        reach_m = 1.02 * limit_m + 50.0
        tile = max(limit_m, 500.0)
        key = (np.floor(px[q[ok]] / tile).astype(np.int64) * 1_000_003
               + np.floor(py[q[ok]] / tile).astype(np.int64))
        order_t = np.argsort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key[order_t])) + 1
        for group in np.split(ok[order_t], cuts):
            gx, gy = px[q[group]], py[q[group]]
            inside = ((px >= gx.min() - reach_m) & (px <= gx.max() + reach_m)
                      & (py >= gy.min() - reach_m) & (py <= gy.max() + reach_m))
            local = np.full(router.n_total, -1, dtype=np.intp)
            idx = np.flatnonzero(inside)
            local[idx] = np.arange(len(idx))
            rows = sp.csr_array(router.csr[idx]).tocoo()
            keep = local[rows.col] >= 0
            sub = sp.csr_array((rows.data[keep], (rows.row[keep], local[rows.col[keep]])),
                               shape=(len(idx), len(idx)))
            ent = local[node] >= 0
            e_loc, e_off, e_own = local[node[ent]], offset[ent], owner[ent]
            if len(e_loc) == 0:
                continue
            e_starts = np.flatnonzero(np.r_[True, e_own[1:] != e_own[:-1]])
            chunk = max(1, int(max_cells // max(len(idx), 1)))
            for lo in range(0, len(group), chunk):
                part = group[lo:lo + chunk]
                D = np.asarray(dijkstra(sub, directed=True, indices=local[q[part]],
                                        limit=limit_m), dtype=np.float64).reshape(len(part), -1)
                best = np.minimum.reduceat(D[:, e_loc] + e_off, e_starts, axis=1)
                r, c = np.nonzero(best <= limit_m)
                pt_parts.append(part[r])
                cm_parts.append(e_own[e_starts][c])
                d_parts.append(best[r, c])
    t2 = time.perf_counter()

    def cat(parts: list[Any], dtype: Any) -> Any:
        return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)

    return Reach(cat(pt_parts, np.intp), cat(cm_parts, np.intp), cat(d_parts, np.float64),
                 snap, m, n, {"snap": t1 - t0, "search": t2 - t1})


# --------------------------------------------------------------------------------------------
# Supply and demand
# --------------------------------------------------------------------------------------------


def e2sfca(facility: ArrayLike, community: ArrayLike, dist_m: ArrayLike, supply: ArrayLike,
           demand: ArrayLike, *, catchment_m: float, weights: list[float] | tuple[float, ...]
           ) -> NDArray[np.float64]:
    """Enhanced two-step floating catchment area index (Luo & Qi 2009).

    Step 1: each facility's ratio Rⱼ = Sⱼ / Σᵢ W(dᵢⱼ) Dᵢ over communities within the catchment.
    Step 2: each community's index Aᵢ = Σⱼ W(dᵢⱼ) Rⱼ over facilities within it. The catchment
    is cut into ``len(weights)`` equal bands; W is the weight of the band holding d (d equal to
    a band's outer edge is in that band). One weight gives the plain 2SFCA.

    Parameters
    ----------
    facility, community, dist_m
        The facility–community pairs (positions) and their walking distance (m).
    supply
        Capacity of each facility (places).
    demand
        Persons in need per community.
    catchment_m
        Catchment radius (m); pairs beyond it are ignored.
    weights
        Band weights, inner band first.

    Returns
    -------
    numpy.ndarray
        Places per person for each community (0 with no facility in reach).
    """
    f = np.asarray(facility, dtype=np.intp)
    c = np.asarray(community, dtype=np.intp)
    d = np.asarray(dist_m, dtype=np.float64)
    S = np.asarray(supply, dtype=np.float64)
    D = np.nan_to_num(np.asarray(demand, dtype=np.float64)).clip(min=0.0)
    keep = d <= catchment_m
    f, c, d = f[keep], c[keep], d[keep]
    w_arr = np.asarray(weights, dtype=np.float64)
    band = np.clip(np.ceil(d / catchment_m * len(w_arr)).astype(np.intp) - 1, 0, len(w_arr) - 1)
    W = w_arr[band]
    den = np.bincount(f, weights=W * D[c], minlength=len(S))
    R = np.divide(S, den, out=np.zeros(len(S)), where=den > 0)
    return np.bincount(c, weights=W * R[f], minlength=len(D)).astype(np.float64)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


@dataclass
class SitesResult:
    """Everything the sites stage produces.

    Attributes
    ----------
    suggestions
        Layer ``site_suggestions``: one row per suggested site × subtype × method (``mclp``,
        ``lscp``) with the candidate's attributes, ``rank``, ``new_communities``,
        ``new_residents`` and ``community_ids`` (newly covered by this site, in rank order).
    accessibility
        Layer ``accessibility``: one row per community with, per subtype that has a capacity,
        ``<cat>_<subtype>_demand``, ``_access`` (places per person) and ``_shortfall_places``.
    candidates
        Layer ``site_candidates``: every candidate with ``on_network``.
    newly_covered
        Per ``(category, subtype)``: community ids the MCLP sites newly cover.
    summary
        One row per subtype studied: communities missing it, coverable, candidates offered and
        dropped, what the MCLP and LSCP sets cover, solver status.
    notes
        Report lines.
    seconds
        Timings: ``snap``, ``distances``, ``solve`` (of which ``mclp`` and ``lscp``),
        ``e2sfca``, ``total``.
    """

    suggestions: gpd.GeoDataFrame
    accessibility: gpd.GeoDataFrame
    candidates: gpd.GeoDataFrame
    newly_covered: dict[tuple[str, str], list[Any]]
    summary: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def layers(self) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
        """Output layers by GeoPackage layer name."""
        return {"site_suggestions": self.suggestions, "accessibility": self.accessibility,
                "site_candidates": self.candidates}

    def summary_lines(self) -> list[str]:
        """Per subtype: the gap, the sites and what they cover."""
        lines = list(self.notes)
        for r in self.summary.itertuples(index=False):
            head = (f"{r.category}/{r.subtype}: {r.n_missing} communities "
                    f"({r.residents_missing:,.0f} residents) beyond {r.distance_m:g} m; "
                    f"{r.n_candidates} candidate sites")
            if r.n_too_small:
                head += f" ({r.n_too_small} smaller than {r.min_floor_area_m2:g} m² left out)"
            lines.append(head)
            lines.append(f"  MCLP p={r.max_sites}: {r.mclp_sites} site(s) newly cover "
                         f"{r.mclp_communities} communities, {r.mclp_residents:,.0f} residents"
                         + ("" if r.mclp_optimal else " (time limit: best found)"))
            lines.append(f"  LSCP: {r.lscp_sites} site(s) cover all {r.n_coverable} "
                         f"communities a candidate can reach; {r.n_missing - r.n_coverable} "
                         "beyond every candidate"
                         + ("" if r.lscp_optimal else " (time limit: best found)"))
        return lines


def _sites_cfg(cfg: Config | tuple[LifeCircleConfig, SitesConfig]
               ) -> tuple[LifeCircleConfig, SitesConfig]:
    if isinstance(cfg, Config):
        return cfg.lifecircle, cfg.sites
    return cfg


def _subtype_cfg(sc: SitesConfig, key: str) -> SiteSubtype:
    return sc.subtypes.get(key, SiteSubtype())


def _demand(comm: pd.DataFrame, sub: SiteSubtype, sc: SitesConfig) -> NDArray[np.float64]:
    pop = pd.to_numeric(comm["population"], errors="coerce").fillna(0.0).clip(lower=0.0)
    if sub.demand_group == "all":
        return pop.to_numpy(dtype=float)
    share = {"age_0_3": sc.share_age_0_3, "age_3_6": sc.share_age_3_6,
             "age_60_plus": sc.share_age_60_plus}[sub.demand_group]
    est = pop * share
    col = AGE_COLUMNS[sub.demand_group]
    if col in comm.columns:
        est = pd.to_numeric(comm[col], errors="coerce").fillna(est)
    return est.clip(lower=0.0).to_numpy(dtype=float)


_SUGGESTION_COLUMNS = ["category", "subtype", "method", "rank", "candidate_id", "source", "kind",
                       "name", "floor_area_m2", "ownership", "new_communities", "new_residents",
                       "community_ids"]


def suggest_sites(graph: nx.MultiDiGraph | WalkNetwork, lifecircle: gpd.GeoDataFrame,
                  facilities: gpd.GeoDataFrame, candidates: gpd.GeoDataFrame,
                  cfg: Config | tuple[LifeCircleConfig, SitesConfig]) -> SitesResult:
    """Suggest sites for missing facilities and measure supply against demand.

    Parameters
    ----------
    graph
        Projected osmnx walk graph, or a :class:`~urbanunits.network.WalkNetwork`.
    lifecircle
        The life-circle stage's ``lifecircle`` layer (``community_id``, ``population``,
        ``<cat>_<subtype>_ok``, geometry), computed with the same ``lifecircle`` config.
        ``pop_0_3``, ``pop_3_6``, ``pop_60_plus`` (persons) are used when present.
    facilities
        The life-circle stage's ``facilities`` layer (points, ``category``, ``subtype``);
        a numeric ``capacity`` column wins over the configured places per facility.
    candidates
        Candidate sites (:data:`CANDIDATE_COLUMNS`, points) in the same metric CRS.
    cfg
        The whole config, or its ``(lifecircle, sites)`` sections.

    Returns
    -------
    SitesResult
        Layers, per-subtype summary and report lines. Inputs are not modified.
    """
    t0 = time.perf_counter()
    lc, sc = _sites_cfg(cfg)
    net = graph if isinstance(graph, WalkNetwork) else WalkNetwork.from_graph(graph)
    for frame in (lifecircle, candidates):
        if len(frame):
            require_projected(frame, "suggest_sites")
    need = [c for c in ("community_id", "population") if c not in lifecircle.columns]
    if need:
        raise DataError(f"lifecircle layer: column(s) {need}", "missing",
                        "pass the life-circle stage's `lifecircle` layer")
    cand = candidates.reset_index(drop=True)
    if len(cand) and not cand.geometry.geom_type.eq("Point").all():
        cand = cand.set_geometry(cand.geometry.representative_point())
    fac = facilities.reset_index(drop=True)
    if len(fac) and not fac.geometry.geom_type.eq("Point").all():
        fac = fac.set_geometry(fac.geometry.representative_point())
    comm = lifecircle.reset_index(drop=True)
    n, m = len(comm), len(cand)
    pop = pd.to_numeric(comm["population"], errors="coerce").fillna(0.0).clip(lower=0.0)
    pop_arr = pop.to_numpy(dtype=float)
    seconds: dict[str, float] = {}
    notes: list[str] = []

    # What is studied: mandatory subtypes someone misses (MCLP/LSCP), subtypes with a capacity
    # (E2SFCA).
    gaps: list[tuple[str, str, float]] = []
    fca: list[tuple[str, str, float]] = []
    for key, cat in lc.categories.items():
        for s, st in cat.subtypes.items():
            col = f"{key}_{s}_ok"
            if col not in comm.columns:
                raise DataError(f"lifecircle layer: column {col!r}", "missing",
                                "run the life-circle stage with the same config first")
            if s in mandatory(cat) and not comm[col].astype(bool).all():
                gaps.append((key, s, st.distance_m))
            in_sub = (fac["category"] == key) & (fac["subtype"] == s) if len(fac) else None
            has_cap = _subtype_cfg(sc, s).places_per_facility > 0 or (
                in_sub is not None and "capacity" in fac.columns
                and pd.to_numeric(fac.loc[in_sub, "capacity"], errors="coerce").notna().any())
            if has_cap:
                fca.append((key, s, st.distance_m))
    limit = max([d for *_, d in gaps + fca], default=0.0)

    # One bounded search per candidate and per facility of a studied subtype.
    fac_keys = {(k, s) for k, s, _ in fca}
    fac_use = (np.array([(k, s) in fac_keys for k, s in zip(fac["category"], fac["subtype"],
                                                              strict=True)], dtype=bool)
               if len(fac) else np.zeros(0, dtype=bool))
    fac_pos = np.flatnonzero(fac_use)
    points = np.concatenate([cand.geometry.to_numpy() if gaps else np.empty(0, dtype=object),
                             fac.geometry.to_numpy()[fac_pos]])
    m_c = m if gaps else 0
    reach = reach_matrix(net, comm.geometry.to_numpy(), points, limit_m=limit, lc=lc)
    seconds["snap"] = reach.seconds["snap"]
    seconds["distances"] = reach.seconds["search"]

    # Covering models per gap subtype.
    t = time.perf_counter()
    rows: list[dict[str, Any]] = []
    summ: list[dict[str, Any]] = []
    newly: dict[tuple[str, str], list[Any]] = {}
    cand_area = cand["floor_area_m2"].to_numpy(dtype=float) if m else np.empty(0)
    ids = comm["community_id"].to_numpy()
    is_cand = np.zeros(len(points), dtype=bool)
    is_cand[:m_c] = True
    for key, s, dist in gaps:
        sub = _subtype_cfg(sc, s)
        big = np.zeros(len(points), dtype=bool)
        big[:m_c] = np.nan_to_num(cand_area, nan=-1.0) >= sub.min_floor_area_m2
        n_small = int(m_c - big[:m_c].sum())
        A = reach.within(dist, big)[:, :m_c] if m_c else sp.csr_array((n, 0), dtype=bool)
        missing = ~comm[f"{key}_{s}_ok"].astype(bool).to_numpy()
        A = sp.csr_array(A.multiply(missing[:, None]))
        A.eliminate_zeros()
        coverable = np.diff(A.indptr) > 0
        t_m = time.perf_counter()
        mc = max_cover(A, pop_arr * missing, p=sc.max_sites, time_limit_s=sc.time_limit_s)
        t_l = time.perf_counter()
        ls = set_cover(A, pop_arr * missing, time_limit_s=sc.time_limit_s)
        seconds["mclp"] = seconds.get("mclp", 0.0) + t_l - t_m
        seconds["lscp"] = seconds.get("lscp", 0.0) + time.perf_counter() - t_l
        newly[key, s] = [ids[i] for part in mc.covered for i in part]
        for method, res in (("mclp", mc), ("lscp", ls)):
            for rank, (j, g, cov) in enumerate(zip(res.sites, res.gain, res.covered,
                                                   strict=True), start=1):
                rows.append({"category": key, "subtype": s, "method": method, "rank": rank,
                             **{c: cand.at[int(j), c] for c in
                                ("candidate_id", "source", "kind", "name", "floor_area_m2",
                                 "ownership")},
                             "new_communities": len(cov), "new_residents": g,
                             "community_ids": ", ".join(str(ids[i]) for i in cov),
                             "geometry": cand.geometry.iloc[int(j)]})
        summ.append({"category": key, "subtype": s, "distance_m": dist,
                     "min_floor_area_m2": sub.min_floor_area_m2, "max_sites": sc.max_sites,
                     "n_missing": int(missing.sum()),
                     "residents_missing": float(pop_arr[missing].sum()),
                     "n_candidates": int(big.sum()), "n_too_small": n_small,
                     "n_coverable": int(coverable.sum()),
                     "residents_coverable": float(pop_arr[coverable].sum()),
                     "mclp_sites": len(mc.sites),
                     "mclp_communities": int(sum(len(c) for c in mc.covered)),
                     "mclp_residents": mc.objective, "mclp_optimal": mc.optimal,
                     "lscp_sites": len(ls.sites), "lscp_optimal": ls.optimal})
    seconds["solve"] = time.perf_counter() - t

    # Supply and demand.
    t = time.perf_counter()
    acc: dict[str, Any] = {"community_id": ids,
                           "name": comm["name"].to_numpy() if "name" in comm else None,
                           "population": pop_arr}
    fac_point = reach.point - m_c
    on = fac_point >= 0
    for key, s, dist in fca:
        sub = _subtype_cfg(sc, s)
        in_sub = ((fac["category"] == key) & (fac["subtype"] == s)).to_numpy()[fac_pos]
        cap = np.full(len(fac_pos), sub.places_per_facility)
        if "capacity" in fac.columns:
            given = pd.to_numeric(fac["capacity"], errors="coerce").to_numpy(dtype=float)[fac_pos]
            cap = np.where(np.isfinite(given), given, cap)
        sel = on.copy()
        sel[on] = in_sub[fac_point[on]]
        demand = _demand(comm, sub, sc)
        a = e2sfca(fac_point[sel], reach.community[sel], reach.dist_m[sel],
                   np.where(in_sub, cap, 0.0), demand, catchment_m=dist, weights=sc.fca_weights)
        acc[f"{key}_{s}_demand"] = demand
        acc[f"{key}_{s}_access"] = a
        acc[f"{key}_{s}_shortfall_places"] = np.maximum(
            0.0, demand * (sub.places_per_1000 / 1000.0 - a))
    seconds["e2sfca"] = time.perf_counter() - t

    crs = comm.crs
    suggestions = (gpd.GeoDataFrame(rows, geometry="geometry", crs=crs) if rows else
                   gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in _SUGGESTION_COLUMNS},
                                    geometry=gpd.GeoSeries([], crs=crs), crs=crs))
    accessibility = gpd.GeoDataFrame(acc, geometry=comm.geometry.to_numpy(), crs=crs)
    cand_out = cand.copy()
    cand_out["on_network"] = reach.snap.ok[:m] if m_c else snap_to_edges(
        net, cand.geometry.to_numpy(), max_snap_m=lc.max_snap_m,
        min_component_nodes=lc.min_component_nodes).ok
    n_off = int((~cand_out["on_network"]).sum())
    if n_off:
        notes.append(f"{n_off} of {m} candidate sites are farther than {lc.max_snap_m:g} m "
                     "from the walk network and were not used")
    if not gaps:
        notes.append("every community has every mandatory subtype within reach: no sites needed")
    seconds["total"] = time.perf_counter() - t0
    logger.info("sites: %d communities, %d candidates, %d subtypes with gaps; distances %.2f s, "
                "solve %.2f s", n, m, len(gaps), seconds["distances"], seconds["solve"])
    return SitesResult(suggestions=suggestions, accessibility=accessibility,
                       candidates=cand_out, newly_covered=newly,
                       summary=pd.DataFrame(summ), notes=notes, seconds=seconds)
