"""The Overpass client against a local server: rate limits, timeouts, cut-offs, provenance.

Nothing here touches the internet: a stdlib HTTP server on 127.0.0.1 plays Overpass, serving the
shipped demo extract (itself an Overpass export) as its answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import osmium
import pytest

from urbanunits import cli
from urbanunits.config import Config, FetchConfig
from urbanunits.errors import DataError
from urbanunits.sources._extent import region_bbox_ll
from urbanunits.sources.fetch import (
    FetchError,
    _retry_after_s,
    fetch_osm,
    overpass_query,
)
from urbanunits.sources.osm import OSMLayers, read_osm

from .conftest import DEMO_OSM, demo_config

DEMO_BYTES = DEMO_OSM.read_bytes()
Reply = Callable[[BaseHTTPRequestHandler], None]


class FakeOverpass:
    """Scripted replies to POST /api/interpreter; GET /api/status from a list too."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.status: list[str] = []
        self.log: list[tuple[str, str, bytes]] = []
        self.stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.log.append(("GET", self.path, b""))
                text = (fake.status.pop(0) if fake.status else "Rate limit: 2\n2 slots "
                        "available now.\n").encode()
                self._send(200, text, {"Content-Type": "text/plain"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.log.append(("POST", self.path, body))
                reply = fake.replies.pop(0) if fake.replies else ok(DEMO_BYTES)
                # The client may have given up (timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    reply(self)

            def _send(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/interpreter"

    def posts(self) -> list[bytes]:
        return [b for m, _, b in self.log if m == "POST"]


def ok(body: bytes) -> Reply:
    def reply(h: BaseHTTPRequestHandler) -> None:
        h._send(200, body, {"Content-Type": "application/osm3s+xml"})  # type: ignore[attr-defined]
    return reply


def status(code: int, *, retry_after: str | None = None, body: bytes = b"busy") -> Reply:
    def reply(h: BaseHTTPRequestHandler) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        h._send(code, body, headers)  # type: ignore[attr-defined]
    return reply


def hang(fake: FakeOverpass, seconds: float) -> Reply:
    def reply(h: BaseHTTPRequestHandler) -> None:
        fake.stop.wait(seconds)  # longer than the client's read timeout
        h._send(200, DEMO_BYTES, {})  # type: ignore[attr-defined]
    return reply


def cut_off(body: bytes) -> Reply:
    def reply(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()  # no Content-Length: the client reads until the connection closes
        h.wfile.write(body[: len(body) // 2])
        h.close_connection = True
    return reply


@pytest.fixture
def fake() -> Iterator[FakeOverpass]:
    f = FakeOverpass()
    f.thread.start()
    yield f
    f.stop.set()
    f.server.shutdown()
    f.server.server_close()


def fetch_cfg(tmp_path: Path, url: str, *, out_name: str = "fetched.osm", **fetch: object
              ) -> Config:
    cfg = demo_config(tmp_path / "processed")
    settings: dict[str, object] = {
        "overpass_url": url, "timeout_s": 5.0, "read_timeout_s": 0.5, "max_retries": 3,
        "backoff_s": 0.01, "check_status": True}
    settings.update(fetch)
    return dataclasses.replace(
        cfg, inputs=dataclasses.replace(cfg.inputs, osm=tmp_path / "raw" / out_name),
        fetch=FetchConfig(**settings))  # type: ignore[arg-type]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_rate_limit_then_timeout_then_success(tmp_path: Path, fake: FakeOverpass,
                                              demo_layers: OSMLayers) -> None:
    fake.status = ["Rate limit: 2\nSlot available after: 2026-11-28T10:00:03Z, in 3 seconds.\n"]
    fake.replies = [status(429, retry_after="2"), hang(fake, 10.0), ok(DEMO_BYTES)]
    cfg = fetch_cfg(tmp_path, fake.url)
    sleeps: list[float] = []
    res = fetch_osm(cfg, sleep=sleeps.append)

    out = tmp_path / "raw" / "fetched.osm"
    assert out.read_bytes() == DEMO_BYTES  # byte for byte what the server sent
    assert res.sha256 == hashlib.sha256(DEMO_BYTES).hexdigest() and res.bytes == len(DEMO_BYTES)
    assert res.attempts == 3 and res.osm_base == "2026-08-15T11:23:42Z"
    # The status page's wait, Retry-After (2 s > back-off), then back-off 0.01·2 after the timeout.
    assert sleeps == [3.0, 2.0, pytest.approx(0.02)]
    # One status look before each request; requests one at a time, all with the same query.
    assert [m for m, _, _ in fake.log] == ["GET", "POST", "GET", "POST", "GET", "POST"]
    assert all(p == "/api/status" for m, p, _ in fake.log if m == "GET")
    queries = {urllib.parse.parse_qs(b.decode())["data"][0] for b in fake.posts()}
    assert queries == {res.query}
    assert leftovers(out.parent) == []

    # The ingest reads the file and finds what it finds in the shipped demo.
    layers = read_osm(dataclasses.replace(cfg), use_cache=False)
    assert layers.summary() == demo_layers.summary()

    prov = (out.parent / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "fetched.osm — fetched" in prov and fake.url in prov
    assert res.sha256 in prov and "2026-08-15T11:23:42Z" in prov and "(._;>;);" in prov


def test_rate_limited_to_the_end_is_one_clear_error(tmp_path: Path, fake: FakeOverpass,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    fake.replies = [status(429, retry_after="0") for _ in range(10)]
    out = tmp_path / "raw" / "fetched.osm"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"older good file")
    cfg_path = tmp_path / "configs" / "x.toml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(
        'name = "x"\n[study_area]\nbbox = [121.49, 31.23, 121.50, 31.24]\n'
        '[inputs]\nosm = "raw/fetched.osm"\n'
        f'[fetch]\noverpass_url = "{fake.url}"\nmax_retries = 2\nbackoff_s = 0.0\n'
        'read_timeout_s = 2.0\n', encoding="utf-8")
    assert cli.main(["fetch", "--config", str(cfg_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert sum(line.startswith("Overpass: HTTP 429") for line in lines) == 2  # retry warnings
    err = lines[-1]
    assert err.startswith("error: ")
    assert "HTTP 429" in err and "after 3 request(s)" in err and "fetch.overpass_url" in err
    assert len(fake.posts()) == 3
    assert out.read_bytes() == b"older good file"  # the failed download left the old file alone
    assert leftovers(out.parent) == []


def test_unreachable_server(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = fetch_cfg(tmp_path, f"http://127.0.0.1:{port}/api/interpreter", max_retries=1)
    sleeps: list[float] = []
    with pytest.raises(FetchError, match="refused") as info:
        fetch_osm(cfg, sleep=sleeps.append)
    assert "\n" not in info.value.one_line()
    assert sleeps == [pytest.approx(0.01)]
    assert not (tmp_path / "raw" / "fetched.osm").exists()


def test_cut_off_download_is_retried(tmp_path: Path, fake: FakeOverpass) -> None:
    fake.replies = [cut_off(DEMO_BYTES), ok(DEMO_BYTES)]
    cfg = fetch_cfg(tmp_path, fake.url, check_status=False)
    res = fetch_osm(cfg, sleep=lambda s: None)
    assert res.attempts == 2
    assert (tmp_path / "raw" / "fetched.osm").read_bytes() == DEMO_BYTES
    assert all(m == "POST" for m, _, _ in fake.log)  # check_status = false: no status look


def test_overpass_runtime_error_is_not_retried(tmp_path: Path, fake: FakeOverpass) -> None:
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">\n'
            b'<meta osm_base="2026-11-28T00:00:00Z"/>\n<remark> runtime error: Query timed out '
            b'in "query" at line 3 after 301 seconds. </remark>\n</osm>\n')
    fake.replies = [ok(body)]
    cfg = fetch_cfg(tmp_path, fake.url)
    with pytest.raises(DataError, match=r"Query timed out.*fetch\.timeout_s"):
        fetch_osm(cfg, sleep=lambda s: None)
    assert len(fake.posts()) == 1
    assert not (tmp_path / "raw" / "fetched.osm").exists()


def test_bad_request_is_not_retried(tmp_path: Path, fake: FakeOverpass) -> None:
    fake.replies = [status(400, body=b"<p><strong style=\"color:#FF0000\">Error</strong>: "
                                     b"line 2: parse error: Unknown type</p>")]
    with pytest.raises(FetchError, match=r"HTTP 400.*parse error: Unknown type"):
        fetch_osm(fetch_cfg(tmp_path, fake.url), sleep=lambda s: None)
    assert len(fake.posts()) == 1


def test_long_retry_after_gives_up_at_once(tmp_path: Path, fake: FakeOverpass) -> None:
    fake.replies = [status(429, retry_after="3600")]
    sleeps: list[float] = []
    with pytest.raises(FetchError, match="wait 3600 s"):
        fetch_osm(fetch_cfg(tmp_path, fake.url), sleep=sleeps.append)
    assert sleeps == [] and len(fake.posts()) == 1


def test_fetch_into_pbf_converts(tmp_path: Path, fake: FakeOverpass) -> None:
    cfg = fetch_cfg(tmp_path, fake.url, out_name="fetched.osm.pbf")
    res = fetch_osm(cfg, sleep=lambda s: None)
    pbf = tmp_path / "raw" / "fetched.osm.pbf"
    assert res.path == pbf and pbf.stat().st_size < len(DEMO_BYTES)

    def ids(path: Path) -> list[tuple[str, int]]:
        return [(o.type_str(), o.id) for o in osmium.FileProcessor(str(path))]

    assert ids(pbf) == ids(DEMO_OSM)
    assert leftovers(pbf.parent) == []


def test_query_asks_for_everything_the_ingest_needs(demo_cfg: Config) -> None:
    bbox = region_bbox_ll(demo_cfg)
    q = overpass_query(bbox, timeout_s=180, max_size_mb=512, extra_keys=["social_facility"])
    assert q.startswith("[out:xml][timeout:180][maxsize:536870912];")
    assert q.rstrip().endswith("(._;>;);\nout meta;")
    for key in ("highway", "railway", "waterway", "landuse", "building", "amenity", "shop",
                "healthcare", "social_facility", "leisure", "natural"):
        assert f'way["{key}"]' in q, key
    assert 'relation["type"="multipolygon"]' in q
    for kind in ("way", "relation"):  # heritage protected areas (designated, for unit classes)
        assert f'{kind}["boundary"="protected_area"]' in q
    assert 'relation["boundary"="administrative"]["admin_level"~"^(6|8)$"]' in q
    # ... and the ones enclosing the whole area, found through the box centre.
    cy, cx = map(float, re.findall(r"is_in\(([-\d.]+),([-\d.]+)\)->\.enclosing;", q)[0])
    assert (cx, cy) == pytest.approx(((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2), abs=1e-6)
    assert 'rel(pivot.enclosing)["boundary"="administrative"]' in q
    # Overpass boxes are (south, west, north, east); the box grows the study area by the margin.
    south, west, north, east = map(float, re.findall(r'way\["highway"\]\(([-\d.,]+)\)', q)[0].split(","))
    assert (west, south, east, north) == pytest.approx(bbox, abs=1e-6)
    sa = demo_cfg.study_area.bbox
    assert sa is not None
    assert west < sa[0] and south < sa[1] and east > sa[2] and north > sa[3]
    assert (sa[0] - west) * 111e3 * 0.85 == pytest.approx(demo_cfg.osm.graph_margin_m, rel=0.1)


def test_retry_after_forms() -> None:
    assert _retry_after_s("120") == 120.0
    assert _retry_after_s(None) is None and _retry_after_s("soon") is None
    now = 1_445_412_400.0  # 2015-10-21T07:26:40Z
    assert _retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == pytest.approx(80.0)


@pytest.mark.parametrize(("text", "key"), [
    ('overpass_url = "ftp://example.org/api"', "fetch.overpass_url"),
    ("read_timeout_s = -1.0", "fetch.read_timeout_s"),
    ("max_retries = -1", "fetch.max_retries"),
    ("timeout_s = 0", "fetch.timeout_s"),
    ("retries = 3", "fetch.retries"),
])
def test_fetch_config_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    from urbanunits.config import load_config
    from urbanunits.errors import ConfigError

    p = tmp_path / "configs" / "x.toml"
    p.parent.mkdir()
    p.write_text(f'name = "x"\n[study_area]\nbbox = [121.49, 31.23, 121.50, 31.24]\n'
                 f"[fetch]\n{text}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert key in info.value.one_line()


@pytest.mark.parametrize("check_status", [True, False])
def test_unresolvable_host_fails_at_once(tmp_path: Path, check_status: bool) -> None:
    """No DNS: one clear line within seconds, no retries (``.invalid`` never resolves)."""
    import time

    cfg = fetch_cfg(tmp_path, "http://nonexistent.invalid/api/interpreter", max_retries=4,
                    backoff_s=30.0, check_status=check_status)
    sleeps: list[float] = []
    t0 = time.perf_counter()
    with pytest.raises(FetchError, match=r"cannot resolve the server name .nonexistent\.invalid."
                       ) as info:
        fetch_osm(cfg, sleep=sleeps.append)
    assert time.perf_counter() - t0 < 5.0
    assert sleeps == []  # not one back-off pause
    assert "\n" not in info.value.one_line()
    assert not (tmp_path / "raw" / "fetched.osm").exists()
