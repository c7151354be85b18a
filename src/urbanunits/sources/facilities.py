"""Life-circle facilities: per-category files merged with OSM, de-duplicated.

OSM in China rarely tags kindergartens, day-care centres or clinics, so a planner's own lists
(a CSV copied from a web map, an official GeoPackage) come in per category through
``[[lifecircle.categories.<key>.files]]``. Each file row becomes one facility with ``category``,
``subtype``, ``name`` and ``source`` (the file name), as a point in the metric CRS (polygons →
representative points). Coordinates copied from Gaode/Tencent (GCJ-02) or Baidu (BD-09) are
converted with :func:`urbanunits.crs.to_wgs84`. A file that declares no ``coord_system`` is read
as WGS84 and checked against the street network (:func:`urbanunits.crs.detect_datum_shift`): when
its points fit the streets markedly better read as GCJ-02 or BD-09, the run stops and names the
key to set. An explicit ``coord_system = "wgs84"`` skips the check.

Files come before OSM when the same facility appears twice: features of one category with the
same or a similar name (one contains the other once brackets, spaces and punctuation are
dropped) within ``dedupe_m`` merge, keeping the file's record and listing every source.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components
from shapely.geometry.base import BaseGeometry

from urbanunits.config import Category, Config, FacilityFile, LifeCircleConfig
from urbanunits.crs import (
    UNSET,
    datum_scores,
    decide_datum,
    detect_datum_shift_by_matches,
    require_projected,
    swapped_hint,
    swapped_lonlat,
    to_wgs84,
)
from urbanunits.errors import CRSError, DataError, InputFileError
from urbanunits.sources.boundaries import shapefile_encoding
from urbanunits.sources.classify import classify_facilities

__all__ = [
    "FACILITY_COLUMNS",
    "check_datum",
    "collect_facilities",
    "dedupe_facilities",
    "load_facilities",
    "normalise_name",
    "read_facility_file",
    "street_lines",
]

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"
FACILITY_COLUMNS = ["category", "subtype", "name", "source"]
_CSV_SUFFIXES = (".csv", ".txt", ".tsv")
_BRACKETS = re.compile(r"[（(\[【〔].*?[）)\]】〕]")
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise_name(name: object) -> str:
    """Name reduced for comparison: NFKC, lower case, no bracketed parts, spaces or punctuation.

    ``"东昌幼儿园(小石桥总部)"`` and ``"东昌幼儿园"`` both become ``"东昌幼儿园"``.
    """
    if name is None or (isinstance(name, float) and np.isnan(name)):
        return ""
    text = unicodedata.normalize("NFKC", str(name)).lower()
    return _NOISE.sub("", _BRACKETS.sub("", text))


def _empty(crs: object) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({c: pd.Series(dtype="object") for c in FACILITY_COLUMNS},
                            geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _read_table(path: Path, ff: FacilityFile, where: str) -> pd.DataFrame | gpd.GeoDataFrame:
    if not path.is_file():
        raise InputFileError(path, "facility file not found",
                             f"check {where}.path in the config or put the file there")
    if path.name.lower().endswith(_CSV_SUFFIXES):
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        # Chinese spreadsheets are often saved as GB18030 (GBK) rather than UTF-8.
        for enc in ("utf-8-sig", "gb18030"):
            try:
                return pd.read_csv(path, sep=sep, dtype=str, encoding=enc)
            except UnicodeDecodeError:
                continue
            except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise InputFileError(path, f"not a readable CSV ({str(exc).splitlines()[0]})",
                                     "save it as comma-separated UTF-8 with a header row"
                                     ) from exc
        raise InputFileError(path, "unknown text encoding", "save the CSV as UTF-8")

    # A GBK Shapefile without .cpg would otherwise give mojibake names (no pattern matches).
    shp_enc = shapefile_encoding(path)
    try:
        return gpd.read_file(path, layer=ff.layer or None, engine="pyogrio",
                             **({"encoding": shp_enc} if shp_enc else {}))
    except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(path, f"could not read facilities ({first})",
                             "use a CSV with lon/lat columns, a GeoJSON or a GeoPackage "
                             "(set `layer` for a GeoPackage with several layers)") from exc


def _need_column(df: pd.DataFrame, col: str, path: Path, key: str, what: str) -> None:
    if col not in df.columns:
        have = ", ".join(str(c) for c in df.columns if c != "geometry") or "none"
        raise DataError(f"{path}: column {col!r}", f"not found ({what}); columns: {have}",
                        f"set {key} in the config to the right column")


_DATUM_LABEL = {"gcj02": "GCJ-02 (Gaode/AMap, Tencent)", "bd09": "BD-09 (Baidu)"}
# Not streets for the datum check: paths inside communities and parks put every spot near a line.
_NOT_STREETS = frozenset({"footway", "path", "pedestrian", "steps", "corridor", "bridleway",
                          "cycleway", "track", "platform"})


def street_lines(roads: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """The street lines of an OSM ``roads`` layer that the datum check measures against."""
    if roads is None or roads.empty or "highway" not in roads.columns:
        return None
    out = roads[~roads["highway"].isin(_NOT_STREETS)]
    return out if len(out) else None


def _namesakes(names: pd.Series, reference: gpd.GeoDataFrame | None
               ) -> list[np.ndarray] | None:
    """For each name, the metric coordinates of reference points with the same name."""
    if reference is None or reference.empty or "name" not in reference.columns:
        return None
    ref = reference[reference["name"].notna()]
    keys = ref["name"].map(normalise_name)
    xy = np.column_stack([ref.geometry.x.to_numpy(), ref.geometry.y.to_numpy()])
    groups = {k: xy[np.flatnonzero(keys.to_numpy() == k)] for k in set(keys) if len(k) >= 2}
    empty = np.zeros((0, 2))
    return [groups.get(normalise_name(n), empty) for n in names]


def check_datum(lon: np.ndarray, lat: np.ndarray, streets: gpd.GeoDataFrame | None, *,
                path: Path, key: str, names: pd.Series | None = None,
                reference: gpd.GeoDataFrame | None = None) -> None:
    """Stop when points read as WGS84 fit the map markedly better as GCJ-02 or BD-09.

    Two kinds of evidence, either enough: the points' distances to the streets
    (:func:`urbanunits.crs.detect_datum_shift`), and their distances to OSM features of the same
    name (:func:`urbanunits.crs.detect_datum_shift_by_matches`).

    Parameters
    ----------
    lon, lat
        The file's coordinates in degrees, as read (no conversion).
    streets
        Street lines in a metric CRS (:func:`street_lines`), or None.
    path
        The file, for the message.
    key
        The config key that declares the file's datum, e.g.
        ``lifecircle.categories.clinic.files[0].coord_system``.
    names
        The points' names, aligned with ``lon``/``lat``.
    reference
        Named points in a metric CRS (``OSMLayers.pois``), or None.
    """
    fix_for = 'set {key} = "{found}" (or "wgs84" if the positions are right)'
    what = "declares no datum and reads as WGS84, but"
    near = _namesakes(names, reference) if names is not None else None
    if near is not None and reference is not None:
        hit = detect_datum_shift_by_matches(lon, lat, near, crs=str(reference.crs))
        if hit is not None:
            found, base, conv, n = hit
            raise DataError(path, f"{what} {n} of its points with an OSM namesake lie a median "
                            f"{base:.0f} m from it as WGS84 and {conv:.0f} m read as "
                            f"{_DATUM_LABEL[found]}", fix_for.format(key=key, found=found))
    if streets is None:
        return
    scores = datum_scores(lon, lat, streets)
    found_s = decide_datum(scores)
    if found_s is None:
        return
    base, conv, _, closer, n = scores[found_s]
    raise DataError(path, f"{what} its points sit a median {base:.0f} m from the streets as "
                    f"WGS84 and {conv:.0f} m read as {_DATUM_LABEL[found_s]} "
                    f"({100 * closer:.0f} % of {n} points closer)",
                    fix_for.format(key=key, found=found_s))


def read_facility_file(ff: FacilityFile, category_key: str, category: Category, *,
                       crs: str, area: BaseGeometry | None = None, where: str = "",
                       streets: gpd.GeoDataFrame | None = None,
                       reference: gpd.GeoDataFrame | None = None
                       ) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Read one facility file of a category into points in the metric CRS.

    Parameters
    ----------
    ff
        The file's config entry (path, columns, ``coord_system``, subtype rule, filter).
    category_key
        The category the file belongs to, e.g. ``"clinic"``.
    category
        Its config (subtypes and their name patterns).
    crs
        Target metric CRS.
    area
        Keep rows inside this polygon (metric CRS), e.g. the study area plus the walk-graph
        margin; rows outside are counted. A file with rows but none inside is an error.
    where
        Config key of the entry, for messages.
    streets
        Street lines in a metric CRS (:func:`street_lines`): a file with no ``coord_system``
        is checked against them for an undeclared GCJ-02/BD-09 datum (see :func:`check_datum`).
    reference
        Named points in a metric CRS (``OSMLayers.pois``) for the same check by name.

    Returns
    -------
    tuple
        GeoDataFrame (``category``, ``subtype``, ``name``, ``source``, point geometry) and
        report lines (rows skipped and why).
    """
    where = where or f"lifecircle.categories.{category_key}.files"
    path = Path(ff.path)
    notes: list[str] = []
    swapped = ""  # lon/lat swap hint, CSV files only
    if ff.subtype and ff.subtype not in category.subtypes:
        raise DataError(f"{where}.subtype", f"{ff.subtype!r} is not a subtype of "
                        f"{category_key}", f"use one of {sorted(category.subtypes)}")
    # Check the datum before reading, so that a typo fails fast and names the key.
    to_wgs84(np.zeros(0), np.zeros(0), ff.coord_system, where=f"{where}.coord_system")
    df = _read_table(path, ff, where)
    if len(df) == 0:
        raise DataError(path, "facility file has no rows",
                        f"add facilities or remove the file from {where}")
    if ff.filter_field:
        _need_column(df, ff.filter_field, path, f"{where}.filter_field", "filter_field")
        df = df[df[ff.filter_field].astype(str).isin([str(v) for v in ff.filter_values])]
        if df.empty:
            raise DataError(f"{path}: column {ff.filter_field!r}",
                            f"no row has a value in {ff.filter_values}",
                            f"fix {where}.filter_values")
    if ff.name_field not in df.columns and not ff.subtype and not ff.subtype_field:
        _need_column(df, ff.name_field, path, f"{where}.name_field",
                     "names are needed to classify rows by the subtypes' name patterns")
    names = (df[ff.name_field] if ff.name_field in df.columns
             else pd.Series([None] * len(df), index=df.index, dtype="object"))
    n_in = len(df)

    if isinstance(df, gpd.GeoDataFrame):
        if df.crs is None:
            raise CRSError(path, "facility file has no CRS",
                           "save it with its CRS set (e.g. EPSG:4326 or EPSG:4490)")
        geom = df.geometry
        ok = ~(geom.isna() | geom.is_empty)
        pts = gpd.GeoSeries(shapely.point_on_surface(geom[ok].values), index=geom[ok].index,
                            crs=df.crs)
        if ff.coord_system == UNSET and df.crs.is_geographic and streets is not None:
            ll = pts.to_crs(WGS84)
            check_datum(ll.x.to_numpy(), ll.y.to_numpy(), streets, path=path,
                        key=f"{where}.coord_system", names=names.loc[ll.index],
                        reference=reference)
        if ff.coord_system.lower() not in ("wgs84", UNSET):
            if not df.crs.is_geographic:
                raise CRSError(f"{where}.coord_system", f"{ff.coord_system!r} needs "
                               f"longitude/latitude, but {path.name} is in {df.crs.to_string()}",
                               "set coord_system = \"wgs84\" for projected files")
            ll = pts.to_crs(WGS84)
            lon, lat = to_wgs84(ll.x.to_numpy(), ll.y.to_numpy(), ff.coord_system,
                                where=f"{where}.coord_system")
            pts = gpd.GeoSeries(shapely.points(lon, lat), index=ll.index, crs=WGS84)
        pts = pts.to_crs(crs)
    else:
        _need_column(df, ff.lon_field, path, f"{where}.lon_field", "longitude")
        _need_column(df, ff.lat_field, path, f"{where}.lat_field", "latitude")
        lon = pd.to_numeric(df[ff.lon_field], errors="coerce")
        lat = pd.to_numeric(df[ff.lat_field], errors="coerce")
        bbox_ll = None
        if area is not None:
            bx0, by0, bx1, by1 = gpd.GeoSeries([area], crs=crs).to_crs(WGS84).total_bounds
            bbox_ll = (float(bx0), float(by0), float(bx1), float(by1))
        swapped = swapped_hint(swapped_lonlat(lon, lat, bbox_ll=bbox_ll))
        ok = lon.between(-180, 180) & lat.between(-90, 90)
        if not ok.any():
            raise DataError(f"{path}: columns {ff.lon_field!r}/{ff.lat_field!r}",
                            "no row has longitude/latitude in degrees"
                            + (f" ({swapped})" if swapped else ""),
                            "give decimal degrees (e.g. 121.55, 29.87) and check which column "
                            "is longitude and which latitude")
        if ff.coord_system == UNSET:
            check_datum(lon[ok].to_numpy(), lat[ok].to_numpy(), streets, path=path,
                        key=f"{where}.coord_system", names=names[ok], reference=reference)
        lon_w, lat_w = to_wgs84(lon[ok].to_numpy(), lat[ok].to_numpy(), ff.coord_system,
                                where=f"{where}.coord_system")
        pts = gpd.GeoSeries(shapely.points(lon_w, lat_w), index=lon[ok].index,
                            crs=WGS84).to_crs(crs)
        if swapped:
            # Swapped rows are dropped (no coordinate) or fall outside the study area below.
            logger.warning("%s: %s (those rows are left out)", path, swapped)
            notes.append(f"{path.name}: {swapped} (left out; check columns "
                         f"{ff.lon_field!r}/{ff.lat_field!r})")
    if (~ok).any():
        notes.append(f"{path.name}: {int((~ok).sum())} row(s) without usable coordinates "
                     "skipped")

    if ff.subtype:
        subtype = pd.Series(ff.subtype, index=pts.index, dtype="object")
        matched = pd.Series(f"file:subtype={ff.subtype}", index=pts.index, dtype="object")
    elif ff.subtype_field:
        _need_column(df, ff.subtype_field, path, f"{where}.subtype_field", "subtype_field")
        raw = df.loc[pts.index, ff.subtype_field].astype("string").str.strip()
        by_label = {st.label: k for k, st in category.subtypes.items() if st.label}
        subtype = raw.map(lambda s: s if s in category.subtypes else by_label.get(s)).astype(
            "object")
        matched = ("file:" + ff.subtype_field + "=" + raw.astype(str)).astype("object")
        unknown = sorted({str(v) for v in raw[subtype.isna()].dropna().unique()})
        if unknown:
            raise DataError(f"{path}: column {ff.subtype_field!r}",
                            f"unknown subtype value(s) {unknown[:5]}",
                            f"use the subtype keys of {category_key}: "
                            f"{sorted(category.subtypes)} (or filter rows with filter_field)")
    else:
        # Rows are classified by name alone (a file has no OSM tags); positions via osm_id.
        probe = pd.DataFrame({"name": names.loc[pts.index].to_numpy(),
                              "osm_id": np.arange(len(pts))})
        hit = classify_facilities(probe, {category_key: category})
        subtype = pd.Series([None] * len(pts), index=pts.index, dtype="object")
        subtype.iloc[hit["osm_id"].to_numpy(dtype=np.intp)] = hit["subtype"].to_numpy()
        matched = pd.Series([None] * len(pts), index=pts.index, dtype="object")
        matched.iloc[hit["osm_id"].to_numpy(dtype=np.intp)] = hit["matched_by"].to_numpy()
        n_drop = int(subtype.isna().sum())
        if n_drop:
            notes.append(f"{path.name}: {n_drop} of {len(pts)} row(s) match no {category_key} "
                         "name pattern and were left out")
    keep = subtype.notna()
    out = gpd.GeoDataFrame({"category": category_key, "subtype": subtype[keep],
                            "name": names.loc[pts.index][keep], "source": path.name,
                            "matched_by": matched[keep]},
                           geometry=pts[keep], crs=crs)
    if ff.capacity_field:
        _need_column(df, ff.capacity_field, path, f"{where}.capacity_field", "capacity_field")
        out["capacity"] = pd.to_numeric(df.loc[out.index, ff.capacity_field],
                                        errors="coerce").where(lambda v: v >= 0)
    if area is not None and len(out):
        inside = out.intersects(area)
        if not inside.any():
            x0, y0, x1, y1 = gpd.GeoSeries(out.geometry, crs=crs).to_crs(WGS84).total_bounds
            raise DataError(path, f"none of its {len(out)} facilities lies in the study area "
                            f"(they span lon {x0:.3f}–{x1:.3f}, lat {y0:.3f}–{y1:.3f}"
                            + (f"; {swapped}" if swapped else "") + ")",
                            "check the coord_system, whether lon/lat are swapped, or remove "
                            "the file from the config")
        if (~inside).any():
            notes.append(f"{path.name}: {int((~inside).sum())} facilit(ies) outside the study "
                         "area left out")
        out = out[inside]
    logger.info("%s: %d of %d rows → %s facilities", path.name, len(out), n_in, category_key)
    return out.reset_index(drop=True), notes


def dedupe_facilities(facilities: gpd.GeoDataFrame, *, dedupe_m: float) -> gpd.GeoDataFrame:
    """Merge records of one facility: same category, similar name, within ``dedupe_m``.

    Earlier rows win (put the most trusted source first); the kept row's ``source`` lists
    every merged source and ``n_merged`` counts the records.

    Parameters
    ----------
    facilities
        Points with ``category``, ``subtype``, ``name``, ``source`` in a metric CRS.
    dedupe_m
        Maximum distance in metres between records of one facility.

    Returns
    -------
    geopandas.GeoDataFrame
        The de-duplicated facilities, in input order.
    """

    require_projected(facilities, "dedupe_facilities")
    df = facilities.reset_index(drop=True)
    n = len(df)
    if n == 0:
        return df.assign(n_merged=pd.Series(dtype="int64"))
    i, j = df.sindex.query(df.geometry.values, predicate="dwithin", distance=dedupe_m)
    cand = i < j
    i, j = i[cand], j[cand]
    cat = df["category"].to_numpy()
    same = cat[i] == cat[j]
    i, j = i[same], j[same]
    norm = np.array([normalise_name(v) for v in df["name"]], dtype=object)
    a, b = norm[i], norm[j]
    similar = np.array([x == y or (bool(x) and bool(y) and (x in y or y in x))
                        for x, y in zip(a, b, strict=True)], dtype=bool)
    i, j = i[similar], j[similar]
    graph = coo_array((np.ones(len(i)), (i, j)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = pd.Series(np.arange(n)).groupby(label).transform("min").to_numpy()
    sources = df["source"].astype(str).groupby(label).agg(
        lambda s: ";".join(dict.fromkeys(s)))
    counts = pd.Series(label).value_counts()
    keep = first == np.arange(n)
    out = df[keep].copy()
    out["source"] = sources.loc[label[keep]].to_numpy()
    out["n_merged"] = counts.loc[label[keep]].to_numpy()
    if (~keep).any():
        logger.info("merged %d duplicate facility record(s)", int((~keep).sum()))
    return out.reset_index(drop=True)


def collect_facilities(osm_facilities: gpd.GeoDataFrame | None,
                       categories: Mapping[str, Category], *, crs: str,
                       area: BaseGeometry | None = None,
                       dedupe_m: float = LifeCircleConfig.dedupe_m,
                       roads: gpd.GeoDataFrame | None = None,
                       pois: gpd.GeoDataFrame | None = None
                       ) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Facilities of every category from the configured files and OSM, de-duplicated.

    Parameters
    ----------
    osm_facilities
        OSM facilities already classified (``OSMLayers.facilities``), or None.
    categories
        ``config.lifecircle.categories``.
    crs
        Metric CRS of the output.
    area
        Study area (plus margin) in ``crs``: file rows outside it are left out.
    dedupe_m
        Records of one facility closer than this (m) merge; the default is the config's
        ``lifecircle.dedupe_m``, so a notebook call and a run agree.
    roads
        The OSM ``roads`` layer (metric CRS): files without a ``coord_system`` are checked
        against its streets for an undeclared GCJ-02/BD-09 datum. None skips the check.
    pois
        The OSM ``pois`` layer (metric CRS): the same check by same-named features.

    Returns
    -------
    tuple
        GeoDataFrame (``facility_id``, ``category``, ``subtype``, ``name``, ``source``,
        ``n_merged``, ``osm_id`` where known, point geometry) and report lines, including
        one line per category that has no facility at all.
    """
    frames: list[gpd.GeoDataFrame] = []
    notes: list[str] = []
    streets = street_lines(roads)
    for key, cat in categories.items():
        for i, ff in enumerate(cat.files):
            gdf, n = read_facility_file(ff, key, cat, crs=crs, area=area,
                                        where=f"lifecircle.categories.{key}.files[{i}]",
                                        streets=streets, reference=pois)
            frames.append(gdf)
            notes += n
    if osm_facilities is not None and len(osm_facilities):
        osm = osm_facilities[osm_facilities["category"].isin(list(categories))]
        if osm.crs is not None and osm.crs != crs:
            osm = osm.to_crs(crs)
        cols = [c for c in [*FACILITY_COLUMNS, "osm_id", "matched_by"] if c in osm.columns]
        frames.append(gpd.GeoDataFrame(osm[cols], geometry=osm.geometry, crs=crs))
    frames = [f for f in frames if len(f)]
    if not frames:
        fac = _empty(crs).assign(n_merged=pd.Series(dtype="int64"))
    else:
        fac = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)
        geom = fac.geometry
        if not geom.geom_type.eq("Point").all():
            fac["geometry"] = geom.representative_point()
        fac = dedupe_facilities(fac, dedupe_m=dedupe_m)
    fac.insert(0, "facility_id", [f"{c}-{k + 1}" for c, k in
                                  zip(fac["category"], fac.groupby("category").cumcount(),
                                      strict=True)])
    for key in categories:
        if not (fac["category"] == key).any():
            notes.append(f"{key}: no facility in the area (all communities are gaps; add a "
                         f"file under lifecircle.categories.{key}.files)")
    return fac, notes


def load_facilities(cfg: Config, osm_facilities: gpd.GeoDataFrame | None, *,
                    area: BaseGeometry | None = None, roads: gpd.GeoDataFrame | None = None,
                    pois: gpd.GeoDataFrame | None = None
                    ) -> tuple[gpd.GeoDataFrame, list[str]]:
    """:func:`collect_facilities` with the options of a run's config."""
    return collect_facilities(osm_facilities, cfg.lifecircle.categories,
                              crs=cfg.study_area.crs, area=area,
                              dedupe_m=cfg.lifecircle.dedupe_m, roads=roads, pois=pois)
