"""Offline OpenStreetMap ingest: one pass over an extract into every layer the stages need.

The extract (``.osm``, ``.osm.bz2``, ``.osm.gz`` or ``.osm.pbf``) is read once with pyosmium,
which assembles ways and multipolygon/boundary relations into areas. Everything is projected to the
config's metric CRS and clipped to the study area; communities, buildings and facilities
are kept whole within ``osm.graph_margin_m`` of it. The walk graph follows osmnx's
``network_type="walk"`` semantics, built and projected with osmnx (topological simplification is
optional, ``osm.simplify_walk_graph``).

Parsed layers are cached (:mod:`.osm_cache`) under ``<output.dir>/cache`` keyed by the SHA-256
of the extract (and of the study-area boundary file) and the config sections that affect parsing,
so a second run skips the parse. The cache is a GeoPackage of data only, checked on read
(:mod:`._cache`): a cache file from someone else cannot run code, and a damaged one is ignored
with a warning and parsed again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from urbanunits._progress import progress
from urbanunits.config import Config
from urbanunits.errors import ConfigError, DataError, InputFileError
from urbanunits.layers import OSMLayers
from urbanunits.sources._checks import (
    COVER_CELL_DEG,
    FOOT_HIGHWAYS,
    check_extract,
    coverage_grid_share,
    coverage_share,
    coverage_window,
    data_extent,
    refuse_extract,
    walk_stats_of,
)
from urbanunits.sources.classify import tag_rules
from urbanunits.sources.osm_cache import (
    classified_facilities,
    parse_key,
    prune_caches,
    read_parsed,
    write_parsed,
)
from urbanunits.sources.study_area import study_area_polygon
from urbanunits.sources.tags import flag_lines
from urbanunits.sources.walk import walk_ways

__all__ = [
    "FOOT_HIGHWAYS",
    "OSMLayers",
    "check_extract",
    "coverage_share",
    "is_walkable",
    "read_osm",
    "study_area_polygon",
]

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"
OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf", ".osc")

# Tags kept on features; the rest are dropped to keep layers (and the cache) small.
_KEEP_TAGS = (
    "name", "name:zh", "highway", "railway", "waterway", "natural", "water", "landuse", "leisure",
    "amenity", "shop", "healthcare", "social_facility", "social_facility:for", "building",
    "building:levels", "building:age", "start_date", "height", "historic", "heritage", "tourism",
    "boundary", "admin_level", "protect_class", "place", "bridge", "tunnel", "layer", "area",
    "service", "ref:NBS", "ref", "addr:street", "office", "elevator",
    # candidate sites for new facilities (layer ``sites``)
    "disused", "abandoned", "vacant", "parking", "government",
)
#: Lifecycle prefixes (disused:amenity=school…): kept as one flag, ``disused:*``.
_DISUSED_PREFIXES = ("disused:", "abandoned:")

# Mirrors osmnx's network_type="walk" filter (osmnx._overpass._get_network_filter, osmnx 2.x),
# which osmnx applies only to Overpass queries, not to files. Overpass `!~` is a regex search.
_WALK_EXCLUDE = {
    "highway": re.compile(r"abandoned|bus_guideway|construction|cycleway|motor|no|planned|"
                          r"platform|proposed|raceway|razed|rest_area|services"),
    "area": re.compile(r"yes"),
    "access": re.compile(r"private"),
    "foot": re.compile(r"no"),
    "service": re.compile(r"private"),
    "sidewalk": re.compile(r"separate"),
    "sidewalk:both": re.compile(r"separate"),
    "sidewalk:left": re.compile(r"separate"),
    "sidewalk:right": re.compile(r"separate"),
}


_SIDEWALK_KEYS = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")
_NO_SIDEWALK = frozenset({"no", "none", "separate"})

_WATER_AREA = {("natural", "water"), ("waterway", "riverbank"), ("landuse", "reservoir"),
               ("landuse", "basin"), ("waterway", "dock")}

LANDUSE_CLASSES: dict[str, dict[str, set[str]]] = {
    "residential": {"landuse": {"residential"}},
    "commercial": {"landuse": {"commercial", "retail"}, "shop": {"mall", "department_store"},
                   "amenity": {"marketplace"}},
    "industrial": {"landuse": {"industrial", "railway", "port", "depot", "warehouse"}},
    "green": {"landuse": {"grass", "forest", "recreation_ground", "meadow", "village_green",
                          "park", "orchard", "farmland", "cemetery"},
              "leisure": {"park", "garden", "pitch", "playground", "nature_reserve",
                          "golf_course", "common", "sports_centre", "stadium"},
              "natural": {"wood", "scrub", "grassland", "heath", "wetland"}},
    "public": {"amenity": {"school", "university", "college", "hospital", "kindergarten",
                           "townhall", "library", "community_centre", "police"},
               "landuse": {"education", "institutional", "religious", "military"}},
}


# --------------------------------------------------------------------------------------------
# Study area
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def is_walkable(tags: dict[str, str]) -> bool:
    """Whether a way belongs to osmnx's ``walk`` network (see ``_WALK_EXCLUDE``)."""
    if "highway" not in tags:
        return False
    return not any(k in tags and rx.search(tags[k]) for k, rx in _WALK_EXCLUDE.items())


def _wanted_area(tags: Any) -> bool:
    return any(k in tags for k in ("landuse", "leisure", "natural", "building", "amenity", "shop",
                                   "healthcare", "social_facility", "historic", "heritage",
                                   "boundary", "place", "tourism")) or (
        tags.get("waterway") in {"riverbank", "dock"})


def _wanted_node(tags: Any) -> bool:
    return any(k in tags for k in ("amenity", "shop", "healthcare", "social_facility",
                                   "historic", "heritage", "leisure"))


class _Collector:
    """Accumulates WKB geometries and kept tags during the single osmium pass."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, dict[str, str], bytes]] = []
        self.areas: list[tuple[str, int, dict[str, str], bytes]] = []
        self.points: list[tuple[int, dict[str, str], bytes]] = []
        self.walk_nodes: dict[int, tuple[float, float]] = {}
        self.walk_ways: list[tuple[int, list[int], dict[str, str]]] = []
        self.n_nodes = 0
        self.n_ways = 0
        self.bounds = [np.inf, np.inf, -np.inf, -np.inf]
        self.header_box: tuple[float, float, float, float] | None = None
        self.sidewalk_ways: set[int] = set()
        self.window: tuple[float, float, float, float] | None = None  # coverage grid, lon/lat
        self.cells: set[tuple[int, int]] = set()


#: Tags of a line that its layers read (``roads``, ``railways``, ``waterways``): a city has
#: hundreds of thousands of highway ways, so only these are copied (by key, not by scanning
#: every tag of the way).
_LINE_TAGS = ("highway", "name", "railway", "waterway", "bridge", "tunnel", "layer")
#: The walk filter's keys (see ``_walk_check``), and where the sidewalk keys are among them.
_WALK_KEYS = ("highway", *(k for k in _WALK_EXCLUDE if k != "highway"))
_WALK_RX = tuple(_WALK_EXCLUDE[k] for k in _WALK_KEYS)
_SIDEWALK_AT = tuple(_WALK_KEYS.index(k) for k in _SIDEWALK_KEYS)
_NO_WALK_TAGS: tuple[None, ...] = (None,) * (len(_WALK_KEYS) - 1)


def _walk_check(values: tuple[str | None, ...], memo: dict[tuple[str | None, ...],
                tuple[bool, bool]]) -> tuple[bool, bool]:
    """Whether a highway way with these ``_WALK_KEYS`` values is walkable, and has sidewalks.

    Ways repeat a few tag combinations, so the regexes run once per combination (``memo``).
    """
    hit = memo.get(values)
    if hit is None:
        walkable = not any(v is not None and rx.search(v)
                           for v, rx in zip(values, _WALK_RX, strict=True))
        sidewalk = any(("no" if values[i] is None else values[i]) not in _NO_SIDEWALK
                       for i in _SIDEWALK_AT)
        hit = memo[values] = (walkable, sidewalk)
    return hit


def _keep(tags: Any) -> dict[str, str]:
    out = {k: tags[k] for k in _KEEP_TAGS if k in tags}
    if any(t.k.startswith(_DISUSED_PREFIXES) for t in tags):
        out["disused:*"] = "yes"
    return out


def _parse(path: Path, window: tuple[float, float, float, float] | None = None) -> _Collector:
    fab = osmium.geom.WKBFactory()
    col = _Collector()
    col.window = window
    wx0, wy0, wx1, wy1 = window or (np.inf, np.inf, -np.inf, -np.inf)
    cells = col.cells
    walk_nodes = col.walk_nodes
    walk_memo: dict[tuple[str | None, ...], tuple[bool, bool]] = {}
    proc = osmium.FileProcessor(str(path)).with_locations().with_areas()
    box = proc.header.box()
    if box.valid():
        # <bounds> of an Overpass/osmium/JOSM extract: the area it was cut to.
        col.header_box = (box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon,
                          box.top_right.lat)
    # Node locations are gathered in chunks and reduced with numpy (extent, coverage cells):
    # a per-node min/max and set insertion in Python costs more than reading the node.
    lons: list[float] = []
    lats: list[float] = []

    def reduce_nodes() -> None:
        if not lons:
            return
        x, y = np.array(lons), np.array(lats)
        b = col.bounds
        b[:] = [min(b[0], float(x.min())), min(b[1], float(y.min())), max(b[2], float(x.max())),
                max(b[3], float(y.max()))]
        inside = (wx0 <= x) & (x <= wx1) & (wy0 <= y) & (y <= wy1)
        if inside.any():
            ij = np.unique(np.column_stack([((x[inside] - wx0) / COVER_CELL_DEG).astype(np.int64),
                                            ((y[inside] - wy0) / COVER_CELL_DEG).astype(np.int64)]),
                           axis=0)
            cells.update(zip(ij[:, 0].tolist(), ij[:, 1].tolist(), strict=True))
        lons.clear()
        lats.clear()

    seen = 0
    with progress(desc=f"reading {path.name}", unit=" objects", unit_scale=True) as bar:
        for obj in proc:
            seen += 1
            if not seen & 0xFFFF:  # a bar update per object would cost as much as the node
                bar.update(0x10000)
                reduce_nodes()
            if isinstance(obj, osmium.osm.Node):
                col.n_nodes += 1
                loc = obj.location
                if loc.valid():
                    lons.append(loc.lon)
                    lats.append(loc.lat)
                if len(obj.tags) and _wanted_node(obj.tags) and loc.valid():
                    col.points.append((obj.id, _keep(obj.tags),
                                       bytes.fromhex(fab.create_point(obj))))
            elif isinstance(obj, osmium.osm.Way):
                col.n_ways += 1
                tags = obj.tags
                if not len(tags):
                    continue
                kept = {}
                left = len(tags)
                for k in _LINE_TAGS:  # stops once every tag of the way is found
                    v = tags.get(k)
                    if v is not None:
                        kept[k] = v
                        left -= 1
                        if not left:
                            break
                if "highway" in kept:
                    # when every tag is a line tag, the filter's other keys are absent
                    values = ((kept["highway"], *_NO_WALK_TAGS) if len(kept) == len(tags)
                              else tuple(tags.get(k) for k in _WALK_KEYS))
                    walkable, sidewalk = _walk_check(values, walk_memo)
                    if walkable:
                        refs = []
                        for n in obj.nodes:
                            loc = n.location
                            if loc.valid():
                                walk_nodes[n.ref] = (loc.lon, loc.lat)
                                refs.append(n.ref)
                        if len(refs) >= 2:
                            col.walk_ways.append((obj.id, refs, kept))
                            if sidewalk:
                                col.sidewalk_ways.add(obj.id)
                if ("highway" in kept or "railway" in kept or "waterway" in kept
                        or tags.get("natural") == "coastline"):
                    try:
                        wkb = fab.create_linestring(obj)
                    except (osmium.InvalidLocationError, RuntimeError):
                        continue
                    col.lines.append((obj.id, kept, bytes.fromhex(wkb)))
            elif isinstance(obj, osmium.osm.Area):
                tags = obj.tags
                if not _wanted_area(tags):
                    continue
                try:
                    wkb = fab.create_multipolygon(obj)
                except (osmium.InvalidLocationError, RuntimeError):
                    continue
                kind = "way" if obj.from_way() else "relation"
                col.areas.append((kind, obj.orig_id(), _keep(tags), bytes.fromhex(wkb)))
        bar.update(seen & 0xFFFF)
    reduce_nodes()
    return col


def _frame(rows: Iterable[tuple[Any, ...]], *, id_pos: int, tag_pos: int, wkb_pos: int,
           kind_pos: int | None = None) -> gpd.GeoDataFrame:
    rows = list(rows)
    if not rows:
        # The same identifying columns as a non-empty frame: an extract without closed areas
        # (a drive-only export) must not fail later on a missing ``osm_type``.
        cols = {"osm_id": pd.Series(dtype="int64")}
        if kind_pos is not None:
            cols = {"osm_type": pd.Series(dtype="object"), **cols}
        return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=WGS84), crs=WGS84)
    tags = pd.DataFrame([r[tag_pos] for r in rows])
    tags.insert(0, "osm_id", [r[id_pos] for r in rows])
    if kind_pos is not None:
        tags.insert(0, "osm_type", [r[kind_pos] for r in rows])
    geom = shapely.from_wkb([r[wkb_pos] for r in rows])
    return gpd.GeoDataFrame(tags, geometry=geom, crs=WGS84)


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype="object")


def _levels(df: pd.DataFrame, default: float) -> tuple[pd.Series, pd.Series]:
    lv = pd.to_numeric(_col(df, "building:levels").astype("string").str.extract(
        r"(\d+(?:\.\d+)?)")[0], errors="coerce")
    h = pd.to_numeric(_col(df, "height").astype("string").str.extract(r"(\d+(?:\.\d+)?)")[0],
                      errors="coerce")
    lv = lv.fillna((h / 3.0).round())
    tagged = lv.notna() & (lv > 0)
    return lv.where(tagged, default).astype(float), tagged


def _luclass(df: pd.DataFrame) -> pd.Series:
    out = pd.Series([None] * len(df), index=df.index, dtype="object")
    for cls, rules in LANDUSE_CLASSES.items():
        for key, values in rules.items():
            if key in df.columns:
                hit = df[key].isin(values) & out.isna()
                out[hit] = cls
    return out


def _clip(gdf: gpd.GeoDataFrame, area: BaseGeometry, *,
          keep_whole: bool = False) -> gpd.GeoDataFrame:
    if gdf.empty:
        return gdf
    shapely.prepare(area)
    geoms = gdf.geometry.values
    hit = shapely.intersects(area, geoms)
    gdf = gdf[hit].copy()
    if not keep_whole and not gdf.empty:
        # The same result as intersecting every feature with the area, for less: most features
        # lie inside it, where the overlay only normalises them (splits a line that touches
        # itself, rebuilds rings), which an overlay with a far box does with 4 edges instead of
        # the area's hundreds, and leaves a simple line as it is.
        geoms = gdf.geometry.values.copy()
        inside = shapely.contains_properly(area, geoms)
        as_is = inside & (shapely.get_type_id(geoms) == 1) & shapely.is_simple(geoms)
        boxed = inside & ~as_is
        if boxed.any():
            x0, y0, x1, y1 = area.bounds
            far = max(x1 - x0, y1 - y0, 1.0)
            box = shapely.box(x0 - far, y0 - far, x1 + far, y1 + far)
            geoms[boxed] = shapely.intersection(geoms[boxed], box)
        geoms[~inside] = shapely.intersection(geoms[~inside], area)
        gdf["geometry"] = geoms
        gdf = gdf[~gdf.geometry.is_empty]
    return gdf.reset_index(drop=True)


def _layers_from(col: _Collector, cfg: Config, path: Path) -> OSMLayers:
    crs = cfg.study_area.crs
    sa = study_area_polygon(cfg)
    area = sa.geometry.iloc[0]
    margin = cfg.osm.graph_margin_m
    area_ll = gpd.GeoSeries([area.buffer(margin)], crs=crs).to_crs(WGS84).iloc[0]
    data_box = shapely.box(*col.bounds) if np.isfinite(col.bounds[0]) else None
    study_ll = gpd.GeoSeries([area], crs=crs).to_crs(WGS84).iloc[0]
    if data_box is None or not data_box.intersects(study_ll):
        ext = ("no located nodes" if data_box is None else
               "data extent " + ", ".join(f"{v:.4f}" for v in col.bounds))
        raise DataError(path, f"the study area does not overlap the data ({ext})",
                        "fix study_area.bbox/boundary in the config or use an extract that "
                        "covers it")

    walk = walk_ways(col.walk_nodes, col.walk_ways, area_ll, crs)
    if cfg.osm.simplify_walk_graph and len(walk.u):
        walk = walk.simplify()
    extent = data_extent(col.bounds, col.header_box, crs)
    walk_stats = (walk_stats_of(walk.simplified, col.sidewalk_ways) if walk.simplified
                  is not None else {"foot_edges": walk.foot_edges(FOOT_HIGHWAYS),
                                    "sidewalk_ways": walk.sidewalk_ways(col.sidewalk_ways)})

    lines = _frame(col.lines, id_pos=0, tag_pos=1, wkb_pos=2).to_crs(crs)
    buffered = area.buffer(max(50.0, cfg.units.snap_tolerance_m * 4))
    lines = _clip(lines, buffered)
    common = ["osm_id", "name", "bridge", "tunnel", "layer"]

    def pick(key: str) -> gpd.GeoDataFrame:
        sub = lines[_col(lines, key).notna()] if key in lines.columns else lines.iloc[0:0]
        out = gpd.GeoDataFrame({c: _col(sub, c) for c in [*common, key]}, geometry=sub.geometry,
                               crs=crs)
        return flag_lines(out.reset_index(drop=True))

    roads, railways, waterways = pick("highway"), pick("railway"), pick("waterway")

    areas = _frame(col.areas, id_pos=1, tag_pos=2, wkb_pos=3, kind_pos=0).to_crs(crs)
    areas["geometry"] = shapely.make_valid(areas.geometry.values)
    areas = areas[areas.geometry.geom_type.isin(["Polygon", "MultiPolygon", "GeometryCollection"])]
    areas["geometry"] = areas.geometry.apply(_polygonal)
    areas = areas[~areas.geometry.is_empty]
    admin_all = areas[(_col(areas, "boundary") == "administrative")]
    # Communities, their buildings and facilities are kept whole and a margin beyond the study area:
    # a community cut by the edge would lose its floor area, and a community near the edge walks to
    # facilities outside it (the walk graph reaches graph_margin_m beyond the area too).
    reach = area.buffer(margin)
    whole = _clip(areas, reach, keep_whole=True)
    areas = _clip(areas, area)

    def has_in(df: pd.DataFrame, key: str, values: set[str] | None = None) -> pd.Series:
        c = _col(df, key)
        return c.isin(values) if values else c.notna()

    def has(key: str, values: set[str] | None = None) -> pd.Series:
        return has_in(areas, key, values)

    is_water = pd.Series(False, index=areas.index)
    for k, v in _WATER_AREA:
        is_water |= _col(areas, k) == v
    water = gpd.GeoDataFrame({"osm_id": areas.loc[is_water, "osm_id"],
                              "kind": _col(areas, "water")[is_water].fillna(
                                  _col(areas, "natural")[is_water]),
                              "name": _col(areas, "name")[is_water]},
                             geometry=areas.geometry[is_water], crs=crs).reset_index(drop=True)

    luc = _luclass(areas)
    lu_mask = luc.notna() & ~has("building")
    landuse = gpd.GeoDataFrame({"osm_id": areas.loc[lu_mask, "osm_id"], "luclass": luc[lu_mask],
                                "landuse": _col(areas, "landuse")[lu_mask],
                                "name": _col(areas, "name")[lu_mask]},
                               geometry=areas.geometry[lu_mask], crs=crs).reset_index(drop=True)

    res_mask = (has_in(whole, "landuse", {"residential"}) & _col(whole, "name").notna()
                & ~has_in(whole, "building") & whole.intersects(area))
    res = whole[res_mask]
    residential = gpd.GeoDataFrame(
        {"osm_id": res["osm_id"], "osm_type": _col(res, "osm_type"), "name": _col(res, "name"),
         "start_date": _col(res, "start_date"), "building_age": _col(res, "building:age")},
        geometry=res.geometry, crs=crs).reset_index(drop=True)

    bmask = has_in(whole, "building") & (_col(whole, "building") != "no")
    b = whole[bmask]
    levels, tagged = _levels(b, cfg.osm.default_building_levels)
    buildings = gpd.GeoDataFrame({"osm_id": b["osm_id"], "building": _col(b, "building"),
                                  "name": _col(b, "name"), "levels": levels,
                                  "levels_tagged": tagged, "start_date": _col(b, "start_date"),
                                  "elevator": _col(b, "elevator")},
                                 geometry=b.geometry, crs=crs).reset_index(drop=True)

    poi_keys = ["amenity", "shop", "healthcare", "social_facility", "social_facility:for",
                "leisure", "building", "office", "tourism"]
    pts = _frame(col.points, id_pos=0, tag_pos=1, wkb_pos=2).to_crs(crs)
    pts = _clip(pts, reach, keep_whole=True)
    pts.insert(1, "osm_type", "node")
    apoi = whole[has_in(whole, "amenity") | has_in(whole, "shop") | has_in(whole, "healthcare")
                 | has_in(whole, "social_facility")
                 | (_col(whole, "name").notna() & ~has_in(whole, "landuse", {"residential"}))
                 ].copy()
    apoi["geometry"] = apoi.geometry.representative_point()
    apoi = apoi[apoi.intersects(reach)]
    cols = ["osm_type", "osm_id", "name", *poi_keys]
    pois = pd.concat([pd.DataFrame({c: _col(pts, c) for c in cols}).assign(geometry=pts.geometry),
                      pd.DataFrame({c: _col(apoi, c) for c in cols}).assign(
                          geometry=apoi.geometry)], ignore_index=True)
    pois = gpd.GeoDataFrame(pois, geometry="geometry", crs=crs)
    pois = pois[_col(pois, "name").notna() | pois[poi_keys[:5]].notna().any(axis=1)]
    pois = pois.reset_index(drop=True)

    # Designated conservation areas (historic districts, listed heritage, heritage protected
    # areas: IUCN/OSM protect_class 22 is "cultural assets") can decide a unit's class; anything
    # else historic (a statue, a plaque, a memorial) is only counted.
    heritage_pa = has("boundary", {"protected_area"}) & (has("protect_class", {"22"})
                                                        | has("heritage"))
    hmask = has("historic") | has("heritage") | heritage_pa
    hist_a = areas[hmask]
    designated_a = (has("historic", {"district"}) | has("heritage") | heritage_pa)[hmask]
    hist_p = pts[(_col(pts, "historic").notna() | _col(pts, "heritage").notna())
                 & pts.intersects(area)]

    def hist_kind(df: pd.DataFrame) -> pd.Series:
        return _col(df, "historic").fillna(_col(df, "heritage")).fillna("protected_area")

    historic = gpd.GeoDataFrame(
        pd.concat([pd.DataFrame({"osm_id": hist_a["osm_id"], "name": _col(hist_a, "name"),
                                 "historic": hist_kind(hist_a),
                                 "designated": designated_a.astype(bool),
                                 "geometry": hist_a.geometry}),
                   pd.DataFrame({"osm_id": hist_p["osm_id"], "name": _col(hist_p, "name"),
                                 "historic": hist_kind(hist_p),
                                 "designated": False, "geometry": hist_p.geometry})],
                  ignore_index=True), geometry="geometry", crs=crs)
    historic["designated"] = historic["designated"].astype(bool)

    admin = gpd.GeoDataFrame({"osm_id": admin_all["osm_id"],
                              "osm_type": _col(admin_all, "osm_type"),
                              "admin_level": pd.to_numeric(_col(admin_all, "admin_level"),
                                                           errors="coerce"),
                              "name": _col(admin_all, "name"),
                              "ref_nbs": _col(admin_all, "ref:NBS")},
                             geometry=admin_all.geometry, crs=crs)
    admin = admin[admin.intersects(area)].reset_index(drop=True)

    coverage = coverage_grid_share(col.cells, col.window, study_ll, extent, water)
    return OSMLayers(study_area=sa, walk=walk, roads=roads, railways=railways,
                     waterways=waterways, water=water, landuse=landuse, residential=residential,
                     buildings=buildings, pois=pois, historic=historic, admin=admin, source=path,
                     extent=extent, walk_stats=walk_stats, coverage=coverage,
                     sites=_site_polygons(whole[whole.intersects(area)], cfg, crs))


def _site_polygons(df: gpd.GeoDataFrame, cfg: Config, crs: str) -> gpd.GeoDataFrame:
    """Buildings and plots that could host a new facility, by kind (see ``OSMLayers.sites``)."""
    def is_in(key: str, values: set[str]) -> pd.Series:
        return _col(df, key).isin(values)

    building = _col(df, "building").notna() & (_col(df, "building") != "no")
    vacant = (is_in("vacant", {"yes"}) | is_in("disused", {"yes"})
              | is_in("abandoned", {"yes"}) | is_in("disused:*", {"yes"})
              | is_in("building", {"ruins", "disused", "abandoned"})
              | (~building & is_in("landuse", {"brownfield", "greenfield"})))
    public = (is_in("building", {"public", "government", "civic"})
              | is_in("office", {"government"}) | is_in("amenity", {"townhall"})) & ~vacant
    # parking=surface is OSM's default for amenity=parking: an untagged car park counts too.
    parking = (is_in("amenity", {"parking"})
               & (is_in("parking", {"surface"}) | _col(df, "parking").isna()) & ~building
               & ~vacant)
    kind = pd.Series(None, index=df.index, dtype="object")
    kind[parking] = "parking"
    kind[public] = "public"
    kind[vacant] = "vacant"
    pick = kind.notna() & df.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    s = df[pick]
    levels, _ = _levels(s, cfg.osm.default_building_levels)
    return gpd.GeoDataFrame({"osm_id": s["osm_id"], "osm_type": s["osm_type"],
                             "name": _col(s, "name"), "kind": kind[pick],
                             "is_building": building[pick].astype(bool), "levels": levels},
                            geometry=s.geometry, crs=crs).reset_index(drop=True)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys) if polys else shapely.Polygon()


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _check_rule_keys(cfg: Config) -> None:
    """Facility rules can only test tags the parse keeps (``_KEEP_TAGS``)."""
    kept = set(_KEEP_TAGS)
    lc = cfg.lifecircle
    for cat_key, cat in lc.categories.items():
        for st_key, st in cat.subtypes.items():
            keys = {k for rule in tag_rules(st) for k in rule} | set(st.exclude_tags)
            for k in sorted(keys - kept):
                raise ConfigError(f"{cfg.source or cfg.name}: lifecircle.categories.{cat_key}"
                                  f".subtypes.{st_key}",
                                  f"tag {k!r} is not read from OSM files",
                                  f"use one of: {', '.join(sorted(kept))}")
    for k in sorted(set(lc.contradicting_tags) - kept):
        raise ConfigError(f"{cfg.source or cfg.name}: lifecircle.contradicting_tags",
                          f"tag {k!r} is not read from OSM "
                          "files", f"use one of: {', '.join(sorted(kept))}")


def _check_path(path: Path, hint: str) -> None:
    if not path.exists():
        fix = hint or "put an OSM extract (.osm, .osm.bz2 or .osm.pbf) there or set inputs.osm"
        raise InputFileError(path, "OSM extract not found", fix)
    if path.is_dir():
        raise InputFileError(path, "is a folder, not an OSM file", "set inputs.osm to a file")
    if not path.name.lower().endswith(OSM_SUFFIXES):
        raise InputFileError(path, "unknown OSM file type",
                             "use .osm, .osm.bz2, .osm.gz or .osm.pbf")


def read_osm(cfg: Config, *, path: Path | None = None, use_cache: bool | None = None,
             check: bool = True) -> OSMLayers:
    """Read the configured OSM extract into :class:`OSMLayers` (cached).

    Parameters
    ----------
    cfg
        Run configuration (study area, CRS, parsing options, facility categories).
    path
        Read this file instead of ``cfg.inputs.osm``.
    use_cache
        Override ``cfg.osm.cache``.
    check
        Run :func:`check_extract`: refuse an extract that cannot support the analysis (too
        little of the study area covered, no walk network) and warn about missing layers.
        Off only for files read for something else (boundaries alone, say).

    Returns
    -------
    OSMLayers
        All layers in ``cfg.study_area.crs``.
    """
    path = Path(path or cfg.inputs.osm)
    _check_path(path, cfg.inputs.osm_help)
    use_cache = cfg.osm.cache if use_cache is None else use_cache
    key = parse_key(cfg, path)
    cache = cfg.cache_dir / f"osm-{key}.gpkg"
    layers: OSMLayers | None = None
    if use_cache and cache.is_file():
        layers = read_parsed(cache, key)
    if layers is None:
        t0 = time.perf_counter()
        try:
            col = _parse(path, coverage_window(cfg))
        except (RuntimeError, OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputFileError(path, f"could not be read as OSM data ({first})",
                                 "check that the file is a complete .osm/.osm.pbf extract "
                                 "(re-download or re-clip it)") from exc
        if col.n_nodes == 0 and col.n_ways == 0:
            raise DataError(path, "the extract contains no OSM nodes or ways",
                            "use a non-empty extract that covers the study area")
        layers = _layers_from(col, cfg, path)
        if check:  # before anything is logged or cached: the error is the one line printed
            refuse_extract(layers, cfg)
        logger.info("parsed %s in %.1f s", path.name, time.perf_counter() - t0)
        if use_cache:
            write_parsed(cache, layers, key)
    if check:
        check_extract(layers, cfg)
    _check_rule_keys(cfg)
    layers.facilities = classified_facilities(layers, cfg, key if use_cache else None)
    if use_cache:
        prune_caches(cfg.cache_dir)
    return layers
