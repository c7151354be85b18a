"""Tables people read: bilingual headers, meaningful precision, 是/否, a data dictionary.

The GeoPackage keeps every value as computed; the CSV and XLSX tables written for reports are
formatted here, from the column names alone: a suffix says what a column holds (``_m`` metres,
``_m2`` square metres, ``_ha`` hectares, ``_share`` a share, ``_minutes``, ``_yuan`` yuan, ``n_``
or a counted noun such as ``_households`` a count, ``_ok`` and ``is_`` yes/no), and :data:`LABELS`
(plus the life-circle categories' and programme criteria's own labels) gives the Chinese name; the
project list (项目库), whose columns are Chinese already, gets its meanings and kinds from
:data:`ZH_COLUMNS`. One rule set, so every table of every stage reads the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from urbanunits._criteria import CRITERIA

__all__ = ["LABELS", "ZH_COLUMNS", "ColumnInfo", "column_info", "data_dictionary",
           "format_table", "header"]

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
    # units, packages, communities
    "class_label": ("单元类型名称", "unit class label"),
    "package_ids": ("片区编号", "renewal packages in the unit"),
    "member_ids": ("成员小区编号", "member communities' ids"),
    "member_names": ("成员小区名称", "member communities' names"),
    "unit_ids": ("所在单元编号", "update units the package lies in"),
    "subdistricts": ("所在街道", "sub-districts the package lies in"),
    "polsby_popper": ("紧凑度", "Polsby-Popper compactness 4πA/P² of the outline (1 = circle)"),
    "fill_ratio": ("填充率", "members' area ÷ outline area"),
    "span_m": ("跨度", "diameter of the smallest circle around the package"),
    "floor_area_estimated": ("建筑面积为估算", "floor area estimated (not listed)"),
    "households_estimated": ("户数为估算", "households estimated (not listed)"),
    "population_estimated": ("人口为估算", "residents estimated (not listed)"),
    "floor_area_method": ("建筑面积估算方法", "how the floor area was found"),
    "population_method": ("人口估算方法", "how the residents were found"),
    "levels_tagged_share": ("有层数标注建筑占比", "share of buildings with tagged storeys"),
    "site_area_m2": ("用地面积", "site area"),
    "in_study_area": ("位于研究范围内", "inside the study area"),
    "district": ("所在区", "district (区), as listed"),
    "street": ("所在街道(清单)", "street (街道), as listed in the inventory"),
    "neighbourhood": ("社区", "neighbourhood committee (社区), as listed"),
    "n_buildings": ("楼栋数", "buildings"),
    "levels": ("层数", "storeys"),
    "floors": ("层数", "storeys"),
    "has_elevator": ("有电梯", "has a lift"),
    "n_elevators": ("电梯数", "lifts in place"),
    "property_managed": ("有物业管理", "has property management"),
    "plan_year": ("计划年度(清单)", "plan year listed in the inventory (计划年度)"),
    "renovation_type": ("改造类型", "renovation type: basic 基础类, improvement 完善类, "
                                 "enhancement 提升类"),
    # programme
    "year": ("计划年度", "programme year"),
    "status": ("项目状态", "status: 实施 implement, 生成 generate, 谋划 plan, 储备 reserve"),
    "status_en": ("项目状态(英文)", "status in English"),
    "year_index": ("年度序号", "programme year index (0 = first year, -1 = reserve)"),
    "rank": ("排名", "rank (1 = first)"),
    "score": ("综合得分", "score: the sum of the criteria's points (0-100)"),
    "top_criteria": ("得分构成(前三项)", "the three largest contributions to the score"),
    "ready": ("具备实施条件", "consent reaches programme.min_consent_share"),
    "fixed_year": ("指定年度", "year fixed by the inventory's 计划年度"),
    "cost_yuan": ("估算投资", "estimated cost"),
    "works_cost_yuan": ("改造工程费用", "works cost: floor area × the type's unit cost"),
    "elevator_cost_yuan": ("加装电梯费用", "lift retrofit cost"),
    "budget_cap_yuan": ("年度投资上限", "budget cap of the year"),
    "floor_area_cap_m2": ("年度建筑面积上限", "floor-area cap of the year"),
    "households_cap": ("年度户数上限", "households cap of the year"),
    "elevator_buildings": ("加装电梯楼栋数", "buildings that are lift candidates"),
    "elevator_households": ("加装电梯受益户数", "households in lift-candidate buildings"),
    "n_lifts": ("加装电梯台数", "lifts to add"),
    "gap_items": ("生活圈缺项数", "mandatory life-circle items missed"),
    "consent_known_share": ("居民意愿已知户数占比", "share of households whose consent is known"),
    "consent_source": ("居民意愿来源", "where consent comes from: inventory, partial, unknown"),
    "built_years": ("建成年代", "members' years built"),
    "n_members": ("小区数", "member communities"),
    "n_packages": ("片区数", "renewal packages"),
    # lift candidates
    "candidate_id": ("候选编号", "candidate id"),
    "community_name": ("小区名称", "community name"),
    "level": ("候选层级", "building: one mapped building; community: a listed community "
                         "without mapped buildings"),
    "levels_source": ("层数来源", "storeys from: osm, inventory, assumed, unknown"),
    "elevator_source": ("电梯情况来源", "lift fact from: inventory, osm, assumed"),
    # site suggestions
    "method": ("选址方法", "mclp: maximal covering; lscp: set covering"),
    "kind": ("现状类型", "kind of site"),
    "ownership": ("权属", "ownership"),
    "new_communities": ("新覆盖小区数", "communities newly covered"),
    "new_residents": ("新覆盖人口", "residents newly covered"),
    "community_ids": ("新覆盖小区编号", "communities newly covered, in rank order"),
    # criterion values of the programme (their ``_norm`` and ``_points`` come from CRITERIA)
    "age_years": ("建成年限", "age at the start year (weighted by floor area for a package)"),
    "gap_residents": ("生活圈缺项×居民", "life-circle items missed × residents"),
    "unmanaged_share": ("无物业管理建筑面积占比", "share of floor area without property "
                                           "management"),
    "consent_share": ("居民意愿", "residents' consent: share in favour"),
    "colocation_packages": ("相邻片区数", "other packages within colocation_distance_m"),
}

#: The project list (项目库) is keyed by its Chinese headers: their meaning, kind and unit.
ZH_COLUMNS: dict[str, tuple[str, str, str]] = {
    "序号": ("row number", "count", ""),
    "项目编号": ("project (renewal package) id", "text", ""),
    "项目名称": ("project name", "text", ""),
    "所在区": ("district", "text", ""),
    "街道": ("street (街道)", "text", ""),
    "社区": ("neighbourhood committee", "text", ""),
    "小区个数": ("member communities", "count", "个"),
    "小区名称": ("member communities' names", "text", ""),
    "建成年代": ("members' years built", "text", ""),
    "建筑面积（万㎡）": ("floor area", "wan_m2", "万㎡"),
    "户数": ("households", "count", "户"),
    "改造类型": ("renovation type", "text", ""),
    "加装电梯（幢）": ("buildings getting a lift", "count", "幢"),
    "加装电梯（台）": ("lifts to add", "count", "台"),
    "估算投资（万元）": ("estimated cost", "wan_yuan", "万元"),
    "其中电梯（万元）": ("of which lifts", "wan_yuan", "万元"),
    "居民意愿": ("residents' consent: share in favour", "share", "%"),
    "计划年度": ("programme year", "year", ""),
    "项目状态": ("status", "text", ""),
    "综合得分": ("score (0-100)", "points", "分"),
    "排名": ("rank (1 = first)", "count", ""),
    "得分构成（前三项）": ("the three largest contributions to the score", "text", ""),
    "安排理由": ("why the project is in its year", "text", ""),
    "说明": ("note", "text", ""),
}

_CATEGORY_WORDS = {"ok": ("达标", "meets it"), "missing": ("缺项", "missing items"),
                   "ratio": ("距离/标准", "distance ÷ standard"),
                   "dist_m": ("距离(m)", "walking distance"),
                   "minutes": ("步行时间(分钟)", "walking time"),
                   "minutes_elderly": ("老人步行时间(分钟)", "walking time, elderly"),
                   "share": ("达标人口占比", "share of residents meeting it"),
                   "n_ok": ("达标小区数", "communities meeting it"),
                   "demand": ("需求人数", "residents in need"),
                   "access": ("可达供给", "places within reach per 1,000 people of the group "
                              "the facility serves (its demand, E2SFCA)"),
                   "shortfall_places": ("供给缺口", "places short of the standard")}

#: Counted nouns: a key ending in one (``elevator_households``, ``new_residents``,
#: ``<cat>_<subtype>_shortfall_places``; also ``n_<noun>`` and ``<noun>_cap``) is a count.
_COUNT_WORDS = {"households": "户", "residents": "人", "population": "人", "demand": "人",
                "buildings": "幢", "lifts": "台", "elevators": "台", "packages": "个",
                "communities": "个", "members": "个", "items": "项", "places": "个",
                "nodes": "个"}
_BOOL_KEYS = frozenset({"ready", "property_managed"})
#: Kind → unit shown in the Chinese header (when the name does not say it already).
_SHOWN_UNITS = {"share": "%", "metres": "m", "m2": "㎡", "ha": "ha", "minutes": "分钟",
                "yuan": "元", "years": "年", "per_1000": "个/千需求人口", "wan_m2": "万㎡",
                "wan_yuan": "万元"}


#: Programme criteria: ``<key>_norm`` and ``<key>_points`` (label "中文 english").
_CRITERIA = {key: tuple(spec[2].split(" ", 1)) for key, spec in CRITERIA.items()}


@dataclass(frozen=True)
class ColumnInfo:
    """How a column is shown: Chinese header, English meaning, kind and unit."""

    key: str
    zh: str
    en: str
    kind: str  # metres m2 ha share minutes ratio count bool year yuan points years per_1000
    #            wan_m2 wan_yuan number text
    unit: str


def _kind(key: str, values: pd.Series | None) -> tuple[str, str]:
    if not key.isascii():
        return ZH_COLUMNS[key][1:] if key in ZH_COLUMNS else ("text", "")
    if key.endswith(("_share", "share_ok")) or key.startswith("share"):
        return "share", "%"
    if values is not None and pd.api.types.is_bool_dtype(values.dtype):
        return "bool", ""
    words = key.split("_")
    noun = words[-2] if words[-1] == "cap" and len(words) > 1 else words[-1]
    # Counts first: ``n_ok``, ``<category>_n_ok`` and ``population_ok`` end like flags but are
    # numbers of communities or residents, and must never be shown as 是/否.
    numeric = values is None or pd.api.types.is_numeric_dtype(values) or values.isna().all()
    if numeric and (key.startswith("n_") or key.endswith("_n_ok")
                    or key in ("population_ok", "rank", "year_index")):
        return "count", _COUNT_WORDS.get(noun, "人" if key == "population_ok" else "")
    if key.endswith("_shortfall_places"):  # places short by the standard: 0.3 is not none
        return "number", "个"
    if key.endswith(("_ok", "_estimated")) or key in _BOOL_KEYS or key.startswith(
            ("is_", "on_", "below_", "above_", "old_by_", "cut_by_", "has_", "in_")):
        return "bool", ""
    if noun in _COUNT_WORDS:
        return "count", _COUNT_WORDS[noun]
    if key.endswith("_yuan"):
        return "yuan", "元"
    if key.endswith("_m2"):
        return "m2", "㎡"
    if key.endswith("_ha"):
        return "ha", "ha"
    if key.endswith("_m"):
        return "metres", "m"
    if key == "level_minutes":  # a level (5, 10, 15), not a time to round
        return "count", ""
    if key.endswith(("_minutes", "_minutes_elderly")) or key == "minutes":
        return "minutes", "min"
    if key.endswith(("_ratio", "_norm")) or key == "polsby_popper":
        return "ratio", ""
    if key.endswith("_access"):
        return "per_1000", "个/千需求人口"
    if key == "score" or key.endswith("_points"):
        return "points", "分"
    if key in ("levels", "floors"):
        return "number", "层"
    if key == "year" or key.endswith("_year"):
        return "year", ""
    if key.endswith("_years") and (values is None or pd.api.types.is_numeric_dtype(values)):
        return "years", "年"
    return "text", ""


def column_info(key: str, values: pd.Series | None = None, *,
                categories: Mapping[str, object] | None = None) -> ColumnInfo:
    """Header and format of one column (``categories``: the config's, for their labels).

    A column with no Chinese name known has ``zh == key``; the Chinese name carries the unit
    of a measured kind, e.g. ``估算投资(元)``, ``达标人口占比(%)``.
    """
    kind, unit = _kind(key, values)
    zh, en = _names(key, categories)
    shown = _SHOWN_UNITS.get(kind)
    if shown and zh != key and f"({shown})" not in zh and f"（{shown}）" not in zh:
        zh = f"{zh}({shown})"
    return ColumnInfo(key, zh, en, kind, unit)


def _names(key: str, categories: Mapping[str, object] | None) -> tuple[str, str]:
    if key in ZH_COLUMNS:
        return key, ZH_COLUMNS[key][0]
    if key in LABELS:
        return LABELS[key]
    cats = dict(categories or {})
    for cat_key, cat in cats.items():
        if not key.startswith(cat_key + "_"):
            continue
        rest = key[len(cat_key) + 1:]
        cat_zh = str(getattr(cat, "label", cat_key)).split(" ")[0]
        for sub_key, sub in getattr(cat, "subtypes", {}).items():
            if rest.startswith(sub_key + "_"):
                word = rest[len(sub_key) + 1:]
                if word not in _CATEGORY_WORDS:
                    return key, key  # an unknown measure: no half-English header
                sub_zh = str(getattr(sub, "label", sub_key)).split(" ")[0]
                zh, en = _CATEGORY_WORDS[word]
                return f"{sub_zh}{zh}", f"{sub_key}: {en}"
        if rest not in _CATEGORY_WORDS:
            return key, key
        zh, en = _CATEGORY_WORDS[rest]
        return f"{cat_zh}{zh}", f"{cat_key}: {en}"
    m = re.fullmatch(r"(.+?)_(n_ok|share)", key)
    if m and m.group(1) in ("all",):
        zh, en = _CATEGORY_WORDS[m.group(2)]
        return f"全部{zh}", f"all categories: {en}"
    m = re.fullmatch(r"(.+)_(norm|points)", key)
    if m and m.group(1) in _CRITERIA:
        c_zh, c_en = _CRITERIA[m.group(1)]
        if m.group(2) == "norm":
            return f"{c_zh}归一值", f"{c_en}: value ÷ the largest value (0-1)"
        return f"{c_zh}得分", f"{c_en}: points of the score"
    return key, key


def _fmt(series: pd.Series, kind: str) -> pd.Series:
    if kind == "bool":
        return series.map(lambda v: "" if v is None or v is pd.NA or (
            isinstance(v, float) and np.isnan(v)) else "是" if bool(v) else "否")
    if kind == "text":
        return _whole(series) if pd.api.types.is_float_dtype(series.dtype) else series
    num = pd.to_numeric(series, errors="coerce")
    if kind in ("metres", "m2", "count", "year", "yuan"):
        return num.round(0).astype("Int64")
    if kind == "share":
        return (num * 100).round(1)
    if kind == "per_1000":
        return (num * 1000).round(1)
    if kind == "number":
        return _whole(num.round(1))
    decimals = {"ha": 2, "wan_m2": 2, "ratio": 2, "minutes": 1, "points": 1, "years": 1,
                "wan_yuan": 1}
    return num.round(decimals.get(kind, 2))


def _whole(num: pd.Series) -> pd.Series:
    """Whole numbers as integers (a CSV would print ``4261.0``), other values as they are."""
    finite = num.dropna()
    if len(finite) and np.isfinite(finite).all() and (finite == finite.round(0)).all():
        return num.astype("Int64")
    return num


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
    """A bilingual header: ``建筑面积(㎡) floor_area_m2``; shares say (%).

    A column keyed in Chinese (the project list) is headed by its Chinese name alone.
    """
    zh = info.zh + ("(%)" if info.kind == "share" and "%" not in info.zh else "")
    return zh if zh == info.key or not info.key.isascii() else f"{zh} {info.key}"


def data_dictionary(tables: Mapping[str, list[ColumnInfo]]) -> pd.DataFrame:
    """One row per table × column: Chinese header, key, meaning and unit."""
    rows = [{"表 sheet": name, "列 column": i.key, "中文 Chinese": i.zh, "含义 meaning": i.en,
             "单位 unit": i.unit or ("是/否" if i.kind == "bool" else "")}
            for name, infos in tables.items() for i in infos]
    return pd.DataFrame(rows)
