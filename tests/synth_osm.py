"""Small synthetic OSM XML extracts written by tests: a street grid plus optional layers.

Coordinates are WGS84 degrees inside the demo study area (Lujiazui), so the demo config's CRS
and categories apply. Every node and way is written explicitly; nothing comes from real data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr


@dataclass
class OSMWriter:
    """Accumulates nodes, ways and an optional ``<bounds>`` and writes OSM XML."""

    nodes: dict[int, tuple[float, float, dict[str, str]]] = field(default_factory=dict)
    ways: dict[int, tuple[list[int], dict[str, str]]] = field(default_factory=dict)
    bounds: tuple[float, float, float, float] | None = None
    _next_node: int = 1
    _next_way: int = 1

    def node(self, lon: float, lat: float, tags: dict[str, str] | None = None, *,
             nid: int | None = None) -> int:
        nid = self._next_node if nid is None else nid
        self._next_node = max(self._next_node, nid + 1)
        self.nodes[nid] = (lon, lat, tags or {})
        return nid

    def way(self, coords: Iterable[tuple[float, float]] | Sequence[int],
            tags: dict[str, str], *, closed: bool = False, wid: int | None = None) -> int:
        refs = [c if isinstance(c, int) else self.node(*c) for c in coords]
        if closed:
            refs.append(refs[0])
        wid = self._next_way if wid is None else wid
        self._next_way = max(self._next_way, wid + 1)
        self.ways[wid] = (refs, tags)
        return wid

    def box(self, x0: float, y0: float, x1: float, y1: float, tags: dict[str, str], *,
            wid: int | None = None) -> int:
        """A closed way around a lon/lat box (an area: landuse, water, building...)."""
        return self.way([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], tags, closed=True, wid=wid)

    def boxes_in_a_row(self, x0: float, y0: float, d: float,
                       tagged: dict[int, dict[str, str]]) -> None:
        """One d × d box per way id, side by side east of (x0, y0) with a box's gap between."""
        for k, (wid, tags) in enumerate(tagged.items()):
            cx = x0 + 2 * d * (k + 1)
            self.box(cx, y0, cx + d, y0 + d, tags, wid=wid)

    def write(self, path: Path) -> Path:
        def tagxml(tags: dict[str, str]) -> str:
            return "".join(f"<tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items())

        out = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
        if self.bounds is not None:
            x0, y0, x1, y1 = self.bounds
            out.append(f'<bounds minlat="{y0}" minlon="{x0}" maxlat="{y1}" maxlon="{x1}"/>')
        for nid, (x, y, tags) in sorted(self.nodes.items()):
            out.append(f'<node id="{nid}" version="1" lat="{y:.7f}" lon="{x:.7f}">'
                       f"{tagxml(tags)}</node>")
        for wid, (refs, tags) in sorted(self.ways.items()):
            nds = "".join(f'<nd ref="{r}"/>' for r in refs)
            out.append(f'<way id="{wid}" version="1">{nds}{tagxml(tags)}</way>')
        out.append("</osm>")
        path.write_text("\n".join(out), encoding="utf-8")
        return path


def street_grid(w: OSMWriter, x0: float, y0: float, x1: float, y1: float, *, n: int = 5,
                highways: Sequence[str] = ("primary", "residential", "secondary",
                                           "residential", "primary")) -> dict[tuple[int, int], int]:
    """An n×n grid of streets over a lon/lat box, sharing nodes at the crossings.

    Line ``i`` (both directions) gets ``highways[i % len(highways)]``. Returns the crossing nodes
    by (column, row).
    """
    xs = [x0 + (x1 - x0) * i / (n - 1) for i in range(n)]
    ys = [y0 + (y1 - y0) * j / (n - 1) for j in range(n)]
    grid = {(i, j): w.node(x, y) for i, x in enumerate(xs) for j, y in enumerate(ys)}
    for j in range(n):
        w.way([grid[(i, j)] for i in range(n)], {"highway": highways[j % len(highways)]})
    for i in range(n):
        w.way([grid[(i, j)] for j in range(n)], {"highway": highways[i % len(highways)]})
    return grid
