"""Brute-force walking distances with networkx: the oracle for network.py and lifecircle.py.

Written independently of the code under test: nearest edges by checking every edge, positions
with shapely's ``project``, and point-to-point distances by the explicit formula

    d(f, c) = off_f + off_c + min( |a_f - a_c|            if f and c snap to the same edge,
                                    min over ends x of f's edge, y of c's edge:
                                        end_f(x) + D(x, y) + end_c(y) )

where ``a`` is the position along the edge, ``end(x)`` the distance along the edge to end ``x``
and ``D`` networkx's node-to-node distance. A community polygon's distance is the minimum over
the nodes within the entry buffer (plus the node's distance to the polygon); with none, over
every point where an edge lies inside it (its extreme positions suffice); with no such edge, its
nearest street point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.ops import nearest_points


@dataclass
class Graph:
    """A small test network: coordinates, undirected edges with lengths."""

    xy: np.ndarray  # (n, 2)
    edges: list[tuple[int, int, float]]

    def nx(self) -> nx.Graph:
        G = nx.Graph()
        G.add_nodes_from(range(len(self.xy)))
        for u, v, w in self.edges:
            if u == v:
                continue
            if G.has_edge(u, v):
                G[u][v]["length"] = min(G[u][v]["length"], w)
            else:
                G.add_edge(u, v, length=w)
        return G

    def line(self, i: int) -> LineString:
        u, v, _ = self.edges[i]
        return LineString([self.xy[u], self.xy[v]])

    def osmnx_like(self, crs: str = "EPSG:32651") -> nx.MultiDiGraph:
        """The same network as osmnx stores it: both directions, node x/y, edge length."""
        G = nx.MultiDiGraph(crs=crs)
        for i, (x, y) in enumerate(self.xy):
            G.add_node(1000 + i, x=float(x), y=float(y))
        for u, v, w in self.edges:
            G.add_edge(1000 + u, 1000 + v, length=w)
            G.add_edge(1000 + v, 1000 + u, length=w)
        return G


@dataclass
class Attach:
    """Where a geometry meets the network (None: not snapped)."""

    edge: int
    along: float  # metres from the edge's u end, in edge-length units
    offset: float


def island_nodes(g: Graph, min_component_nodes: int) -> set[int]:
    """Nodes of pieces smaller than ``min_component_nodes`` that are not the largest piece."""
    pieces = [set(c) for c in nx.connected_components(g.nx())]
    biggest = max((len(c) for c in pieces), default=0)
    return {n for c in pieces if len(c) < min_component_nodes and len(c) < biggest for n in c}


def attach(g: Graph, geom: shapely.Geometry, max_snap_m: float,
           min_component_nodes: int = 1) -> Attach | None:
    """Nearest edge by measuring to every edge; nearest point on it; its position.

    When that edge is on an island, the nearest edge off the islands wins if it is within
    ``max_snap_m`` too.
    """
    if not g.edges:
        return None
    lines = shapely.linestrings([[g.xy[u], g.xy[v]] for u, v, _ in g.edges])
    d = shapely.distance(lines, geom)
    d[[u == v for u, v, _ in g.edges]] = np.inf
    best = int(np.argmin(d))
    if not np.isfinite(d[best]) or d[best] > max_snap_m:
        return None
    islands = island_nodes(g, min_component_nodes)
    if g.edges[best][0] in islands:
        main = d.copy()
        main[[u in islands for u, _, _ in g.edges]] = np.inf
        alt = int(np.argmin(main))
        if np.isfinite(main[alt]) and main[alt] <= max_snap_m:
            best = alt
    line = g.line(best)
    on_line = nearest_points(geom, line)[1]
    frac = line.project(on_line) / line.length if line.length > 0 else 0.0
    return Attach(best, frac * g.edges[best][2], float(d[best]))


def point_to_point(g: Graph, D: dict[int, dict[int, float]], f: Attach, c: Attach) -> float:
    """Network distance between two attachments (formula in the module docstring)."""
    uf, vf, lf = g.edges[f.edge]
    uc, vc, lc = g.edges[c.edge]
    best = abs(f.along - c.along) if f.edge == c.edge else math.inf
    for x, ex in ((uf, f.along), (vf, lf - f.along)):
        for y, ey in ((uc, c.along), (vc, lc - c.along)):
            dxy = D.get(x, {}).get(y, math.inf)
            best = min(best, ex + dxy + ey)
    return f.offset + c.offset + best


def point_to_node(g: Graph, D: dict[int, dict[int, float]], f: Attach, node: int) -> float:
    """Network distance from an attachment to a node."""
    u, v, length = g.edges[f.edge]
    return f.offset + min(f.along + D.get(u, {}).get(node, math.inf),
                          length - f.along + D.get(v, {}).get(node, math.inf))


def community_distance(g: Graph, D: dict[int, dict[int, float]], facilities: list[Attach | None],
                       community: shapely.Geometry, *, entry_buffer_m: float,
                       max_snap_m: float, min_component_nodes: int = 1) -> float:
    """Distance from a community (polygon or point) to the nearest facility; inf if none.

    With islands (see :func:`island_nodes`), a community is entered off the islands when it can
    be (its nodes, the streets crossing it, its snap within ``max_snap_m``); otherwise as if
    there were no islands.
    """
    fac = [f for f in facilities if f is not None]
    if not fac:
        return math.inf
    islands = island_nodes(g, min_component_nodes)
    if community.geom_type != "Point":
        pts = shapely.points(g.xy)
        linked = {n for n, deg in g.nx().degree() if deg > 0}
        entries = [(i, community.distance(p)) for i, p in enumerate(pts)
                   if i in linked and i not in islands
                   and community.distance(p) <= entry_buffer_m]
        if entries:
            return min(point_to_node(g, D, f, i) + off for i, off in entries for f in fac)
        crossings = []
        for i, (u, v, length) in enumerate(g.edges):
            if u == v or u in islands:
                continue
            line = g.line(i)
            inside = line.intersection(community)
            if inside.is_empty:
                continue
            pos = [line.project(shapely.Point(xy)) / line.length * length
                   for xy in shapely.get_coordinates(inside)]
            crossings += [Attach(i, min(pos), 0.0), Attach(i, max(pos), 0.0)]
        if crossings:
            return min(point_to_point(g, D, f, c) for c in crossings for f in fac)
    c = attach(g, community, max_snap_m, min_component_nodes)
    if islands and (c is None or g.edges[c.edge][0] in islands):
        return community_distance(g, D, facilities, community, entry_buffer_m=entry_buffer_m,
                                  max_snap_m=max_snap_m, min_component_nodes=1)
    if c is None:
        return math.inf
    return min(point_to_point(g, D, f, c) for f in fac)


def all_pairs(g: Graph) -> dict[int, dict[int, float]]:
    return dict(nx.all_pairs_dijkstra_path_length(g.nx(), weight="length"))


def distances_from(g: Graph, attachments: list[Attach | None]) -> dict[int, dict[int, float]]:
    """Node-to-node distances from the ends of the attachments' edges only (big graphs)."""
    G = g.nx()
    ends = {n for a in attachments if a is not None for n in g.edges[a.edge][:2]}
    return {n: nx.single_source_dijkstra_path_length(G, n, weight="length") for n in ends}
