"""Can an OSM extract support the analysis? Coverage of the study area, walk network, layers.

:func:`check_extract` refuses an extract that covers too little of the study area or has no walk
network, and warns, once per missing layer, what a gap does to the results. The coverage grid is
filled during the parse (:mod:`urbanunits.sources.osm`) and measured here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from urbanunits.config import Config
from urbanunits.errors import DataError
from urbanunits.sources._extent import region_bbox_ll
from urbanunits.sources.tags import is_yes

if TYPE_CHECKING:
    from urbanunits.sources.osm import OSMLayers

__all__ = [
    "COVER_CELL_DEG",
    "COVER_REACH_M",
    "FOOT_HIGHWAYS",
    "check_extract",
    "coverage_grid_share",
    "coverage_share",
    "coverage_window",
    "data_extent",
    "refuse_extract",
    "walk_stats_of",
]

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"

# Ways a pedestrian uses away from car traffic. An extract with none of them and no sidewalk tags
# (osmnx's "drive" export, say) makes the walk network the car network.
FOOT_HIGHWAYS = frozenset({"footway", "path", "pedestrian", "steps", "corridor", "bridleway"})

# Coverage grid: nodes are counted in cells of COVER_CELL_DEG degrees over the study area, and a
# cell counts as covered when a node lies within COVER_REACH_M of it (or it is water). Long ways
# that an extract keeps whole (osmium's and Overpass's complete ways: a river, a trunk road) reach
# far beyond the area it was cut to; they cover thin strips, not the area, so neither the node
# bounding box nor the hull measures what an extract covers.
COVER_CELL_DEG = 0.001
COVER_REACH_M = 300.0


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype="object")


def data_extent(bounds: list[float], header_box: tuple[float, float, float, float] | None,
                crs: str) -> gpd.GeoDataFrame:
    """The extract's data extent in ``crs``: its ``<bounds>`` ∩ the box of its nodes.

    Each is an upper bound of the area the extract covers: nothing lies beyond the node box,
    and an extract cut to ``<bounds>`` holds beyond them only the far nodes of ways that cross
    them (osmium's and Overpass's complete ways), which widen the node box but not the bounds.
    A header box that does not overlap the nodes is ignored (a tool wrote a wrong one).
    """
    if not np.isfinite(bounds[0]):
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    box = shapely.box(*bounds)
    source = "nodes"
    if header_box is not None:
        both = box.intersection(shapely.box(*header_box))
        if not both.is_empty and both.area > 0:
            box, source = both, "bounds"
    # Densified so that the projected edges follow the meridians and parallels.
    geom = gpd.GeoSeries([shapely.segmentize(box, 0.0005)], crs=WGS84).to_crs(crs)
    x0, y0, x1, y1 = box.bounds
    return gpd.GeoDataFrame({"source": [source], "min_lon": [x0], "min_lat": [y0],
                             "max_lon": [x1], "max_lat": [y1]}, geometry=geom, crs=crs)


def walk_stats_of(G: nx.MultiDiGraph, sidewalk_ways: set[int]) -> dict[str, int]:
    """Count walk-graph edges on foot-only ways and the ways tagged with sidewalks."""
    foot = 0
    ways: set[int] = set()
    for _, _, d in G.edges(data=True):
        hw = d.get("highway")
        hws = hw if isinstance(hw, list) else [hw]
        foot += any(h in FOOT_HIGHWAYS for h in hws)
        ids = d.get("osmid")
        ways.update(i for i in (ids if isinstance(ids, list) else [ids]) if i in sidewalk_ways)
    return {"foot_edges": foot, "sidewalk_ways": len(ways)}


# --------------------------------------------------------------------------------------------
# Can the extract support the analysis?
# --------------------------------------------------------------------------------------------


def coverage_window(cfg: Config) -> tuple[float, float, float, float]:
    """The lon/lat box in which the parse counts nodes for the coverage grid.

    The study area's box grown by ``COVER_REACH_M`` (nodes just outside cover its edge).
    """

    return region_bbox_ll(cfg, margin_m=COVER_REACH_M)


def coverage_grid_share(cells: set[tuple[int, int]],
                        window: tuple[float, float, float, float] | None,
                        study_ll: BaseGeometry, extent: gpd.GeoDataFrame,
                        water: gpd.GeoDataFrame) -> float | None:
    """Share of the study area within ``COVER_REACH_M`` of a node, in water, and in the extent.

    Cells of the coverage grid are tested by their centres: a cell counts as covered when an
    occupied cell lies within the reach (a disc of cells), or its centre is in a water polygon
    (a wide river has nodes only on its banks), and its centre is inside the data extent.
    """
    from scipy import ndimage

    if window is None or extent.empty:
        return None
    x0, y0, x1, y1 = window
    nx_ = max(1, int(np.ceil((x1 - x0) / COVER_CELL_DEG)))
    ny_ = max(1, int(np.ceil((y1 - y0) / COVER_CELL_DEG)))
    occ = np.zeros((nx_, ny_), dtype=bool)
    if cells:
        ij = np.array(sorted(cells), dtype=np.intp)
        ij = ij[(ij[:, 0] < nx_) & (ij[:, 1] < ny_)]
        occ[ij[:, 0], ij[:, 1]] = True
    lat_m = 111_320.0 * COVER_CELL_DEG
    lon_m = lat_m * np.cos(np.radians((y0 + y1) / 2))
    rx, ry = int(np.ceil(COVER_REACH_M / lon_m)), int(np.ceil(COVER_REACH_M / lat_m))
    gx, gy = np.mgrid[-rx:rx + 1, -ry:ry + 1]
    disc = (gx * lon_m) ** 2 + (gy * lat_m) ** 2 <= COVER_REACH_M ** 2
    covered = ndimage.binary_dilation(occ, structure=disc)
    cx = x0 + (np.arange(nx_) + 0.5) * COVER_CELL_DEG
    cy = y0 + (np.arange(ny_) + 0.5) * COVER_CELL_DEG
    X, Y = np.meshgrid(cx, cy, indexing="ij")
    inside = shapely.contains_xy(study_ll, X, Y)
    if not inside.any():  # a study area smaller than a cell: test its centre's cell
        c = study_ll.centroid
        inside = np.zeros_like(occ)
        inside[min(nx_ - 1, int((c.x - x0) / COVER_CELL_DEG)),
               min(ny_ - 1, int((c.y - y0) / COVER_CELL_DEG))] = True
    dry = inside & ~covered
    if not water.empty and dry.any():
        # Cell centres in any water polygon (a tree query: a city's water need not be merged).
        tree = shapely.STRtree(np.asarray(water.to_crs(WGS84).geometry.values))
        where = np.flatnonzero(dry)
        hit = tree.query(shapely.points(X.ravel()[where], Y.ravel()[where]),
                         predicate="within")[0]
        covered.flat[where[np.unique(hit)]] = True
    ext = extent.to_crs(WGS84).geometry.iloc[0]
    covered &= shapely.contains_xy(ext, X, Y)
    return float(covered[inside].sum() / inside.sum())


def coverage_share(layers: OSMLayers) -> float | None:
    """Share (0–1) of the study area the extract covers (None when unknown).

    A part of the study area counts as covered when the extract has a node within
    ``COVER_REACH_M`` of it or water over it, inside the extract's ``<bounds>``.
    """
    return layers.coverage


def _extent_text(layers: OSMLayers) -> str:
    if layers.extent is None or layers.extent.empty:
        return ""
    e = layers.extent.iloc[0]
    how = "<bounds> and nodes" if e["source"] == "bounds" else "nodes"
    return (f"; its {how} span lon {e['min_lon']:.4f}–{e['max_lon']:.4f}, "
            f"lat {e['min_lat']:.4f}–{e['max_lat']:.4f}")


def refuse_extract(layers: OSMLayers, cfg: Config) -> None:
    """The errors of :func:`check_extract`."""
    path = layers.source
    share = coverage_share(layers)
    if share is not None and share < cfg.osm.min_coverage_share:
        raise DataError(path, f"the extract covers only {100 * share:.0f} % of the study area "
                        f"(has data within {COVER_REACH_M:g} m){_extent_text(layers)}; units, "
                        "packages and life circles would be drawn on missing streets",
                        "use an extract that covers the study area (urbanunits fetch or clip), "
                        "shrink study_area, or lower osm.min_coverage_share (now "
                        f"{cfg.osm.min_coverage_share:g})")
    if layers.walk.n_edges == 0:
        raise DataError(path, "no walkable way (highway=*) reaches the study area (empty walk "
                        "network)", "use an extract with the street network of the study area "
                        "(a file of boundaries, land use or buildings alone cannot be analysed)")


def check_extract(layers: OSMLayers, cfg: Config) -> list[str]:
    """Refuse an extract that cannot support the analysis; warn about missing layers.

    Errors (:class:`~urbanunits.errors.DataError` naming the file): the extract's data extent
    covers less than ``osm.min_coverage_share`` of the study area, or no walkable way reaches
    the study area (an empty walk network). Warnings, one per missing layer, say what the gap
    does to the results: no footways or sidewalks (walking measured on the car network), river
    lines without water polygons, no water, land use, buildings or named residential areas.

    Parameters
    ----------
    layers
        The parsed extract.
    cfg
        The run configuration.

    Returns
    -------
    list of str
        The warnings logged (also for tests and reports).
    """
    refuse_extract(layers, cfg)
    path = layers.source
    share = coverage_share(layers)
    notes: list[str] = []
    if share is not None and share < 0.99:
        notes.append(f"{100 * (1 - share):.0f} % of the study area has no data in the extract "
                     f"(no node within {COVER_REACH_M:g} m); units, communities and facilities "
                     "there are missing")
    ws = layers.walk_stats
    if ws and ws.get("foot_edges", 0) == 0 and ws.get("sidewalk_ways", 0) == 0:
        notes.append("no footway, path, pedestrian street or steps and no sidewalk tags (a "
                     "drive-only extract?): walking is measured on the car network, distances "
                     "run along roads only, with no short-cuts through communities or parks")
    barrier = set(cfg.units.barrier_waterways)
    ww = layers.waterways
    rivers = ww[_col(ww, "waterway").isin(["river", "canal", "stream", "drain", "ditch"])
                & ~is_yes(_col(ww, "tunnel"))] if not ww.empty else ww
    if layers.water.empty and not rivers.empty:
        kinds = sorted(set(rivers["waterway"]))
        cut = sorted(set(kinds) & barrier)
        text = (f"waterway lines ({', '.join(kinds)}) but no water polygons "
                "(natural=water, waterway=riverbank): the river surface counts as land, "
                "and the banks are separated only by the waterway line")
        if cut:
            text += f" ({', '.join(cut)} lines are unit barriers, units.barrier_waterways)"
        if set(kinds) - barrier:
            text += (f"; {', '.join(sorted(set(kinds) - barrier))} lines are not in "
                     "units.barrier_waterways, so units may span both banks")
        notes.append(text)
    elif layers.water.empty:
        notes.append("no water polygons (natural=water, waterway=riverbank): any lake or "
                     "river there counts as land in units and is no barrier")
    if layers.landuse.empty:
        notes.append("no land-use polygons: every unit's land-use shares are 0 and its class "
                     "rests on residential areas and buildings alone")
    if layers.buildings.empty:
        notes.append("no building footprints: floor areas are estimated as community area × "
                     f"packages.fallback_far ({cfg.packages.fallback_far:g})")
    if layers.residential.empty and cfg.inputs.inventory is None:
        notes.append("no named residential areas (landuse=residential with a name) and no "
                     "inputs.inventory: the packages and life-circle stages have no communities")
    for text in notes:
        logger.warning("%s: %s", path.name, text)
    return notes
