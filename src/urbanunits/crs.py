"""Coordinate reference systems: the metric-CRS guard and Chinese web-map datums.

All geometry work happens in a projected, metric CRS (config ``study_area.crs``, default
UTM 51N, EPSG:32651, which covers all of Ningbo and Shanghai). :func:`require_projected` is the one
guard every measuring function calls. Elsewhere, :func:`suggest_crs` names the zones that fit a
study area (its UTM zone, and inside China its CGCS2000 3-degree Gauss-Krüger zone),
:func:`check_distortion` refuses a CRS that misstates areas there, and :func:`check_extent` refuses
a study area too large for any one zone (a country, the world).

Coordinates copied from Chinese web maps are not WGS84: Gaode/Tencent use GCJ-02 and Baidu uses
BD-09, both offsets of several hundred metres. :func:`to_wgs84` converts them; the source datum is
declared by the user (``coord_system``). A file that declares nothing is read as WGS84 and checked
with :func:`detect_datum_shift`: when reading it as GCJ-02 or BD-09 would put its points on the
street network and reading it as declared does not, the run stops and asks for the key.
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
    import shapely
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "COORD_SYSTEMS",
    "UNSET",
    "bd09_to_gcj02",
    "check_distortion",
    "check_extent",
    "datum_scores",
    "decide_datum",
    "detect_datum_shift",
    "detect_datum_shift_by_matches",
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
# An unset coord_system ("" in the config): read as WGS84, then checked by detect_datum_shift.
UNSET = ""


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
        One of ``"wgs84"``, ``"gcj02"`` (Gaode/AMap, Tencent) or ``"bd09"`` (Baidu); ``""``
        (unset) reads as WGS84.
    where
        Config key or file the value came from, for the error message.

    Returns
    -------
    tuple of numpy.ndarray
        WGS84 longitudes and latitudes in degrees.
    """
    cs = str(coord_system).lower().replace("-", "").replace("_", "")
    if cs in ("wgs84", UNSET):
        return _arrays(lon, lat)
    if cs == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if cs == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
    raise CRSError(where, f"unknown coord_system {coord_system!r}",
                   "use one of 'wgs84', 'gcj02' (Gaode/Tencent) or 'bd09' (Baidu)")


# --- datum check ------------------------------------------------------------------------------
# A point file whose datum is wrong sits a few hundred metres off the street network, in one
# direction. Reading it in the right datum brings it back: its points fall much closer to the
# streets than when it is moved by the same distance in any other direction. The other directions
# are the yardstick: in a dense network every position is a few metres from some footway, so an
# absolute distance says little, but no wrong shift beats the right one by a wide margin.
# Measured on the Lujiazui demo (drive streets): with these thresholds no WGS84 sample of 20 or
# more real points (OSM facilities, POIs, communities, buildings) was flagged, and GCJ-02 points on
# the streets were caught (all of 200; 7 in 10 samples of 20).
DATUM_MIN_POINTS = 10  # fewer points decide nothing
DATUM_MAX_RATIO = 0.5  # converted median ≤ this × the median as declared
DATUM_MAX_RATIO_OTHERS = 0.33  # ... and ≤ this × the best median of the other directions
DATUM_MIN_CLOSER_SHARE = 0.75  # ... and this share of the points is closer converted
_NULL_DIRECTIONS = 12


def _nearest_m(x: NDArray[np.float64], y: NDArray[np.float64],
               tree: shapely.STRtree) -> NDArray[np.float64]:
    """Distance from each point to the nearest geometry in ``tree`` (CRS units)."""
    import shapely

    idx, dist = tree.query_nearest(shapely.points(x, y), return_distance=True,
                                   all_matches=False)
    out = np.full(len(x), np.inf)
    out[idx[0]] = dist
    return out


DatumScore = tuple[float, float, float, float, int]


def datum_scores(lon: ArrayLike, lat: ArrayLike,
                 streets: gpd.GeoSeries | gpd.GeoDataFrame, *,
                 min_points: int = DATUM_MIN_POINTS) -> dict[str, DatumScore]:
    """Median distances (m) from points to the nearest street under each datum reading.

    Parameters
    ----------
    lon, lat
        Coordinates in degrees, as read from the file (declared WGS84).
    streets
        Street lines in a projected (metric) CRS.
    min_points
        Readings with fewer points inside the streets' extent are left out.

    Returns
    -------
    dict
        For ``"gcj02"`` and ``"bd09"``: (median as declared, median converted, best median of
        the points moved as far in eleven other directions, share of points closer converted,
        points used). Only points in China
        that lie within the streets' extent both as declared and converted are used.
    """
    import geopandas as gpd
    import shapely

    lo, la = _arrays(lon, lat)
    ok = np.isfinite(lo) & np.isfinite(la)
    lo, la = lo[ok], la[ok]
    ok = ~_out_of_china(lo, la)
    lo, la = lo[ok], la[ok]
    geoms = streets.geometry if hasattr(streets, "geometry") else streets
    geoms = geoms[~(geoms.isna() | geoms.is_empty)]
    out: dict[str, DatumScore] = {}
    if len(lo) < min_points or geoms.empty or geoms.crs is None or not geoms.crs.is_projected:
        return out
    readings = {"wgs84": (lo, la), "gcj02": gcj02_to_wgs84(lo, la),
                "bd09": gcj02_to_wgs84(*bd09_to_gcj02(lo, la))}
    xy = {}
    for key, (a, b) in readings.items():
        pts = gpd.GeoSeries(shapely.points(a, b), crs="EPSG:4326").to_crs(geoms.crs)
        xy[key] = (pts.x.to_numpy(), pts.y.to_numpy())
    tree = shapely.STRtree(np.asarray(geoms.values))
    x0, y0, x1, y1 = geoms.total_bounds

    def within(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)

    rx, ry = xy["wgs84"]
    for key in ("gcj02", "bd09"):
        cx, cy = xy[key]
        # Only points within the streets' extent either way: from outside it every reading is
        # far from the streets.
        m = within(rx, ry) & within(cx, cy)
        if m.sum() < min_points:
            continue
        d_raw = _nearest_m(rx[m], ry[m], tree)
        d_conv = _nearest_m(cx[m], cy[m], tree)
        base, conv = float(np.median(d_raw)), float(np.median(d_conv))
        closer = float(np.mean(d_conv < d_raw))
        # The same points moved as far in other directions (the conversion's offset rotated).
        dx, dy = float(np.median(cx[m] - rx[m])), float(np.median(cy[m] - ry[m]))
        others = []
        for k in range(1, _NULL_DIRECTIONS):
            ang = 2 * np.pi * k / _NULL_DIRECTIONS
            ox = dx * np.cos(ang) - dy * np.sin(ang)
            oy = dx * np.sin(ang) + dy * np.cos(ang)
            others.append(float(np.median(_nearest_m(rx[m] + ox, ry[m] + oy, tree))))
        out[key] = (base, conv, min(others), closer, int(m.sum()))
    return out


def detect_datum_shift(lon: ArrayLike, lat: ArrayLike,
                       streets: gpd.GeoSeries | gpd.GeoDataFrame, *,
                       min_points: int = DATUM_MIN_POINTS,
                       max_ratio: float = DATUM_MAX_RATIO) -> str | None:
    """Whether points declared WGS84 are really GCJ-02 or BD-09, judged by the streets.

    Each reading (as declared, converted from GCJ-02, converted from BD-09) is scored by the
    median distance from its points to the nearest street (:func:`datum_scores`). A conversion
    is reported when its median is at most ``max_ratio`` times both the as-declared median and
    the best median of the same points moved as far in eleven other directions: in a dense
    network every spot is near some footway, and only the right datum beats every other shift
    by a wide margin.

    Parameters
    ----------
    lon, lat
        Coordinates in degrees, as read from the file (declared WGS84).
    streets
        Street lines in a projected (metric) CRS, e.g. ``OSMLayers.roads``.
    min_points
        Points needed to decide anything.
    max_ratio
        How much closer the converted points must be.

    Returns
    -------
    str or None
        ``"gcj02"`` or ``"bd09"`` when that reading fits the streets markedly better, else None.
    """
    return decide_datum(datum_scores(lon, lat, streets, min_points=min_points),
                        max_ratio=max_ratio)


def decide_datum(scores: dict[str, DatumScore], *,
                 max_ratio: float = DATUM_MAX_RATIO) -> str | None:
    """The datum :func:`detect_datum_shift` reports for the scores of :func:`datum_scores`."""
    found: dict[str, float] = {}
    for key, (base, conv, others, closer, n) in scores.items():
        logger.debug("datum check (%d points): median %.1f m as declared, %.1f m as %s "
                     "(%.0f %% closer), %.1f m or more shifted elsewhere", n, base, conv, key,
                     100 * closer, others)
        if (conv <= max_ratio * base and conv <= DATUM_MAX_RATIO_OTHERS * others
                and closer >= DATUM_MIN_CLOSER_SHARE):
            found[key] = conv
    return min(found, key=found.__getitem__) if found else None


# Same-named features: a point and the OSM feature of the same name lie metres apart in the right
# datum and a conversion's offset (300–700 m across eastern China) apart in the wrong one.
MATCH_MIN_POINTS = 3  # matched points needed
MATCH_MAX_M = 100.0  # converted, the median matched point lies within this of its namesake
MATCH_MAX_RATIO = 0.25  # ... and at most this × its distance as declared


def detect_datum_shift_by_matches(lon: ArrayLike, lat: ArrayLike,
                                  matches: list[NDArray[np.float64]], *, crs: str,
                                  min_points: int = MATCH_MIN_POINTS
                                  ) -> tuple[str, float, float, int] | None:
    """Whether points declared WGS84 are GCJ-02 or BD-09, judged by same-named features.

    Parameters
    ----------
    lon, lat
        Coordinates in degrees as read (declared WGS84), one per point.
    matches
        For each point, an (n, 2) array of the metric coordinates (in ``crs``) of reference
        features with the same name (OSM points of interest), empty when none.
    crs
        The projected CRS of ``matches``.
    min_points
        Points with a namesake needed to decide anything.

    Returns
    -------
    tuple or None
        (``"gcj02"`` or ``"bd09"``, median distance in metres to the nearest namesake as
        declared, the same converted, points used) when the conversion brings the points to
        their namesakes (median within ``MATCH_MAX_M`` and at most ``MATCH_MAX_RATIO`` of the
        distance as declared); else None.
    """
    import geopandas as gpd
    import shapely

    lo, la = _arrays(lon, lat)
    has = np.array([len(m) > 0 for m in matches], dtype=bool) & np.isfinite(lo) & np.isfinite(la)
    has &= ~_out_of_china(lo, la)
    if has.sum() < min_points:
        return None
    lo, la = lo[has], la[has]
    refs = [np.asarray(m, dtype=float).reshape(-1, 2) for m, h in zip(matches, has, strict=True)
            if h]
    readings = {"wgs84": (lo, la), "gcj02": gcj02_to_wgs84(lo, la),
                "bd09": gcj02_to_wgs84(*bd09_to_gcj02(lo, la))}
    med: dict[str, float] = {}
    for key, (a, b) in readings.items():
        pts = gpd.GeoSeries(shapely.points(a, b), crs="EPSG:4326").to_crs(crs)
        xy = np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()])
        d = [float(np.min(np.hypot(*(r - p).T))) for p, r in zip(xy, refs, strict=True)]
        med[key] = float(np.median(d))
    logger.debug("datum check by name (%d points): median to namesake %s", len(refs),
                 ", ".join(f"{k} {v:.0f} m" for k, v in med.items()))
    best = min(("gcj02", "bd09"), key=med.__getitem__)
    if med[best] <= MATCH_MAX_M and med[best] <= MATCH_MAX_RATIO * med["wgs84"]:
        return best, med["wgs84"], med[best], len(refs)
    return None
