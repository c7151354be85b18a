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

The cells are read by :mod:`urbanunits.sources._cells`, the project-list fields by
:mod:`urbanunits.sources.project_list`; the planner's override list by
:mod:`urbanunits.sources.overrides`.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from urbanunits._fields import PROGRAMME_FIELDS
from urbanunits._years import EMPTY_CELLS
from urbanunits.crs import swapped_hint, swapped_lonlat, to_wgs84
from urbanunits.errors import CRSError, DataError, InputFileError
from urbanunits.sources._cells import (
    QUANTITY,
    STATUS_ALIASES,
    UNIT_RX,
    UNITS,
    norm,
    numbers,
    parse_status,
    years,
)
from urbanunits.sources._table import TABLE_SUFFIXES, table_rows
from urbanunits.sources.overrides import read_overrides
from urbanunits.sources.project_list import programme_fields

# parse_status and read_overrides are re-exported: callers imported them from here before the split.
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
    "status": STATUS_ALIASES,
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
_ACCEPTED = {"area": "㎡ (m², 平方米) or 万㎡", "households": "户 or 万户",
             "population": "人 or 万人", "year": "年", "levels": "层", "buildings": "栋 or 幢",
             "elevators": "台 or 部", "share": "%"}
_BRACKETED = re.compile(r"(.+?)\s*[(\[【]\s*(.*?)\s*[)\]】]")
_APPENDED = re.compile(rf"(.+?)\s*[/_:]?\s*({UNIT_RX})")


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


def _named(canon: str) -> str:
    """A column as a bureau's file names it, with the key: ``纬度 (lat)``."""
    zh = next((a for a in EXPECTED_COLUMNS.get(canon, ()) if not a.isascii()), None)
    return f"{zh} ({canon})" if zh else canon


def _expected_text(*, csv: bool) -> str:
    cols = ["name", *(["lon", "lat"] if csv else []), "built_year", "floor_area_m2",
            "households", "population", "id", "status"]
    required = ["name", *(["lon", "lat"] if csv else [])]
    return ("expected columns: " + ", ".join(map(_named, cols))
            + f" ({', '.join(required)} required)")


def _lookup(*, csv: bool) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for canon, aliases in EXPECTED_COLUMNS.items():
        if not csv and canon in {"lon", "lat"}:
            continue
        lookup[canon] = canon
        for a in aliases:
            lookup[norm(a)] = canon
    return lookup


def _resolve(col: str, lookup: dict[str, str], path: Path) -> tuple[str, float] | None:
    """Canonical field and unit factor of a header, None when it is not a known field."""
    key = norm(col)
    if key in lookup:
        return lookup[key], 1.0
    m = _BRACKETED.fullmatch(key)
    bracketed = m is not None
    if m is None:
        m = _APPENDED.fullmatch(key)
    if m is None or m[1].strip() not in lookup:
        return None
    canon, unit = lookup[m[1].strip()], m[2].strip()
    quantity = QUANTITY.get(canon)
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
        key = norm(col)
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
            raise DataError(f"{path}: column {_named(req)}", "is missing",
                            f"add it; {_expected_text(csv=csv)}")
    return mapping, scales


def _read_rows(path: Path, sheet: str, *, csv: bool) -> tuple[pd.DataFrame, pd.Series]:
    """The file's rows (a table read as text, or vector features) and their row numbers."""
    if csv:
        lookup = _lookup(csv=True)

        def is_header(cells: list[str]) -> bool:
            try:
                return any((r := _resolve(c, lookup, path)) is not None and r[0] == "name"
                           for c in cells)
            except DataError:
                return True  # a header after all: the mapping reports the unit
        return table_rows(path, sheet, is_header)
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
    return df, pd.Series(np.arange(len(df)) + 1, index=df.index)


def _lonlat(data: pd.DataFrame, label: dict[str, str], path: Path, lines: pd.Series
            ) -> tuple[pd.Series, pd.Series]:
    """Longitudes and latitudes of a table (NaN where a cell is empty), checked for swaps."""
    lon = numbers(data["lon"], label["lon"], path, lines, allow_negative=True)
    lat = numbers(data["lat"], label["lat"], path, lines, allow_negative=True)
    ok = lon.notna() & lat.notna()
    if not ok.any():
        return lon, lat
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
    return lon, lat


def _filled(data: pd.DataFrame, col: str, path: Path, lines: pd.Series, fix: str) -> pd.Series:
    """Column ``col`` as stripped text; an empty cell is an error naming its rows."""
    text = data[col].astype("string").str.strip()
    empty = text.isna() | (text == "")
    if empty.any():
        rows = ", ".join(map(str, lines[empty].head(5).tolist()))
        raise DataError(f"{path}: column {col!r}", f"has empty {col}s (rows {rows})", fix)
    return text


def _ids_and_names(data: pd.DataFrame, path: Path, lines: pd.Series
                   ) -> tuple[pd.Series | None, pd.Series]:
    """The file's ids (None without the column) and names, stripped; empty or repeated ids and
    empty names are errors naming the rows."""
    ids = None
    if "id" in data.columns:
        ids = _filled(data, "id", path, lines, "give every row an id or drop the id column")
        dup = ids[ids.duplicated(keep=False)]
        if not dup.empty:
            shown = ", ".join(sorted(set(dup.tolist()))[:10])
            raise DataError(f"{path}: column 'id'", f"duplicate ids: {shown}",
                            "make the ids unique (later stages key communities by id)")
    names = _filled(data, "name", path, lines, "give every community a name")
    return ids, names


def _attributes(out: pd.DataFrame, data: pd.DataFrame, label: dict[str, str],
                scales: dict[str, float], path: Path, lines: pd.Series) -> None:
    """Add the year, status and quantity columns to ``out`` (NA/NaN where the file lacks one)."""
    if "built_year" in data.columns:
        raw_year = data["built_year"]
        out["built_year"] = years(raw_year, label["built_year"], path, lines)
        text = raw_year.astype("string").str.strip()
        out["built_year_text"] = text.mask(text.str.lower().isin(EMPTY_CELLS)).astype(object)
    else:
        out["built_year"] = np.nan
        out["built_year_text"] = None
    out["status"] = (parse_status(data["status"], label["status"], path, lines)
                     if "status" in data.columns
                     else pd.Series(pd.NA, index=out.index, dtype="boolean"))
    for col in _NUMERIC:
        out[col] = (numbers(data[col], label[col], path, lines, scale=scales[col],
                            quantity=QUANTITY[col])
                    if col in data.columns else np.nan)
    programme_fields(out, data, label, scales, path, lines)


def _wgs84_features(geom: gpd.GeoSeries, coord_system: str, path: Path) -> gpd.GeoSeries:
    """Vector features with a web-map datum converted to WGS84, invalid polygons repaired."""
    g = geom
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
    return g


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
    df, lines = _read_rows(path, sheet, csv=csv)
    cols = [c for c in df.columns if not (not csv and c == df.geometry.name)]
    if df.empty and not cols:
        raise DataError(path, "inventory has no rows", "add communities or remove "
                        "inputs.inventory to use OSM residential areas")
    # A wrong header is the better message even when no row follows it.
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
        lon, lat = _lonlat(data, label, path, lines)
        missing = lon.isna() | lat.isna()
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

    kept, kl = data[keep], lines[keep]
    ids, names = _ids_and_names(kept, path, kl)
    out = pd.DataFrame({"inv_id": ids, "name": names}, index=kept.index)
    report.duplicate_names = sorted(set(names[names.duplicated(keep=False)].tolist()))
    _attributes(out, kept, label, scales, path, kl)
    out["row"] = kl.astype(int)
    if csv:
        wlon, wlat = to_wgs84(lon[keep].to_numpy(), lat[keep].to_numpy(), coord_system,
                              where=f"{path}: coord_system")
        g = gpd.GeoSeries(shapely.points(wlon, wlat), index=out.index, crs=WGS84)
    else:
        g = _wgs84_features(df.geometry[keep], coord_system, path)
    gdf = gpd.GeoDataFrame(out, geometry=g.to_crs(crs), crs=crs)
    return gdf.reset_index(drop=True), report
