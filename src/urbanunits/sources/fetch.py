"""Download the study area's OpenStreetMap data from an Overpass API server.

``urbanunits fetch --config configs/ningbo.toml`` asks Overpass for everything the ingest reads
(streets and footways, rail, water, land use, buildings, residential areas, facility tags, and
the ``boundary=administrative`` relations of admin levels 6 and 8: districts and sub-districts
(街道/镇)) in the study area grown by ``osm.graph_margin_m``, completed with ``(._;>;);`` so
that every way has its nodes and every relation its member ways, and writes it to ``inputs.osm``.

Etiquette, as the Overpass operators ask: one request at a time, a server-side ``[timeout:]`` and
``[maxsize:]``, a ``User-Agent`` naming the tool, a look at ``/api/status`` before asking, retries
with exponential back-off on 429/502/503/504, timeouts and dropped connections, and
``Retry-After`` honoured. When the server stays unreachable or busy the command stops with one
line saying what to do; a server name that does not resolve (no network, no DNS, a typo) stops
it at once, since waiting would not help.

osmnx downloads through private helpers (``osmnx._overpass``, ``osmnx._http``) that return parsed
JSON for its own queries, so this module uses ``requests`` directly to stream the XML to disk.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import re
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import osmium
import requests

from urbanunits import __version__
from urbanunits._files import atomic_path
from urbanunits._progress import progress
from urbanunits.config import Config, FetchConfig
from urbanunits.errors import ConfigError, DataError, UserError
from urbanunits.sources._extent import osmium_format, region_bbox_ll
from urbanunits.sources.clip import append_provenance, utc_now

__all__ = ["FetchError", "FetchResult", "download_overpass", "fetch_osm", "overpass_query"]

logger = logging.getLogger(__name__)

USER_AGENT = f"urbanunits/{__version__} (OpenStreetMap study-area download; python-requests)"
_RETRY_STATUS = {429, 502, 503, 504}
_MAX_WAIT_S = 900.0  # a server asking us to wait longer than this is treated as unavailable
_CHUNK = 1 << 16

# Keys whose ways and nodes the ingest turns into layers (see sources/osm.py).
_WAY_KEYS = ("highway", "railway", "waterway", "natural", "water", "landuse", "leisure",
             "building", "amenity", "shop", "healthcare", "social_facility", "historic",
             "heritage", "tourism", "place")
_NODE_KEYS = ("amenity", "shop", "healthcare", "social_facility", "historic", "heritage",
              "leisure", "tourism")


class FetchError(UserError, ConnectionError):
    """The Overpass server could not be reached, refused, or kept us waiting too long."""


@dataclass(frozen=True)
class FetchResult:
    """What :func:`download_overpass` / :func:`fetch_osm` wrote."""

    path: Path
    url: str
    query: str
    bytes: int
    sha256: str
    osm_base: str
    attempts: int
    seconds: float

    def summary_lines(self) -> list[str]:
        """Human-readable summary for the terminal."""
        return [f"downloaded {self.bytes / 1e6:,.1f} MB from {self.url} in {self.seconds:.1f} s "
                f"({self.attempts} request(s); data as of {self.osm_base or 'unknown'})",
                f"wrote {self.path}"]


def _quote(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def overpass_query(bbox_ll: tuple[float, float, float, float], *, timeout_s: float,
                   max_size_mb: int, extra_keys: Iterable[str] = ()) -> str:
    """The Overpass QL query for everything the ingest needs inside a WGS84 box.

    Parameters
    ----------
    bbox_ll
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees.
    timeout_s
        Server-side query timeout (``[timeout:]``), seconds.
    max_size_mb
        Server-side memory limit (``[maxsize:]``), MiB.
    extra_keys
        More tag keys to fetch as nodes and ways (e.g. the config's facility tags).

    Returns
    -------
    str
        The query; its output is complete OSM XML with metadata (``out meta``).
    """
    x0, y0, x1, y1 = bbox_ll
    bb = f"({y0:.6f},{x0:.6f},{y1:.6f},{x1:.6f})"  # Overpass order: south, west, north, east
    way_keys = list(dict.fromkeys([*_WAY_KEYS, *extra_keys]))
    node_keys = list(dict.fromkeys([*_NODE_KEYS, *extra_keys]))
    # Districts/sub-districts enclosing the box centre, even if none of their ways crosses the box.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    lines = [f"[out:xml][timeout:{int(timeout_s)}][maxsize:{int(max_size_mb) * 1024 * 1024}];",
             f"is_in({cy:.6f},{cx:.6f})->.enclosing;",
             "("]
    lines += [f"  way[{_quote(k)}]{bb};" for k in way_keys]
    lines += [f"  node[{_quote(k)}]{bb};" for k in node_keys]
    lines += [f'  relation["type"="multipolygon"]{bb};',
              # heritage protected areas (designated conservation areas for unit classes)
              f'  way["boundary"="protected_area"]{bb};',
              f'  relation["boundary"="protected_area"]{bb};',
              f'  relation["boundary"="administrative"]["admin_level"~"^(6|8)$"]{bb};',
              '  rel(pivot.enclosing)["boundary"="administrative"]["admin_level"~"^(6|8)$"];',
              ");",
              "(._;>;);",
              "out meta;"]
    return "\n".join(lines) + "\n"


def _retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _status_url(url: str) -> str | None:
    base, sep, _ = url.rstrip("/").rpartition("/interpreter")
    return base + "/status" if sep else None


def _status_wait_s(session: requests.Session, url: str, *, timeout_s: float) -> float:
    """Seconds until the server has a free slot for us, from ``/api/status`` (0 if unknown)."""
    status = _status_url(url)
    if status is None:
        return 0.0
    try:
        with session.get(status, timeout=timeout_s) as r:
            if r.status_code != 200:
                return 0.0
            text = r.text
    except requests.RequestException as exc:
        if _unresolvable(exc):
            raise _no_dns(url) from exc
        logger.debug("no Overpass status from %s (%s)", status, exc)
        return 0.0
    if re.search(r"Rate limit: 0\b", text) or re.search(r"\b\d+ slots? available now", text):
        return 0.0
    waits = [float(s) for s in re.findall(r"Slot available after: \S+, in (-?\d+) seconds?", text)]
    return max(0.0, min(waits)) if waits else 0.0


class _TransientError(Exception):
    """A failure worth retrying; ``wait_s`` is the server's requested pause, if any."""

    def __init__(self, what: str, wait_s: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.wait_s = wait_s


_REMARK = re.compile(rb"<remark>\s*(.*?)\s*</remark>", re.S)


def _check_body(path: Path, url: str) -> str:
    """Raise if the XML is truncated or carries an Overpass runtime error; return osm_base."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(4096)
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    for chunk in (head, tail):
        m = _REMARK.search(chunk)
        if m and b"error" in m.group(1).lower():
            remark = m.group(1).decode("utf-8", "replace")
            raise DataError(url, f"Overpass stopped the query: {remark}",
                            "raise fetch.timeout_s or fetch.max_size_mb, or shrink the study "
                            "area; for a whole city `urbanunits clip` on a downloaded PBF is "
                            "more reliable")
    if not head.lstrip().startswith(b"<?xml") and b"<osm" not in head:
        raise DataError(url, "the server did not send OSM XML "
                        f"(starts {head[:60]!r})", "check fetch.overpass_url")
    if not tail.rstrip().endswith(b"</osm>"):
        raise _TransientError("the download was cut off (no closing </osm>)")
    m = re.search(rb'osm_base="([^"]+)"', head)
    return m.group(1).decode() if m else ""


def _attempt(session: requests.Session, url: str, query: str, dest: Path, *,
             timeout: tuple[float, float]) -> tuple[int, str, str]:
    """One POST, streamed into ``dest`` atomically; returns (bytes, sha256, osm_base)."""
    try:
        with session.post(url, data={"data": query}, timeout=timeout, stream=True) as r:
            if r.status_code in _RETRY_STATUS:
                raise _TransientError(f"HTTP {r.status_code} {r.reason}",
                                      _retry_after_s(r.headers.get("Retry-After")))
            if r.status_code != 200:
                body = r.text[:300]
                m = re.search(r"<p><strong[^>]*>Error</strong>:\s*(.*?)</p>", body, re.S)
                detail = " ".join((m.group(1) if m else body).split())[:200]
                raise FetchError(url, f"HTTP {r.status_code} {r.reason}: {detail}",
                                 "check fetch.overpass_url and the study area")
            total = int(r.headers.get("Content-Length") or 0) or None
            h = hashlib.sha256()
            n = 0
            with atomic_path(dest) as tmp, tmp.open("wb") as fh, progress(
                    desc=f"downloading {dest.name}", total=total, unit="B", unit_scale=True,
                    unit_divisor=1024) as bar:
                for chunk in r.iter_content(_CHUNK):
                    fh.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
                fh.flush()
                fh.close()
                osm_base = _check_body(tmp, url)
            return n, h.hexdigest(), osm_base
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        raise ConfigError("fetch.overpass_url", f"{url!r} is not a usable URL ({exc})",
                          "use e.g. https://overpass-api.de/api/interpreter") from exc
    except requests.exceptions.Timeout as exc:
        raise _TransientError(f"no answer within {timeout[1]:g} s") from exc
    except requests.RequestException as exc:
        if _unresolvable(exc):
            raise _no_dns(url) from exc
        raise _TransientError(_short(exc)) from exc


def _unresolvable(exc: BaseException) -> bool:
    """Whether a request failed because the server's host name did not resolve.

    requests wraps urllib3's ``NameResolutionError`` (in ``MaxRetryError.reason``), which is
    raised from the resolver's ``socket.gaierror``; walk the chain to find it.
    """
    todo: list[object] = [exc]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
    return False


def _no_dns(url: str) -> FetchError:
    host = urllib.parse.urlsplit(url).hostname or url
    return FetchError(url, f"cannot resolve the server name {host!r} (no network or DNS?)",
                      "check the internet connection and the host in fetch.overpass_url; "
                      "offline, download a PBF and run `urbanunits clip`")


def _short(exc: BaseException) -> str:
    text = str(exc)
    for pattern in (r"Connection refused", r"Name or service not known", r"timed out",
                    r"Temporary failure in name resolution", r"Connection reset by peer",
                    r"Max retries exceeded"):
        if re.search(pattern, text):
            return f"{type(exc).__name__}: {pattern.lower()}"
    return f"{type(exc).__name__}: {text[:120]}"


def download_overpass(query: str, dest: str | Path, *, settings: FetchConfig,
                      sleep: Callable[[float], object] = time.sleep) -> FetchResult:
    """POST ``query`` to ``settings.overpass_url`` and write the answer to ``dest`` verbatim.

    Parameters
    ----------
    query
        Overpass QL (see :func:`overpass_query`).
    dest
        Output file; written atomically, so a failed download leaves no file (and keeps an
        older one).
    settings
        The config's ``[fetch]`` section (URL, timeouts, retries, back-off).
    sleep
        Called with the seconds to wait between attempts (tests pass a recorder).

    Returns
    -------
    FetchResult
        Path, size, SHA-256 of what the server sent, ``osm_base`` timestamp, attempts.
    """
    dest = Path(dest)
    url = settings.overpass_url
    read_s = settings.read_timeout_s or settings.timeout_s + 60.0
    timeout = (min(30.0, read_s), read_s)
    t0 = time.perf_counter()
    last = "no attempt made"
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        for attempt in range(settings.max_retries + 1):
            if settings.check_status:
                wait = _status_wait_s(session, url, timeout_s=timeout[0])
                if wait > _MAX_WAIT_S:
                    raise FetchError(url, f"Overpass has no free slot for {wait:.0f} s",
                                     "try again later or set fetch.overpass_url to another "
                                     "server")
                if wait > 0:
                    logger.info("Overpass: next free slot in %.0f s; waiting", wait)
                    sleep(wait)
            try:
                n, digest, osm_base = _attempt(session, url, query, dest, timeout=timeout)
            except _TransientError as exc:
                last = exc.what
                if attempt == settings.max_retries:
                    break
                backoff = settings.backoff_s * 2 ** attempt
                wait = max(backoff, exc.wait_s or 0.0)
                if wait > _MAX_WAIT_S:
                    raise FetchError(url, f"{last}; the server asks to wait {wait:.0f} s",
                                     "try again later or use another Overpass server "
                                     "(fetch.overpass_url)") from exc
                logger.warning("Overpass: %s; retry %d of %d in %.1f s", last, attempt + 1,
                               settings.max_retries, wait)
                sleep(wait)
                continue
            return FetchResult(path=dest, url=url, query=query, bytes=n, sha256=digest,
                               osm_base=osm_base, attempts=attempt + 1,
                               seconds=time.perf_counter() - t0)
    raise FetchError(url, f"no usable answer after {settings.max_retries + 1} request(s) "
                     f"(last: {last})",
                     "check the internet connection and try again later, set "
                     "fetch.overpass_url to another server, or download a PBF and run "
                     "`urbanunits clip`")


def _facility_keys(cfg: Config) -> list[str]:
    keys: dict[str, None] = {}
    for cat in cfg.lifecircle.categories.values():
        for st in cat.subtypes.values():
            keys.update(dict.fromkeys(st.osm_tags))
    return list(keys)


def _convert(src: Path, dest: Path) -> None:
    """Rewrite an OSM XML file in ``dest``'s format (e.g. PBF), atomically, streaming."""
    with atomic_path(dest) as tmp, osmium.io.Reader(str(src)) as reader, osmium.SimpleWriter(
            osmium.io.File(str(tmp), osmium_format(dest))) as writer:
        osmium.apply(reader, writer)


def fetch_osm(cfg: Config, *, output: str | Path | None = None,
              sleep: Callable[[float], object] = time.sleep) -> FetchResult:
    """Download the config's study area (plus ``osm.graph_margin_m``) from Overpass.

    The answer is written to ``output`` (default ``inputs.osm``, the file the ingest reads):
    byte for byte when that is an ``.osm`` file, converted with libosmium when it is
    ``.osm.pbf``/``.osm.bz2``/``.osm.gz``. Source, time, data timestamp and the query are
    appended to ``PROVENANCE.md`` in the output's folder.

    Parameters
    ----------
    cfg
        Run configuration (study area, margin, facility tags, ``[fetch]`` settings).
    output
        Write here instead of ``inputs.osm``.
    sleep
        Called with the seconds to wait between attempts.

    Returns
    -------
    FetchResult
        What was written (``bytes``/``sha256`` describe the server's XML).
    """
    dest = Path(output) if output is not None else Path(cfg.inputs.osm)
    fmt = osmium_format(dest)
    bbox = region_bbox_ll(cfg)
    query = overpass_query(bbox, timeout_s=cfg.fetch.timeout_s,
                           max_size_mb=cfg.fetch.max_size_mb, extra_keys=_facility_keys(cfg))
    logger.info("asking %s for %s", cfg.fetch.overpass_url,
                ", ".join(f"{v:.4f}" for v in bbox))
    if fmt == "osm":
        res = download_overpass(query, dest, settings=cfg.fetch, sleep=sleep)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=dest.parent) as work:
            raw = Path(work) / f"{cfg.name}.osm"
            res = download_overpass(query, raw, settings=cfg.fetch, sleep=sleep)
            _convert(raw, dest)
        res = FetchResult(path=dest, url=res.url, query=res.query, bytes=res.bytes,
                          sha256=res.sha256, osm_base=res.osm_base, attempts=res.attempts,
                          seconds=res.seconds)
    stamp = utc_now()
    conv = "" if fmt == "osm" else f", converted to {fmt} ({dest.stat().st_size:,} bytes)"
    append_provenance(dest.parent, f"{dest.name} — fetched {stamp}", [
        f"- Source: Overpass API {res.url}, data as of `osm_base` {res.osm_base or 'unknown'}; "
        f"downloaded {stamp}.",
        f"- Answer: {res.bytes:,} bytes of OSM XML, SHA-256 `{res.sha256}`{conv}.",
        f"- Area: WGS84 box {', '.join(f'{v:.5f}' for v in bbox)} (study area of config "
        f"`{cfg.name}` plus {cfg.osm.graph_margin_m:g} m).",
        "- Query:",
        "",
        "```",
        query.rstrip("\n"),
        "```",
        "",
        "- Licence: ODbL 1.0 — © OpenStreetMap contributors.",
    ])
    logger.info("fetched %s (%s bytes)", dest, f"{res.bytes:,}")
    return res
