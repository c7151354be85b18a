"""The walk network built from the ingest's arrays against osmnx's graph of the same ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.sparse.csgraph import dijkstra

from urbanunits.network import WalkNetwork
from urbanunits.sources import _cache
from urbanunits.sources.osm import OSMLayers


def _edges(net: WalkNetwork) -> np.ndarray:
    """(lower node id, higher node id, length) of every edge, sorted."""
    a, b = net.node_id[net.edge_u], net.node_id[net.edge_v]
    rec = np.rec.fromarrays([np.minimum(a, b), np.maximum(a, b), net.edge_len])
    return np.sort(rec)


def test_arrays_give_the_network_of_the_osmnx_graph(demo_layers: OSMLayers) -> None:
    ours = demo_layers.walk_network
    # the graph is built the osmnx way (add_edge_lengths, project_graph), not from our lengths
    theirs = WalkNetwork.from_graph(demo_layers.walk_graph)
    assert ours.n_nodes == theirs.n_nodes > 1000
    at = {n: i for i, n in enumerate(theirs.node_id.tolist())}
    j = np.array([at[n] for n in ours.node_id.tolist()])
    assert np.abs(ours.x - theirs.x[j]).max() < 1e-6
    assert np.abs(ours.y - theirs.y[j]).max() < 1e-6
    e1, e2 = _edges(ours), _edges(theirs)
    assert len(e1) == len(e2)
    assert (e1.f0 == e2.f0).all() and (e1.f1 == e2.f1).all()
    assert np.array_equal(e1.f2, e2.f2)  # same formula, same operations: equal to the bit
    src = np.arange(0, ours.n_nodes, max(1, ours.n_nodes // 5))
    d1 = dijkstra(ours.csr, indices=src, min_only=True)
    d2 = dijkstra(theirs.csr, indices=j[src], min_only=True)[j]
    both = np.isfinite(d1)
    assert (both == np.isfinite(d2)).all()
    assert np.abs(d1[both] - d2[both]).max() < 1e-6


def test_cache_stores_the_arrays_exactly(demo_layers: OSMLayers, tmp_path: Path) -> None:
    path = tmp_path / "c.gpkg"
    _cache.write_cache(path, demo_layers, key="k", version=1)
    back = _cache.read_cache(path, key="k", version=1)["walk"]
    w = demo_layers.walk
    for name in ("node_id", "lon", "lat", "x", "y", "u", "v", "length_m", "way", "way_id"):
        got, want = getattr(back, name), getattr(w, name)
        assert got.dtype == want.dtype, name
        assert np.array_equal(got, want), name
    assert back.highway.tolist() == w.highway.tolist()
    assert back.name.tolist() == w.name.tolist()
    assert back.simplified is None
    assert back.crs == w.crs


def test_ways_become_consecutive_pairs_inside_the_clip() -> None:
    from shapely.geometry import box

    from urbanunits.sources.walk import walk_ways

    ll = {1: (121.50, 31.20), 2: (121.501, 31.20), 3: (121.502, 31.20), 4: (121.60, 31.20),
          5: (121.501, 31.201), 6: (121.70, 31.30)}
    ways = [(10, [1, 2, 2, 3, 4], {"highway": "footway", "name": "A"}),  # 2-2 repeated, 4 out
            (11, [5, 2], {"highway": "residential"}),
            (12, [4, 6], {"highway": "service"})]  # wholly outside: no edge
    w = walk_ways(ll, ways, box(121.49, 31.19, 121.51, 31.21), "EPSG:32651")
    pairs = sorted((int(w.node_id[a]), int(w.node_id[b]), int(w.way_id[k]))
                   for a, b, k in zip(w.u, w.v, w.way, strict=True))
    assert pairs == [(1, 2, 10), (2, 3, 10), (5, 2, 11)]
    assert sorted(w.node_id.tolist()) == [1, 2, 3, 5]
    # 0.001° of longitude at 31.2° N is about 95 m
    assert np.allclose(w.length_m[:2], 95.2, atol=0.3)
    assert w.foot_edges({"footway"}) == 4  # two segments, both directions
    assert w.sidewalk_ways({11, 12}) == 1  # way 12 has no edge
