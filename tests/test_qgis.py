"""The GeoPackage as GIS staff see it: opened in a real QGIS (PyQGIS, offscreen).

Optional: runs where a Python with QGIS is installed (Debian's python3-qgis, found at
``/usr/bin/python3`` or ``$URBANUNITS_QGIS_PYTHON``), and is skipped elsewhere. It runs
``scripts/qgis_check.py``, which loads every layer with the default style QGIS finds in
``layer_styles``, and compares what QGIS shows with the report maps' classes and labels.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

from urbanunits.config import default_categories
from urbanunits.export import CATEGORY_COLORS, layer_styles, write_layers
from urbanunits.units import CLASS_COLORS, CLASS_LABELS

from .conftest import ROOT

QGIS_PYTHON = os.environ.get("URBANUNITS_QGIS_PYTHON", "/usr/bin/python3")


def _has_qgis() -> bool:
    try:
        return subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = pytest.mark.skipif(not _has_qgis(), reason="no Python with QGIS (python3-qgis)")


def test_qgis_shows_the_report_classes_and_bilingual_legends(tmp_path: Path) -> None:
    crs = "EPSG:32651"
    classes = list(CLASS_COLORS)
    units = gpd.GeoDataFrame({"unit_id": [f"U{i:03d}" for i in range(len(classes))],
                              "unit_class": classes},
                             geometry=[shapely.box(i * 100, 0, i * 100 + 90, 90)
                                       for i in range(len(classes))], crs=crs)
    cats = default_categories()
    fac = gpd.GeoDataFrame({"category": list(cats), "name": [f"设施{i}" for i in range(len(cats))]},
                           geometry=[shapely.Point(i * 100 + 45, 45) for i in range(len(cats))],
                           crs=crs)
    layers = {"update_units": units, "facilities": fac}
    gpkg = write_layers(tmp_path / "run.gpkg", layers, styles=layer_styles(layers))
    png = tmp_path / "qgis.png"
    out = subprocess.run([QGIS_PYTHON, str(ROOT / "scripts" / "qgis_check.py"), str(gpkg),
                          str(png)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    units_q = report["layers"]["update_units"]
    assert units_q["style_loaded"] and units_q["renderer"] == "categorizedSymbol"
    got = {c["value"]: (c["color"].lower(), c["label"]) for c in units_q["categories"]}
    assert got == {k: (CLASS_COLORS[k].lower(), CLASS_LABELS[k]) for k in CLASS_COLORS}
    fac_q = report["layers"]["facilities"]
    labels = {c["value"]: c["label"] for c in fac_q["categories"]}
    colors = {c["value"]: c["color"].lower() for c in fac_q["categories"]}
    for key, cat in cats.items():
        assert labels[key] == cat.label  # 养老服务 Elderly care, not elderly_care
        assert colors[key] == CATEGORY_COLORS[key].lower()
    # QGIS read the fallback families (it resolves the first one installed)
    assert {"Microsoft YaHei", "PingFang SC", "WenQuanYi Micro Hei"} <= set(
        units_q["label_families"])
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.std() > 10  # not a blank canvas
