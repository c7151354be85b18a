"""The parse cache of an OSM extract, and the classified facilities kept beside it.

A parse is keyed by the SHA-256 of the extract and of the study-area boundary file, the config
sections that affect parsing, the snapping tolerance and the osmnx version. The cache is a
GeoPackage of data only, checked on read (:mod:`._cache`): a cache file from someone else cannot
run code, and a damaged one is ignored with a warning and parsed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import time
from pathlib import Path

import geopandas as gpd

from urbanunits._files import atomic_path, file_sha256
from urbanunits.config import Config
from urbanunits.errors import OutputError
from urbanunits.layers import OSMLayers
from urbanunits.sources import _cache
from urbanunits.sources import classify as classify_module
from urbanunits.sources.classify import classify_facilities

__all__ = ["MAX_UNUSED_DAYS", "classified_facilities", "parse_key", "prune_caches", "read_parsed",
           "write_parsed"]

logger = logging.getLogger(__name__)

_CACHE_VERSION = 10  # 5: GeoPackage, not pickle; 6: coverage, designated; 7: elevator; 8: sites;
# 9: is_tunnel/is_bridge on line layers; 10: walk network as arrays


def parse_key(cfg: Config, path: Path) -> str:
    """The parse cache's key for extract ``path`` read with ``cfg`` (20 hex digits)."""
    boundary = cfg.study_area.boundary
    boundary_hash = file_sha256(boundary) if boundary is not None and boundary.is_file() else ""
    return hashlib.sha256(
        f"{_CACHE_VERSION}|{file_sha256(path)}|{boundary_hash}|"
        f"{cfg.digest('study_area', 'osm')}|{cfg.units.snap_tolerance_m}|"
        f"{importlib.metadata.version('osmnx')}".encode()).hexdigest()[:20]


# A temporary cache file older than this is a killed run's leftover, not one being written.
_STALE_PART_S = 3600.0


def read_parsed(cache: Path, key: str) -> OSMLayers | None:
    """The layers stored in ``cache`` under ``key``, or None (logged) when it cannot be used."""
    t0 = time.perf_counter()
    _touch(cache)  # before reading: an old cache is in use from now on, not removed under us
    try:
        kw = _cache.read_cache(cache, key=key, version=_CACHE_VERSION)
    except Exception as exc:  # any damage (GDAL, JSON, mismatch) means: parse again
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        logger.warning("ignoring unusable cache %s (%s); parsing the extract again", cache,
                       first)
        return None
    logger.info("read the parsed extract from cache %s in %.1f s", cache.name,
                time.perf_counter() - t0)
    return OSMLayers(**kw)


def write_parsed(cache: Path, layers: OSMLayers, key: str) -> None:
    """Store parsed layers; a cache that cannot be written costs only the next parse."""

    now = time.time()
    parts = [*cache.parent.glob(".osm-*.part*"), *cache.parent.glob(".facilities-*.part*")]
    for part in parts:
        try:
            if now - part.stat().st_mtime > _STALE_PART_S:
                part.unlink()
                logger.info("removed %s, left by a run that was stopped", part)
        except OSError:
            pass
    try:
        with atomic_path(cache) as tmp:
            _cache.write_cache(tmp, layers, key=key, version=_CACHE_VERSION)
    except OutputError as exc:
        logger.warning("parse cache not saved: %s; the next run parses the extract again",
                       exc.one_line())


#: Format version of the classified-facilities cache (its key also covers classify.py's source).
_FACILITIES_VERSION = 1


def classified_facilities(layers: OSMLayers, cfg: Config, parsed: str | None
                          ) -> gpd.GeoDataFrame:
    """``layers.pois`` classified by the config's facility categories.

    Classifying takes longer than reading the whole parse cache (pandas string matching per
    subtype), and its result changes only with the extract and the rules. With the parse cache
    on (``parsed`` is its key) it is kept beside it, ``facilities-<parse key>-<rules>.gpkg``,
    keyed by the parse cache, the categories, the contradicting tags and the classifier's own
    source, and read back while they are unchanged; an unusable file is classified again and
    rewritten.
    """
    lc = cfg.lifecircle

    def classify() -> gpd.GeoDataFrame:
        return classify_facilities(layers.pois, lc.categories,
                                   contradicting_tags=lc.contradicting_tags)

    if parsed is None:
        return classify()
    rules = json.dumps([{k: dataclasses.asdict(c) for k, c in lc.categories.items()},
                        lc.contradicting_tags], sort_keys=True, default=str)
    h = hashlib.sha256(f"{parsed}|{rules}|".encode())
    h.update(Path(classify_module.__file__).read_bytes())
    key = h.hexdigest()[:20]
    path = cfg.cache_dir / f"facilities-{parsed}-{key[:12]}.gpkg"
    _touch(path)
    return _cache.cached_frame(path, classify, key=key, version=_FACILITIES_VERSION,
                               what="the facilities")


#: A parse or facilities cache not used for this many days is removed. Every change to the
#: extract, the study area or the ``osm`` section makes a new parse, and a city's is hundreds of
#: MB: without a limit they pile up unseen. By age, not by count, because many configs share a
#: cache folder (the shipped ones all write under ``data/processed``), and a batch of more
#: cities than a count would keep would remove each other's caches on every run.
MAX_UNUSED_DAYS = 30.0


def _touch(path: Path) -> None:
    """Mark a cache file as used now (its mtime is what :func:`prune_caches` reads)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def prune_caches(cache_dir: Path, *, max_unused_days: float = MAX_UNUSED_DAYS,
                 now: float | None = None) -> list[Path]:
    """Remove parse and facilities caches in ``cache_dir`` not used for ``max_unused_days``.

    A cache is marked used when a run reads or writes it. Other files are left, and so is a
    file that cannot be removed.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    cutoff = (time.time() if now is None else now) - max_unused_days * 86400.0
    removed = []
    for f in [*cache_dir.glob("osm-*.gpkg"), *cache_dir.glob("facilities-*-*.gpkg")]:
        try:
            if f.stat().st_mtime < cutoff:
                f.unlink()
                removed.append(f)
        except OSError:
            continue
    if removed:
        logger.info("removed %d cache file(s) unused for %g days from %s", len(removed),
                    max_unused_days, cache_dir)
    return removed
