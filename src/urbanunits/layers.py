"""The parsed inputs' container, shared by the readers that fill it and the stages that read it.

:class:`OSMLayers` lives here, not in :mod:`urbanunits.sources`, so that a stage can take it
without importing a reader. What an OSM tag means (a tunnel, a bridge) is decided once, by the
ingest (:mod:`urbanunits.sources.tags`), and reaches the stages as typed columns read with
:func:`line_flag`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from urbanunits.errors import DataError

if TYPE_CHECKING:  # the ingest builds them; a stage only reads the attribute
    from urbanunits.network.graph import WalkNetwork
    from urbanunits.sources.walk import WalkWays

__all__ = ["LINE_FLAGS", "OSMLayers", "line_flag"]

#: Boolean columns of the line layers and the OSM tag each is read from (by
#: :func:`urbanunits.sources.tags.flag_lines`).
LINE_FLAGS: dict[str, str] = {"is_tunnel": "tunnel", "is_bridge": "bridge"}


def line_flag(lines: pd.DataFrame, name: str) -> NDArray[np.bool_]:
    """A line layer's boolean flag (``is_tunnel``, ``is_bridge``) as an array.

    Parameters
    ----------
    lines
        A line layer of :class:`OSMLayers`.
    name
        A key of :data:`LINE_FLAGS`.

    Returns
    -------
    numpy.ndarray
        The flag per row. A frame without the flag and without its tag column has no such
        lines (all False).

    Raises
    ------
    DataError
        The frame has the raw tag but not the flag: it was built by hand, not by the ingest.
    """
    if name in lines.columns:
        return lines[name].fillna(False).astype(bool).to_numpy()
    tag = LINE_FLAGS[name]
    if tag in lines.columns and lines[tag].notna().any():
        raise DataError("OSM line layer", f"has {tag!r} tags but no {name!r} column",
                        "read the layers with urbanunits.sources.read_osm, or add the flags "
                        "with urbanunits.sources.tags.flag_lines")
    return np.zeros(len(lines), dtype=bool)


@dataclass
class OSMLayers:
    """Layers parsed from one OSM extract, in the run's metric CRS.

    Attributes
    ----------
    study_area
        One-row GeoDataFrame: the study-area polygon.
    walk
        The walk network as arrays (:class:`~urbanunits.sources.walk.WalkWays`), reaching
        ``osm.graph_margin_m`` beyond the study area; :attr:`walk_network` and
        :attr:`walk_graph` are built from it.
    roads, railways, waterways
        Lines with ``osm_id``, the OSM class (``highway``/``railway``/``waterway``), ``name``,
        ``bridge``, ``tunnel`` and ``layer`` as tagged, and the flags stages read instead of
        those tags: ``is_tunnel`` and ``is_bridge`` (bool, set by
        :func:`urbanunits.sources.tags.flag_lines`).
    water
        Water polygons (``osm_id``, ``kind``, ``name``).
    landuse
        Land-use polygons with ``luclass`` in residential, commercial, industrial, green, public.
    residential
        Named residential areas (communities) touching the study area, whole: ``osm_id``, ``name``,
        ``start_date``, ``building_age``, geometry.
    buildings
        Footprints with ``levels``, ``levels_tagged`` and the ``elevator`` tag (yes/no/None),
        whole, within the margin.
    pois
        Every tagged feature useful as a facility, as points (polygons → representative points)
        within the margin: ``osm_id``, ``name`` and the amenity/shop/healthcare/social_facility
        tags.
    facilities
        ``pois`` classified by the config's life-circle categories: ``category``, ``subtype``,
        ``name``, ``source`` (``"osm"``), ``osm_id``.
    sites
        Polygons touching the study area that could host a new facility (sites stage):
        ``osm_id``, ``name``, ``kind`` (``vacant``: vacant, disused or abandoned buildings and
        brownfield/greenfield land; ``public``: public and government buildings; ``parking``:
        surface car parks, ``parking=surface`` or untagged), ``is_building``, ``levels``.
    historic
        Features tagged ``historic`` or ``heritage`` (polygons and points) and heritage
        protected areas: ``osm_id``, ``name``, ``historic`` (the ``historic`` value, else the
        ``heritage`` one, else ``protected_area``) and ``designated`` (bool): a polygon that is a
        designated conservation area (``historic=district``, any ``heritage=*``, or
        ``boundary=protected_area`` with ``protect_class=22`` or ``heritage=*``). Only
        designated areas can make a unit historic conservation; the rest (memorials, statues,
        plaques) are counted.
    admin
        Administrative boundary polygons with ``admin_level`` and ``name``.
    source
        The file read.
    facilities
        ``pois`` classified by the config's life-circle categories (set by
        :func:`~urbanunits.sources.osm.read_osm`).
    extent
        One-row GeoDataFrame (metric CRS): the extract's data extent, its ``<bounds>`` (when the
        header has them) intersected with the box of its nodes. Empty when unknown.
    walk_stats
        ``foot_edges`` (walk-graph edges on footways, paths, steps...) and ``sidewalk_ways``
        (walkable ways with a sidewalk tag), for the drive-only check.
    coverage
        Share (0–1) of the study area the extract covers, or None when unknown (see
        :func:`~urbanunits.sources._checks.coverage_grid_share`).
    """

    study_area: gpd.GeoDataFrame
    walk: WalkWays
    roads: gpd.GeoDataFrame
    railways: gpd.GeoDataFrame
    waterways: gpd.GeoDataFrame
    water: gpd.GeoDataFrame
    landuse: gpd.GeoDataFrame
    residential: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    pois: gpd.GeoDataFrame
    historic: gpd.GeoDataFrame
    admin: gpd.GeoDataFrame
    source: Path
    facilities: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)
    extent: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)
    walk_stats: dict[str, int] = field(default_factory=dict)
    coverage: float | None = None
    sites: gpd.GeoDataFrame = field(default_factory=gpd.GeoDataFrame)

    @property
    def walk_network(self) -> WalkNetwork:
        """The walk network for the searches, built from the arrays once (no graph)."""
        return self.walk.network()

    @property
    def walk_graph(self) -> nx.MultiDiGraph:
        """Projected osmnx MultiDiGraph of walkable ways (edge ``length`` in metres).

        Built from :attr:`walk` on first use (notebooks, networkx checks): the stages do not
        need it.
        """
        return self.walk.graph()

    def summary(self) -> dict[str, int]:
        """Row counts per layer (nodes/edges for the graph)."""
        out = {"walk_nodes": self.walk.n_nodes, "walk_edges": self.walk.n_edges}
        for name in ("roads", "railways", "waterways", "water", "landuse", "residential",
                     "buildings", "pois", "facilities", "historic", "admin", "sites"):
            out[name] = len(getattr(self, name))
        return out
