"""Chinese/English labels of the run's columns and layers, for GIS aliases and map popups.

Field names stay ASCII in every format (PostGIS, FileGDB and QGIS expressions need that); these
labels are what people read: field aliases in the File Geodatabase and rows of the HTML popups.
"""

from __future__ import annotations

from urbanunits.catalog import LAYER_LABELS
from urbanunits.tables import column_info

#: Optional fields of a bureau's project list that an inventory carries to the programme stage
#: (absent columns give NA; the stage estimates or assumes them and says so). Read by
#: :mod:`urbanunits.sources.inventory`, passed on by the packages stage.
PROGRAMME_FIELDS = ("district", "street", "neighbourhood", "n_buildings", "levels",
                    "has_elevator", "n_elevators", "property_managed", "consent_share",
                    "plan_year", "renovation_type")

__all__ = ["LAYER_LABELS", "PROGRAMME_FIELDS", "category_label", "field_label"]

_FIELDS: dict[str, str] = {
    "unit_id": "单元编号 Unit id", "block_id": "街区编号 Block id",
    "community_id": "小区编号 Community id", "package_id": "片区编号 Package id",
    "facility_id": "设施编号 Facility id", "name": "名称 Name",
    "subdistrict": "街道 Sub-district", "subdistricts": "街道 Sub-districts",
    "area_m2": "面积 (m²) Area", "site_area_m2": "用地面积 (m²) Site area",
    "floor_area_m2": "建筑面积 (m²) Floor area", "households": "户数 Households",
    "population": "人口 Population", "built_year": "建成年份 Year built",
    "built_year_text": "建成年份原文 Year built (as given)", "is_old": "老旧小区 Old community",
    "unit_class": "单元类型 Unit class", "class_label": "单元类型说明 Unit class label",
    "package_ids": "片区编号 Package ids", "unit_ids": "单元编号 Unit ids",
    "n_communities": "小区数 Communities", "member_names": "成员小区 Member names",
    "member_ids": "成员编号 Member ids", "category": "设施类别 Category",
    "category_label": "设施类别说明 Category label", "subtype": "设施子类 Subtype",
    "subtype_label": "设施子类说明 Subtype label", "distance_m": "标准距离 (m) Standard distance",
    "dist_m": "步行距离 (m) Walking distance", "minutes": "步行时间 (分钟) Walking minutes",
    "shortfall_m": "超出距离 (m) Shortfall", "reason": "原因 Reason",
    "reason_text": "原因说明 Reason text", "n_missing": "缺项数 Categories missing",
    "all_ok": "全部达标 All requirements met", "all_share": "全部达标比例 Share all met",
    "access_m": "入口距离 (m) Access distance", "on_network": "在路网上 On network",
    "level_minutes": "生活圈层级 (分钟) Level", "requirement": "配置要求 Requirement",
    "from_id": "起点 From", "to_id": "终点 To", "source": "来源 Source",
    "old_rule": "老旧判定依据 Old-community rule",
}

_CATEGORIES: dict[str, str] = {
    "elderly_care": "养老", "childcare": "托育", "clinic": "医疗", "commerce": "商业",
    "education": "教育", "all": "全部",
}
_CATEGORIES_EN: dict[str, str] = {
    "elderly_care": "elderly care", "childcare": "childcare", "clinic": "clinic",
    "commerce": "commerce", "education": "education",
}
_SUBTYPES: dict[str, str] = {
    "day_care": "日间照料", "nursing_home": "养老院", "kindergarten": "幼儿园",
    "nursery": "托儿所", "health_station": "卫生服务站", "health_centre": "卫生服务中心",
    "outpatient": "门诊部", "hospital": "医院", "convenience": "便利店", "market": "菜市场",
    "mall": "商场", "pharmacy": "药店",
}
# column suffix → (Chinese, English)
_SUFFIXES: dict[str, tuple[str, str]] = {
    "_ok": ("达标", "met"), "_missing": ("缺失", "missing"),
    "_ratio": ("距离比", "distance / standard"), "_dist_m": ("步行距离 (m)", "walk (m)"),
    "_minutes_elderly": ("老人步行 (分钟)", "elderly walk (min)"),
    "_minutes": ("步行 (分钟)", "walk (min)"), "_n_ok": ("达标小区数", "communities met"),
    "_share": ("达标比例", "share met"),
}


def field_label(column: str) -> str:
    """The Chinese/English label of a column, or the column name when it has none.

    Parameters
    ----------
    column
        A column of one of the run's layers, e.g. ``"clinic_dist_m"``.

    Returns
    -------
    str
        E.g. ``"医疗步行距离 (m) Clinic walk (m)"``; a column named only in the report tables'
        :data:`urbanunits.tables.LABELS` (the programme's, the lift candidates') gets that
        Chinese name with its short English meaning, e.g. ``"估算投资(元) Estimated cost"``.
    """
    if column in _FIELDS:
        return _FIELDS[column]
    for suffix, (zh, en) in _SUFFIXES.items():
        if not column.endswith(suffix):
            continue
        stem = column[: -len(suffix)]
        for cat, cat_zh in _CATEGORIES.items():
            if stem == cat:
                return f"{cat_zh}{zh} {_CATEGORIES_EN.get(cat, cat).capitalize()} {en}"
            sub = stem[len(cat) + 1:]
            if stem.startswith(cat + "_") and sub in _SUBTYPES:
                return f"{_SUBTYPES[sub]}{zh} {sub.replace('_', ' ').capitalize()} {en}"
    info = column_info(column)
    if info.zh == column:
        return column
    # a long meaning (a list of codes, a formula) stays in the tables' dictionary
    en = info.en
    return f"{info.zh} {en[:1].upper()}{en[1:]}" if len(en) <= 40 else info.zh


def category_label(category: str) -> str:
    """Chinese/English name of a facility category, e.g. ``"养老 elderly care"``."""
    zh = _CATEGORIES.get(category)
    return f"{zh} {_CATEGORIES_EN.get(category, category)}" if zh else category
