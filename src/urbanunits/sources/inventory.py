"""The user's old-community inventory: a CSV with lon/lat, or a GeoPackage/GeoJSON of polygons.

Columns (case-insensitive; Chinese headers common in district lists are accepted as aliases):

=================  ========  ============================================================
column             needed    aliases
=================  ========  ============================================================
``name``           yes       小区名称, 名称, 小区
``lon``, ``lat``   CSV only  lng/longitude/经度, latitude/纬度
``id``             no        community_id, 编号 — unique; rows are numbered otherwise
``built_year``     no        建成年份, 建成年代, 年代, year — a 4-digit year is extracted
``floor_area_m2``  no        建筑面积, 总建筑面积 — gross floor area in m²
``households``     no        户数, 总户数
``population``     no        人口, 人数
=================  ========  ============================================================

Missing optional columns (or empty cells) are estimated later by :mod:`urbanunits.packages` and
flagged. A column that looks like a misspelling of an expected one (``floor_area``, ``househods``)
is an error naming it, so a typo never silently turns measured values into estimates. Other extra
columns are ignored.

Coordinates copied from Chinese web maps are in GCJ-02 (Gaode, Tencent) or BD-09 (Baidu); the
``coord_system`` option declares which, and they are converted to WGS84 with
:func:`urbanunits.crs.to_wgs84` before projection. Rows without coordinates are skipped and counted
(or stop the run with ``on_missing_coords="error"``). Duplicate ids are an error: later stages key
their rows by the id.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from urbanunits.crs import to_wgs84
from urbanunits.errors import CRSError, DataError, InputFileError

__all__ = ["EXPECTED_COLUMNS", "InventoryReport", "read_inventory"]

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"

#: Canonical column → accepted aliases (compared after stripping and lower-casing).
EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("community_id", "编号"),
    "name": ("小区名称", "名称", "小区"),
    "lon": ("lng", "longitude", "经度"),
    "lat": ("latitude", "纬度"),
    "built_year": ("建成年份", "建成年代", "年代", "year"),
    "floor_area_m2": ("建筑面积", "总建筑面积"),
    "households": ("户数", "总户数"),
    "population": ("人口", "人数"),
}
_NUMERIC = ("floor_area_m2", "households", "population")


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
            "households", "population", "id"]
    return "expected columns: " + ", ".join(cols) + (
        " (name" + (", lon, lat" if csv else "") + " required)")


def _canonical_columns(columns: list[str], path: Path, *, csv: bool) -> dict[str, str]:
    """Map file columns to canonical names; raise on likely misspellings and clashes."""
    lookup: dict[str, str] = {}
    for canon, aliases in EXPECTED_COLUMNS.items():
        if not csv and canon in {"lon", "lat"}:
            continue
        lookup[canon] = canon
        for a in aliases:
            lookup[a.lower()] = canon
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for col in columns:
        key = str(col).strip().lower()
        if key == "geometry" and not csv:
            continue
        found = lookup.get(key)
        if found is None:
            close = difflib.get_close_matches(key, list(lookup), n=1, cutoff=0.75)
            if close and lookup[close[0]] not in {lookup.get(str(c).strip().lower())
                                                  for c in columns}:
                raise DataError(f"{path}: column {col!r}",
                                f"is not a known column; did you mean {lookup[close[0]]!r}?",
                                f"rename it; {_expected_text(csv=csv)}")
            continue
        canon = found
        if canon in seen:
            raise DataError(f"{path}: column {col!r}",
                            f"gives {canon!r} a second time (also {seen[canon]!r})",
                            "keep one of the two columns")
        seen[canon] = str(col)
        mapping[str(col)] = canon
    required = ["name", "lon", "lat"] if csv else ["name"]
    for req in required:
        if req not in seen:
            raise DataError(f"{path}: column {req!r}", "is missing",
                            f"add it; {_expected_text(csv=csv)}")
    return mapping


def _read_csv(path: Path) -> pd.DataFrame:
    last: Exception | None = None
    # Chinese spreadsheets export UTF-8 with a BOM or GB18030 (a superset of GBK/GB2312).
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return pd.read_csv(path, dtype=str, encoding=enc, skipinitialspace=True,
                               keep_default_na=False)
        except UnicodeDecodeError as exc:
            last = exc
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputFileError(path, f"could not be read as CSV ({exc})",
                                 "save the inventory as a comma-separated file with a header "
                                 "row") from exc
    raise InputFileError(path, f"unknown text encoding ({last})", "save the CSV as UTF-8")


def _numbers(values: pd.Series, col: str, path: Path, lines: pd.Series, *,
             allow_negative: bool = False) -> pd.Series:
    text = values.astype("string").str.strip().str.replace(",", "", regex=False)
    text = text.mask(text.isin(["", "nan", "NaN", "NA", "null", "None", "-"]))
    num = pd.to_numeric(text, errors="coerce")
    bad = text.notna() & num.isna()
    if bad.any():
        rows = ", ".join(map(str, lines[bad].head(5).tolist()))
        raise DataError(f"{path}: column {col!r}",
                        f"has values that are not numbers (rows {rows}, e.g. "
                        f"{text[bad].iloc[0]!r})",
                        "use plain numbers (no units), or leave the cell empty to estimate it")
    if not allow_negative and (num < 0).any():
        rows = ", ".join(map(str, lines[num < 0].head(5).tolist()))
        raise DataError(f"{path}: column {col!r}", f"has negative values (rows {rows})",
                        "fix the values or leave the cells empty")
    return num.astype(float)


def _years(values: pd.Series, path: Path, lines: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    text = text.mask(text.isin(["", "nan", "NaN", "NA", "null", "None", "-"]))
    year = pd.to_numeric(text.str.extract(r"((?:1[89]|20)\d\d)", expand=False), errors="coerce")
    bad = text.notna() & year.isna()
    if bad.any():
        rows = ", ".join(map(str, lines[bad].head(5).tolist()))
        raise DataError(f"{path}: column 'built_year'",
                        f"has values without a 4-digit year (rows {rows}, e.g. "
                        f"{text[bad].iloc[0]!r})", "write years like 1986 or leave the cell empty")
    return year.astype(float)


def read_inventory(path: str | Path, *, crs: str, coord_system: str = "wgs84",
                   on_missing_coords: str = "skip") -> tuple[gpd.GeoDataFrame, InventoryReport]:
    """Read and validate an old-community inventory.

    Parameters
    ----------
    path
        CSV (``lon``/``lat`` columns) or a GeoPackage/GeoJSON/Shapefile of polygons or points.
    crs
        Target metric CRS (``study_area.crs``).
    coord_system
        Datum of the longitudes/latitudes: ``"wgs84"``, ``"gcj02"`` or ``"bd09"``. For vector
        files it applies when the file is in a geographic CRS (web-map digitising).
    on_missing_coords
        ``"skip"`` (count and drop rows without coordinates) or ``"error"``.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``inv_id`` (the file's id or None), ``name``, ``built_year``, ``floor_area_m2``,
        ``households``, ``population`` (NaN where absent), ``row`` (file line/feature number),
        geometry in ``crs``.
    InventoryReport
        Skipped rows, duplicate names and absent columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "inventory file not found",
                             "fix inputs.inventory in the config or remove it to use OSM "
                             "residential areas")
    csv = path.suffix.lower() in {".csv", ".txt"}
    report = InventoryReport(path=path)
    if csv:
        df = _read_csv(path)
        lines = pd.Series(np.arange(len(df)) + 2, index=df.index)  # header is line 1
    else:
        try:
            df = gpd.read_file(path, engine="pyogrio")
        except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputFileError(path, f"could not read the inventory ({first})",
                                 "use a CSV with lon/lat, a GeoPackage or a GeoJSON") from exc
        if df.crs is None:
            raise CRSError(path, "inventory has no CRS",
                           "save it with its CRS set (e.g. EPSG:4326)")
        lines = pd.Series(np.arange(len(df)) + 1, index=df.index)
    if df.empty:
        raise DataError(path, "inventory has no rows", "add communities or remove "
                        "inputs.inventory to use OSM residential areas")
    report.n_rows = len(df)
    cols = [c for c in df.columns if not (not csv and c == df.geometry.name)]
    mapping = _canonical_columns(cols, path, csv=csv)
    data = pd.DataFrame({canon: df[col] for col, canon in mapping.items()}, index=df.index)
    report.missing_columns = [c for c in ("built_year", "floor_area_m2", "households",
                                          "population") if c not in data.columns]

    if csv:
        lon = _numbers(data["lon"], "lon", path, lines, allow_negative=True)
        lat = _numbers(data["lat"], "lat", path, lines, allow_negative=True)
        missing = lon.isna() | lat.isna()
        ok = ~missing
        if ok.any():
            lo, la = lon[ok].to_numpy(), lat[ok].to_numpy()
            if np.all((lo >= 0) & (lo <= 90)) and np.all(la > 90):
                raise DataError(f"{path}: columns lon/lat", "look swapped (lat > 90)",
                                "longitude (≈ 121 for Ningbo) goes in lon, latitude (≈ 30) in lat")
            bad = (np.abs(lo) > 180) | (np.abs(la) > 90)
            if bad.any():
                rows = ", ".join(map(str, lines[ok][bad].head(5).tolist()))
                raise DataError(f"{path}: columns lon/lat",
                                f"coordinates out of range (rows {rows})",
                                "give WGS84/GCJ-02/BD-09 degrees, not projected metres")
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
    out["built_year"] = (_years(data.loc[keep, "built_year"], path, kl)
                         if "built_year" in data.columns else np.nan)
    for col in _NUMERIC:
        out[col] = (_numbers(data.loc[keep, col], col, path, kl)
                    if col in data.columns else np.nan)
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

