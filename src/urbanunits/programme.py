"""Rolling project library (项目库): which renewal packages go in which year, and why.

A bureau keeps a rolling three-year library of old-community projects under the rule
谋划一批、生成一批、实施一批、储备一批 (plan, generate, implement, reserve), allocates funds
competitively and adjusts the list every year. This stage gives that list a method:

1. **Score** (:func:`score_table`). Each criterion of ``[programme]`` (age, floor area,
   households, life-circle gaps weighted by residents, lift need, no property management,
   consent, co-location) has a raw value, a normalised value — the value ÷ the largest value in
   the set, so 0–1 and 1 for the leader — and a contribution, ``100 × weight × normalised ÷
   Σ weights``. The score is the sum of the contributions (0–100), so every rank can be
   explained column by column.
2. **Phasing** (:func:`phase`). Whole packages (never split) go to the years ``start_year`` …
   ``start_year + N − 1`` or to reserve, maximising Σ score × (1 − ``year_discount``)^k over the
   years k they are given, under per-year caps on floor area, households and budget. Fixed years
   from the inventory (计划年度) are honoured; a package whose consent is below
   ``min_consent_share`` is never scheduled. The problem is a multiple-knapsack integer
   programme solved exactly with HiGHS (:func:`scipy.optimize.milp`); a greedy pass (by score,
   earliest year that fits) is used only when the solver is unavailable or asked for.
3. **Statuses**: the first year's packages are 实施, the second's 生成, later years' 谋划, the
   rest 储备, each with the reason it sits there.

:func:`programme` runs all three on the packages stage's layers.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from urbanunits._criteria import CRITERIA
from urbanunits.config import RENOVATION_TYPES, ProgrammeConfig
from urbanunits.crs import require_projected
from urbanunits.elevators import community_buildings, elevator_candidates
from urbanunits.phasing import Phasing, ProgrammeInfeasibleError, phase

__all__ = ["CRITERIA", "STATUS", "Phasing", "ProgrammeInfeasibleError", "ProgrammeResult",
           "phase", "programme", "project_list", "score_table"]

logger = logging.getLogger(__name__)

#: Status of programme year k (0-based); later years are 谋划 too; unscheduled is 储备.
STATUS = ("实施", "生成", "谋划")
RESERVE = "储备"
STATUS_EN = {"实施": "implement", "生成": "generate", "谋划": "plan", "储备": "reserve"}
RESOURCES = (("floor_area_m2", "floor_area_cap_m2", "m²"), ("households", "households_cap", "户"),
             ("cost_yuan", "budget_cap_yuan", "yuan"))


def _status(k: int) -> str:
    return RESERVE if k < 0 else STATUS[min(k, len(STATUS) - 1)]


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def score_table(values: pd.DataFrame, cfg: ProgrammeConfig) -> pd.DataFrame:
    """Normalised values, contributions and the score for each row.

    Parameters
    ----------
    values
        One row per community or package with the value columns of :data:`CRITERIA` (missing
        columns and NaN count as 0).
    cfg
        ``[programme]`` settings (the weights).

    Returns
    -------
    pandas.DataFrame
        Same index: ``<key>_norm`` (value ÷ the largest value, 0 when the largest is ≤ 0),
        ``<key>_points`` (100 × weight × norm ÷ Σ weights) for each criterion, ``score`` (their
        sum, 0–100), ``rank`` (1 = best; ties share the rank) and ``top_criteria`` (the three
        largest contributions as text).
    """
    total_w = sum(getattr(cfg, w) for _, w, _ in CRITERIA.values())
    out = pd.DataFrame(index=values.index)
    pts = []
    for key, (col, wkey, _label) in CRITERIA.items():
        v = (pd.to_numeric(values[col], errors="coerce") if col in values.columns
             else pd.Series(0.0, index=values.index)).fillna(0.0).clip(lower=0.0)
        top = float(v.max()) if len(v) else 0.0
        norm = v / top if top > 0 else v * 0.0
        out[f"{key}_norm"] = norm.round(4)
        out[f"{key}_points"] = (100.0 * getattr(cfg, wkey) * norm / total_w).round(3)
        pts.append(f"{key}_points")
    out["score"] = out[pts].sum(axis=1).round(3)
    out["rank"] = out["score"].rank(ascending=False, method="min").astype(int)
    out["top_criteria"] = _top_criteria(out, list(CRITERIA))
    return out


def _top_criteria(scores: pd.DataFrame, names: list[str]) -> list[str]:
    """The three largest ``<criterion>_points`` of each row, named by ``names`` (in
    :data:`CRITERIA` order): ``"age 13.3, floor_area 12.0"``."""
    arr = scores[[f"{key}_points" for key in CRITERIA]].to_numpy()
    order = np.argsort(-arr, axis=1, kind="stable")[:, :3]
    return [", ".join(f"{names[j]} {arr[i, j]:.1f}" for j in order[i] if arr[i, j] > 0)
            for i in range(len(arr))]


# --------------------------------------------------------------------------------------------
# Community and package values
# --------------------------------------------------------------------------------------------

#: Inventory fields the stage reads (absent ones are estimated or assumed and flagged).
FIELDS = ("district", "street", "neighbourhood", "n_buildings", "levels", "has_elevator",
          "n_elevators", "property_managed", "consent_share", "plan_year", "renovation_type")


def _unit_cost(cfg: ProgrammeConfig) -> dict[str, float]:
    return {"basic": cfg.cost_basic_yuan_m2, "improvement": cfg.cost_improvement_yuan_m2,
            "enhancement": cfg.cost_enhancement_yuan_m2}


def _osm_building_stats(comm: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame | None,
                        owner: pd.Series) -> pd.DataFrame:
    """Per community: OSM building count, median tagged storeys, and any lift tag.

    The buildings are those :func:`~urbanunits.elevators.community_buildings` gives each
    community (``owner``; an inventory point's are those of the residential area it stands
    in), the same the lift candidates are drawn from.
    """
    out = pd.DataFrame({"osm_n_buildings": np.nan, "osm_levels": np.nan,
                        "osm_levels_tagged": False,
                        "osm_elevator": pd.Series(pd.NA, index=comm.index, dtype="boolean")},
                       index=comm.index)
    if not len(owner):
        return out
    assert buildings is not None  # community_buildings found some
    b = buildings.loc[owner.index]
    grp_all = pd.DataFrame({"ci": owner.to_numpy(),
                            "levels": b["levels"].to_numpy(dtype=float),
                            "tagged": b["levels_tagged"].astype(bool).to_numpy(),
                            "elevator": (b["elevator"].astype(object).to_numpy()
                                         if "elevator" in b.columns else None)})
    for ci, grp in grp_all.groupby("ci"):
        ci = comm.index[int(ci)]
        out.at[ci, "osm_n_buildings"] = float(len(grp))
        tagged = grp.loc[grp["tagged"], "levels"]
        out.at[ci, "osm_levels"] = float(tagged.median() if len(tagged)
                                         else grp["levels"].median())
        out.at[ci, "osm_levels_tagged"] = bool(len(tagged))
        tags = grp["elevator"].dropna().astype(str).str.lower()
        if tags.isin(["yes", "true"]).any():
            out.at[ci, "osm_elevator"] = True
        elif tags.isin(["no", "false"]).any():
            out.at[ci, "osm_elevator"] = False
    return out


def _gap_items(comm: pd.DataFrame, lifecircle: pd.DataFrame | None) -> tuple[pd.Series, str]:
    """Mandatory life-circle items each community misses, and where the count comes from."""
    zero = pd.Series(0.0, index=comm.index)
    if lifecircle is None or "community_id" not in lifecircle.columns:
        return zero, "none"
    if "subtype" in lifecircle.columns:  # service_gaps: one row per community × item missed
        counts = lifecircle.groupby(lifecircle["community_id"].astype(str)).size()
        return (comm["community_id"].astype(str).map(counts).fillna(0.0).astype(float),
                "service_gaps")
    if "n_missing" in lifecircle.columns:  # lifecircle layer: categories not met
        n = pd.to_numeric(lifecircle["n_missing"], errors="coerce").to_numpy()
        by_id = pd.Series(n, index=lifecircle["community_id"].astype(str).to_numpy())
        by_id = by_id[~by_id.index.duplicated()]
        return (comm["community_id"].astype(str).map(by_id).fillna(0.0).astype(float),
                "lifecircle n_missing")
    return zero, "none"


def community_values(communities: gpd.GeoDataFrame, *, cfg: ProgrammeConfig,
                     lifecircle: pd.DataFrame | None = None,
                     buildings: gpd.GeoDataFrame | None = None,
                     areas: gpd.GeoDataFrame | None = None
                     ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The criterion values of each old community, with the source of every estimated field.

    Parameters
    ----------
    communities
        ``communities`` (metric CRS): ``community_id``, ``is_old``, ``floor_area_m2``,
        ``households`` and optionally ``name``, ``population``, ``built_year``,
        ``package_id`` and the inventory fields of :data:`FIELDS`.
    cfg
        ``[programme]`` settings.
    lifecircle
        ``service_gaps`` (preferred: mandatory items missed) or the ``lifecircle`` layer
        (``n_missing`` categories); None gives every community 0 gaps.
    buildings
        OSM buildings (``levels``, ``levels_tagged``, ``building``, ``elevator``) to estimate
        storeys, building counts and lifts where the inventory is silent.
    areas
        OSM residential areas: an inventory point's buildings are those of the area it stands
        in (:func:`urbanunits.communities.matched_areas`); None leaves points without.

    Returns
    -------
    geopandas.GeoDataFrame
        The old communities with the value columns of :data:`CRITERIA` (``age_years``,
        ``gap_items``, ``gap_residents``, ``elevator_households``, ``unmanaged_share``…), the
        fields of :data:`FIELDS` filled where possible, ``*_source`` flags (``inventory``,
        ``osm``, ``assumed``, ``default``, ``unknown``), ``works_cost_yuan``,
        ``elevator_buildings``, ``n_lifts`` (both NaN where lifts are needed but the
        building count is unknown), ``elevator_cost_yuan`` (of the lifts counted) and
        ``cost_yuan``.
    geopandas.GeoDataFrame
        Lift retrofit candidates (:func:`urbanunits.elevators.elevator_candidates`).
    """
    require_projected(communities, "programme")
    is_old = (communities["is_old"].astype(bool) if "is_old" in communities.columns
              else pd.Series(True, index=communities.index))
    comm = communities[is_old.to_numpy()].copy().reset_index(drop=True)
    for f in FIELDS:
        if f not in comm.columns:
            comm[f] = pd.NA
    for f in ("floor_area_m2", "households", "population", "built_year"):
        comm[f] = (pd.to_numeric(comm[f], errors="coerce") if f in comm.columns
                   else np.nan)
    if "package_id" not in comm.columns:
        comm["package_id"] = None
    if "name" not in comm.columns:
        comm["name"] = comm["community_id"].astype(str)

    # Age: a missing year is the median of the others (they are all old by the same rule).
    year = comm["built_year"]
    known = year.notna()
    fill = float(year[known].median()) if known.any() else float(cfg.start_year - 30)
    comm["built_year_source"] = np.where(known, "listed", "assumed")
    comm["age_years"] = (cfg.start_year - year.fillna(fill)).clip(lower=0.0)

    # which community each building belongs to, found once for the counts and the candidates
    owner = community_buildings(comm, buildings, areas=areas)
    osm = _osm_building_stats(comm, buildings, owner)
    lv = pd.to_numeric(comm["levels"], errors="coerce")
    osm_src = np.where(osm["osm_levels_tagged"].astype(bool), "osm", "assumed")
    comm["levels_source"] = np.where(lv.notna(), "inventory",
                                     np.where(osm["osm_levels"].notna(), osm_src, "unknown"))
    comm["levels"] = lv.fillna(osm["osm_levels"])
    nb = pd.to_numeric(comm["n_buildings"], errors="coerce")
    comm["n_buildings_source"] = np.where(nb.notna(), "inventory",
                                          np.where(osm["osm_n_buildings"].notna(), "osm",
                                                   "unknown"))
    comm["n_buildings"] = nb.fillna(osm["osm_n_buildings"])
    lift = comm["has_elevator"].astype("boolean")
    comm["elevator_source"] = np.where(lift.notna(), "inventory",
                                       np.where(osm["osm_elevator"].notna(), "osm", "assumed"))
    comm["has_elevator"] = lift.fillna(osm["osm_elevator"])
    managed = comm["property_managed"].astype("boolean")
    comm["property_source"] = np.where(managed.notna(), "inventory", "unknown")
    comm["property_managed"] = managed
    comm["unmanaged_share"] = np.where(managed.isna(), np.nan,
                                       (~managed.fillna(True)).astype(float))
    consent = pd.to_numeric(comm["consent_share"], errors="coerce")
    comm["consent_share"] = consent
    comm["consent_source"] = np.where(consent.notna(), "inventory", "unknown")
    comm["plan_year"] = pd.to_numeric(comm["plan_year"], errors="coerce")
    rtype = comm["renovation_type"].astype(object)
    has_type = rtype.notna() & rtype.isin(RENOVATION_TYPES)
    comm["renovation_type_source"] = np.where(has_type, "inventory", "default")
    comm["renovation_type"] = rtype.where(has_type, cfg.default_renovation_type)
    unit = _unit_cost(cfg)
    comm["works_cost_yuan"] = (comm["floor_area_m2"].fillna(0.0)
                               * comm["renovation_type"].map(unit).astype(float)).round(0)

    items, gaps_from = _gap_items(comm, lifecircle)
    comm["gap_items"] = items
    comm["gap_residents"] = items * comm["population"].fillna(0.0)
    comm.attrs["gaps_from"] = gaps_from

    # The candidates judge each building from its own tags and the inventory's figures only,
    # not from the community-wide OSM estimates above.
    lifts = elevator_candidates(comm.assign(levels=lv, has_elevator=lift), buildings=buildings,
                                owner=owner, min_levels=cfg.elevator_min_levels,
                                max_levels=cfg.elevator_max_levels,
                                households_per_lift=cfg.households_per_lift)
    per = lifts.groupby(lifts["community_id"].astype(str))
    key = comm["community_id"].astype(str)
    # No candidate: 0 buildings and lifts; candidates of unknown building count: both unknown.
    none = ~key.isin(lifts["community_id"].astype(str))
    comm["elevator_buildings"] = key.map(per["n_buildings"].sum(min_count=1)).mask(none, 0.0)
    comm["elevator_households"] = key.map(per["households"].sum()).fillna(0.0).round(0)
    comm["n_lifts"] = key.map(per["n_lifts"].sum(min_count=1)).mask(none, 0.0)
    # Unknown lifts have an unknown cost (blank), and add nothing to the cost the caps and the
    # phasing count, which is then a lower bound (the warning of elevator_candidates says so).
    comm["elevator_cost_yuan"] = comm["n_lifts"] * cfg.elevator_cost_yuan
    comm["cost_yuan"] = comm["works_cost_yuan"] + (
        comm["elevator_cost_yuan"].fillna(0.0) if cfg.elevator_cost_in_budget else 0.0)
    return comm, lifts


def _colocation(geoms: gpd.GeoSeries, packages: gpd.GeoDataFrame, own: pd.Series,
                distance_m: float) -> NDArray[np.float64]:
    """Other packages whose outline lies within ``distance_m`` of each geometry."""
    if packages.empty or geoms.empty:
        return np.zeros(len(geoms))
    import shapely

    tree = shapely.STRtree(np.asarray(packages.geometry.values))
    qi, pi = tree.query(np.asarray(geoms.values), predicate="dwithin", distance=distance_m)
    pids = packages["package_id"].astype(str).to_numpy()
    other = pids[pi] != own.astype(str).to_numpy()[qi]
    return np.bincount(qi[other], minlength=len(geoms)).astype(float)


def _wmean(v: pd.Series, w: pd.Series) -> float:
    ok = v.notna()
    if not ok.any():
        return float("nan")
    ww = w[ok].fillna(0.0)
    return float(np.average(v[ok], weights=ww)) if ww.sum() > 0 else float(v[ok].mean())


def package_values(comm: gpd.GeoDataFrame, packages: gpd.GeoDataFrame, *,
                   cfg: ProgrammeConfig) -> gpd.GeoDataFrame:
    """Criterion values, cost, readiness and fixed year of each package from its members.

    Sums: floor area, households, population (the package's own totals), gap residents, lift
    households and lifts, costs. Means: age weighted by floor area; consent weighted by
    households over the members that have a figure. Share of floor area without property
    management (unknown counts as managed). The fixed year is the earliest member's 计划年度
    (several different years are warned about: a package is never split).
    """
    pk = packages.copy().reset_index(drop=True)
    pk["package_id"] = pk["package_id"].astype(str)
    members = pd.DataFrame(comm[comm["package_id"].notna()].drop(columns=comm.geometry.name))
    members["package_id"] = members["package_id"].astype(str)
    groups = dict(tuple(members.groupby("package_id", sort=False)))
    rows = []
    for pid in pk["package_id"]:
        m = groups.get(pid, members.iloc[:0])
        fa = m["floor_area_m2"].fillna(0.0)
        hh = m["households"].fillna(0.0)
        years = sorted({int(y) for y in m["plan_year"].dropna()})
        if len(years) > 1:
            logger.warning("programme: %s has communities with different 计划年度 (%s); the "
                           "package is begun in the earliest, %d", pid,
                           ", ".join(map(str, years)), years[0])
        managed_known = m["unmanaged_share"].notna()
        types = [t for t in RENOVATION_TYPES if t in set(m["renovation_type"])]
        rows.append({
            "package_id": pid, "n_members": len(m),
            "age_years": _wmean(m["age_years"], fa),
            "gap_residents": float(m["gap_residents"].sum()),
            "gap_items": float(m["gap_items"].sum()),
            "elevator_households": float(m["elevator_households"].sum()),
            # blank when a member's lifts are unknown: a sum without them would read as all
            "elevator_buildings": float(m["elevator_buildings"].sum(skipna=False)),
            "n_lifts": float(m["n_lifts"].sum(skipna=False)),
            "unmanaged_share": (float((fa * m["unmanaged_share"].fillna(0.0)).sum() / fa.sum())
                                if fa.sum() > 0 and managed_known.any() else np.nan),
            "consent_share": _wmean(m["consent_share"], hh),
            "consent_known_share": (float(hh[m["consent_share"].notna()].sum() / hh.sum())
                                    if hh.sum() > 0 else float(m["consent_share"].notna().mean()
                                                               if len(m) else 0.0)),
            "plan_year": float(years[0]) if years else np.nan,
            "renovation_type": types[-1] if types else cfg.default_renovation_type,
            "works_cost_yuan": float(m["works_cost_yuan"].sum()),
            "elevator_cost_yuan": float(m["elevator_cost_yuan"].sum(skipna=False)),
            "cost_yuan": float(m["cost_yuan"].sum()),
            "district": "、".join(dict.fromkeys(m["district"].dropna().astype(str))),
            "street": "、".join(dict.fromkeys(m["street"].dropna().astype(str))),
            "neighbourhood": "、".join(dict.fromkeys(m["neighbourhood"].dropna().astype(str))),
            "built_years": "、".join(str(int(y)) for y in sorted(m["built_year"].dropna())),
        })
    vals = pd.DataFrame(rows, index=pk.index)
    for col in ("floor_area_m2", "households", "population"):
        own = pd.to_numeric(pk[col], errors="coerce") if col in pk.columns else None
        summed = members.groupby("package_id")[col].sum(min_count=1)
        vals[col] = own if own is not None else pk["package_id"].map(summed)
    vals["colocation_packages"] = _colocation(pk.geometry, pk, pk["package_id"],
                                              cfg.colocation_distance_m)
    consent = vals["consent_share"]
    vals["consent_source"] = np.where(vals["consent_known_share"] >= 1.0 - 1e-9, "inventory",
                                      np.where(consent.notna(), "partial", "unknown"))
    vals["ready"] = np.where(consent.notna(), consent >= cfg.min_consent_share - 1e-9,
                             cfg.unknown_consent_ready)
    keep = [c for c in ("n_communities", "member_ids", "member_names", "subdistricts",
                        "unit_ids") if c in pk.columns]
    return gpd.GeoDataFrame(pd.concat([pk[["package_id", *keep]], vals.drop(
        columns="package_id")], axis=1), geometry=pk.geometry, crs=pk.crs)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


@dataclass
class ProgrammeResult:
    """Output of :func:`programme`.

    Attributes
    ----------
    packages
        Layer ``programme``: one row per package with ``year``, ``status`` (实施/生成/谋划/储备),
        ``status_en``, ``reason``, ``score``, ``rank``, ``top_criteria``, each criterion's value,
        ``<key>_norm`` and ``<key>_points``, floor area, households, cost and lift figures.
    communities
        Layer ``programme_communities``: old communities with their own scores (normalised
        among communities), the package's year and status, and the ``*_source`` flags.
    elevators
        Layer ``elevator_candidates`` with the package's ``year`` and ``status``.
    years
        Table ``programme_years``: per year (and reserve) the packages, floor area,
        households, cost and lifts against the caps.
    phasing
        The solver's plan, objective, bound and gap (None when skipped).
    skipped
        Why the stage did nothing (empty when it ran).
    notes
        Report lines on estimates and assumptions.
    """

    packages: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    elevators: gpd.GeoDataFrame
    years: pd.DataFrame
    phasing: Phasing | None = None
    skipped: str = ""
    notes: list[str] = field(default_factory=list)

    def layers(self) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
        """Output layers by GeoPackage layer name (none when skipped)."""
        if self.skipped:
            return {}
        return {"programme": self.packages, "programme_communities": self.communities,
                "elevator_candidates": self.elevators, "programme_years": self.years}

    def summary_lines(self) -> list[str]:
        """Plan per year, solver figures and notes for the terminal."""
        if self.skipped:
            return [f"programme: skipped — {self.skipped}"]
        out = []
        for _, y in self.years.iterrows():
            caps = [f"{y[c]:,.0f}/{y[cap]:,.0f} {u}" for c, cap, u in RESOURCES
                    if pd.notna(y.get(cap))]
            n = int(y["n_packages"])
            out.append(f"{y['label']}: {n} package{'' if n == 1 else 's'}, "
                       f"{y['floor_area_m2']:,.0f} m², {y['households']:,.0f} households, "
                       f"{y['cost_yuan'] / 1e4:,.0f} 万元, "
                       + (f"{int(y['n_lifts'])} lifts" if pd.notna(y["n_lifts"])
                          else "lifts not all known")
                       + (f" (caps used {', '.join(caps)})" if caps else ""))
        ph = self.phasing
        if ph is not None:
            gap = "n/a" if np.isnan(ph.gap) else f"{100 * ph.gap:.3f} %"
            out.append(f"phasing: {ph.solver} ({ph.status}) in {ph.seconds:.2f} s, objective "
                       f"{ph.objective:,.2f}, bound {ph.bound:,.2f}, gap to optimum {gap}")
        return out + self.notes


def _years_table(pk: gpd.GeoDataFrame, cfg: ProgrammeConfig) -> pd.DataFrame:
    rows = []
    for k in [*range(len(cfg.years)), -1]:
        sel = pk[pk["year_index"] == k]
        cap = cfg.years[k] if k >= 0 else None
        rows.append({
            "year": cfg.start_year + k if k >= 0 else pd.NA, "status": _status(k),
            "label": f"{cfg.start_year + k} {_status(k)}" if k >= 0 else RESERVE,
            "n_packages": len(sel),
            "floor_area_m2": float(sel["floor_area_m2"].sum()),
            "floor_area_cap_m2": cap.floor_area_cap_m2 if cap else np.nan,
            "households": float(sel["households"].sum()),
            "households_cap": cap.households_cap if cap else np.nan,
            "cost_yuan": float(sel["cost_yuan"].sum()),
            "budget_cap_yuan": cap.budget_cap_yuan if cap else np.nan,
            "elevator_buildings": float(sel["elevator_buildings"].sum(skipna=False)),
            "elevator_households": float(sel["elevator_households"].sum()),
            "n_lifts": float(sel["n_lifts"].sum(skipna=False))})
    df = pd.DataFrame(rows)
    for c in ("floor_area_cap_m2", "households_cap", "budget_cap_yuan"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["year"] = df["year"].astype("Int64")
    return df


def _empty_result(communities: gpd.GeoDataFrame, reason: str) -> ProgrammeResult:
    crs = communities.crs
    empty = gpd.GeoDataFrame({"package_id": pd.Series([], dtype=object)},
                             geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    logger.info("programme: skipped — %s", reason)
    return ProgrammeResult(packages=empty, communities=empty.copy(), elevators=empty.copy(),
                           years=pd.DataFrame(), skipped=reason)


def programme(packages: gpd.GeoDataFrame, communities: gpd.GeoDataFrame, *,
              cfg: ProgrammeConfig, lifecircle: pd.DataFrame | None = None,
              buildings: gpd.GeoDataFrame | None = None,
              areas: gpd.GeoDataFrame | None = None) -> ProgrammeResult:
    """Score communities and packages and phase the packages into programme years.

    Parameters
    ----------
    packages
        ``renewal_packages`` (``package_id``, ``floor_area_m2``, ``households``, outline),
        metric CRS.
    communities
        ``communities`` with ``package_id`` (see :func:`community_values`).
    cfg
        ``[programme]`` settings.
    lifecircle
        ``service_gaps`` (or the ``lifecircle`` layer); None leaves the gaps criterion at 0.
    buildings
        OSM buildings for storeys, building counts and lifts the inventory does not give.
    areas
        OSM residential areas, the sites of inventory points (:func:`community_values`).

    Returns
    -------
    ProgrammeResult
        Layers and report; ``skipped`` says why when there is no package to phase.

    Raises
    ------
    ProgrammeInfeasibleError
        When the years fixed by 计划年度 alone break a year's cap.
    """
    if packages is None or packages.empty:
        return _empty_result(communities, "no renewal packages (no old community was found "
                             "in the study area)")
    require_projected(packages, "programme")
    comm, lifts = community_values(communities, cfg=cfg, lifecircle=lifecircle,
                                   buildings=buildings, areas=areas)
    pk = package_values(comm, packages, cfg=cfg)
    pk = pd.concat([pk, score_table(pk, cfg)], axis=1)
    comm["colocation_packages"] = _colocation(comm.geometry, packages, comm["package_id"],
                                              cfg.colocation_distance_m)
    cscore = score_table(comm, cfg)
    gaps_from = str(comm.attrs.get("gaps_from", "none"))

    caps = np.array([[np.inf if getattr(y, cap) is None else float(getattr(y, cap))
                      for _, cap, _ in RESOURCES] for y in cfg.years])
    usage = pk[[c for c, _, _ in RESOURCES]].to_numpy(dtype=float)
    fixed = np.full(len(pk), -1, dtype=np.int64)
    py = pk["plan_year"]
    early = py.notna() & (py < cfg.start_year)
    if early.any():
        logger.warning("programme: 计划年度 before start_year %d for %s: taken as the first "
                       "year", cfg.start_year, ", ".join(pk.loc[early, "package_id"]))
    has = py.notna()
    fixed[has.to_numpy()] = np.maximum(py[has].to_numpy(dtype=float) - cfg.start_year,
                                       0).astype(np.int64)
    ph = phase(pk["score"].to_numpy(), usage, caps, fixed=fixed,
               ready=pk["ready"].to_numpy(dtype=bool), year_discount=cfg.year_discount,
               solver=cfg.solver, time_limit_s=cfg.time_limit_s, mip_rel_gap=cfg.mip_rel_gap,
               names=pk["package_id"].tolist(), resource_names=[u for *_, u in RESOURCES])
    pk["year_index"] = ph.year
    pk["year"] = pd.array([cfg.start_year + k if k >= 0 else pd.NA for k in ph.year],
                          dtype="Int64")
    pk["status"] = [_status(int(k)) for k in ph.year]
    pk["status_en"] = pk["status"].map(STATUS_EN)
    pk["fixed_year"] = pk["plan_year"].astype("Int64")
    pk["reason"] = [f"rank {r}: {why}" for r, why in zip(pk["rank"], ph.reason, strict=True)]
    lead = ["package_id", "year", "status", "status_en", "rank", "score", "top_criteria",
            "reason", "ready", "fixed_year", "floor_area_m2", "households", "population",
            "cost_yuan", "works_cost_yuan", "elevator_cost_yuan", "renovation_type",
            "elevator_buildings", "elevator_households", "n_lifts"]
    crit = [c for key, (col, _, _) in CRITERIA.items()
            for c in (col, f"{key}_norm", f"{key}_points")]
    rest = [c for c in pk.columns if c not in {*lead, *crit, "geometry"}]
    pk = gpd.GeoDataFrame(pk[lead + [c for c in dict.fromkeys(crit) if c not in lead] + rest],
                          geometry=pk.geometry, crs=packages.crs)

    by_pkg = pk.set_index("package_id")
    pid = comm["package_id"].astype(object).where(comm["package_id"].notna(), None)
    comm["year"] = pd.array([by_pkg.at[str(p), "year"] if p is not None and str(p) in
                             by_pkg.index else pd.NA for p in pid], dtype="Int64")
    comm["status"] = [by_pkg.at[str(p), "status"] if p is not None and str(p) in by_pkg.index
                      else "" for p in pid]
    comm = gpd.GeoDataFrame(pd.concat([comm.drop(columns="geometry"), cscore], axis=1),
                            geometry=comm.geometry, crs=comm.crs)
    if not lifts.empty:
        pid = lifts["package_id"].astype(str)
        lifts["year"] = pd.array([by_pkg.at[p, "year"] if p in by_pkg.index else pd.NA
                                  for p in pid], dtype="Int64")
        lifts["status"] = [by_pkg.at[p, "status"] if p in by_pkg.index else "" for p in pid]
    result = ProgrammeResult(packages=pk, communities=comm, elevators=lifts,
                             years=_years_table(pk, cfg), phasing=ph)
    result.notes = _notes(comm, pk, cfg, gaps_from)
    return result


def _notes(comm: gpd.GeoDataFrame, pk: gpd.GeoDataFrame, cfg: ProgrammeConfig,
           gaps_from: str) -> list[str]:
    notes = []
    if gaps_from == "none":
        notes.append("life-circle gaps not given: the gaps criterion is 0 for every package")
    for col, what in (("built_year_source", "built year"), ("levels_source", "storeys"),
                      ("n_buildings_source", "building count"), ("elevator_source", "lift"),
                      ("property_source", "property management"),
                      ("consent_source", "consent"), ("renovation_type_source", "改造类型")):
        counts = comm[col].value_counts()
        listed = int(counts.get("listed", 0) + counts.get("inventory", 0))
        if listed < len(comm):
            rest = ", ".join(f"{k} {v}" for k, v in counts.items()
                             if k not in {"listed", "inventory"})
            notes.append(f"{what}: {listed}/{len(comm)} communities from the inventory; {rest}")
    if not any(getattr(y, c) is not None for y in cfg.years for _, c, _ in RESOURCES):
        notes.append("no cap set in [[programme.years]]: every ready package goes in the "
                     "first year")
    not_ready = pk[~pk["ready"].astype(bool)]
    if len(not_ready):
        notes.append(f"not ready (consent < {cfg.min_consent_share:g}): "
                     + ", ".join(not_ready["package_id"].astype(str)))
    return notes


# --------------------------------------------------------------------------------------------
# The bureau's project list
# --------------------------------------------------------------------------------------------

_TYPE_ZH = {"basic": "基础类", "improvement": "完善类", "enhancement": "提升类"}


def project_list(result: ProgrammeResult) -> pd.DataFrame:
    """The plan as a bureau's project list (sheet 项目库): one row per package, Chinese headers.

    Rows are ordered by year (reserve last), then rank. Floor areas are in 万㎡ and costs in
    万元, as such lists are usually kept.
    """
    if result.skipped:
        return pd.DataFrame({"说明": [f"未编制项目库 programme skipped: {result.skipped}"]})
    pk = result.packages.copy()
    pk["_order"] = pk["year_index"].where(pk["year_index"] >= 0, 10_000)
    pk = pk.sort_values(["_order", "rank", "package_id"], kind="stable").reset_index(drop=True)
    names = pk["member_names"] if "member_names" in pk.columns else pk["package_id"]
    return pd.DataFrame({
        "序号": np.arange(1, len(pk) + 1),
        "项目编号": pk["package_id"],
        "项目名称": [f"{p} 片区老旧小区改造（{str(n).split('、')[0]}等）" for p, n in
                 zip(pk["package_id"], names, strict=True)],
        "所在区": pk.get("district", ""), "街道": pk.get("street", ""),
        "社区": pk.get("neighbourhood", ""),
        "小区个数": pk.get("n_communities", pk.get("n_members")),
        "小区名称": names, "建成年代": pk.get("built_years", ""),
        "建筑面积（万㎡）": (pk["floor_area_m2"] / 1e4).round(2),
        "户数": pk["households"].round(0),
        "改造类型": pk["renovation_type"].map(_TYPE_ZH),
        "加装电梯（幢）": pk["elevator_buildings"].round(0),
        "加装电梯（台）": pk["n_lifts"].round(0),
        "估算投资（万元）": (pk["cost_yuan"] / 1e4).round(1),
        "其中电梯（万元）": (pk["elevator_cost_yuan"] / 1e4).round(1),
        "居民意愿": pk["consent_share"].round(3),
        "计划年度": pk["year"],
        "项目状态": pk["status"],
        "综合得分": pk["score"].round(1), "排名": pk["rank"],
        "得分构成（前三项）": _top_criteria(pk, [label.split(" ")[0] for _, _, label
                                          in CRITERIA.values()]),
        "安排理由": pk["reason"],
    })


def with_caps(cfg: ProgrammeConfig, **caps: Any) -> ProgrammeConfig:
    """A copy of ``cfg`` with the same cap(s) set on every year (for notebooks), e.g.
    ``with_caps(cfg, floor_area_cap_m2=300_000)``."""
    years = [dataclasses.replace(y, **caps) for y in cfg.years]
    return dataclasses.replace(cfg, years=years)


__all__ += ["community_values", "package_values", "with_caps"]
