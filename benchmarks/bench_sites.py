"""Site suggestions at city scale: 5,000 communities × 2,000 candidate sites, p = 20.

Synthetic city (``benchmarks/synthetic_walk.py``, seeded): 270,400-node walk network, 5,000
community polygons, 2,000 candidate points scattered over it, and no facility of one category, so
that every community is a gap. Two mandatory subtypes are studied: day care (300 m) and nursing
home (1000 m, the hard case: about a hundred communities per candidate).

Timed separately, as :func:`urbanunits.sites.suggest_sites` reports them:

* **distances**: snapping 2,000 candidates and 5,000 communities, then one search per candidate
  cut at 1000 m, reduced to the community × candidate pairs within it;
* **solve**: per subtype an exact maximal covering (p = 20, HiGHS), then a set covering (LSCP,
  HiGHS, stopped at ``sites.time_limit_s``; a city-wide set covering at 1000 m can take minutes
  to prove minimal, so it is timed and reported apart).

Target: distances and maximal covering under 30 s on 2 cores.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np
import shapely

from benchmarks.synthetic_walk import CRS, X0, Y0, make_city
from urbanunits.config import Category, LifeCircleConfig, SitesConfig, SiteSubtype, Subtype
from urbanunits.network import WalkNetwork
from urbanunits.sites import suggest_sites

N_CANDIDATES = 2000
P = 20
TARGET_S = 30.0
LSCP_LIMIT_S = 20.0


def main() -> list[str]:
    """Run the benchmark and return the report lines."""
    import geopandas as gpd

    cats = {"elderly_care": Category(label="养老", subtypes={
        "day_care": Subtype(distance_m=300.0), "nursing_home": Subtype(distance_m=1000.0)})}
    lc = LifeCircleConfig(categories=cats)
    sc = SitesConfig(max_sites=P, time_limit_s=LSCP_LIMIT_S, subtypes={
        "day_care": SiteSubtype(min_floor_area_m2=0.0),
        "nursing_home": SiteSubtype(min_floor_area_m2=0.0)})
    t = time.perf_counter()
    city = make_city(categories=cats)
    comms = city.communities.copy()
    for s in cats["elderly_care"].subtypes:
        comms[f"elderly_care_{s}_ok"] = False
    rng = np.random.default_rng(7)
    extent = 520 * 20.0
    cand = gpd.GeoDataFrame(
        {"candidate_id": [f"S{i + 1}" for i in range(N_CANDIDATES)], "source": "synthetic",
         "kind": "idle", "name": None, "floor_area_m2": 1000.0, "ownership": None},
        geometry=shapely.points(X0 + rng.uniform(0, extent, N_CANDIDATES),
                                Y0 + rng.uniform(0, extent, N_CANDIDATES)), crs=CRS)
    net = WalkNetwork(x=city.x, y=city.y, u=city.u, v=city.v, length_m=city.length_m, crs=CRS)
    t_gen = time.perf_counter() - t
    out = [f"synthetic city: {net.n_nodes:,} nodes, {len(net.edge_u):,} edges, "
           f"{len(comms):,} communities, {len(cand):,} candidates, p = {P} "
           f"— generated in {t_gen:.1f} s"]
    empty = city.facilities.iloc[0:0]
    t = time.perf_counter()
    res = suggest_sites(net, comms, empty, cand, (lc, sc))
    wall = time.perf_counter() - t
    sec = res.seconds
    out.append(f"distance matrix: snapping {sec['snap']:.2f} s + {len(cand):,} bounded searches "
               f"(≤ 1000 m) {sec['distances']:.2f} s")
    out.append(f"solve, 2 subtypes: MCLP p={P} {sec['mclp']:.2f} s; LSCP {sec['lscp']:.2f} s "
               f"(time limit {LSCP_LIMIT_S:g} s each)")
    for r in res.summary.itertuples(index=False):
        out.append(f"  {r.subtype} ≤{r.distance_m:g} m: MCLP {r.mclp_sites} sites cover "
                   f"{r.mclp_communities:,} communities ({r.mclp_residents:,.0f} residents, "
                   f"{'optimal' if r.mclp_optimal else 'time limit'}); LSCP {r.lscp_sites} sites "
                   f"for all {r.n_coverable:,} coverable "
                   f"({'optimal' if r.lscp_optimal else 'time limit'})")
    timed = sec["snap"] + sec["distances"] + sec["mclp"]
    verdict = "PASS" if timed < TARGET_S else "FAIL"
    out.append(f"{verdict}: distance matrix + MCLP {timed:.1f} s (target < {TARGET_S:g} s); "
               f"suggest_sites {wall:.1f} s with LSCP; peak RSS "
               f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; load "
               f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return out


if __name__ == "__main__":
    for line in main():
        print(line)
