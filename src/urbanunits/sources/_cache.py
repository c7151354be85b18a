"""The parse cache as data only: one GeoPackage per parsed extract, checked on read.

A cache in a shared output folder may come from anyone, so it must never run code when read
(as a pickle would). Each :class:`~urbanunits.sources.osm.OSMLayers` frame is a GeoPackage
layer; the walk network is three attribute tables of its arrays
(:class:`~urbanunits.sources.walk.WalkWays`): ``walk_nodes`` (``node``, ``lon``, ``lat``, ``x``,
``y``), ``walk_edges`` (``u``, ``v`` as node positions, ``length_m``, ``way``) and ``walk_ways``
(``way_id``, ``highway``, ``name``), read back into numpy without building a graph. After
simplification the osmnx graph is stored too, as ``walk_graph_nodes`` (``node``, ``x``, ``y``...)
and ``walk_graph_edges`` (``u``, ``v``, ``key`` and the edge attributes; an edge ``geometry`` is
the layer's geometry), from which the networkx graph is rebuilt. Graph attribute values that are
not plain numbers, strings or booleans (lists after simplification) are stored as JSON text.
A table ``cache_meta`` holds one JSON document: format, version, cache key, the columns, dtypes
and row count of every layer, and the graph's attributes. Anything that does not match it
exactly makes the cache unusable: it is ignored with a warning and the extract is
parsed again.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from urbanunits._files import atomic_path
from urbanunits.errors import OutputError
from urbanunits.sources.walk import WalkWays

__all__ = ["FRAMES", "cached_frame", "read_cache", "read_frame_cache", "write_cache",
           "write_frame_cache"]

logger = logging.getLogger(__name__)

FORMAT = "urbanunits-osm-cache"
FRAME_FORMAT = "urbanunits-frame-cache"  # one frame derived from a parse (write_frame_cache)
META = "cache_meta"
NODES, EDGES = "walk_graph_nodes", "walk_graph_edges"
WALK_NODES, WALK_EDGES, WALK_WAYS = "walk_nodes", "walk_edges", "walk_ways"
FRAMES = ("study_area", "roads", "railways", "waterways", "water", "landuse", "residential",
          "buildings", "pois", "historic", "admin", "sites")
# Dtypes restored exactly on read; a column of any other dtype is stored as JSON text.
_NATIVE = {"int64", "float64", "bool", "boolean", "str", "object", "string"}


class CacheMismatchError(ValueError):
    """The cache file does not hold what its metadata (or the expected key) says."""


# --- frames ---------------------------------------------------------------------------------


def _frame_meta(df: gpd.GeoDataFrame) -> dict[str, Any]:
    cols = [c for c in df.columns if c != df.geometry.name]
    return {"rows": len(df), "columns": cols, "dtypes": [str(df[c].dtype) for c in cols],
            "geometry": df.geometry.name, "crs": df.crs.to_wkt() if df.crs else None}


def _plain(df: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A copy GDAL can store: object columns of strings only, others as JSON text."""
    out = df.copy()
    for c in out.columns:
        if c == out.geometry.name:
            continue
        if out[c].dtype == object and not out[c].map(
                lambda v: v is None or isinstance(v, str) or (isinstance(v, float) and
                                                              np.isnan(v))).all():
            out[c] = out[c].map(json.dumps).astype(object)
    return out


def _restore(df: pd.DataFrame, meta: dict[str, Any], name: str) -> pd.DataFrame:
    cols = list(meta["columns"])
    have = [c for c in df.columns if c != "geometry"]
    if have != cols:
        raise CacheMismatchError(f"{name}: columns {have} instead of {cols}")
    if len(df) != meta["rows"]:
        raise CacheMismatchError(f"{name}: {len(df)} rows instead of {meta['rows']}")
    for c, dtype in zip(cols, meta["dtypes"], strict=True):
        if dtype == "object":
            s = df[c].astype(object)
            df[c] = s.where(s.notna(), None)
        elif dtype in _NATIVE:
            df[c] = df[c].astype(dtype)
        else:
            raise CacheMismatchError(f"{name}.{c}: unexpected dtype {dtype!r}")
    return df


def _read_frame(path: Path, name: str, meta: dict[str, Any]) -> gpd.GeoDataFrame:
    gdf = pyogrio.read_dataframe(path, layer=name)
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise CacheMismatchError(f"{name}: no geometry")
    gdf = _restore(gdf, meta, name)
    if meta["geometry"] != "geometry":
        gdf = gdf.rename_geometry(meta["geometry"])
    crs = pyproj.CRS.from_wkt(meta["crs"]) if meta["crs"] else None
    return gdf.set_crs(crs, allow_override=True)


# --- walk graph -----------------------------------------------------------------------------


def _scalar(t: type) -> str:
    if issubclass(t, bool | np.bool_):
        return "bool"
    if issubclass(t, int | np.integer):
        return "int"
    if issubclass(t, float | np.floating):
        return "float"
    if issubclass(t, str):
        return "str"
    if issubclass(t, shapely.Geometry):
        return "geometry"
    return "json"


def _kind(values: list[Any]) -> str:
    """How a graph attribute column is stored: natively when all values share a scalar type.

    Missing values (attribute absent) are allowed in string, float and geometry columns (NULL or
    NaN, dropped again on read); int and bool columns with gaps are stored as JSON.
    """
    types = {type(v) for v in values}  # by type, not value: millions of edges in a city
    gaps = type(None) in types
    kinds = {_scalar(t) for t in types - {type(None)}}
    if len(kinds) != 1:
        return "str" if not kinds else "json"
    kind = kinds.pop()
    if kind in ("int", "bool") and gaps:
        return "json"
    return kind


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, shapely.Geometry):
        return v.wkt
    msg = f"cannot store {type(v).__name__} in the parse cache"
    raise TypeError(msg)


def _attr_table(rows: list[dict[str, Any]], ids: dict[str, list[int]]
                ) -> tuple[pd.DataFrame, dict[str, str], list[Any] | None]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    data: dict[str, Any] = dict(ids)
    kinds: dict[str, str] = {}
    geoms = None
    for k in keys:
        vals = [r.get(k) for r in rows]
        kind = _kind(vals)
        if kind == "geometry" and k == "geometry":
            geoms = vals
        elif kind == "geometry":
            kind = "json"  # only an edge's own "geometry" is a GDAL geometry
        if kind == "json":
            data[k] = [None if v is None else json.dumps(v, default=_json_default)
                       for v in vals]
        elif kind != "geometry":
            data[k] = pd.Series(vals, dtype={"str": object, "float": "float64",
                                             "int": "int64", "bool": "bool"}[kind])
        kinds[k] = kind
    return pd.DataFrame(data), kinds, geoms


def _graph_attrs(G: nx.MultiDiGraph) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in G.graph.items():
        if isinstance(v, pyproj.CRS):
            out[k] = {"crs_wkt": v.to_wkt()}
        else:
            json.dumps(v)  # a TypeError here is a bug: graph attributes are plain values
            out[k] = {"value": v}
    return out


def _write_graph(path: Path, G: nx.MultiDiGraph) -> dict[str, Any]:
    nodes = list(G.nodes(data=True))
    ntab, nkinds, _ = _attr_table([d for _, d in nodes],
                                  {"node": [int(n) for n, _ in nodes]})
    # the adjacency itself rather than the edge view: a city has millions of edges
    edges = [(u, v, k, d) for u, nbrs in G._succ.items() for v, kd in nbrs.items()
             for k, d in kd.items()]
    etab, ekinds, geoms = _attr_table(
        [d for *_, d in edges], {"u": [int(e[0]) for e in edges], "v": [int(e[1]) for e in edges],
                                 "key": [int(e[2]) for e in edges]})
    pyogrio.write_dataframe(ntab, path, layer=NODES, driver="GPKG")
    if geoms is not None:
        etab = gpd.GeoDataFrame(etab, geometry=gpd.GeoSeries(geoms),
                                crs=G.graph.get("crs"))
        pyogrio.write_dataframe(etab, path, layer=EDGES, driver="GPKG",
                                geometry_type="Unknown", promote_to_multi=False)
    else:
        pyogrio.write_dataframe(etab, path, layer=EDGES, driver="GPKG")
    return {"attrs": _graph_attrs(G), "nodes": len(ntab), "edges": len(etab),
            "node_kinds": nkinds, "edge_kinds": ekinds}


def _records(df: pd.DataFrame, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """One attribute dict per row, without the attributes a row does not have."""
    cols: dict[str, list[Any]] = {}
    for k, kind in kinds.items():
        if kind == "geometry":
            cols[k] = list(df.geometry.values) if isinstance(df, gpd.GeoDataFrame) else []
        elif kind in ("json", "str"):
            s = df[k].astype(object)
            vals = s.where(s.notna(), None).tolist()
            cols[k] = [None if v is None else json.loads(v) for v in vals] if kind == "json" \
                else vals
        elif kind == "float":
            cols[k] = [None if v != v else v for v in df[k].astype("float64").tolist()]
        else:  # int, bool: tolist() gives Python scalars
            cols[k] = df[k].astype("int64" if kind == "int" else "bool").tolist()
    names = list(kinds)
    if not names:
        return [{} for _ in range(len(df))]
    return [{k: v for k, v in zip(names, row, strict=True) if v is not None}
            for row in zip(*(cols[k] for k in names), strict=True)]


def _read_graph(path: Path, meta: dict[str, Any]) -> nx.MultiDiGraph:
    nodes = pyogrio.read_dataframe(path, layer=NODES, read_geometry=False)
    edges = pyogrio.read_dataframe(path, layer=EDGES)
    if len(nodes) != meta["nodes"] or len(edges) != meta["edges"]:
        raise CacheMismatchError(f"walk graph: {len(nodes)} nodes, {len(edges)} edges instead of "
                            f"{meta['nodes']}, {meta['edges']}")
    for name, df, kinds, ids in ((NODES, nodes, meta["node_kinds"], ["node"]),
                                 (EDGES, edges, meta["edge_kinds"], ["u", "v", "key"])):
        want = ids + [k for k, kind in kinds.items() if kind != "geometry"]
        have = [c for c in df.columns if c != "geometry"]
        if have != want:
            raise CacheMismatchError(f"{name}: columns {have} instead of {want}")
        bad = set(kinds.values()) - {"str", "float", "int", "bool", "json", "geometry"}
        if bad:
            raise CacheMismatchError(f"{name}: unknown column kinds {sorted(bad)}")
    attrs: dict[str, Any] = {}
    for k, v in meta["attrs"].items():
        attrs[k] = pyproj.CRS.from_wkt(v["crs_wkt"]) if "crs_wkt" in v else v["value"]
    G = nx.MultiDiGraph(**attrs)
    G.add_nodes_from(zip(nodes["node"].astype("int64").tolist(),
                         _records(nodes, meta["node_kinds"]), strict=True))
    us = edges["u"].astype("int64").tolist()
    vs = edges["v"].astype("int64").tolist()
    ks = edges["key"].astype("int64").tolist()
    _add_edges(G, zip(us, vs, ks, _records(edges, meta["edge_kinds"]), strict=True))
    if sum(len(kd) for nbrs in G._succ.values() for kd in nbrs.values()) != meta["edges"]:
        raise CacheMismatchError("walk graph: repeated edge keys")
    return G


def _add_edges(G: nx.MultiDiGraph, edges: Any) -> None:
    """Add keyed edges between existing nodes as ``MultiDiGraph.add_edge`` stores them.

    ``add_edges_from`` with keys costs about 12 µs an edge, most of the read of a city's cache;
    filling the adjacency dicts directly (one key dict shared by ``_succ[u][v]`` and
    ``_pred[v][u]``, networkx's documented layout) is several times faster.
    """
    succ, pred = G._succ, G._pred
    for u, v, k, d in edges:
        if u not in succ or v not in succ:
            raise CacheMismatchError(f"walk graph: edge ({u}, {v}) between unknown nodes")
        keydict = succ[u].get(v)
        if keydict is None:
            keydict = succ[u][v] = pred[v][u] = {}
        keydict[k] = d
    nx._clear_cache(G)


# --- walk network arrays --------------------------------------------------------------------


_WALK_COLUMNS: dict[str, dict[str, str]] = {
    WALK_NODES: {"node": "int64", "lon": "float64", "lat": "float64", "x": "float64",
                 "y": "float64"},
    WALK_EDGES: {"u": "int32", "v": "int32", "length_m": "float64", "way": "int32"},
    WALK_WAYS: {"way_id": "int64", "highway": "object", "name": "object"}}


def _write_walk(path: Path, walk: WalkWays) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {
        WALK_NODES: {"node": walk.node_id, "lon": walk.lon, "lat": walk.lat, "x": walk.x,
                     "y": walk.y},
        WALK_EDGES: {"u": walk.u, "v": walk.v, "length_m": walk.length_m, "way": walk.way},
        WALK_WAYS: {"way_id": walk.way_id, "highway": walk.highway, "name": walk.name}}
    rows = {}
    for name, cols in tables.items():
        df = pd.DataFrame({c: np.asarray(v).astype(_WALK_COLUMNS[name][c])
                           for c, v in cols.items()})
        pyogrio.write_dataframe(df, path, layer=name, driver="GPKG")
        rows[name] = len(df)
    graph = None
    if walk.simplified is not None:
        gc.disable()  # see _read_walk
        try:
            graph = _write_graph(path, walk.simplified)
        finally:
            gc.enable()
    return {"rows": rows, "crs": walk.crs, "graph": graph}


def _read_walk(path: Path, meta: dict[str, Any]) -> WalkWays:
    cols: dict[str, dict[str, Any]] = {}
    for name, want in _WALK_COLUMNS.items():
        df = pyogrio.read_dataframe(path, layer=name, read_geometry=False)
        if list(df.columns) != list(want):
            raise CacheMismatchError(f"{name}: columns {list(df.columns)} instead of "
                                     f"{list(want)}")
        if len(df) != meta["rows"][name]:
            raise CacheMismatchError(f"{name}: {len(df)} rows instead of {meta['rows'][name]}")
        out: dict[str, Any] = {}
        for c, dtype in want.items():
            if dtype == "object":
                s = df[c].astype(object)
                out[c] = np.asarray(s.where(s.notna(), None), dtype=object)
            else:
                out[c] = df[c].to_numpy(dtype=dtype)
        cols[name] = out
    n, k = len(cols[WALK_NODES]["node"]), len(cols[WALK_WAYS]["way_id"])
    e = cols[WALK_EDGES]
    if len(e["u"]) and (min(e["u"].min(), e["v"].min()) < 0
                        or max(e["u"].max(), e["v"].max()) >= n
                        or e["way"].min() < 0 or e["way"].max() >= k):
        raise CacheMismatchError("walk_edges: a node or way position out of range")
    nd, w = cols[WALK_NODES], cols[WALK_WAYS]
    simplified = None
    if meta.get("graph") is not None:
        # Millions of small dicts would trigger full garbage collections over and over (they
        # hold no cycles): collect once afterwards instead.
        gc.disable()
        try:
            simplified = _read_graph(path, meta["graph"])
        finally:
            gc.enable()
    return WalkWays(node_id=nd["node"], lon=nd["lon"], lat=nd["lat"], x=nd["x"], y=nd["y"],
                    u=e["u"], v=e["v"], length_m=e["length_m"], way=e["way"],
                    way_id=w["way_id"], highway=w["highway"], name=w["name"],
                    crs=str(meta["crs"]), simplified=simplified)


# --- entry points ---------------------------------------------------------------------------


def write_cache(path: Path, layers: Any, *, key: str, version: int) -> None:
    """Write parsed layers to a new GeoPackage ``path`` (the caller renames it into place).

    Parameters
    ----------
    path
        A new file (GDAL adds layers to it one by one).
    layers
        The :class:`~urbanunits.sources.osm.OSMLayers` to store (``facilities`` is not
        stored: it is classified again from ``pois`` on every read).
    key, version
        The cache key and format version a reader must expect.
    """
    frames: dict[str, Any] = {}
    for name in FRAMES:
        df: gpd.GeoDataFrame = getattr(layers, name)
        frames[name] = _frame_meta(df)
        # Geometry types stay as parsed: no promotion of mixed lines to multi-lines.
        pyogrio.write_dataframe(_plain(df), path, layer=name, driver="GPKG",
                                geometry_type="Unknown", promote_to_multi=False)
    walk = _write_walk(path, layers.walk)
    ext = getattr(layers, "extent", None)
    extent = None
    if isinstance(ext, gpd.GeoDataFrame) and "geometry" in ext.columns and len(ext):
        extent = {"wkt": [g.wkt for g in ext.geometry], "crs": ext.crs.to_wkt() if ext.crs
                  else None}
    meta = {"format": FORMAT, "version": version, "key": key, "source": str(layers.source),
            "frames": frames, "walk": walk, "extent": extent,
            "walk_stats": {k: int(v) for k, v in getattr(layers, "walk_stats", {}).items()},
            "coverage": getattr(layers, "coverage", None)}
    pyogrio.write_dataframe(pd.DataFrame({"json": [json.dumps(meta)]}), path, layer=META,
                            driver="GPKG")


def read_cache(path: Path, *, key: str, version: int) -> dict[str, Any]:
    """Read a cache written by :func:`write_cache`, checking it against its metadata.

    Parameters
    ----------
    path
        The cache GeoPackage.
    key, version
        What the file must declare (a cache of another extract or config is refused).

    Returns
    -------
    dict
        Keyword arguments of :class:`~urbanunits.sources.osm.OSMLayers`.

    Raises
    ------
    CacheMismatchError
        The file is not this cache or does not match its own metadata. GDAL and JSON errors
        on a damaged file propagate as they are; the caller ignores the cache on any of them.
    """
    meta = _read_meta(path, FORMAT, key=key, version=version)
    out: dict[str, Any] = {name: _read_frame(path, name, meta["frames"][name])
                           for name in FRAMES}
    out["walk"] = _read_walk(path, meta["walk"])
    out["source"] = Path(meta["source"])
    ext = meta.get("extent")
    if ext:
        out["extent"] = gpd.GeoDataFrame(geometry=gpd.GeoSeries.from_wkt(ext["wkt"]),
                                         crs=ext["crs"])
    stats = meta.get("walk_stats") or {}
    if not isinstance(stats, dict) or not all(isinstance(v, int) for v in stats.values()):
        raise CacheMismatchError("walk_stats is not a table of counts")
    out["walk_stats"] = stats
    cov = meta.get("coverage")
    if cov is not None and not isinstance(cov, int | float):
        raise CacheMismatchError("coverage is not a number")
    out["coverage"] = cov
    return out


def _read_meta(path: Path, fmt: str, *, key: str, version: int) -> dict[str, Any]:
    """The ``cache_meta`` record of ``path``, refused unless it declares ``fmt``, ``key`` and
    ``version``."""
    meta_df = pyogrio.read_dataframe(path, layer=META, read_geometry=False)
    if len(meta_df) != 1:
        raise CacheMismatchError(f"{META}: {len(meta_df)} rows")
    meta = json.loads(str(meta_df["json"].iloc[0]))
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CacheMismatchError(f"not an urbanunits cache of format {fmt}")
    if meta.get("version") != version or meta.get("key") != key:
        raise CacheMismatchError(f"version/key {meta.get('version')}/{meta.get('key')} instead of "
                                 f"{version}/{key}")
    return meta


def write_frame_cache(path: Path, df: gpd.GeoDataFrame, *, key: str, version: int) -> None:
    """Write one frame derived from the parsed layers (the classified facilities) to a new
    GeoPackage ``path``: layer ``frame`` and the ``cache_meta`` table, as :func:`write_cache`
    stores each of its frames.

    Parameters
    ----------
    path
        A new file (the caller renames it into place).
    df
        The frame.
    key, version
        The key (what the frame was computed from) and format version a reader must expect.
    """
    pyogrio.write_dataframe(_plain(df), path, layer="frame", driver="GPKG",
                            geometry_type="Unknown", promote_to_multi=False)
    meta = {"format": FRAME_FORMAT, "version": version, "key": key, "frame": _frame_meta(df)}
    pyogrio.write_dataframe(pd.DataFrame({"json": [json.dumps(meta)]}), path, layer=META,
                            driver="GPKG")


def read_frame_cache(path: Path, *, key: str, version: int) -> gpd.GeoDataFrame:
    """Read a frame written by :func:`write_frame_cache`, checking it against its metadata.

    Raises
    ------
    CacheMismatchError
        The file is not that cache or does not match its own metadata; GDAL and JSON errors
        on a damaged file propagate as they are (the caller computes the frame again).
    """
    meta = _read_meta(path, FRAME_FORMAT, key=key, version=version)
    return _read_frame(path, "frame", meta["frame"])


def cached_frame(path: Path, compute: Callable[[], gpd.GeoDataFrame], *, key: str,
                 version: int, what: str) -> gpd.GeoDataFrame:
    """``compute()``'s frame, read from ``path`` when it holds the frame of ``key``.

    Otherwise (no file, another key, a damaged file: warned) the frame is computed and written
    there atomically; a file that cannot be written costs only the next run's computing.
    ``what`` names the frame in the warnings ("the facilities").
    """
    if path.is_file():
        try:
            return read_frame_cache(path, key=key, version=version)
        except Exception as exc:  # any damage (GDAL, JSON, mismatch) means: compute again
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            logger.warning("ignoring unusable cache %s (%s); computing %s again", path, first,
                           what)
    df = compute()
    try:
        with atomic_path(path) as tmp:
            write_frame_cache(tmp, df, key=key, version=version)
    except Exception as exc:  # a cache is never worth stopping the run for
        why = (exc.one_line() if isinstance(exc, OutputError)
               else (str(exc).splitlines() or [type(exc).__name__])[0])
        logger.warning("cache of %s not saved (%s); the next run computes them again", what,
                       why)
    return df
