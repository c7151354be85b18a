"""Life circles from an OSM file, end to end: urbanunits against osmnx + pandana (issue 17.2).

A synthetic city of about 250k walk nodes (``synthetic_walk.make_city``: a perturbed 20 m grid
with gaps and diagonals, compound rectangles tagged ``landuse=residential`` with a name, and
facilities tagged as the default categories' OSM rules expect) is written once as ``.osm.pbf``
and as ``.osm`` XML (osmnx reads only XML), cached under ``benchmarks/out/``. Each street
segment is a two-node way.

Timed in the same process, on the same data:

* **urbanunits**: ``read_osm`` without the cache (the one osmium pass into every layer, the walk
  network as arrays), the network, ``life_circle`` (snapping, searches, tables) for every
  category over the named residential areas, and writing its layers to a GeoPackage.
* **osmnx + pandana**, the workflow a user would otherwise write: ``osmnx.graph_from_xml``,
  ``project_graph``, ``graph_to_gdfs``, ``pandana.Network``, then per facility subtype
  ``set_pois`` + ``nearest_pois`` and a lookup at the communities' nearest nodes, and writing
  the table. Its facilities and community centroids are handed over from urbanunits' parse,
  untimed (a user would also have to extract and classify them).

Target: urbanunits ≥ 20× faster end to end. Check: at every node, pandana's nearest-facility
distance (facilities at their nearest nodes) equals a search on urbanunits' network from the
same nodes. Set ``BENCH_OSM_SIDE`` (grid side, default 500) for a smaller run.

pandana's ``nearest_pois`` runs a bounded range query from every node of the network, which
takes minutes per facility subtype at 250k nodes with a 1,500 m limit; only the first
``BENCH_OSM_PANDANA_SUBTYPES`` (default 1) of the 12 subtypes are run and their time is scaled
to all 12 (and the distance check covers those).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pyproj
from scipy.sparse.csgraph import dijkstra

from benchmarks.synthetic_walk import CRS, X0, Y0, make_city
from urbanunits.config import LifeCircleConfig, load_config
from urbanunits.lifecircle import life_circle
from urbanunits.sources.classify import tag_rules
from urbanunits.sources.osm import read_osm

OUT = Path(__file__).resolve().parent / "out"
SPACING_M = 20.0
LIMIT_M = 1500.0
TARGET = 20.0
SUBTYPES_RUN = int(os.environ.get("BENCH_OSM_PANDANA_SUBTYPES", "1"))

__all__ = ["main"]


def _write_osm(base: Path, side: int) -> tuple[Path, Path]:
    """The synthetic city as ``base.osm.pbf`` and ``base.osm`` (reused when present)."""
    pbf, xml = base.with_suffix(".osm.pbf"), base.with_suffix(".osm")
    if pbf.is_file() and xml.is_file():
        return pbf, xml
    import osmium
    from osmium.osm.mutable import Node, Way

    lc = LifeCircleConfig()
    city = make_city(side=side, spacing_m=SPACING_M, facilities_per_category=300,
                     n_communities=5000, categories=lc.categories)
    to_ll = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(city.x, city.y)
    fac = city.facilities
    fx, fy = to_ll.transform(fac.geometry.x.to_numpy(), fac.geometry.y.to_numpy())
    rules = {(k, s): tag_rules(st) for k, c in lc.categories.items()
             for s, st in c.subtypes.items()}
    b = np.asarray(city.communities.geometry.bounds)
    bx = np.column_stack([b[:, 0], b[:, 2], b[:, 2], b[:, 0]])
    by = np.column_stack([b[:, 1], b[:, 1], b[:, 3], b[:, 3]])
    clon, clat = to_ll.transform(bx.ravel(), by.ravel())
    parts = [p.with_name(p.name + ".part" + "".join(p.suffixes[-2:])) for p in (pbf, xml)]
    writers = [osmium.SimpleWriter(str(p), overwrite=True) for p in parts]
    try:
        n = len(lon)
        nid = n
        for w in writers:
            for i in range(n):
                w.add_node(Node(id=i + 1, location=(float(lon[i]), float(lat[i]))))
        fac_nodes = []
        for i, (k, s) in enumerate(zip(fac["category"], fac["subtype"], strict=True)):
            rule = rules[(k, s)]
            if not rule:
                continue
            nid += 1
            tags = {key: vals[0] or "yes" for key, vals in rule[0].items()}
            fac_nodes.append(Node(id=nid, location=(float(fx[i]), float(fy[i])),
                                  tags={**tags, "name": f"f{i}"}))
        corners: list[Node] = []
        rings: list[list[int]] = []
        for j in range(len(b)):
            ids = list(range(nid + 1, nid + 5))
            corners += [Node(id=ids[c], location=(float(clon[4 * j + c]), float(clat[4 * j + c])))
                        for c in range(4)]
            rings.append(ids)
            nid += 4
        kinds = ["footway", "residential", "service", "footway", "tertiary"]
        for w in writers:
            for node in [*fac_nodes, *corners]:
                w.add_node(node)
            for e in range(len(city.u)):
                w.add_way(Way(id=e + 1, nodes=[int(city.u[e]) + 1, int(city.v[e]) + 1],
                              tags={"highway": kinds[e % len(kinds)]}))
            for j, ids in enumerate(rings):
                w.add_way(Way(id=len(city.u) + j + 1, nodes=[*ids, ids[0]],
                              tags={"landuse": "residential", "name": f"c{j}"}))
    finally:
        for w in writers:
            w.close()
    for p, final in zip(parts, (pbf, xml), strict=True):
        p.replace(final)
    return pbf, xml


def _config(pbf: Path, side: int, out: Path) -> Path:
    to_ll = pyproj.Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    # the lon/lat box around all four corners: UTM's grid is turned against the meridians
    x1, y1 = X0 + (side - 1) * SPACING_M, Y0 + (side - 1) * SPACING_M
    lon, lat = to_ll.transform(np.array([X0, x1, x1, X0]), np.array([Y0, Y0, y1, y1]))
    lo, hi = (lon.min(), lat.min()), (lon.max(), lat.max())
    toml = out / "bench.toml"
    toml.write_text(f"""name = "bench"
[study_area]
bbox = [{lo[0]:.6f}, {lo[1]:.6f}, {hi[0]:.6f}, {hi[1]:.6f}]
crs = "{CRS}"
[inputs]
osm = "{pbf}"
[osm]
graph_margin_m = 100.0
cache = false
[lifecircle]
max_snap_m = 150.0
[output]
dir = "{out}"
""", encoding="utf-8")
    return toml


def _ours(toml: Path, out: Path) -> tuple[dict[str, float], object, object]:
    cfg = load_config(toml)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    layers = read_osm(cfg, use_cache=False)
    t["ingest (parse, layers, walk arrays)"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    net = layers.walk_network
    t["walk network"] = time.perf_counter() - t1
    comm = layers.residential[["name", "geometry"]].copy()
    comm["community_id"] = np.arange(len(comm))
    comm["population"] = 1000.0
    t1 = time.perf_counter()
    res = life_circle(net, comm, layers.facilities, cfg.lifecircle)
    t["life circle (snapping, searches, tables)"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    gpkg = out / "ours.gpkg"
    for name, df in res.layers().items():
        pyogrio.write_dataframe(df, gpkg, layer=name, driver="GPKG")
    t["writing"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0
    return t, layers, res


def _pandana(xml: Path, layers: object, out: Path) -> tuple[dict[str, float], object, dict]:
    import osmnx as ox
    import pandana

    fac = layers.facilities  # type: ignore[attr-defined]
    comm = layers.residential  # type: ignore[attr-defined]
    cx, cy = comm.geometry.centroid.x.to_numpy(), comm.geometry.centroid.y.to_numpy()
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    G = ox.graph_from_xml(xml, simplify=False, retain_all=True)
    G = ox.project_graph(G, to_crs=CRS)
    nodes, edges = ox.graph_to_gdfs(G)
    # graph_from_xml takes every way of the file: keep the streets, as a user would
    edges = edges[edges["highway"].notna()].reset_index()
    nodes = nodes[nodes.index.isin(edges["u"]) | nodes.index.isin(edges["v"])]
    t["osmnx graph_from_xml + project + gdfs"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    net = pandana.Network(nodes["x"], nodes["y"], edges["u"], edges["v"], edges[["length"]],
                          twoway=False)
    t["pandana Network"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    at = net.get_node_ids(pd.Series(cx), pd.Series(cy))
    table = pd.DataFrame({"name": comm["name"].to_numpy()})
    per_node: dict[str, pd.Series] = {}
    groups = list(fac.groupby(["category", "subtype"]))
    # nearest_pois runs a range query from every node: minutes per subtype on a large city,
    # so only the first few are run and the time is scaled to all of them
    run = groups[:SUBTYPES_RUN]
    for (k, s), grp in run:
        key = f"{k}_{s}"
        net.set_pois(key, LIMIT_M, 1, grp.geometry.x, grp.geometry.y)
        d = net.nearest_pois(LIMIT_M, key, num_pois=1)[1]
        per_node[key] = d
        table[f"{key}_m"] = d.loc[at.to_numpy()].to_numpy()
    spent = time.perf_counter() - t1
    t[f"set_pois + nearest_pois ({len(run)} of {len(groups)} subtypes run, time scaled)"] = \
        spent * len(groups) / max(len(run), 1)
    t0 -= t[next(reversed(t))] - spent  # the total counts the scaled time
    t1 = time.perf_counter()
    pyogrio.write_dataframe(table, out / "pandana.gpkg", layer="lifecircle", driver="GPKG")
    t["writing"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0
    return t, net, per_node


def _agreement(layers: object, net: object, per_node: dict) -> float:
    """Largest |pandana − ours| (m) at any node, facilities at their nearest nodes."""
    ours = layers.walk_network  # type: ignore[attr-defined]
    fac = layers.facilities  # type: ignore[attr-defined]
    pos = pd.Series(np.arange(ours.n_nodes), index=ours.node_id)
    worst = 0.0
    for (k, s), grp in fac.groupby(["category", "subtype"]):
        if f"{k}_{s}" not in per_node:
            continue
        src = net.get_node_ids(grp.geometry.x, grp.geometry.y)  # type: ignore[attr-defined]
        d = dijkstra(ours.csr, indices=np.unique(pos.loc[src.to_numpy()].to_numpy()),
                     min_only=True, limit=LIMIT_M)
        theirs = per_node[f"{k}_{s}"]
        if not theirs.index.isin(pos.index).all():  # a node only one side has: not the same
            return np.inf
        mine = d[pos.loc[theirs.index.to_numpy()].to_numpy()]
        t_ = theirs.to_numpy()
        both = np.isfinite(mine) & (t_ < LIMIT_M)
        # reached by one side only, away from the limit (pandana gives LIMIT_M for none)
        if ((mine < LIMIT_M - 1.0) & (t_ >= LIMIT_M)).any() or \
                ((t_ < LIMIT_M - 1.0) & ~np.isfinite(mine)).any():
            return np.inf
        mine, t_ = mine[both], t_[both]
        worst = max(worst, float(np.abs(mine - t_).max())) if len(t_) else worst
    return worst


def main() -> list[str]:
    side = int(os.environ.get("BENCH_OSM_SIDE", "500"))
    OUT.mkdir(exist_ok=True)
    pbf, xml = _write_osm(OUT / f"city_{side}", side)
    lines = [f"synthetic city: {side * side:,} grid nodes, {pbf.stat().st_size / 1e6:.0f} MB "
             f"PBF, {xml.stat().st_size / 1e6:.0f} MB XML"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        toml = _config(pbf, side, out)
        ours, layers, _ = _ours(toml, out)
        theirs, net, per_node = _pandana(xml, layers, out)
        diff = _agreement(layers, net, per_node)
    lines.append(f"walk network: {layers.walk.n_nodes:,} nodes, {len(layers.walk.u):,} "  # type: ignore[attr-defined]
                 f"edges; {len(layers.residential):,} communities, "  # type: ignore[attr-defined]
                 f"{len(layers.facilities):,} facilities")  # type: ignore[attr-defined]
    for who, t in (("urbanunits lifecircle", ours), ("osmnx + pandana", theirs)):
        lines.append(f"{who}: {t['total']:.2f} s")
        lines += [f"   {k}: {v:.2f} s" for k, v in t.items() if k != "total"]
    ratio = theirs["total"] / ours["total"]
    lines.append(f"end to end, urbanunits ≥ {TARGET:g}× faster than osmnx + pandana: "
                 f"{ratio:.1f}× {'PASS' if ratio >= TARGET else 'FAIL'}")
    lines.append(f"pandana's nearest distances at nodes agree with urbanunits' network: max "
                 f"difference {diff:.3f} m {'PASS' if diff <= 0.5 else 'FAIL'}")
    return lines
