"""Coordinate reference systems: the metric-CRS guard and Chinese web-map datums.

All geometry work happens in a projected, metric CRS (config ``study_area.crs``, default
UTM 51N, EPSG:32651, which covers all of Ningbo and Shanghai). :func:`require_projected` is the one
guard every measuring function calls.

Coordinates copied from Chinese web maps are not WGS84: Gaode/Tencent use GCJ-02 and Baidu uses
BD-09, both offsets of several hundred metres. :func:`to_wgs84` converts them; the source datum is
always declared by the user (``coord_system``), never guessed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyproj
from pyproj.exceptions import CRSError as _PyprojCRSError

from urbanunits.errors import CRSError

if TYPE_CHECKING:
    import geopandas as gpd
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "COORD_SYSTEMS",
    "bd09_to_gcj02",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "parse_crs",
    "require_projected",
    "to_wgs84",
    "wgs84_to_gcj02",
]

logger = logging.getLogger(__name__)

CoordSystem = Literal["wgs84", "gcj02", "bd09"]
COORD_SYSTEMS: frozenset[str] = frozenset({"wgs84", "gcj02", "bd09"})


def parse_crs(value: str | int | pyproj.CRS, *, where: str) -> pyproj.CRS:
    """Parse a CRS and insist that it is projected in metres.

    Parameters
    ----------
    value
        Anything pyproj understands (``"EPSG:32651"``, 32651, WKT).
    where
        The config key or file the value came from, for the error message.

    Returns
    -------
    pyproj.CRS
        The parsed CRS.
    """
    try:
        crs = pyproj.CRS.from_user_input(value)
    except _PyprojCRSError as exc:
        raise CRSError(
            where,
            f"unknown CRS {value!r}",
            "use an EPSG code such as 'EPSG:32651' (UTM 51N) or 'EPSG:4549'/'EPSG:4550' "
            "(CGCS2000 3-degree Gauss-Krüger)",
        ) from exc
    if not crs.is_projected:
        raise CRSError(
            where,
            f"{crs.to_string()} is not a projected CRS; areas and distances need metres",
            "use a metric CRS such as 'EPSG:32651' (UTM 51N)",
        )
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if unit not in {"metre", "meter"}:
        raise CRSError(where, f"{crs.to_string()} has axis unit {unit!r}, not metres",
                       "use a metric CRS such as 'EPSG:32651'")
    return crs


def require_projected(gdf: gpd.GeoDataFrame | gpd.GeoSeries, func: str) -> None:
    """Refuse data that are not in a projected, metric CRS.

    Parameters
    ----------
    gdf
        The data a measuring function is about to use.
    func
        The calling function's name, for the message.
    """
    crs = gdf.crs
    if crs is None:
        raise CRSError(func, "input has no CRS", "set one with .set_crs() or read the file "
                       "with its CRS, then .to_crs() to a metric CRS")
    if not crs.is_projected:
        raise CRSError(func, f"input is in {crs.to_string()} (degrees); areas and distances "
                       "would be wrong", "project it first, e.g. gdf.to_crs('EPSG:32651')")


# --- GCJ-02 / BD-09 ---------------------------------------------------------------------------
# The GCJ-02 obfuscation is a published closed-form formula (Krasovsky 1940 ellipsoid plus a
# polynomial-sine offset); no maintained library on PyPI implements it, so it is written here from
# the public description and tested against published test vectors. The inverse has no closed
# form; a fixed-point iteration converges to < 1e-9 degrees in a few steps.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _out_of_china(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.bool_]:
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64],
                                                                         NDArray[np.float64]]:
    x = lon - 105.0
    y = lat - 35.0
    dlat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
            + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    dlon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
            + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
            + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
            + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64],
                                                            NDArray[np.float64]]:
    """Convert WGS84 longitude/latitude (degrees) to GCJ-02; points outside China are unchanged."""
    lo, la = _arrays(lon, lat)
    dlon, dlat = _delta(lo, la)
    out = _out_of_china(lo, la)
    return np.where(out, lo, lo + dlon), np.where(out, la, la + dlat)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64],
                                                            NDArray[np.float64]]:
    """Convert GCJ-02 longitude/latitude (degrees) to WGS84 by fixed-point iteration."""
    glon, glat = _arrays(lon, lat)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(30):
        tlon, tlat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = tlon - glon, tlat - glat
        wlon, wlat = wlon - elon, wlat - elat
        if np.all(np.abs(elon) < 1e-10) and np.all(np.abs(elat) < 1e-10):
            break
    return wlon, wlat


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64],
                                                           NDArray[np.float64]]:
    """Convert GCJ-02 longitude/latitude (degrees) to Baidu BD-09."""
    x, y = _arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64],
                                                           NDArray[np.float64]]:
    """Convert Baidu BD-09 longitude/latitude (degrees) to GCJ-02."""
    bx, by = _arrays(lon, lat)
    x = bx - 0.0065
    y = by - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def to_wgs84(lon: ArrayLike, lat: ArrayLike, coord_system: str, *,
             where: str = "coord_system") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Convert coordinates declared as ``coord_system`` to WGS84.

    Parameters
    ----------
    lon, lat
        Longitudes and latitudes in degrees.
    coord_system
        One of ``"wgs84"``, ``"gcj02"`` (Gaode/AMap, Tencent) or ``"bd09"`` (Baidu).
    where
        Config key or file the value came from, for the error message.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitudes and latitudes in degrees.
    """
    cs = str(coord_system).lower().replace("-", "").replace("_", "")
    if cs == "wgs84":
        return _arrays(lon, lat)
    if cs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if cs == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
    raise CRSError(where, f"unknown coord_system {coord_system!r}",
                   "use one of 'wgs84', 'gcj02' (Gaode/Tencent) or 'bd09' (Baidu)")
