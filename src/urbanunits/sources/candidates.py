"""The register of candidate sites: idle public buildings and vacant land (盘活存量闲置公房).

A register is a spreadsheet (CSV/XLSX with longitude/latitude, any datum: WGS84, GCJ-02 as on
Gaode/Tencent maps, BD-09 as on Baidu) or a vector file GDAL reads (points or footprints, with
its CRS). Columns may be English or Chinese:

====================  =========================================
column                also accepted
====================  =========================================
``name``              名称, 地址, 项目名称
``lon`` / ``lat``     经度 / 纬度, lng, longitude / latitude
``floor_area_m2``     建筑面积, 建筑面积(m2), floor_area
``site_area_m2``      占地面积, 用地面积, 土地面积, site_area
``floors``            层数, 楼层数, levels
``ownership``         产权, 权属, 产权单位, owner
``kind``              类型, 现状, 用途
====================  =========================================

A row with a site area and floors offers their product; a site area alone offers
``site_area_m2 × sites.land_far`` (a plot to build on). A row with neither cannot be checked
against a subtype's minimum floor area and is counted as too small.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from urbanunits.crs import swapped_hint, swapped_lonlat, to_wgs84
from urbanunits.errors import CRSError, DataError, InputFileError
from urbanunits.sites import CANDIDATE_COLUMNS
from urbanunits.sources._table import TABLE_SUFFIXES, read_table, split_header

__all__ = ["read_candidate_sites"]

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"

_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "名称", "地址", "项目名称", "site", "address"),
    "lon": ("lon", "lng", "longitude", "经度", "x"),
    "lat": ("lat", "latitude", "纬度", "y"),
    "floor_area_m2": ("floor_area_m2", "floor_area", "建筑面积", "gfa"),
    "site_area_m2": ("site_area_m2", "site_area", "占地面积", "用地面积", "土地面积"),
    "floors": ("floors", "levels", "层数", "楼层数", "地上层数"),
    "ownership": ("ownership", "owner", "产权", "权属", "产权单位", "权属单位"),
    "kind": ("kind", "type", "类型", "现状", "用途", "现状用途"),
}


def _canon(header: str) -> str | None:
    """The column a header stands for (units and brackets ignored), or None."""
    h = re.sub(r"[（(].*?[)）]|\s|㎡|m2|m²|平方米", "", str(header).strip().lower())
    for key, names in _ALIASES.items():
        if h in {re.sub(r"\s", "", n.lower()) for n in names} or h == key:
            return key
    return None


def _rename(df: pd.DataFrame) -> pd.DataFrame:
    names: dict[str, str] = {}
    for col in df.columns:
        key = _canon(str(col))
        if key is not None and key not in names.values():
            names[str(col)] = key
    return df.rename(columns=names)


def _numbers(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index)
    text = df[col].astype("string").str.replace(",", "", regex=False).str.strip()
    out = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
    bad = out.isna() & text.fillna("").ne("")
    if bad.any():
        logger.warning("%s: %d value(s) in %r are not numbers and are read as missing (e.g. "
                       "%r)", path, int(bad.sum()), col, str(text[bad].iloc[0]))
    return out.where(out >= 0)


def read_candidate_sites(path: str | Path, *, crs: str, coord_system: str = "wgs84",
                         sheet: str = "", land_far: float = 1.0,
                         where: str = "inputs.candidate_sites") -> gpd.GeoDataFrame:
    """Read a register of idle buildings and vacant land as candidate sites.

    Parameters
    ----------
    path
        CSV/XLSX with lon/lat columns, or a vector file (GeoPackage, GeoJSON, Shapefile).
    crs
        The run's metric CRS.
    coord_system
        Datum of the lon/lat: ``wgs84``, ``gcj02`` or ``bd09`` (for a vector file, only when
        it is in geographic coordinates).
    sheet
        XLSX sheet; empty = the first.
    land_far
        Floor area per m² of site area for rows that give neither floor area nor floors.
    where
        Config key of the file, for messages.

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`urbanunits.sites.CANDIDATE_COLUMNS` with ``source`` = the file name, as points
        (footprints → representative points) in ``crs``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "candidate-site register not found",
                             f"check {where} in the config or put the file there")
    to_wgs84(np.zeros(0), np.zeros(0), coord_system, where=f"{where}_coord_system")
    if p.suffix.lower() in TABLE_SUFFIXES:
        raw, lines = read_table(p, sheet=sheet)
        df, _ = split_header(raw, lines, p, lambda cells: sum(
            _canon(c) in ("lon", "lat") for c in cells) == 2)
        df = _rename(df)
        if "lon" not in df.columns or "lat" not in df.columns:
            have = ", ".join(map(str, df.columns)) or "none"
            raise DataError(f"{p}: columns", f"no longitude/latitude columns; columns: {have}",
                            "add columns lon and lat (or 经度 and 纬度) in decimal degrees")
        lon = _numbers(df, "lon", p)
        lat = _numbers(df, "lat", p)
        ok = lon.between(-180, 180) & lat.between(-90, 90)
        swapped = swapped_hint(swapped_lonlat(lon, lat))
        if not ok.any():
            raise DataError(f"{p}: columns lon/lat", "no row has longitude/latitude in degrees"
                            + (f" ({swapped})" if swapped else ""),
                            "give decimal degrees (e.g. 121.55, 29.87)")
        x, y = to_wgs84(lon[ok].to_numpy(), lat[ok].to_numpy(), coord_system,
                        where=f"{where}_coord_system")
        geom = gpd.GeoSeries(shapely.points(x, y), index=lon[ok].index, crs=WGS84).to_crs(crs)
        footprint = pd.Series(np.nan, index=geom.index)
    else:
        try:
            gdf = gpd.read_file(p, engine="pyogrio")
        except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
            raise InputFileError(p, f"could not read the register ({str(exc).splitlines()[0]})",
                                 "use a CSV/XLSX with lon/lat, a GeoPackage or a GeoJSON"
                                 ) from exc
        if gdf.crs is None:
            raise CRSError(p, "the register has no CRS", "save it with its CRS set")
        ok = ~(gdf.geometry.isna() | gdf.geometry.is_empty)
        gdf = gdf[ok]
        df = _rename(pd.DataFrame(gdf.drop(columns=gdf.geometry.name)))
        shapes = gdf.geometry
        if coord_system.lower() != "wgs84":
            if not gdf.crs.is_geographic:
                raise CRSError(f"{where}_coord_system", f"{coord_system!r} needs longitude/"
                               f"latitude, but {p.name} is in {gdf.crs.to_string()}",
                               "set it to \"wgs84\" for projected files")
            ll = shapes.to_crs(WGS84)
            shapes = gpd.GeoSeries(shapely.transform(
                ll.to_numpy(), lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1],
                                                                   coord_system))),
                index=ll.index, crs=WGS84)
        shapes = shapes.to_crs(crs)
        footprint = pd.Series(np.where(shapes.geom_type.isin(["Polygon", "MultiPolygon"]),
                                       shapes.area, np.nan), index=shapes.index)
        geom = shapes.representative_point()
        ok = pd.Series(True, index=df.index)
    df = df.loc[ok[ok].index]
    floor = _numbers(df, "floor_area_m2", p)
    site = _numbers(df, "site_area_m2", p).fillna(footprint.reindex(df.index))
    floors = _numbers(df, "floors", p)
    floor = floor.fillna(site * floors).fillna(site.where(floors.isna()) * land_far)
    n_unknown = int(floor.isna().sum())
    if n_unknown:
        logger.warning("%s: %d site(s) give no floor area, site area or footprint: they count as "
                       "too small for every subtype (add 建筑面积 or 占地面积)", p, n_unknown)
    n_skip = int((~ok).sum()) if len(ok) else 0
    if n_skip:
        logger.warning("%s: %d row(s) without usable coordinates skipped", p, n_skip)
    out = pd.DataFrame({
        "source": p.name,
        "kind": df["kind"].to_numpy() if "kind" in df.columns else "register",
        "name": df["name"].to_numpy() if "name" in df.columns else None,
        "floor_area_m2": floor.to_numpy(dtype=float), "site_area_m2": site.to_numpy(dtype=float),
        "floors": floors.to_numpy(dtype=float),
        "ownership": df["ownership"].to_numpy() if "ownership" in df.columns else None,
        "osm_id": None})
    logger.info("%s: %d candidate site(s)", p.name, len(out))
    return gpd.GeoDataFrame(out[[c for c in CANDIDATE_COLUMNS if c in out.columns]],
                            geometry=geom.to_numpy(), crs=crs)
