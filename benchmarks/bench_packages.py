"""Renewal packages at city scale on a synthetic layout (fixed seed).

A 25 km × 25 km "city" with 3,000 old communities in neighbourhood clusters, 120,000 building
footprints and 12 straight rivers. Compared in the same run:

* links: STRtree ``dwithin`` + barrier sides/segment test vs. the obvious all-pairs distance
  matrix (vectorised shapely over n² pairs, no barriers — so the baseline does less work);
* floor area: STRtree pairs + vectorised intersections vs. ``geopandas.overlay`` + groupby;
* clustering: the full floor/ceiling clustering, reported per community;
* scaling (issue 17): the whole stage (:func:`urbanunits.packages.renewal_packages`: barrier sides,
  links, clustering, outlines) on 3,000 and 15,000 communities at the same density (the city and
  its river count grown with the data); CPU time (``time.process_time``), best of five runs per
  size, the sizes alternating, each run after a full garbage collection (wall time reported
  alongside); target ≤ 4× the time for 5× the communities. The other sections' data are freed
  first, so that the collector's sweeps in the stage are over the stage's own heap.
"""

from __future__ import annotations

import gc
import time

import geopandas as gpd
import numpy as np
import shapely

from urbanunits import packages as pk
from urbanunits.config import PackagesConfig

__all__ = ["main"]

CRS = "EPSG:32651"
X0, Y0 = 340_000.0, 3_290_000.0


def _layout(seed: int = 7) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 25_000, size=(150, 2))
    pts = (centres[rng.integers(0, 150, 3000)] + rng.normal(0, 500, size=(3000, 2)))
    side = rng.uniform(60, 200, size=3000)
    comm = gpd.GeoDataFrame({
        "community_id": [f"C{i:04d}" for i in range(3000)], "name": "x", "is_old": True,
        "floor_area_m2": side**2 * rng.uniform(1.0, 2.5, 3000)},
        geometry=shapely.buffer(shapely.points(X0 + pts[:, 0], Y0 + pts[:, 1]), side / 2,
                                cap_style="square"), crs=CRS)
    comm["households"] = comm["floor_area_m2"] / 70.0
    bp = comm.geometry.sample_points(40, rng=rng).explode().get_coordinates().to_numpy()
    w = rng.uniform(8, 25, size=len(bp))
    b = gpd.GeoDataFrame({"levels": rng.integers(3, 20, len(bp)).astype(float),
                          "levels_tagged": True},
                         geometry=shapely.box(bp[:, 0], bp[:, 1], bp[:, 0] + w, bp[:, 1] + w),
                         crs=CRS)
    ends = rng.uniform(0, 25_000, size=(12, 4))
    rivers = gpd.GeoDataFrame({"kind": ["river"] * 12, "name": [None] * 12}, geometry=[
        shapely.LineString([(X0 + a, Y0 - 1000), (X0 + c, Y0 + 26_000)]) for a, _, c, _ in ends],
        crs=CRS)
    return comm, b, rivers


#: Scaling target: 15k communities' packages in at most this many times the time of 3k.
SCALING_TARGET = 4.0


def _city(n: int, seed: int = 7) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """``n`` communities in clusters and straight rivers, at the density of :func:`_layout`."""
    rng = np.random.default_rng(seed)
    k = n / 3000
    width = 25_000 * k**0.5
    n_centres, n_rivers = round(150 * k), round(12 * k**0.5)
    centres = rng.uniform(0, width, size=(n_centres, 2))
    pts = centres[rng.integers(0, n_centres, n)] + rng.normal(0, 500, size=(n, 2))
    side = rng.uniform(60, 200, size=n)
    comm = gpd.GeoDataFrame({
        "community_id": [f"C{i:05d}" for i in range(n)], "name": "x", "is_old": True,
        "floor_area_m2": side**2 * rng.uniform(1.0, 2.5, n)},
        geometry=shapely.buffer(shapely.points(X0 + pts[:, 0], Y0 + pts[:, 1]), side / 2,
                                cap_style="square"), crs=CRS)
    comm["households"] = comm["floor_area_m2"] / 70.0
    ends = rng.uniform(0, width, size=(n_rivers, 2))
    rivers = gpd.GeoDataFrame({"kind": ["river"] * n_rivers, "name": [None] * n_rivers},
                              geometry=[shapely.LineString([(X0 + a, Y0 - 1000),
                                                            (X0 + c, Y0 + width + 1000)])
                                        for a, c in ends], crs=CRS)
    return comm, rivers


#: Runs per size in the scaling test (the best counts: a 0.2 s run is easily disturbed).
SCALING_RUNS = 5


def _scaling() -> list[str]:
    cfg = PackagesConfig(link_distance_m=300.0, max_floor_area_m2=400_000, max_households=5000,
                         min_floor_area_m2=50_000, min_households=500)
    cities = {n: _city(n) for n in (3000, 15000)}
    cpu = dict.fromkeys(cities, float("inf"))
    wall = dict.fromkeys(cities, float("inf"))
    n_pk = {}
    for _ in range(SCALING_RUNS):
        for n, (comm, rivers) in cities.items():
            gc.collect()
            c, w = time.process_time(), time.perf_counter()
            res = pk.renewal_packages(comm, cfg=cfg, barriers=rivers)
            cpu[n] = min(cpu[n], time.process_time() - c)
            wall[n] = min(wall[n], time.perf_counter() - w)
            n_pk[n] = len(res.packages)
            del res
    ratio = cpu[15000] / cpu[3000]
    verdict = "PASS" if ratio <= SCALING_TARGET else "FAIL"
    return [f"scaling: stage on 3,000 communities {cpu[3000]:.2f} s CPU ({n_pk[3000]} packages), "
            f"15,000 {cpu[15000]:.2f} s CPU ({n_pk[15000]} packages) → {ratio:.1f}× for 5× the "
            f"data (target ≤ {SCALING_TARGET:.0f}×) {verdict}; wall {wall[3000]:.2f} s, "
            f"{wall[15000]:.2f} s (best of {SCALING_RUNS})"]


def main() -> list[str]:
    """Run the benchmark and return report lines."""
    out = _sections()
    gc.collect()  # the sections' layout and overlay are gone before the scaling runs
    return out + _scaling()


def _sections() -> list[str]:
    comm, buildings, rivers = _layout()
    out = [f"layout: {len(comm)} communities, {len(buildings)} buildings, {len(rivers)} rivers"]

    t = time.perf_counter()
    G = pk.link_graph(comm, link_distance_m=300.0, barriers=rivers)
    t_links = time.perf_counter() - t
    geoms = np.asarray(comm.geometry.values)
    t = time.perf_counter()
    n = len(geoms)
    i, j = np.triu_indices(n, k=1)
    near = np.zeros(len(i), dtype=bool)
    for s in range(0, len(i), 2_000_000):
        near[s:s + 2_000_000] = shapely.distance(geoms[i[s:s + 2_000_000]],
                                                 geoms[j[s:s + 2_000_000]]) <= 300.0
    t_brute = time.perf_counter() - t
    out.append(f"links: {G.number_of_edges()} edges ({G.graph['n_blocked']} blocked) in "
               f"{t_links:.2f} s; all-pairs baseline ({int(near.sum())} pairs, no barriers) "
               f"{t_brute:.2f} s → {t_brute / t_links:.1f}× faster")

    t = time.perf_counter()
    est = pk.estimate_floor_area(comm, buildings, fallback_far=1.5)
    t_est = time.perf_counter() - t
    t = time.perf_counter()
    ov = gpd.overlay(comm[["community_id", "geometry"]], buildings[["levels", "geometry"]],
                     how="intersection", keep_geom_type=True)
    ov["fa"] = ov.area * ov["levels"]
    base = ov.groupby("community_id")["fa"].sum().reindex(comm["community_id"]).fillna(0)
    t_ov = time.perf_counter() - t
    err = float(np.nanmax(np.abs(base.to_numpy() - est["floor_area_m2"].to_numpy())
                          / np.maximum(base.to_numpy(), 1.0)))
    out.append(f"floor area: {t_est:.2f} s; geopandas.overlay baseline {t_ov:.2f} s → "
               f"{t_ov / t_est:.1f}× faster (max relative difference {err:.1e})")

    t = time.perf_counter()
    xy = np.column_stack([comm.centroid.x, comm.centroid.y])
    labels = pk.cluster_packages(xy, G, floor_area_m2=comm["floor_area_m2"],
                                 households=comm["households"], max_floor_area_m2=400_000,
                                 max_households=5000, min_floor_area_m2=50_000,
                                 min_households=500)
    t_cl = time.perf_counter() - t
    pk.assert_partition(labels, G)
    sizes = np.bincount(labels)
    out.append(f"clustering: {sizes.size} packages (median {int(np.median(sizes))} communities,"
               f" max {sizes.max()}) in {t_cl:.2f} s ({1e3 * t_cl / n:.2f} ms per community)")
    return out
