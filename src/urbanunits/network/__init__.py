"""Walk network as a sparse matrix: snapping and multi-source shortest paths.

The osmnx walk graph is converted once into a symmetric CSR matrix (metres, the minimum over
parallel edges and both directions). Distances come from
:func:`scipy.sparse.csgraph.dijkstra` with ``min_only=True``: one search from *all* facilities of
a kind at once gives every node's distance to the nearest of them, so the cost is one graph
traversal per facility kind, not one per facility or per community. The searches run on the nodes
renumbered along a Hilbert curve (:attr:`WalkNetwork.search_csr`): nodes near each other on the
ground are near each other in memory, which makes a search 10–20 % faster than in a grid's row
order and up to twice as fast as in a shuffled one (OSM ids can be close to that); callers
see node positions as given.

Snapping
--------
Points are snapped to the nearest **edge** (not the nearest node), found exactly by vectorised
point-to-segment projection over a k-d tree of the edges' segments (``_segments.py``; shapely
only for polygons, on their few candidate edges).
Even in the unsimplified graph a straight street is one edge between two junctions, often
100–300 m long, so node snapping would add up to half of that to a 300 m standard. Each snapped
point becomes a virtual node on its edge (points on the same edge are chained in order along
it, so two points on one street see each other directly) plus a pendant node joined to it by
the straight-line snap distance; a point at an end of its edge uses that node instead of a
virtual one. Pendant nodes have degree one, so no path runs through them, and a search started
at a facility's pendant node already includes its snap distance.

Points farther than ``max_snap_m`` from every edge are not snapped: they are *unreachable*
(``NaN`` distances, reported), never 0 m. Nodes in another connected piece of the network than
every source get ``inf`` from scipy, which callers turn into ``NaN``.
"""

from urbanunits.network.entries import (
    Access,
    Entries,
    community_access,
    min_over_entries,
    polygon_entries,
)
from urbanunits.network.graph import WalkNetwork
from urbanunits.network.router import Router
from urbanunits.network.snap import Snap, crossing_snaps, snap_component_nodes, snap_to_edges

__all__ = [
    "Access",
    "Entries",
    "Router",
    "Snap",
    "WalkNetwork",
    "community_access",
    "crossing_snaps",
    "min_over_entries",
    "polygon_entries",
    "snap_component_nodes",
    "snap_to_edges",
]
