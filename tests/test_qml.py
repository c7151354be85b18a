"""QGIS styles: Chinese labels never depend on one font being installed; legends read as maps do."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import geopandas as gpd
import shapely

from urbanunits import _qml
from urbanunits.config import default_categories
from urbanunits.export import layer_styles


def _doc(qml: str) -> ET.Element:
    return ET.fromstring(qml.split("\n", 1)[1])


def test_label_fonts_fall_back_to_every_platforms_cjk_font() -> None:
    root = _doc(_qml.single("fill", "#ffffff", label_field="name", font="Noto Sans CJK SC"))
    style = root.find("labeling/settings/text-style")
    assert style is not None and style.get("fontFamily") == "Noto Sans CJK SC"
    families = [f.get("name") for f in style.findall("families/family")]
    # Windows, macOS and Linux each find one of their own
    assert {"Microsoft YaHei", "SimHei"} & set(families)
    assert {"PingFang SC", "Hiragino Sans GB"} & set(families)
    assert {"WenQuanYi Micro Hei", "WenQuanYi Zen Hei"} & set(families)
    assert "Noto Sans CJK SC" not in families  # the primary is not repeated
    assert len(families) == len(set(families))


def test_facility_legend_reads_the_category_labels() -> None:
    cats = default_categories()
    fac = gpd.GeoDataFrame({"category": list(cats), "name": [f"设施{i}" for i in range(len(cats))]},
                           geometry=[shapely.Point(i, 0) for i in range(len(cats))],
                           crs="EPSG:32651")
    root = _doc(layer_styles({"facilities": fac})["facilities"])
    labels = {c.get("value"): c.get("label") for c in root.iter("category")}
    for key, cat in cats.items():
        assert labels[key] == cat.label  # 养老服务 Elderly care, not elderly_care
