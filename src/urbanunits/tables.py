"""Tables people read: bilingual headers, meaningful precision, 是/否, a data dictionary.

The GeoPackage keeps every value as computed; the CSV and XLSX tables written for reports are
formatted here, from the column names alone: a suffix says what a column holds (``_m`` metres,
``_m2`` square metres, ``_ha`` hectares, ``_share`` a share, ``_minutes``, ``n_`` a count, ``_ok``
and ``is_`` yes/no), and :data:`LABELS` (plus the life-circle categories' own labels) gives the
Chinese name. One rule set, so every table of every stage reads the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LABELS", "ColumnInfo", "column_info", "data_dictionary", "format_table"]

#: Chinese names of the columns shared by many tables (the rest are derived, see column_info).
LABELS: dict[str, tuple[str, str]] = {
    "unit_id": ("单元编号", "update unit id"),
    "unit_class": ("单元类型", "unit class"),
    "unit_class_label": ("单元类型名称", "unit class label"),
    "subdistrict": ("街道", "sub-district"),
    "nbs_code": ("统计区划代码", "NBS code"),
    "area_m2": ("面积(㎡)", "area"),
    "land_area_m2": ("用地面积(㎡)", "land area"),
    "size_status": ("规模", "size within the bounds?"),
    "size_note": ("规模说明", "why outside the size bounds"),
    "community_id": ("小区编号", "community id"),
    "name": ("名称", "name"),
    "is_old": ("老旧小区", "old community"),
    "old_rule": ("判定依据", "rule that decided old/new"),
    "old_by_name_only": ("仅按名称判定", "old by its name alone"),
    "built_year": ("建成年份", "year built"),
    "built_year_text": ("建成年代(原文)", "year built as written"),
    "floor_area_m2": ("建筑面积(㎡)", "gross floor area"),
    "households": ("户数", "households"),
    "population": ("人口", "residents"),
    "package_id": ("片区编号", "renewal package id"),
    "n_communities": ("小区数", "communities"),
    "below_floor": ("低于下限", "below a floor"),
    "above_ceiling": ("超过上限", "above a ceiling"),
    "on_network": ("连通步行网络", "on the walk network"),
    "n_entries": ("出入口数", "entry points"),
    "access_m": ("至路网距离(m)", "straight distance to the network"),
    "all_ok": ("全部达标", "meets every category"),
    "n_missing": ("未达标类别数", "categories not met"),
    "category": ("类别", "category"),
    "category_label": ("类别名称", "category label"),
    "subtype": ("设施项目", "facility item"),
    "subtype_label": ("设施项目名称", "facility item label"),
    "requirement": ("配建要求", "GB 50180 requirement"),
    "level_minutes": ("生活圈层级(分钟)", "life-circle level"),
    "distance_m": ("标准距离(m)", "standard walking distance"),
    "dist_m": ("步行距离(m)", "walking distance"),
    "minutes": ("步行时间(分钟)", "walking time"),
    "shortfall_m": ("超出距离(m)", "beyond the standard by"),
    "reason": ("原因", "reason code"),
    "reason_text": ("原因说明", "reason"),
    "standard": ("标准", "standard"),
    "label": ("名称", "label"),
    "n_facilities": ("设施数", "facilities"),
    "n_facilities_off_network": ("远离路网设施数", "facilities off the network"),
    "n_ok": ("达标小区数", "communities meeting it"),
    "share_ok": ("达标小区占比", "share of communities meeting it"),
    "population_ok": ("达标人口", "residents meeting it"),
    "pop_share_ok": ("达标人口占比", "share of residents meeting it"),
    "median_dist_m": ("距离中位数(m)", "median walking distance"),
    "historic_share": ("历史风貌区占比", "share under designated heritage areas"),
    "old_floor_share": ("老旧小区建筑面积占比", "old communities' share of floor area"),
    "n_old_communities": ("老旧小区数", "old communities"),
    "residential_floor_area_m2": ("居住建筑面积(㎡)", "residential floor area"),
    "old_floor_area_m2": ("老旧小区建筑面积(㎡)", "old communities' floor area"),
    "n_blocks": ("街区数", "blocks merged into the unit"),
    "share_residential": ("居住用地占比", "share of residential land use"),
    "share_commercial": ("商业用地占比", "share of commercial land use"),
    "share_industrial": ("工业用地占比", "share of industrial land use"),
    "share_green": ("绿地占比", "share of green space"),
    "share_public": ("公共服务用地占比", "share of public-service land use"),
    "n_residential_areas": ("居住区数", "named residential areas"),
    "n_historic_points": ("历史要素点数", "historic features (not designated areas)"),
    "n_merged": ("合并记录数", "records merged into this facility"),
    "snap_m": ("至路网距离(m)", "snap distance to the walk network"),
    "component_nodes": ("所在路网节点数", "nodes of the network piece it is on"),
    "facility_id": ("设施编号", "facility id"),
    "osm_id": ("OSM编号", "OpenStreetMap id"),
    "source": ("来源", "source"),
    "matched_by": ("识别规则", "classification rule"),
}

_CATEGORY_WORDS = {"ok": ("达标", "meets it"), "missing": ("缺项", "missing items"),
                   "ratio": ("距离/标准", "distance ÷ standard"),
                   "dist_m": ("距离(m)", "walking distance"),
                   "minutes": ("步行时间(分钟)", "walking time"),
                   "minutes_elderly": ("老人步行时间(分钟)", "walking time, elderly"),
                   "share": ("达标人口占比", "share of residents meeting it"),
                   "n_ok": ("达标小区数", "communities meeting it")}


@dataclass(frozen=True)
class ColumnInfo:
    """How a column is shown: Chinese header, English meaning, kind and unit."""

    key: str
    zh: str
    en: str
    kind: str  # metres | m2 | ha | share | minutes | ratio | count | bool | year | text
    unit: str


def _kind(key: str, values: pd.Series | None) -> tuple[str, str]:
    if key.endswith(("_share", "share_ok")) or key.startswith("share"):
        return "share", "%"
    if values is not None and values.dtype == bool:
        return "bool", ""
    # Counts first: ``n_ok``, ``<category>_n_ok`` and ``population_ok`` end like flags but are
    # numbers of communities or residents, and must never be shown as 是/否.
    if key.startswith("n_") or key.endswith("_n_ok") or key in ("households", "population",
                                                                 "population_ok"):
        return "count", ""
    if key.endswith("_ok") or key.startswith(("is_", "on_", "below_", "above_", "old_by_",
                                             "cut_by_")):
        return "bool", ""
    if key.endswith("_m2"):
        return "m2", "㎡"
    if key.endswith("_ha"):
        return "ha", "ha"
    if key.endswith("_m"):
        return "metres", "m"
    if key.endswith(("_minutes", "_minutes_elderly")) or key == "minutes":
        return "minutes", "min"
    if key.endswith("_ratio"):
        return "ratio", ""
    if key.endswith("_year") or key == "level_minutes":
        return "year" if key.endswith("_year") else "count", ""
    return "text", ""


def column_info(key: str, values: pd.Series | None = None, *,
                categories: Mapping[str, object] | None = None) -> ColumnInfo:
    """Header and format of one column (``categories``: the config's, for their labels)."""
    kind, unit = _kind(key, values)
    if key in LABELS:
        zh, en = LABELS[key]
        return ColumnInfo(key, zh, en, kind, unit)
    cats = dict(categories or {})
    for cat_key, cat in cats.items():
        if not key.startswith(cat_key + "_"):
            continue
        rest = key[len(cat_key) + 1:]
        cat_zh = str(getattr(cat, "label", cat_key)).split(" ")[0]
        for sub_key, sub in getattr(cat, "subtypes", {}).items():
            if rest.startswith(sub_key + "_"):
                word = rest[len(sub_key) + 1:]
                sub_zh = str(getattr(sub, "label", sub_key)).split(" ")[0]
                zh, en = _CATEGORY_WORDS.get(word, (word, word))
                return ColumnInfo(key, f"{sub_zh}{zh}", f"{sub_key}: {en}", kind, unit)
        zh, en = _CATEGORY_WORDS.get(rest, (rest, rest))
        return ColumnInfo(key, f"{cat_zh}{zh}", f"{cat_key}: {en}", kind, unit)
    m = re.fullmatch(r"(.+?)_(n_ok|share)", key)
    if m and m.group(1) in ("all",):
        zh, en = _CATEGORY_WORDS[m.group(2)]
        return ColumnInfo(key, f"全部{zh}", f"all categories: {en}", kind, unit)
    return ColumnInfo(key, key, key, kind, unit)


def _fmt(series: pd.Series, kind: str) -> pd.Series:
    num = pd.to_numeric(series, errors="coerce") if kind not in ("bool", "text") else series
    if kind == "bool":
        return series.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v))
                          else "是" if bool(v) else "否")
    if kind in ("metres", "m2", "count", "year"):
        return num.round(0).astype("Int64")
    if kind == "ha":
        return num.round(2)
    if kind == "share":
        return (num * 100).round(1)
    if kind in ("minutes", "ratio"):
        return num.round(1 if kind == "minutes" else 2)
    return series


def format_table(df: pd.DataFrame, *, categories: Mapping[str, object] | None = None
                 ) -> tuple[pd.DataFrame, list[ColumnInfo]]:
    """A table for people: geometry dropped, values rounded, 是/否, shares in percent.

    Returns
    -------
    tuple
        The formatted table (columns still keyed by name) and each column's
        :class:`ColumnInfo` (headers, kinds) in order.
    """
    df = pd.DataFrame(df.drop(columns=[c for c in df.columns if c == "geometry"
                                       or str(df[c].dtype) == "geometry"]))
    infos = [column_info(c, df[c], categories=categories) for c in df.columns]
    out = pd.DataFrame({i.key: _fmt(df[i.key], i.kind) for i in infos}, index=df.index)
    return out, infos


def header(info: ColumnInfo) -> str:
    """A bilingual header: ``建筑面积(㎡) floor_area_m2``; shares say (%)."""
    zh = info.zh + ("(%)" if info.kind == "share" and "%" not in info.zh else "")
    return zh if zh == info.key else f"{zh} {info.key}"


def data_dictionary(tables: Mapping[str, list[ColumnInfo]]) -> pd.DataFrame:
    """One row per table × column: Chinese header, key, meaning and unit."""
    rows = [{"表 sheet": name, "列 column": i.key, "中文 Chinese": i.zh, "含义 meaning": i.en,
             "单位 unit": i.unit or ("是/否" if i.kind == "bool" else "")}
            for name, infos in tables.items() for i in infos]
    return pd.DataFrame(rows)
