"""The walk network as the OSM ingest reads it: arrays, not graph objects.

A city's walk network has hundreds of thousands of edges; a networkx graph of them costs
seconds to build and to read from the cache, and more to convert into the sparse matrix the
life-circle searches run on. :class:`WalkWays` holds the same network as flat arrays, built from
the parsed ways with numpy (no Python loop over edges) and stored as three attribute tables in
the parse cache. The osmnx graph is built from them only when asked for (notebooks, the
networkx oracle of the tests).

The arrays follow osmnx's ``network_type="walk"`` graph exactly: one edge per pair of
consecutive way nodes inside the clip area (both directions in the graph), lengths by osmnx's
great-circle formula on longitude/latitude, coordinates projected by PROJ as
``osmnx.project_graph`` does.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pyproj
import shapely

from urbanunits.network.graph import WalkNetwork

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from numpy.typing import NDArray
    from shapely.geometry.base import BaseGeometry

__all__ = ["WalkWays", "walk_ways"]

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"


@dataclass
class WalkWays:
    """The walk network as arrays (see the module docstring).

    Attributes
    ----------
    node_id
        OSM node ids of the nodes that have an edge.
    lon, lat
        Their WGS84 coordinates.
    x, y
        Their coordinates in ``crs`` (metres).
    u, v
        Node positions of each undirected edge (a pair of consecutive way nodes).
    length_m
        Great-circle edge lengths (osmnx's formula).
    way
        Position in the way table of each edge's way.
    way_id, highway, name
        The way table: OSM way id and the ``highway`` and ``name`` tags (None when untagged).
    crs
        The metric CRS of ``x``/``y``.
    simplified
        With ``osm.simplify_walk_graph``, osmnx's simplified (projected) graph (or the graph
        given to :meth:`of_graph`): the network is then read from it, edge geometries included.
    """

    node_id: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    u: NDArray[np.int32]
    v: NDArray[np.int32]
    length_m: NDArray[np.float64]
    way: NDArray[np.int32]
    way_id: NDArray[np.int64]
    highway: NDArray[np.object_]
    name: NDArray[np.object_]
    crs: str
    simplified: nx.MultiDiGraph | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def empty(cls, crs: str) -> WalkWays:
        """A network without nodes or edges."""
        f, i32, i64 = np.empty(0), np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int64)
        o = np.empty(0, dtype=object)
        return cls(i64, f, f, f, f, i32, i32, f, i32, i64, o, o, crs)

    @classmethod
    def of_graph(cls, G: nx.MultiDiGraph) -> WalkWays:
        """Ways standing for a ready osmnx graph (projected): its network is read from it.

        For code that builds :class:`~urbanunits.sources.osm.OSMLayers` around a graph of its
        own (tests, notebooks); the arrays stay empty.
        """
        out = cls.empty(str(G.graph.get("crs")))
        out.simplified = G
        return out

    @property
    def n_edges(self) -> int:
        """Directed edges of the osmnx graph (each street segment both ways)."""
        if self.simplified is not None:
            return int(self.simplified.number_of_edges())
        return 2 * len(self.u)

    @property
    def n_nodes(self) -> int:
        """Nodes of the osmnx graph."""
        if self.simplified is not None:
            return int(self.simplified.number_of_nodes())
        return len(self.node_id)

    def network(self) -> WalkNetwork:
        """The :class:`~urbanunits.network.WalkNetwork` (built once, then kept)."""
        if "network" not in self._cache:
            if self.simplified is not None:
                net = WalkNetwork.from_graph(self.simplified)
            else:
                net = WalkNetwork(x=self.x, y=self.y, u=self.u, v=self.v, length_m=self.length_m,
                                  node_id=self.node_id, crs=self.crs)
            self._cache["network"] = net
        net_: WalkNetwork = self._cache["network"]
        return net_

    def graph(self) -> nx.MultiDiGraph:
        """The osmnx walk graph (projected, edge ``length`` in metres), built on first use.

        Built the way osmnx builds one (``add_edge_lengths`` on longitude/latitude, then
        ``project_graph``), independently of the arrays' own lengths and projection.
        """
        if self.simplified is not None:
            return self.simplified
        if "graph" not in self._cache:
            self._cache["graph"] = self._graph()
        G: nx.MultiDiGraph = self._cache["graph"]
        return G

    def _graph(self, *, simplify: bool = False) -> nx.MultiDiGraph:
        # osmnx takes 1–3 s to import: only a parse or a request for the graph pays for it
        import osmnx as ox

        if len(self.u) == 0:
            return nx.MultiDiGraph(crs=self.crs)
        G = nx.MultiDiGraph(crs=WGS84, created_with="urbanunits via osmnx")
        ids = self.node_id.tolist()
        G.add_nodes_from((n, {"x": a, "y": b}) for n, a, b in
                         zip(ids, self.lon.tolist(), self.lat.tolist(), strict=True))
        G.add_edges_from(_graph_edges(self, ids))
        G = ox.distance.add_edge_lengths(G)
        if simplify:
            G = ox.simplify_graph(G)
        return ox.project_graph(G, to_crs=self.crs)

    def simplify(self) -> WalkWays:
        """The same ways with osmnx's topological simplification (:attr:`simplified` set)."""
        out = WalkWays(**{k: getattr(self, k) for k in self.__dataclass_fields__
                          if k not in ("simplified", "_cache")})
        out.simplified = self._graph(simplify=True)
        return out

    def foot_edges(self, foot_highways: Iterable[str]) -> int:
        """Directed graph edges on foot-only ways (``highway`` in ``foot_highways``)."""
        foot = np.isin(self.highway, list(foot_highways))
        return 2 * int(foot[self.way].sum()) if len(self.way) else 0

    def sidewalk_ways(self, sidewalk: set[int]) -> int:
        """How many of the ways with edges are in ``sidewalk``."""
        used = np.unique(self.way_id[self.way]) if len(self.way) else self.way_id[:0]
        return int(np.isin(used, np.fromiter(sidewalk, dtype=np.int64,
                                              count=len(sidewalk))).sum())


def _graph_edges(w: WalkWays, ids: list[int]) -> Any:
    """osmnx-style edges (both directions) of the arrays, in way order."""
    way_id, highway, name = w.way_id.tolist(), w.highway.tolist(), w.name.tolist()
    for a, b, k in zip(w.u.tolist(), w.v.tolist(), w.way.tolist(), strict=True):
        attrs = {"osmid": way_id[k], "highway": highway[k], "oneway": False}
        if name[k] is not None:
            attrs["name"] = name[k]
        yield ids[a], ids[b], {**attrs, "reversed": False}
        yield ids[b], ids[a], {**attrs, "reversed": True}


#: osmnx's mean Earth radius (``osmnx.distance.EARTH_RADIUS_M``), in metres.
EARTH_RADIUS_M = 6_371_009.0


def _great_circle_m(lon1: NDArray[np.float64], lat1: NDArray[np.float64],
                    lon2: NDArray[np.float64], lat2: NDArray[np.float64]
                    ) -> NDArray[np.float64]:
    """Haversine distances in metres on osmnx's sphere (degrees in).

    The same formula and radius as ``osmnx.distance.great_circle``, which ``add_edge_lengths``
    uses; written out because importing osmnx (and the scikit-learn it pulls in) takes a second
    of every parse, the CLI's and each batch worker's, for these five lines. A test holds the
    lengths to osmnx's graph's.
    """
    # operations in osmnx's order, so that lengths are equal to the last bit
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(lon2) - np.radians(lon1)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    arc = 2 * np.arcsin(np.sqrt(np.minimum(1, h)))
    return np.asarray(arc * EARTH_RADIUS_M, dtype=np.float64)


def walk_ways(nodes: dict[int, tuple[float, float]],
              ways: Sequence[tuple[int, list[int], dict[str, str]]], clip_ll: BaseGeometry,
              crs: str) -> WalkWays:
    """The walk network of parsed ways, clipped to ``clip_ll`` (WGS84), as arrays.

    Parameters
    ----------
    nodes
        Longitude/latitude of every node of a walkable way, by OSM id.
    ways
        ``(way id, node ids, tags)`` of each walkable way.
    clip_ll
        Edges with an end outside this polygon are dropped.
    crs
        The metric CRS to project to.

    Returns
    -------
    WalkWays
        Only nodes with an edge; edges in way order.
    """
    if not ways:
        return WalkWays.empty(crs)
    ids = np.fromiter(nodes.keys(), dtype=np.int64, count=len(nodes))
    ll = np.fromiter(itertools.chain.from_iterable(nodes.values()), dtype=np.float64,
                     count=2 * len(nodes)).reshape(-1, 2)
    inside = shapely.contains_xy(clip_ll, ll[:, 0], ll[:, 1])
    order = np.argsort(ids)
    ids, ll, inside = ids[order], ll[order], inside[order]
    count = np.fromiter((len(r) for _, r, _ in ways), dtype=np.int64, count=len(ways))
    refs = np.fromiter(itertools.chain.from_iterable(r for _, r, _ in ways), dtype=np.int64,
                       count=int(count.sum()))
    pos = np.searchsorted(ids, refs)
    # consecutive refs of one way: every pair but the one across two ways
    way_of = np.repeat(np.arange(len(ways), dtype=np.int32), count)
    a, b = pos[:-1], pos[1:]
    ok = (way_of[:-1] == way_of[1:]) & (a != b) & inside[a] & inside[b]
    a, b, way = a[ok], b[ok], way_of[:-1][ok]
    used = np.zeros(len(ids), dtype=bool)
    used[a] = used[b] = True
    new = np.cumsum(used) - 1
    lon, lat = ll[used, 0], ll[used, 1]
    u, v = new[a].astype(np.int32), new[b].astype(np.int32)
    length = _great_circle_m(lon[u], lat[u], lon[v], lat[v])
    x, y = pyproj.Transformer.from_crs(WGS84, crs, always_xy=True).transform(lon, lat)
    return WalkWays(node_id=ids[used], lon=lon, lat=lat, x=np.asarray(x, dtype=np.float64),
                    y=np.asarray(y, dtype=np.float64), u=u, v=v, length_m=length, way=way,
                    way_id=np.fromiter((w for w, _, _ in ways), dtype=np.int64,
                                       count=len(ways)),
                    highway=np.array([t.get("highway") for _, _, t in ways], dtype=object),
                    name=np.array([t.get("name") for _, _, t in ways], dtype=object), crs=crs)
