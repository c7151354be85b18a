"""Coordinate reference systems: the metric-CRS guard and Chinese web-map datums.

All geometry work happens in a projected, metric CRS (config ``study_area.crs``, default
UTM 51N, EPSG:32651, which covers all of Ningbo and Shanghai). :func:`require_projected` is the one
guard every measuring function calls. Elsewhere, :func:`suggest_crs` names the zones that fit a
study area (its UTM zone, and inside China its CGCS2000 3-degree Gauss-Krüger zone),
:func:`check_distortion` refuses a CRS that misstates areas there, and :func:`check_extent` refuses
a study area too large for any one zone (a country, the world).

Coordinates copied from Chinese web maps are not WGS84: Gaode/Tencent use GCJ-02 and Baidu uses
BD-09, both offsets of several hundred metres. :func:`to_wgs84` converts them; the source datum is
always declared by the user (``coord_system``), never guessed.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyproj
from pyproj.exceptions import CRSError as _PyprojCRSError

from urbanunits.errors import ConfigError, CRSError, UserError

if TYPE_CHECKING:
    import geopandas as gpd
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "COORD_SYSTEMS",
    "bd09_to_gcj02",
    "check_distortion",
    "check_extent",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "gk_cm_epsg",
    "parse_crs",
    "require_projected",
    "suggest_crs",
    "swapped_hint",
    "swapped_lonlat",
    "to_wgs84",
    "utm_epsg",
    "wgs84_to_gcj02",
]

logger = logging.getLogger(__name__)

CoordSystem = Literal["wgs84", "gcj02", "bd09"]
COORD_SYSTEMS: frozenset[str] = frozenset({"wgs84", "gcj02", "bd09"})


_GENERIC_ADVICE = ("the study area's UTM zone (EPSG:326xx north, 327xx south) or, in China, its "
                   "CGCS2000 3-degree Gauss-Krüger zone (EPSG:4534–4554, 'CM xxxE')")


def parse_crs(value: str | int | pyproj.CRS, *, where: str,
              near: tuple[float, float] | None = None) -> pyproj.CRS:
    """Parse a CRS and insist that it is projected in metres.

    Parameters
    ----------
    value
        Anything pyproj understands (``"EPSG:32651"``, 32651, WKT).
    where
        The config key or file the value came from, for the error message.
    near
        WGS84 ``(lon, lat)`` of the study area's centre, when known: the error then names the
        zones that fit it (:func:`suggest_crs`).

    Returns
    -------
    pyproj.CRS
        The parsed CRS.
    """
    advice = "use " + (suggest_crs(*near) if near is not None else _GENERIC_ADVICE)
    try:
        crs = pyproj.CRS.from_user_input(value)
    except _PyprojCRSError as exc:
        raise CRSError(where, f"unknown CRS {value!r}", advice) from exc
    if not crs.is_projected:
        raise CRSError(
            where, f"{crs.to_string()} is not a projected CRS; areas and distances need metres",
            advice)
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if unit not in {"metre", "meter"}:
        raise CRSError(where, f"{crs.to_string()} has axis unit {unit!r}, not metres", advice)
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
        x0, y0, x1, y1 = (float(v) for v in gdf.total_bounds)
        target = "a metric CRS"
        if crs.is_geographic and all(map(math.isfinite, (x0, y0, x1, y1))):
            target = f"EPSG:{utm_epsg((x0 + x1) / 2, (y0 + y1) / 2)}"
        raise CRSError(func, f"input is in {crs.to_string()} (degrees); areas and distances "
                       "would be wrong", f"project it first, e.g. gdf.to_crs('{target}')")


# --- Which metric CRS fits a study area ----------------------------------------------------------

MAX_AREAL_DISTORTION = 0.01  # a CRS may misstate areas at the study area by at most this share
MAX_STUDY_EXTENT_KM = 500.0  # longest side of a study area; a large city's territory fits


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing a point (with the Norway/Svalbard exceptions).

    Parameters
    ----------
    lon, lat
        WGS84 degrees, e.g. the study area's centre.

    Returns
    -------
    int
        326xx north of the equator, 327xx south.
    """
    lon = (lon + 180.0) % 360.0 - 180.0
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32  # south-west Norway is widened into zone 32
    elif 72.0 <= lat < 84.0 and 0.0 <= lon < 42.0:
        zone = 31 if lon < 9.0 else 33 if lon < 21.0 else 35 if lon < 33.0 else 37  # Svalbard
    return (32600 if lat >= 0 else 32700) + zone


def gk_cm_epsg(lon: float, lat: float) -> int | None:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger zone of a point in China, else ``None``.

    The 'CM xxxE' series (EPSG:4534 = CM 75°E … 4554 = CM 135°E) is used: its eastings carry no
    zone-number prefix (EPSG:4513–4533 are the same zones with the prefix), so coordinates
    stay plain metres.
    """
    if bool(_out_of_china(np.array([lon]), np.array([lat]))[0]):
        return None
    cm = 3 * math.floor(lon / 3.0 + 0.5)
    return 4534 + (cm - 75) // 3 if 75 <= cm <= 135 else None


def suggest_crs(lon: float, lat: float) -> str:
    """The metric CRSs that fit a study area centred at ``(lon, lat)``, as advice text.

    Parameters
    ----------
    lon, lat
        WGS84 degrees.

    Returns
    -------
    str
        E.g. ``"EPSG:32650 (UTM zone 50N) or EPSG:4549 (CGCS2000 / 3-degree Gauss-Krüger CM
        120E)"``.
    """
    utm = utm_epsg(lon, lat)
    text = f"EPSG:{utm} (UTM zone {utm % 100}{'N' if utm < 32700 else 'S'})"
    gk = gk_cm_epsg(lon, lat)
    if gk is not None:
        text += f" or EPSG:{gk} (CGCS2000 / 3-degree Gauss-Krüger CM {75 + 3 * (gk - 4534)}E)"
    return text


def check_distortion(crs: str | pyproj.CRS, lon: float, lat: float, *, where: str) -> None:
    """Refuse a metric CRS that misstates areas by more than 1 % at the study area.

    Web Mercator (EPSG:3857) is metric but inflates areas by 1/cos²(latitude), +36 % at Ningbo;
    UTM and the CGCS2000 Gauss-Krüger zones stay within 0.2 % over a city, but only in their own
    zone: UTM 51N misstates Helsinki's areas by 32 %.

    Parameters
    ----------
    crs
        The metric CRS.
    lon, lat
        WGS84 degrees of the study area's centre.
    where
        Config key, for the message.
    """
    parsed = pyproj.CRS.from_user_input(crs)
    factors = pyproj.Proj(parsed).get_factors(lon, lat)
    err = abs(float(factors.areal_scale) - 1.0)
    if not math.isfinite(err) or err > MAX_AREAL_DISTORTION:
        what = (f"misstates areas by {100 * err:.0f} %" if math.isfinite(err)
                else "cannot represent")
        raise CRSError(where, f"{parsed.to_string()} {what} at the study area "
                       f"({abs(lon):.2f}°{'E' if lon >= 0 else 'W'}, "
                       f"{abs(lat):.2f}°{'N' if lat >= 0 else 'S'})",
                       f"use a conformal zone CRS centred near it: {suggest_crs(lon, lat)}")


def check_extent(bbox_ll: tuple[float, float, float, float], *, where: str,
                 error: type[UserError] = ConfigError) -> None:
    """Refuse a study area too large for one metric zone and for the analysis (a country).

    Parameters
    ----------
    bbox_ll
        ``(min_lon, min_lat, max_lon, max_lat)`` in WGS84 degrees.
    where
        Config key or file, for the message.
    error
        The error class to raise (:class:`ConfigError` for a bbox, ``DataError`` for a file).
    """
    x0, y0, x1, y1 = bbox_ll
    # Width along the parallel nearest the equator, where a degree of longitude is longest.
    widest = 0.0 if y0 <= 0.0 <= y1 else min(abs(y0), abs(y1))
    width_km = (x1 - x0) * 111.32 * math.cos(math.radians(widest))
    height_km = (y1 - y0) * 110.57
    size = max(width_km, height_km)
    if not math.isfinite(size) or size > MAX_STUDY_EXTENT_KM:
        raise error(where, f"the study area is too large: about {width_km:,.0f} km × "
                    f"{height_km:,.0f} km",
                    f"urbanunits works on a city or district (at most "
                    f"{MAX_STUDY_EXTENT_KM:.0f} km across); shrink it to the area you plan")


def swapped_lonlat(lon: ArrayLike, lat: ArrayLike, *,
                   bbox_ll: tuple[float, float, float, float] | None = None
                   ) -> NDArray[np.bool_]:
    """Rows whose longitude and latitude look swapped.

    A row is suspect when, as given, it is no coordinate (latitude beyond ±90°) or lies outside
    ``bbox_ll``, while with the two values exchanged it is a coordinate (inside ``bbox_ll``).

    Parameters
    ----------
    lon, lat
        The file's longitude and latitude columns (NaN allowed).
    bbox_ll
        WGS84 box the points should fall in (the study area plus margin), if known.

    Returns
    -------
    numpy.ndarray
        Boolean mask, one entry per row.
    """
    lo, la = _arrays(lon, lat)
    finite = np.isfinite(lo) & np.isfinite(la)
    with np.errstate(invalid="ignore"):
        valid = finite & (np.abs(lo) <= 180) & (np.abs(la) <= 90)
        valid_sw = finite & (np.abs(la) <= 180) & (np.abs(lo) <= 90)
        swapped = ~valid & valid_sw
        if bbox_ll is not None:
            x0, y0, x1, y1 = bbox_ll
            inside = valid & (lo >= x0) & (lo <= x1) & (la >= y0) & (la <= y1)
            inside_sw = valid_sw & (la >= x0) & (la <= x1) & (lo >= y0) & (lo <= y1)
            swapped |= ~inside & inside_sw
    return np.asarray(swapped, dtype=bool)


def swapped_hint(mask: ArrayLike) -> str:
    """``"lon/lat swapped in N row(s)?"`` for a :func:`swapped_lonlat` mask, else ``""``."""
    n = int(np.count_nonzero(np.asarray(mask, dtype=bool)))
    return f"lon/lat swapped in {n} row(s)?" if n else ""


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
