"""The HTML map: one self-contained page, opened in headless Chromium with the network cut off.

Locally the browser tests skip when Chromium is not installed; in CI (env CI set) they fail,
since .ci/run installs Debian's ``chromium``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from urbanunits.webmap import MAP_LAYERS, VERDICT_CLASSES, build_webmap, write_webmap

from .runfixture import write_run

# Any request the page makes goes to a closed port and fails, as on an offline PC.
_OFFLINE = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    why = "Chromium not installed (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {why}")
    pytest.skip(why)


def _run_browser(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    profile.mkdir()
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,900",
           "--virtual-time-budget=5000", *_OFFLINE, *extra, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("webmap")
    gpkg = write_run(tmp / "run.gpkg")
    return write_webmap(gpkg, tmp / "run.html", title="testrun")


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    external = re.findall(r'<(?:script|link|img)[^>]*(?:src|href)="(https?:)?//[^"]*"', text)
    assert external == []
    assert "Leaflet 1.9" in text  # inlined, not linked
    # the data are in the page, with Chinese/English popup labels
    # (folium writes the GeoJSON with \\u escapes; legend HTML is verbatim)
    for needle in ("兰园小区", "户数 Households", "建成年份 Year built"):
        assert json.dumps(needle)[1:-1] in text
    assert "urbanunits-legend" in text and "全部达标" in text


def test_verdict_colours_follow_missing_categories(tmp_path: Path) -> None:
    text = build_webmap(write_run(tmp_path / "run.gpkg"), title="t")
    # folium passes each layer's GeoJSON to an `..._add({...});` call, one line each
    features = [json.loads(m) for m in re.findall(r'_add\((\{"features".*\})\);?$', text, re.M)]
    assert len(features) == len(MAP_LAYERS)
    colours = {f["properties"]["name"]: f["properties"]["_color"]
               for fc in features for f in fc["features"]
               if "n_missing" in f["properties"]}
    assert colours == {"兰园小区": VERDICT_CLASSES[0][1], "菊园新村": VERDICT_CLASSES[3][1]}


def test_opens_offline_lists_layers_and_draws(page: Path, tmp_path: Path) -> None:
    dom = _run_browser(tmp_path, page, "--dump-dom").stdout
    boxes = re.findall(r'leaflet-control-layers-selector"( checked="")?><span>([^<]*)</span>',
                       dom)
    from urbanunits.webmap import _LABELS

    assert [label.strip() for _, label in boxes] == [
        "OpenStreetMap 底图 basemap (needs internet)", *(_LABELS[n] for n in MAP_LAYERS)]
    # all on but the basemap (no network requests) and the service gaps
    assert [bool(on) for on, _ in boxes] == [False, True, True, False, True, True]
    # every shown feature became an SVG path or circle marker (data drawn without network):
    # 3 units + 1 package + 2 communities + 3 facilities
    assert len(re.findall(r'class="leaflet-interactive"', dom)) == 9
    assert 'id="urbanunits-legend"' in dom

    shot = tmp_path / "shot.png"
    _run_browser(tmp_path, page, f"--screenshot={shot}")
    import matplotlib.image

    img = matplotlib.image.imread(shot)[..., :3]
    assert img.shape[:2] == (900, 1200)
    flat = (img * 255).round().astype(int).reshape(-1, 3)
    background = np.bincount(flat @ np.array([65536, 256, 1])).argmax()
    not_background = (flat @ np.array([65536, 256, 1]) != background).mean()
    assert not_background > 0.10, "the screenshot is (nearly) blank"
    assert len(np.unique(flat, axis=0)) > 50
