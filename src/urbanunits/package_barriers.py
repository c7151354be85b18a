"""Hard barriers a renewal package may not cross (rivers, rail, major roads) and their sides.

:func:`hard_barriers` picks the barrier features from the OSM layers; :func:`barrier_sides` cuts
the plane along them into land faces, so that two communities on different faces are never put in
one package (:func:`urbanunits.package_clusters.link_graph`).

All geometry work happens in the run's metric CRS (metres).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from urbanunits.crs import require_projected
from urbanunits.errors import ConfigError
from urbanunits.layers import line_flag

if TYPE_CHECKING:
    from urbanunits.layers import OSMLayers

__all__ = ["barrier_sides", "hard_barriers"]

logger = logging.getLogger(__name__)

_WATERWAYS = {"river", "canal"}
_WATER_KINDS = {"river", "canal", "riverbank"}
_RAILWAYS = {"rail", "light_rail", "narrow_gauge"}
_ROADS = {"motorway", "trunk", "primary"}


def hard_barriers(layers: OSMLayers, *, kinds: Sequence[str]) -> gpd.GeoDataFrame:
    """Hard barriers a package may not cross, from the OSM layers.

    Parameters
    ----------
    layers
        Parsed OSM layers.
    kinds
        Any of ``"river"`` (``waterway=river|canal`` lines not in culverts/tunnels, plus water
        polygons tagged river/canal/riverbank or crossed by such a line — ponds are not
        barriers), ``"rail"`` (surface ``rail``/``light_rail``/``narrow_gauge``; metro in tunnels
        is not), ``"motorway"``, ``"trunk"``, ``"primary"`` (surface roads of that class).

    Returns
    -------
    geopandas.GeoDataFrame
        ``kind``, ``name`` and line or polygon geometry in the layers' CRS.
    """
    crs = layers.study_area.crs
    frames: list[gpd.GeoDataFrame] = []

    def surface(df: gpd.GeoDataFrame) -> NDArray[np.bool_]:
        return ~line_flag(df, "is_tunnel")

    def add(df: gpd.GeoDataFrame, kind: str) -> None:
        if not df.empty:
            frames.append(gpd.GeoDataFrame({"kind": kind, "name": df["name"].astype(object)},
                                           geometry=df.geometry.values, crs=crs))

    for kind in kinds:
        if kind == "river":
            ww = layers.waterways
            ww = ww[ww["waterway"].isin(_WATERWAYS) & surface(ww)]
            add(ww, "river")
            w = layers.water
            if not w.empty:
                hit = w["kind"].isin(_WATER_KINDS)
                if not ww.empty:
                    hit |= w.intersects(shapely.union_all(ww.geometry.values))
                add(w[hit], "river")
        elif kind == "rail":
            r = layers.railways
            add(r[r["railway"].isin(_RAILWAYS) & surface(r)], "rail")
        elif kind in _ROADS:
            r = layers.roads
            add(r[(r["highway"] == kind) & surface(r)], kind)
        else:
            raise ConfigError("packages.hard_barriers", f"unknown barrier class {kind!r}",
                              "use river, rail, motorway, trunk or primary")
    if not frames:
        return gpd.GeoDataFrame({"kind": [], "name": []}, geometry=gpd.GeoSeries([], crs=crs),
                                crs=crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)


def barrier_sides(geoms: gpd.GeoSeries, barriers: gpd.GeoDataFrame | None, *,
                  margin_m: float) -> tuple[NDArray[np.int64], gpd.GeoSeries]:
    """Which side of the barriers each geometry lies on.

    The barrier lines (and outlines of barrier polygons) are noded together with a frame around
    the geometries' extent (grown by ``margin_m``) and polygonised into faces; faces inside
    barrier polygons (the river itself) are dropped. Each geometry takes the face containing its
    representative point (the nearest face if that point lies on a barrier or in the water).
    Two geometries on different faces cannot be joined without crossing a barrier.

    Parameters
    ----------
    geoms
        Community geometries, metric CRS.
    barriers
        Barrier lines/polygons (:func:`hard_barriers`), same CRS; None or empty ⇒ one side.
    margin_m
        Frame margin around the extent (m).

    Returns
    -------
    numpy.ndarray
        Face index per geometry.
    geopandas.GeoSeries
        The land faces (polygons).
    """
    require_projected(geoms, "barrier_sides")
    n = len(geoms)
    if n == 0:
        return np.zeros(0, dtype=np.int64), gpd.GeoSeries([], crs=geoms.crs)
    frame = shapely.box(*geoms.total_bounds).buffer(margin_m, join_style="mitre")
    if barriers is None or barriers.empty:
        return np.zeros(n, dtype=np.int64), gpd.GeoSeries([frame], crs=geoms.crs)
    if barriers.crs != geoms.crs:
        barriers = barriers.to_crs(geoms.crs)
    bg = np.asarray(barriers.geometry.values)
    bg = bg[shapely.intersects(bg, frame)]
    polys = bg[np.isin(shapely.get_type_id(bg), [3, 6])]
    lines = np.concatenate([bg[~np.isin(shapely.get_type_id(bg), [3, 6])],
                            shapely.boundary(polys), [frame.boundary]])
    lines = shapely.intersection(lines, frame)
    noded = shapely.union_all(shapely.get_parts(lines))
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    if polys.size:
        water = shapely.union_all(polys)
        shapely.prepare(water)
        faces = faces[~shapely.contains(water, shapely.point_on_surface(faces))]
    tree = shapely.STRtree(faces)
    pts = shapely.point_on_surface(np.asarray(geoms.values))
    side = np.full(n, -1, dtype=np.int64)
    pi, fi = tree.query(pts, predicate="within")
    side[pi] = fi
    miss = np.flatnonzero(side < 0)
    if miss.size:
        qi, fj = tree.query_nearest(pts[miss], all_matches=False)
        side[miss[qi]] = fj
    return side, gpd.GeoSeries(faces, crs=geoms.crs)
