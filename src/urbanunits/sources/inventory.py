"""The user's old-community inventory: a CSV/XLSX table with lon/lat, or polygons (GeoPackage...).

Columns (case-insensitive; Chinese headers common in district lists are accepted as aliases):

=================  ========  ============================================================
column             needed    aliases
=================  ========  ============================================================
``name``           yes       小区名称, 老旧小区名称, 小区名, 名称, 小区
``lon``, ``lat``   tables    lng/longitude/经度, latitude/纬度
``id``             no        community_id, 编号 — unique; rows are numbered otherwise
``built_year``     no        建成年份, 建成年代, 建成时间, 年代, year — ``1985``, ``1985年``,
                             ``80年代``, ``1980s``, ``1980-1985``…: see :mod:`urbanunits._years`
``status``         no        is_old, old_status, 是否老旧小区, 是否老旧, 新旧 — old/new,
                             老旧/非老旧, 是/否, yes/no, true/false, 1/0
``floor_area_m2``  no        建筑面积, 总建筑面积 — gross floor area in m²
``households``     no        户数, 总户数
``population``     no        人口, 人数
=================  ========  ============================================================

Fields of a bureau's project list, kept for the programme stage (:mod:`urbanunits.programme`;
all optional, NA when absent):

=====================  ===================================================================
column                 aliases and values
=====================  ===================================================================
``district``           区, 所属区, 区县 — text
``street``             街道, 所属街道, 镇街, subdistrict — text (the 街道 as listed)
``neighbourhood``      社区, 所属社区, 居委会 — text
``n_buildings``        楼栋数, 栋数, 幢数, buildings_count — a number (``12``, ``12栋``)
``levels``             层数, 楼层数, storeys, floors — typical storeys (``6``, ``6层``)
``elevator``           电梯, 有无电梯, 电梯数, lifts — 有/无, yes/no or a count (``2台``);
                       read into ``has_elevator`` (boolean) and ``n_elevators``
``property_managed``   物业, 有无物业, 物业管理 — 有/无, yes/no; 准物业, 自治, 托管 count as no
``consent_share``      居民意愿, 同意率, consent(_rate) — ``0.85``, ``85%`` or ``85`` (above 1 is
                       read as a percentage)
``plan_year``          计划年度, 改造年度, 实施年度 — a year fixed by the bureau
``renovation_type``    改造类型, 改造类别, renovation — 基础类/完善类/提升类 (basic/
                       improvement/enhancement); a cell naming several takes the widest
=====================  ===================================================================

Headers may carry a unit, in brackets (half- or full-width) or appended: ``建筑面积(㎡)``,
``建筑面积（万㎡）`` (values × 10,000), ``户数（户）``, ``人口(万人)``, ``floor_area_m2 [m²]``. A
known field with a bracketed unit it cannot take (``建筑面积(亩)``) is an error naming the column.
Values may use thousands separators and 万 (``3,456``, ``1.2万``, ``12000㎡``); a value that
carries its own 万 or unit is read as written, otherwise the header's unit applies. A value that
is not a number is an error naming the file, column, row and value (an estimate would hide it).

Missing optional columns (or empty cells) are estimated later by :mod:`urbanunits.packages` and
flagged. A column that looks like a misspelling of an expected one (``floor_area``, ``househods``;
the project-list fields are not checked this way) is an error naming it, so a typo never silently
turns measured values into estimates. Other extra columns are ignored. Title rows above the
header (a merged "XX区老旧小区清单" line) are skipped.

Coordinates copied from Chinese web maps are in GCJ-02 (Gaode, Tencent) or BD-09 (Baidu); the
``coord_system`` option declares which, and they are converted to WGS84 with
:func:`urbanunits.crs.to_wgs84` before projection. Rows without coordinates are skipped and counted
(or stop the run with ``on_missing_coords="error"``). Duplicate ids are an error: later stages key
their rows by the id.

:func:`read_overrides` reads the planner's override list (``inputs.community_overrides``).
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from urbanunits._fields import PROGRAMME_FIELDS
from urbanunits._years import EMPTY_CELLS, parse_years
from urbanunits.crs import swapped_hint, swapped_lonlat, to_wgs84
from urbanunits.errors import CRSError, DataError, InputFileError
from urbanunits.sources._table import TABLE_SUFFIXES, read_table, split_header

__all__ = ["EXPECTED_COLUMNS", "PROGRAMME_FIELDS", "InventoryReport", "parse_status",
           "read_inventory", "read_overrides"]

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"

#: Canonical column → accepted aliases (compared after stripping and lower-casing).
EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("community_id", "编号"),
    "name": ("小区名称", "老旧小区名称", "小区名", "名称", "小区"),
    "lon": ("lng", "longitude", "经度"),
    "lat": ("latitude", "纬度"),
    "built_year": ("建成年份", "建成年代", "建成时间", "年代", "year"),
    "status": ("is_old", "old_status", "是否老旧小区", "是否老旧", "新旧"),
    "floor_area_m2": ("建筑面积", "总建筑面积"),
    "households": ("户数", "总户数"),
    "population": ("人口", "人数"),
    # Fields of a bureau's project list, read for the programme stage (urbanunits.programme).
    "district": ("区", "所属区", "区县", "所属区县", "行政区", "县区"),
    "street": ("街道", "所属街道", "镇街", "街道(镇)", "乡镇街道", "subdistrict"),
    "neighbourhood": ("社区", "所属社区", "社区名称", "社区(村)", "居委会"),
    "n_buildings": ("楼栋数", "栋数", "幢数", "楼幢数", "buildings_count"),
    "levels": ("层数", "楼层数", "楼层", "storeys", "floors"),
    "elevator": ("电梯", "有无电梯", "是否有电梯", "电梯数", "电梯数量", "elevators", "lift",
                 "lifts"),
    "property_managed": ("物业", "物业管理", "有无物业", "是否有物业", "物业服务",
                         "property_management", "managed"),
    "consent_share": ("居民意愿", "改造意愿", "居民同意率", "同意率", "意愿", "consent",
                      "consent_rate"),
    "plan_year": ("计划年度", "计划改造年度", "改造年度", "实施年度", "年度"),
    "renovation_type": ("改造类型", "改造类别", "renovation"),
}
_NUMERIC = ("floor_area_m2", "households", "population")
_PROGRAMME_INPUTS = frozenset({"district", "street", "neighbourhood", "n_buildings", "levels",
                               "elevator", "property_managed", "consent_share", "plan_year",
                               "renovation_type"})
#: Units a header or a value may carry: normalised text → (quantity, factor to the field's unit).
UNITS: dict[str, tuple[str, float]] = {
    "m2": ("area", 1.0), "平方米": ("area", 1.0), "平米": ("area", 1.0),
    "万m2": ("area", 1e4), "万平方米": ("area", 1e4), "万平米": ("area", 1e4),
    "户": ("households", 1.0), "万户": ("households", 1e4),
    "人": ("population", 1.0), "万人": ("population", 1e4),
    "年": ("year", 1.0),
    "层": ("levels", 1.0), "栋": ("buildings", 1.0), "幢": ("buildings", 1.0),
    "台": ("elevators", 1.0), "部": ("elevators", 1.0), "%": ("share", 0.01),
}
_QUANTITY = {"floor_area_m2": "area", "households": "households", "population": "population",
             "built_year": "year", "plan_year": "year", "levels": "levels",
             "n_buildings": "buildings", "elevator": "elevators", "consent_share": "share"}
_ACCEPTED = {"area": "㎡ (m², 平方米) or 万㎡", "households": "户 or 万户",
             "population": "人 or 万人", "year": "年", "levels": "层", "buildings": "栋 or 幢",
             "elevators": "台 or 部", "share": "%"}
_UNIT_RX = "|".join(sorted((re.escape(u) for u in UNITS), key=len, reverse=True))
_BRACKETED = re.compile(r"(.+?)\s*[(\[【]\s*(.*?)\s*[)\]】]")
_APPENDED = re.compile(rf"(.+?)\s*[/_:]?\s*({_UNIT_RX})")
_VALUE = re.compile(rf"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(万|亿)?({_UNIT_RX})?")
_MULT = {"万": 1e4, "亿": 1e8}

#: Status words (compared after NFKC normalisation and lower-casing).
OLD_WORDS = frozenset({"old", "老旧", "老旧小区", "旧", "是", "yes", "y", "true", "1"})
NEW_WORDS = frozenset({"new", "非老旧", "非老旧小区", "新", "否", "no", "n", "false", "0"})
_STATUS_FIX = "write old or new (老旧/非老旧, 是/否, yes/no, true/false, 1/0)"


def _norm(text: object) -> str:
    """NFKC (full-width brackets and digits, ㎡ → m2), lower case, stripped."""
    return unicodedata.normalize("NFKC", str(text)).strip().lower()


@dataclass
class InventoryReport:
    """What reading the inventory skipped or found suspicious.

    Attributes
    ----------
    path
        The file read.
    n_rows
        Data rows in the file.
    skipped_rows
        File line numbers (CSV: header is line 1) or feature numbers of rows without
        coordinates/geometry.
    duplicate_names
        Names used by more than one row (allowed: common names repeat across districts).
    missing_columns
        Optional columns absent from the file (their values are estimated).
    """

    path: Path
    n_rows: int = 0
    skipped_rows: list[int] = field(default_factory=list)
    duplicate_names: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"inventory {self.path.name}: {self.n_rows} rows"]
        if self.skipped_rows:
            shown = ", ".join(map(str, self.skipped_rows[:10]))
            more = " …" if len(self.skipped_rows) > 10 else ""
            out.append(f"  skipped {len(self.skipped_rows)} row(s) without coordinates "
                       f"(lines {shown}{more})")
        if self.missing_columns:
            out.append(f"  estimated (column absent): {', '.join(self.missing_columns)}")
        if self.duplicate_names:
            out.append(f"  names used more than once: {', '.join(self.duplicate_names[:10])}")
        return out


def _expected_text(*, csv: bool) -> str:
    cols = ["name", *(["lon", "lat"] if csv else []), "built_year", "floor_area_m2",
            "households", "population", "id", "status"]
    return "expected columns: " + ", ".join(cols) + (
        " (name" + (", lon, lat" if csv else "") + " required)")


def _lookup(*, csv: bool) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for canon, aliases in EXPECTED_COLUMNS.items():
        if not csv and canon in {"lon", "lat"}:
            continue
        lookup[canon] = canon
        for a in aliases:
            lookup[_norm(a)] = canon
    return lookup


def _resolve(col: str, lookup: dict[str, str], path: Path) -> tuple[str, float] | None:
    """Canonical field and unit factor of a header, None when it is not a known field."""
    key = _norm(col)
    if key in lookup:
        return lookup[key], 1.0
    m = _BRACKETED.fullmatch(key)
    bracketed = m is not None
    if m is None:
        m = _APPENDED.fullmatch(key)
    if m is None or m[1].strip() not in lookup:
        return None
    canon, unit = lookup[m[1].strip()], m[2].strip()
    quantity = _QUANTITY.get(canon)
    if quantity is None:
        return (canon, 1.0) if bracketed else None  # 经度(°), 名称(小区): a note, not a unit
    if unit in UNITS and UNITS[unit][0] == quantity:
        return canon, UNITS[unit][1]
    if not bracketed:
        return None
    raise DataError(f"{path}: column {col!r}",
                    f"looks like {canon!r} but its unit {unit!r} is not one it accepts",
                    f"use {_ACCEPTED[quantity]} in the header (convert the values), or rename "
                    "the column if it is something else")


def _canonical_columns(columns: list[str], path: Path, *, csv: bool
                       ) -> tuple[dict[str, str], dict[str, float]]:
    """Map file columns to canonical names and unit factors; raise on misspellings and clashes."""
    lookup = _lookup(csv=csv)
    resolved = {str(col): _resolve(str(col), lookup, path) for col in columns}
    present = {r[0] for r in resolved.values() if r is not None}
    mapping: dict[str, str] = {}
    scales: dict[str, float] = {}
    seen: dict[str, str] = {}
    for col in columns:
        key = _norm(col)
        if key == "geometry" and not csv:
            continue
        found = resolved[str(col)]
        if found is None:
            # Only the core fields: project lists carry many neighbours of the programme fields
            # (物业费, 改造内容, district_code) that are other columns, not misspellings.
            core = [k for k, v in lookup.items() if v not in _PROGRAMME_INPUTS]
            close = difflib.get_close_matches(key, core, n=1, cutoff=0.75)
            if close and lookup[close[0]] not in present:
                raise DataError(f"{path}: column {col!r}",
                                f"is not a known column; did you mean {lookup[close[0]]!r}?",
                                f"rename it; {_expected_text(csv=csv)}")
            continue
        canon, scale = found
        if canon in seen:
            raise DataError(f"{path}: column {col!r}",
                            f"gives {canon!r} a second time (also {seen[canon]!r})",
                            "keep one of the two columns")
        seen[canon] = str(col)
        mapping[str(col)] = canon
        scales[canon] = scale
    required = ["name", "lon", "lat"] if csv else ["name"]
    for req in required:
        if req not in seen:
            raise DataError(f"{path}: column {req!r}", "is missing",
                            f"add it; {_expected_text(csv=csv)}")
    return mapping, scales


def _bad_value(path: Path, col: str, lines: pd.Series, bad: pd.Series, values: pd.Series,
               what: str, fix: str) -> DataError:
    rows = lines[bad]
    first = f"row {int(rows.iloc[0])} has {values[bad].iloc[0]!r}"
    more = (f" ({len(rows)} rows: {', '.join(map(str, rows.head(5).tolist()))}"
            f"{' …' if len(rows) > 5 else ''})") if len(rows) > 1 else ""
    return DataError(f"{path}: column {col!r}", f"{first}, {what}{more}", fix)


def _numbers(values: pd.Series, col: str, path: Path, lines: pd.Series, *,
             scale: float = 1.0, quantity: str | None = None,
             allow_negative: bool = False) -> pd.Series:
    """Numbers from text cells: ``3,456``, ``1.2万``, ``12000㎡``; header unit ``scale`` applies
    to plain numbers, a value's own 万/unit to itself."""
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values.tolist()):
        t = "" if v is None or v is pd.NA else _norm(v)
        if t in EMPTY_CELLS:
            continue
        t = re.sub(r"[,\s'_]", "", t)
        m = _VALUE.fullmatch(t)
        if m is None or (m[3] and UNITS[m[3]][0] != quantity) or (
                quantity is None and m[2]):
            bad[i] = True
            continue
        num = float(m[1])
        if m[2] or m[3]:
            out[i] = num * _MULT.get(m[2] or "", 1.0) * (UNITS[m[3]][1] if m[3] else 1.0)
        else:
            out[i] = num * scale
    num_s = pd.Series(out, index=values.index)
    bad_s = pd.Series(bad, index=values.index)
    if bad_s.any():
        raise _bad_value(path, col, lines, bad_s, values, "which is not a number",
                         "write a plain number (3456, 3,456 or 1.2万; units in the header), or "
                         "leave the cell empty to estimate it")
    if not allow_negative and (num_s < 0).any():
        raise _bad_value(path, col, lines, num_s < 0, values, "a negative value",
                         "fix the values or leave the cells empty")
    return num_s


def _years(values: pd.Series, col: str, path: Path, lines: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    empty = text.isna() | text.str.lower().isin(EMPTY_CELLS)
    year = parse_years(text.mask(empty))
    bad = ~empty & year.isna()
    if bad.any():
        raise _bad_value(path, col, lines, bad, values, "which holds no year",
                         "write 1985, 1985年, 80年代, 1980s or 1980-1985, or leave the cell "
                         "empty")
    return year


def parse_status(values: pd.Series, col: str, path: Path | str, lines: pd.Series) -> pd.Series:
    """Old/new words (老旧/非老旧, 是/否, yes/no, true/false, 1/0) → boolean, NA where empty.

    Raises
    ------
    DataError
        Naming the file, column, row and value of the first unknown word.
    """
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    bad = pd.Series(False, index=values.index)
    for idx, v in values.items():
        t = "" if v is None or v is pd.NA else _norm(v)
        if t in EMPTY_CELLS:
            continue
        if t in OLD_WORDS:
            out[idx] = True
        elif t in NEW_WORDS:
            out[idx] = False
        else:
            bad[idx] = True
    if bad.any():
        raise _bad_value(Path(path), col, lines, bad, values, "which is not old or new",
                         _STATUS_FIX)
    return out


ELEVATOR_YES = frozenset({"有", "是", "yes", "y", "true", "有电梯", "已装", "已加装"})
ELEVATOR_NO = frozenset({"无", "否", "no", "n", "false", "none", "没有", "无电梯", "未装"})
#: 物业: a professional property-management company counts as managed; 准物业 (basic cleaning and
#: guarding), 自治 (residents' self-management) and 托管 (run by the 社区) do not.
MANAGED_WORDS = frozenset({"有", "是", "yes", "y", "true", "1", "有物业", "专业物业", "物业公司",
                           "managed", "professional"})
UNMANAGED_WORDS = frozenset({"无", "否", "no", "n", "false", "0", "无物业", "准物业", "自治",
                             "自管", "托管", "社区托管", "none", "unmanaged"})
#: 改造类型 words → keys (国办发〔2020〕23号); a cell naming several takes the widest scope.
RENOVATION_WORDS = {"basic": ("基础", "basic"), "improvement": ("完善", "improvement"),
                    "enhancement": ("提升", "enhancement")}


def _words(values: pd.Series, col: str, path: Path, lines: pd.Series,
           table: dict[str, frozenset[str]], fix: str) -> pd.Series:
    """Cells → the key of ``table`` whose words contain them (NA when empty); error otherwise."""
    out = pd.Series(pd.NA, index=values.index, dtype=object)
    bad = pd.Series(False, index=values.index)
    for idx, v in values.items():
        t = "" if v is None or v is pd.NA else _norm(v)
        if t in EMPTY_CELLS:
            continue
        hit = next((k for k, words in table.items() if t in words), None)
        if hit is None:
            bad[idx] = True
        else:
            out[idx] = hit
    if bad.any():
        raise _bad_value(path, col, lines, bad, values, "which is not a value it takes", fix)
    return out


def _programme_fields(out: pd.DataFrame, data: pd.DataFrame, label: dict[str, str],
                      scales: dict[str, float], path: Path, lines: pd.Series) -> None:
    """Add :data:`PROGRAMME_FIELDS` to ``out`` (NA where the file lacks the column)."""
    idx = out.index
    for col in ("district", "street", "neighbourhood"):
        if col in data.columns:
            txt = data[col].astype("string").str.strip()
            out[col] = txt.mask(txt.str.lower().isin(EMPTY_CELLS)).astype(object)
        else:
            out[col] = None
    for col in ("n_buildings", "levels"):
        out[col] = (_numbers(data[col], label[col], path, lines, scale=scales[col],
                             quantity=_QUANTITY[col]) if col in data.columns else np.nan)
    has = pd.Series(pd.NA, index=idx, dtype="boolean")
    count = pd.Series(np.nan, index=idx)
    if "elevator" in data.columns:
        raw = data["elevator"]
        words = raw.map(lambda v: "" if v is None else _norm(v))
        is_yes, is_no = words.isin(ELEVATOR_YES), words.isin(ELEVATOR_NO)
        num = _numbers(raw.where(~(is_yes | is_no), ""), label["elevator"], path, lines,
                       quantity="elevators")
        count = num.where(~is_no, 0.0)
        has = pd.Series(np.where(is_yes, True, np.where(is_no, False, num > 0)), index=idx,
                        dtype="boolean").mask(~is_yes & ~is_no & num.isna())
    out["has_elevator"] = has
    out["n_elevators"] = count
    out["property_managed"] = (
        _words(data["property_managed"], label["property_managed"], path, lines,
               {"yes": MANAGED_WORDS, "no": UNMANAGED_WORDS},
               "write 有/无 (yes/no); 准物业, 自治 and 托管 count as not managed")
        .map({"yes": True, "no": False}).astype("boolean")
        if "property_managed" in data.columns else pd.Series(pd.NA, index=idx, dtype="boolean"))
    share = pd.Series(np.nan, index=idx)
    if "consent_share" in data.columns:
        raw = data["consent_share"]
        share = _numbers(raw, label["consent_share"], path, lines,
                         scale=scales["consent_share"], quantity="share")
        # 85 with no % sign means 85 %: nobody writes a share as 0.85 % of households.
        share = share.where(share <= 1.0, share / 100.0)
        if (share > 1.0).any():
            raise _bad_value(path, label["consent_share"], lines, share > 1.0, raw,
                             "which is above 100 %", "write a share (0.85) or a percentage "
                             "(85%)")
    out["consent_share"] = share
    out["plan_year"] = (_years(data["plan_year"], label["plan_year"], path, lines)
                        if "plan_year" in data.columns else np.nan)
    if "renovation_type" in data.columns:
        raw = data["renovation_type"]
        kinds = pd.Series(pd.NA, index=idx, dtype=object)
        bad = pd.Series(False, index=idx)
        for i, v in raw.items():
            t = "" if v is None else _norm(v)
            if t in EMPTY_CELLS:
                continue
            found = [k for k, words in RENOVATION_WORDS.items() if any(w in t for w in words)]
            if found:
                kinds[i] = found[-1]  # the widest scope named
            else:
                bad[i] = True
        if bad.any():
            raise _bad_value(path, label["renovation_type"], lines, bad, raw,
                             "which is not a renovation type",
                             "write 基础类, 完善类 or 提升类 (basic, improvement, enhancement)")
        out["renovation_type"] = kinds
    else:
        out["renovation_type"] = None


def _table_rows(path: Path, sheet: str, is_header: Callable[[list[str]], bool]
                ) -> tuple[pd.DataFrame, pd.Series]:
    raw, line_no = read_table(path, sheet=sheet)
    df, line_no = split_header(raw, line_no, path, is_header)
    return df, pd.Series(line_no, index=df.index)


def read_inventory(path: str | Path, *, crs: str, coord_system: str = "wgs84",
                   on_missing_coords: str = "skip", sheet: str = ""
                   ) -> tuple[gpd.GeoDataFrame, InventoryReport]:
    """Read and validate an old-community inventory.

    Parameters
    ----------
    path
        CSV or XLSX (``lon``/``lat`` columns) or a GeoPackage/GeoJSON/Shapefile of polygons or
        points.
    crs
        Target metric CRS (``study_area.crs``).
    coord_system
        Datum of the longitudes/latitudes: ``"wgs84"``, ``"gcj02"`` or ``"bd09"``. For vector
        files it applies when the file is in a geographic CRS (web-map digitising).
    on_missing_coords
        ``"skip"`` (count and drop rows without coordinates) or ``"error"``.
    sheet
        XLSX sheet name; empty means the first sheet.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``inv_id`` (the file's id or None), ``name``, ``built_year`` (the latest year
        the text allows, see :mod:`urbanunits._years`), ``built_year_text`` (the cell as
        written, None without the column), ``status`` (boolean: the file's old/new, NA where
        absent), ``floor_area_m2`` (m², header units applied), ``households``, ``population``
        (NaN where absent), the :data:`PROGRAMME_FIELDS` (NA where absent), ``row`` (file
        line/Excel row/feature number), geometry in ``crs``.
    InventoryReport
        Skipped rows, duplicate names and absent columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "inventory file not found",
                             "fix inputs.inventory in the config or remove it to use OSM "
                             "residential areas")
    if path.suffix.lower() == ".xls":
        raise InputFileError(path, "old Excel 97-2003 workbooks (.xls) are not read",
                             "save it as .xlsx (Excel: Save As → Excel Workbook) or as CSV")
    csv = path.suffix.lower() in TABLE_SUFFIXES  # a table with lon/lat columns
    report = InventoryReport(path=path)
    if csv:
        lookup = _lookup(csv=True)

        def is_header(cells: list[str]) -> bool:
            try:
                return any((r := _resolve(c, lookup, path)) is not None and r[0] == "name"
                           for c in cells)
            except DataError:
                return True  # a header after all: the mapping below reports the unit
        df, lines = _table_rows(path, sheet, is_header)
    else:
        try:
            df = gpd.read_file(path, engine="pyogrio")
        except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputFileError(path, f"could not read the inventory ({first})",
                                 "use a CSV or XLSX with lon/lat, a GeoPackage or a "
                                 "GeoJSON") from exc
        if df.crs is None:
            raise CRSError(path, "inventory has no CRS",
                           "save it with its CRS set (e.g. EPSG:4326)")
        lines = pd.Series(np.arange(len(df)) + 1, index=df.index)
    cols = [c for c in df.columns if not (not csv and c == df.geometry.name)]
    if cols:  # a wrong header is the better message even when no row follows it
        mapping, scales = _canonical_columns(cols, path, csv=csv)
    if df.empty:
        raise DataError(path, "inventory has no rows", "add communities or remove "
                        "inputs.inventory to use OSM residential areas")
    report.n_rows = len(df)
    data = pd.DataFrame({canon: df[col] for col, canon in mapping.items()}, index=df.index)
    label = {canon: col for col, canon in mapping.items()}  # the file's header, for messages
    report.missing_columns = [c for c in ("built_year", "floor_area_m2", "households",
                                          "population") if c not in data.columns]

    if csv:
        lon = _numbers(data["lon"], label["lon"], path, lines, allow_negative=True)
        lat = _numbers(data["lat"], label["lat"], path, lines, allow_negative=True)
        missing = lon.isna() | lat.isna()
        ok = ~missing
        if ok.any():
            lo, la = lon[ok].to_numpy(), lat[ok].to_numpy()
            if np.all((lo >= 0) & (lo <= 90)) and np.all(la > 90):
                raise DataError(f"{path}: columns lon/lat", "look swapped (lat > 90)",
                                "longitude (≈ 121 for Ningbo) goes in lon, latitude (≈ 30) in lat")
            bad = (np.abs(lo) > 180) | (np.abs(la) > 90)
            hint = swapped_hint(swapped_lonlat(lo, la))
            if bad.any():
                rows = ", ".join(map(str, lines[ok][bad].head(5).tolist()))
                raise DataError(f"{path}: columns lon/lat",
                                f"coordinates out of range (rows {rows})"
                                + (f"; {hint}" if hint else ""),
                                "give WGS84/GCJ-02/BD-09 degrees, not projected metres, with "
                                "longitude in lon and latitude in lat")
            if hint:
                logger.warning("%s: %s — those rows land far from the study area; put "
                               "longitude in lon and latitude in lat", path, hint)
    else:
        geom = df.geometry
        missing = geom.isna() | geom.is_empty
        types = set(geom[~missing].geom_type)
        if not types <= {"Polygon", "MultiPolygon", "Point"}:
            raise DataError(path, f"inventory geometries must be polygons or points, found "
                            f"{', '.join(sorted(types))}", "export polygons or points")

    if missing.any():
        if on_missing_coords == "error":
            rows = ", ".join(map(str, lines[missing].head(10).tolist()))
            raise DataError(path, f"{int(missing.sum())} row(s) without coordinates "
                            f"(rows {rows})", "fill them in, or set "
                            "inputs.inventory_on_missing_coords = \"skip\" to leave them out")
        report.skipped_rows = lines[missing].astype(int).tolist()
        logger.warning("%s: skipped %d row(s) without coordinates", path, int(missing.sum()))
    keep = ~missing
    if not keep.any():
        raise DataError(path, "no row has coordinates", "fill in lon/lat (or geometries)")

    out = pd.DataFrame(index=data.index[keep])
    out["inv_id"] = (data.loc[keep, "id"].astype("string").str.strip()
                     if "id" in data.columns else None)
    if "id" in data.columns:
        ids = out["inv_id"]
        empty = ids.isna() | (ids == "")
        if empty.any():
            rows = ", ".join(map(str, lines[keep][empty].head(5).tolist()))
            raise DataError(f"{path}: column 'id'", f"has empty ids (rows {rows})",
                            "give every row an id or drop the id column")
        dup = ids[ids.duplicated(keep=False)]
        if not dup.empty:
            shown = ", ".join(sorted(set(dup.tolist()))[:10])
            raise DataError(f"{path}: column 'id'", f"duplicate ids: {shown}",
                            "make the ids unique (later stages key communities by id)")
    names = data.loc[keep, "name"].astype("string").str.strip()
    if (names.isna() | (names == "")).any():
        rows = ", ".join(map(str, lines[keep][names.isna() | (names == "")].head(5).tolist()))
        raise DataError(f"{path}: column 'name'", f"has empty names (rows {rows})",
                        "give every community a name")
    out["name"] = names
    dup_names = names[names.duplicated(keep=False)]
    report.duplicate_names = sorted(set(dup_names.tolist()))
    kl = lines[keep]
    if "built_year" in data.columns:
        raw_year = data.loc[keep, "built_year"]
        out["built_year"] = _years(raw_year, label["built_year"], path, kl)
        text = raw_year.astype("string").str.strip()
        out["built_year_text"] = text.mask(text.str.lower().isin(EMPTY_CELLS)).astype(object)
    else:
        out["built_year"] = np.nan
        out["built_year_text"] = None
    out["status"] = (parse_status(data.loc[keep, "status"], label["status"], path, kl)
                     if "status" in data.columns
                     else pd.Series(pd.NA, index=out.index, dtype="boolean"))
    for col in _NUMERIC:
        out[col] = (_numbers(data.loc[keep, col], label[col], path, kl, scale=scales[col],
                             quantity=_QUANTITY[col])
                    if col in data.columns else np.nan)
    _programme_fields(out, data.loc[keep], label, scales, path, kl)
    out["row"] = kl.astype(int)

    if csv:
        wlon, wlat = to_wgs84(lon[keep].to_numpy(), lat[keep].to_numpy(), coord_system,
                              where=f"{path}: coord_system")
        g = gpd.GeoSeries(shapely.points(wlon, wlat), index=out.index, crs=WGS84)
    else:
        g = df.geometry[keep]
        if coord_system != "wgs84":
            if not g.crs.is_geographic:
                raise DataError(path, f"coord_system {coord_system!r} applies to longitude/"
                                f"latitude files, but the file is in {g.crs.to_string()}",
                                "set inputs.inventory_coord_system = \"wgs84\" for projected "
                                "files")
            g = g.to_crs(WGS84)
            g = gpd.GeoSeries(shapely.transform(
                g.values, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1],
                                                              coord_system))),
                index=g.index, crs=WGS84)
        bad = ~g.is_valid
        if bad.any():
            logger.warning("%s: repaired %d invalid geometries", path, int(bad.sum()))
            g = g.copy()
            g[bad] = shapely.make_valid(g[bad].values)
    gdf = gpd.GeoDataFrame(out, geometry=g.to_crs(crs), crs=crs)
    return gdf.reset_index(drop=True), report



#: Override-file columns → accepted aliases (compared after NFKC and lower-casing).
OVERRIDE_COLUMNS: dict[str, tuple[str, ...]] = {
    "community_id": ("id", "编号"),
    "osm_id": ("osm", "osmid"),
    "name": ("小区名称", "老旧小区名称", "小区名", "名称", "小区"),
    "status": (*EXPECTED_COLUMNS["status"], "状态"),
}


def read_overrides(path: str | Path, *, sheet: str = "") -> pd.DataFrame:
    """Read the planner's old/new overrides (``inputs.community_overrides``).

    A CSV (UTF-8 or GB18030/GBK) or XLSX with a ``status`` column (old/new, 老旧/非老旧, 是/否,
    yes/no, true/false, 1/0; aliases 状态, is_old, 是否老旧小区…) and, to say which community,
    ``community_id`` (as in ``communities``), ``osm_id`` or ``name`` (小区名称…); the first of
    these given on a row is used.

    Parameters
    ----------
    path
        The file.
    sheet
        XLSX sheet name; empty means the first sheet.

    Returns
    -------
    pandas.DataFrame
        ``row`` (file line/Excel row), ``community_id`` (str or None), ``osm_id`` (Int64),
        ``name`` (str or None), ``is_old`` (bool).

    Raises
    ------
    InputFileError
        When the file is missing or unreadable.
    DataError
        Naming the file, column, row and value: no status or key column, an unknown status, a
        row with no key, an osm_id that is not a number.
    """
    path = Path(path)
    where = "inputs.community_overrides"
    if not path.is_file():
        raise InputFileError(path, "override file not found",
                             f"fix {where} in the config or remove it")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputFileError(path, f"{where} must be a CSV or XLSX table",
                             "save it as .csv (UTF-8 or GBK) or .xlsx with columns name or "
                             "community_id/osm_id, and status")
    lookup = {_norm(a): canon for canon, aliases in OVERRIDE_COLUMNS.items()
              for a in (canon, *aliases)}
    df, lines = _table_rows(path, sheet, lambda cells: any(
        lookup.get(_norm(c)) == "status" for c in cells))
    mapping: dict[str, str] = {}
    for col in df.columns:
        canon = lookup.get(_norm(col))
        if canon is not None and canon not in mapping.values():
            mapping[str(col)] = canon
    label = {canon: col for col, canon in mapping.items()}
    expected = "expected columns: status and one of community_id, osm_id, name"
    if "status" not in label:
        raise DataError(f"{path}: column 'status'", "is missing", f"add it; {expected}")
    keys = [k for k in ("community_id", "osm_id", "name") if k in label]
    if not keys:
        raise DataError(f"{path}: columns", "no community_id, osm_id or name column",
                        f"add one; {expected}")
    out = pd.DataFrame({"row": lines.astype(int)}, index=df.index)
    for k in ("community_id", "osm_id", "name"):
        if k in label:
            txt = df[label[k]].astype(str).str.strip()
            out[k] = txt.mask(txt.str.lower().isin(EMPTY_CELLS)).astype(object)
        else:
            out[k] = None
    osm = out["osm_id"].astype("string").str.replace(r"^(?:way|relation|w|r)[/ ]?", "",
                                                     regex=True)
    osm_num = pd.to_numeric(osm, errors="coerce")
    bad = osm.notna() & osm_num.isna()
    if bad.any():
        raise _bad_value(path, label["osm_id"], lines, bad, out["osm_id"],
                         "which is not an OSM id", "write the number (e.g. 123456789)")
    out["osm_id"] = osm_num.astype("Int64")
    status = parse_status(df[label["status"]], label["status"], path, lines)
    nokey = out[["community_id", "osm_id", "name"]].isna().all(axis=1)
    if nokey.any():
        raise _bad_value(path, ", ".join(label[k] for k in keys), lines, nokey,
                         df[label["status"]], "a status but no community_id, osm_id or name",
                         "say which community each row is about, or delete the row")
    if status.isna().any():
        raise _bad_value(path, label["status"], lines, status.isna(), df[label["status"]],
                         "an empty status", _STATUS_FIX)
    out["is_old"] = status.astype(bool)
    return out.reset_index(drop=True)
