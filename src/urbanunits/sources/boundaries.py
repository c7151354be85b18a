"""Polygon inputs: study-area and sub-district (街道) boundary files, and OSM admin boundaries.

Sub-districts come from a boundary file (``inputs.subdistricts``) or, without one, from the OSM
extract's ``boundary=administrative`` relations: ``admin_level=8`` are China's township-level units
(街道/镇/乡), ``admin_level=6`` its districts (区/县). Official National Bureau of Statistics codes
(``inputs.subdistrict_codes``) are joined to them by ``ref:NBS`` tag or by name.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from urbanunits.errors import CRSError, DataError, InputFileError

if TYPE_CHECKING:
    from urbanunits.sources.osm import OSMLayers

__all__ = [
    "NBSJoin",
    "OSMBoundaries",
    "admin_polygons",
    "is_garbled",
    "join_nbs_codes",
    "normalise_name",
    "read_nbs_codes",
    "read_polygons",
    "read_subdistricts",
    "shapefile_encoding",
    "subdistricts_from_osm",
]

logger = logging.getLogger(__name__)


def _dbf_text(path: Path, *, max_records: int = 20_000) -> bytes:
    """The raw bytes of a .dbf's character fields (the first ``max_records`` records)."""
    import struct

    with path.open("rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            return b""
        n_rec, head_len, rec_len = struct.unpack("<IHH", head[4:12])
        fields = []  # (offset in record, length) of character fields
        offset = 1  # the deletion flag
        desc = fh.read(max(0, head_len - 32))
        for i in range(0, len(desc) - 31, 32):
            if desc[i] == 0x0D:
                break
            ftype, flen = chr(desc[i + 11]), desc[i + 16]
            if ftype == "C":
                fields.append((offset, flen))
            offset += flen
        if not fields or rec_len <= 0:
            return b""
        fh.seek(head_len)
        body = fh.read(rec_len * min(n_rec, max_records))
    parts = []
    for r in range(0, len(body) - rec_len + 1, rec_len):
        for off, flen in fields:
            parts.append(body[r + off:r + off + flen].rstrip(b" \x00"))
    return b"\n".join(parts)


def shapefile_encoding(path: str | Path, *, key: str = "") -> str | None:
    """The text encoding to read a Shapefile with, when GDAL would guess wrong.

    GDAL takes a Shapefile's encoding from its ``.cpg`` file or the .dbf's language-driver byte;
    without either it assumes ISO-8859-1, which turns GBK names (common in Chinese GIS exports)
    into mojibake. For such files the raw text fields are tried as UTF-8, then GB18030 (a
    superset of GBK and GB2312).

    Parameters
    ----------
    path
        The file (anything other than a ``.shp`` gives None).
    key
        The config key that sets the encoding, for the error message.

    Returns
    -------
    str or None
        ``"UTF-8"`` or ``"GB18030"``; None when GDAL's own choice is right (a ``.cpg``, a
        language-driver byte, plain ASCII, or not a Shapefile).
    """
    path = Path(path)
    if path.suffix.lower() != ".shp":
        return None
    dbf = next((p for p in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if p.is_file()),
               None)
    if dbf is None or any(path.with_suffix(s).is_file() for s in (".cpg", ".CPG")):
        return None
    with dbf.open("rb") as fh:
        head = fh.read(32)
    if len(head) >= 30 and head[29] != 0:
        return None  # a language-driver id GDAL understands
    raw = _dbf_text(dbf)
    if raw.isascii():
        return None
    for enc in ("utf-8", "gb18030"):
        try:
            raw.decode(enc)
        except UnicodeDecodeError:
            continue
        name = "UTF-8" if enc == "utf-8" else "GB18030"
        logger.info("%s: no .cpg file; text fields read as %s", path.name, name)
        return name
    raise InputFileError(path, "text fields are neither UTF-8 nor GBK and there is no .cpg file "
                         "naming their encoding",
                         f"set {key or 'the encoding'} to the file's encoding (e.g. \"BIG5\") "
                         "or save it as a GeoPackage")


def is_garbled(name: object) -> bool:
    """Whether a name is undecodable text: U+FFFD, C1 controls, or GBK read as Latin-1.

    ``"陆家嘴街道"`` stored as GBK and read as Latin-1 becomes ``"Â½¼Ò×ì½ÖµÀ"``; its Latin-1
    bytes decode as GB18030 to Chinese again, which is the test (a real ``"Zürich"`` does not).
    """
    if not isinstance(name, str):
        return False
    if re.search("[\ufffd\u0080-\u009f]", name):
        return True
    if len(re.findall("[\u00a0-\u00ff]", name)) < 2:
        return False
    try:
        again = name.encode("latin-1").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return False
    return re.search("[\u4e00-\u9fff]", again) is not None


def read_polygons(path: str | Path, *, crs: str, what: str, layer: str | None = None,
                  encoding: str = "", encoding_key: str = "") -> gpd.GeoDataFrame:
    """Read a polygon file (GeoPackage, GeoJSON, Shapefile...) into the metric CRS.

    Invalid polygons are repaired with ``make_valid`` and counted in the log; empty geometries
    are dropped. A file without a CRS is an error (guessing would silently shift everything).
    A Shapefile without a ``.cpg`` has its text encoding detected (:func:`shapefile_encoding`).

    Parameters
    ----------
    path
        The file.
    crs
        Target metric CRS.
    what
        What the file is for, used in messages (e.g. ``"sub-district boundaries"``).
    layer
        Layer to read (default: the first).
    encoding
        Text encoding of a Shapefile's attributes (e.g. ``"GB18030"``); ``""`` detects it.
    encoding_key
        The config key that sets ``encoding``, for messages.

    Returns
    -------
    geopandas.GeoDataFrame
        Polygons in ``crs``.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"{what} file not found",
                             "check the path in the config or put the file there")
    enc = encoding or (shapefile_encoding(path, key=encoding_key) if path.is_file() else None)
    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio",
                            **({"encoding": enc} if enc else {}))
    except (UnicodeDecodeError, LookupError) as exc:
        raise InputFileError(path, f"its text fields are not in the encoding "
                             f"{enc or 'its .cpg file names'} ({exc})",
                             f"set {encoding_key or 'the encoding'} to the file's encoding "
                             "(e.g. \"GB18030\" for GBK)") from exc
    except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(path, f"could not read {what} ({first})",
                             "use a valid GeoPackage, GeoJSON or Shapefile") from exc
    if gdf.crs is None:
        raise CRSError(path, f"{what} have no CRS",
                       "save the file with its CRS (e.g. EPSG:4326 or EPSG:4490) set")
    if gdf.empty:
        raise DataError(path, f"{what} file has no features", "use a file with polygons")
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].copy()
    poly = gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    if not poly.all():
        bad = sorted(set(gdf.geometry.geom_type[~poly]))
        raise DataError(path, f"{what} must be polygons, found {', '.join(bad)}",
                        "export polygons (not lines or points)")
    invalid = ~gdf.geometry.is_valid
    if invalid.any():
        logger.warning("%s: repaired %d invalid polygon(s) in %s", path, int(invalid.sum()), what)
        fixed = shapely.make_valid(gdf.geometry.values[invalid.values])
        gdf.loc[invalid, "geometry"] = [_polygon_parts(g) for g in fixed]
        gdf = gdf[~gdf.geometry.is_empty]
    if gdf.crs != crs:
        gdf = gdf.to_crs(crs)
    return gdf.reset_index(drop=True)


def _polygon_parts(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep the polygonal parts of a repaired geometry (make_valid may add lines or points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def read_subdistricts(path: str | Path, *, crs: str, name_field: str = "name",
                      encoding: str = "") -> gpd.GeoDataFrame:
    """Read sub-district (街道) polygons: columns ``subdistrict`` and geometry, metric CRS.

    Parameters
    ----------
    path
        Boundary file.
    crs
        Target metric CRS.
    name_field
        Column holding the sub-district name.
    encoding
        Text encoding of a Shapefile's attributes (``inputs.subdistricts_encoding``); ``""``
        detects it. Names that still cannot be decoded are an error, never written.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per sub-district (parts of the same name dissolved).
    """
    key = "inputs.subdistricts_encoding"
    gdf = read_polygons(path, crs=crs, what="sub-district boundaries", encoding=encoding,
                        encoding_key=key)
    if name_field not in gdf.columns:
        cols = ", ".join(c for c in gdf.columns if c != "geometry")
        raise DataError(f"{path}: column {name_field!r}", "not found",
                        f"set inputs.subdistrict_name_field to one of: {cols}")
    out = gdf[[name_field, "geometry"]].rename(columns={name_field: "subdistrict"})
    unnamed = out["subdistrict"].isna() | (out["subdistrict"].astype(str).str.strip() == "")
    if unnamed.any():
        raise DataError(f"{path}: column {name_field!r}",
                        f"{int(unnamed.sum())} polygon(s) have no name",
                        "fill in the names (units are labelled and nested by them)")
    out["subdistrict"] = out["subdistrict"].astype(str)
    # Undecodable names would reach every output: U+FFFD is what a decoder leaves for bytes it
    # could not read, and GBK read as Latin-1 (a wrong .cpg) gives accented letters.
    garbled = out["subdistrict"].map(is_garbled).astype(bool)
    if garbled.any():
        sample = out.loc[garbled, "subdistrict"].iloc[0]
        raise DataError(f"{path}: column {name_field!r}",
                        f"{int(garbled.sum())} name(s) cannot be decoded (e.g. {sample!r})",
                        f"set {key} to the file's encoding (e.g. \"GB18030\" for GBK)")
    out = out.dissolve(by="subdistrict", as_index=False)
    return out.sort_values("subdistrict").reset_index(drop=True)


def list_layers(path: Path) -> list[str]:
    """Layer names of a vector file (empty if unreadable)."""
    try:
        return [str(r[0]) for r in pyogrio.list_layers(path)]
    except (DataSourceError, OSError):
        return []


# --------------------------------------------------------------------------------------------
# Administrative boundaries from OSM, NBS codes
# --------------------------------------------------------------------------------------------

# Longest first: 民族乡 before 乡, 街道办事处 before 街道.
_SUFFIXES = ("街道办事处", "办事处", "街道", "民族乡", "地区", "镇", "乡")


def normalise_name(name: object, *, strip_suffix: bool = False) -> str:
    """Canonical form of a Chinese place name for matching.

    NFKC (full-width → half-width), all whitespace removed, a trailing ``办事处`` dropped; with
    ``strip_suffix`` also the level suffix (街道, 镇, 乡, 民族乡, 地区), so that ``"西门"``,
    ``"西门街道"`` and ``"西门 街道办事处"`` all give ``"西门"``.

    Parameters
    ----------
    name
        A name (non-strings give ``""``).
    strip_suffix
        Also drop the level suffix.

    Returns
    -------
    str
        The normalised name.
    """
    if not isinstance(name, str):
        return ""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", name))
    if text.endswith("办事处") and len(text) > 3:
        text = text[: -len("办事处")]
    if strip_suffix:
        for suffix in _SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                return text[: -len(suffix)]
    return text


def read_nbs_codes(path: str | Path) -> pd.DataFrame:
    """Read an NBS code list (CSV ``code,name[,areaCode,...]``) with codes as strings.

    Parameters
    ----------
    path
        The CSV (UTF-8, with or without BOM).

    Returns
    -------
    pandas.DataFrame
        ``code`` (9-digit township code), ``name``, ``area_code`` (6-digit district code).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "NBS code list not found",
                             "check inputs.subdistrict_codes or remove it")
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except (ValueError, OSError) as exc:
        raise InputFileError(path, f"could not read the NBS code list ({exc})",
                             "use a UTF-8 CSV with columns code,name") from exc
    missing = {"code", "name"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: columns", f"missing {sorted(missing)} "
                        f"(found {', '.join(df.columns)})", "use a CSV with columns code,name")
    df = df.dropna(subset=["code", "name"])
    df["code"] = df["code"].str.strip()
    area = df["areaCode"] if "areaCode" in df.columns else df["code"].str[:6]
    return pd.DataFrame({"code": df["code"], "name": df["name"].str.strip(),
                         "area_code": area.fillna(df["code"].str[:6]).astype(str)}
                        ).reset_index(drop=True)


@dataclass(frozen=True)
class NBSJoin:
    """How many sub-districts got an official code, and which names did not."""

    matched: int
    total: int
    unmatched: list[str] = field(default_factory=list)
    by: dict[str, int] = field(default_factory=dict)  # ref / name / core name → count
    codes_in_districts: int = 0  # codes of the districts the matches fall in

    def summary(self) -> str:
        """One line for logs and stage reports."""
        how = ", ".join(f"{v} by {k}" for k, v in self.by.items() if v)
        text = f"NBS codes: {self.matched} of {self.total} sub-districts matched"
        if how:
            text += f" ({how})"
        if self.codes_in_districts:
            text += f"; {self.codes_in_districts} codes listed for their districts"
        if self.unmatched:
            text += f"; no code for: {', '.join(self.unmatched)}"
        return text


def join_nbs_codes(subdistricts: gpd.GeoDataFrame, codes: pd.DataFrame | str | Path, *,
                   name_col: str = "subdistrict", ref_col: str | None = None,
                   district_code_col: str | None = None) -> tuple[gpd.GeoDataFrame, NBSJoin]:
    """Add column ``nbs_code`` to sub-districts: by ``ref:NBS``, else by normalised name.

    Names are compared after :func:`normalise_name`: first whole (``南门街道``), then without the
    level suffix (``南门`` ↔ ``南门街道``), each only where the name is unique among the
    candidate codes. Candidates are the codes of the sub-district's district when that is known.

    Parameters
    ----------
    subdistricts
        Polygons with a name column.
    codes
        An NBS code list (see :func:`read_nbs_codes`) or its path.
    name_col
        Name column.
    ref_col
        Column with OSM ``ref:NBS`` values (9- or 12-digit), used first when present.
    district_code_col
        Column with the 6-digit district code of each row, to narrow the candidates.

    Returns
    -------
    tuple
        The sub-districts with ``nbs_code`` (missing where unmatched) and an :class:`NBSJoin`.
    """
    table = codes if isinstance(codes, pd.DataFrame) else read_nbs_codes(codes)
    table = table.assign(full=table["name"].map(normalise_name),
                         core=table["name"].map(lambda n: normalise_name(n, strip_suffix=True)))
    valid = set(table["code"])
    out = subdistricts.copy()
    result: list[str | None] = []
    by = {"ref:NBS": 0, "name": 0, "name without suffix": 0}
    for _, row in out.iterrows():
        code = None
        ref = str(row[ref_col]).strip() if ref_col and pd.notna(row.get(ref_col)) else ""
        if ref[:9] in valid and len(ref) >= 9:
            code = ref[:9]
            by["ref:NBS"] += 1
        else:
            cand = table
            dcode = row.get(district_code_col) if district_code_col else None
            if isinstance(dcode, str) and (table["area_code"] == dcode).any():
                cand = table[table["area_code"] == dcode]
            for key, col in (("name", "full"), ("name without suffix", "core")):
                value = normalise_name(row[name_col], strip_suffix=col == "core")
                hits = cand.loc[cand[col] == value, "code"] if value else cand.iloc[0:0]["code"]
                if len(hits) == 1:
                    code = str(hits.iloc[0])
                    by[key] += 1
                    break
        result.append(code)
    out["nbs_code"] = pd.Series(result, index=out.index, dtype="object")
    matched = out["nbs_code"].notna()
    areas = {c[:6] for c in out.loc[matched, "nbs_code"]}
    join = NBSJoin(matched=int(matched.sum()), total=len(out),
                   unmatched=sorted(out.loc[~matched, name_col].astype(str)), by=by,
                   codes_in_districts=int(table["area_code"].isin(areas).sum()))
    (logger.warning if join.unmatched else logger.info)("%s", join.summary())
    return out, join


def admin_polygons(admin: gpd.GeoDataFrame, *, level: int) -> gpd.GeoDataFrame:
    """Named administrative polygons of one level, one row per name.

    Relation-based boundaries win over closed ways with the same name (OSM member ways often
    carry ``boundary``/``admin_level`` tags themselves). Parts with one name are dissolved.

    Parameters
    ----------
    admin
        The ``admin`` layer of :class:`~urbanunits.sources.osm.OSMLayers` (metric CRS).
    level
        ``admin_level`` to keep (8 = 街道/镇/乡, 6 = 区/县).

    Returns
    -------
    geopandas.GeoDataFrame
        ``name``, ``osm_id`` (the largest part), ``ref_nbs``, geometry; sorted by name.
    """
    cols = ["name", "osm_id", "ref_nbs"]
    if admin is None or admin.empty or "admin_level" not in admin.columns:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=gpd.GeoSeries([], crs=getattr(
            admin, "crs", None)), crs=getattr(admin, "crs", None))
    sub = admin[(admin["admin_level"] == level) & admin["name"].notna()].copy()
    sub = sub[~sub.geometry.is_empty]
    if "osm_type" in sub.columns:
        rel_names = set(sub.loc[sub["osm_type"] == "relation", "name"])
        sub = sub[(sub["osm_type"] == "relation") | ~sub["name"].isin(rel_names)]
    if "ref_nbs" not in sub.columns:
        sub["ref_nbs"] = None
    sub["_area"] = sub.geometry.area
    sub = sub.sort_values("_area", ascending=False)
    firsts = sub.groupby("name", sort=True)[["osm_id", "ref_nbs"]].first()
    geoms = sub.groupby("name", sort=True).geometry.apply(
        lambda s: shapely.union_all(s.values))
    out = gpd.GeoDataFrame({"name": geoms.index, "osm_id": firsts["osm_id"].to_numpy(),
                            "ref_nbs": firsts["ref_nbs"].to_numpy()},
                           geometry=list(geoms.values), crs=admin.crs)
    return out.reset_index(drop=True)


@dataclass
class OSMBoundaries:
    """Districts and sub-districts assembled from an OSM extract."""

    subdistricts: gpd.GeoDataFrame  # subdistrict, nbs_code, district, osm_id, geometry
    districts: gpd.GeoDataFrame  # district, nbs_code, osm_id, geometry
    join: NBSJoin | None = None

    def summary_lines(self) -> list[str]:
        """Counts and the NBS join, for stage reports."""
        lines = [f"OSM boundaries: {len(self.districts)} districts (admin_level 6), "
                 f"{len(self.subdistricts)} sub-districts (admin_level 8)"]
        if self.join is not None:
            lines.append(self.join.summary())
        return lines


def subdistricts_from_osm(layers: OSMLayers | gpd.GeoDataFrame, *,
                          codes_csv: str | Path | pd.DataFrame | None = None) -> OSMBoundaries:
    """Sub-district (admin level 8) and district (level 6) polygons from the OSM extract.

    Each sub-district is assigned the district containing its representative point, and, with
    ``codes_csv``, its official NBS code (see :func:`join_nbs_codes`). A district's code is its
    ``ref:NBS`` tag, else the one its matched sub-districts' codes agree on most.

    Parameters
    ----------
    layers
        Parsed OSM layers (or their ``admin`` layer) in a metric CRS.
    codes_csv
        NBS township code list (``inputs.subdistrict_codes``), or ``None``.

    Returns
    -------
    OSMBoundaries
        ``subdistricts`` (``subdistrict``, ``nbs_code``, ``district``, ``osm_id``, geometry) and
        ``districts`` (``district``, ``nbs_code``, ``osm_id``, geometry), possibly empty.
    """
    admin = layers if isinstance(layers, gpd.GeoDataFrame) else layers.admin
    subs = admin_polygons(admin, level=8)
    dists = admin_polygons(admin, level=6)
    crs = admin.crs if admin is not None else None
    districts = gpd.GeoDataFrame(
        {"district": dists["name"], "nbs_code": dists["ref_nbs"].map(_district_ref),
         "osm_id": dists["osm_id"]}, geometry=dists.geometry, crs=crs)
    sub = gpd.GeoDataFrame({"subdistrict": subs["name"], "ref_nbs": subs["ref_nbs"],
                            "osm_id": subs["osm_id"]}, geometry=subs.geometry, crs=crs)
    sub["district"] = pd.Series([None] * len(sub), index=sub.index, dtype="object")
    sub["_dcode"] = pd.Series([None] * len(sub), index=sub.index, dtype="object")
    if not sub.empty and not districts.empty:
        pts = gpd.GeoDataFrame(geometry=sub.geometry.representative_point(), crs=crs)
        hit = gpd.sjoin(pts, districts[["district", "nbs_code", "geometry"]],
                        predicate="within", how="left")
        hit = hit[~hit.index.duplicated(keep="first")]
        sub["district"] = hit["district"].reindex(sub.index)
        sub["_dcode"] = hit["nbs_code"].reindex(sub.index)
    join = None
    if codes_csv is not None and not sub.empty:
        sub, join = join_nbs_codes(sub, codes_csv, ref_col="ref_nbs",
                                   district_code_col="_dcode")
        if not districts.empty:
            # A district without ref:NBS takes the code its sub-districts agree on.
            agree = sub.dropna(subset=["nbs_code", "district"]).assign(
                area=lambda d: d["nbs_code"].str[:6]).groupby("district")["area"].agg(
                lambda s: s.value_counts().index[0])
            districts["nbs_code"] = districts["nbs_code"].fillna(districts["district"].map(agree))
    else:
        sub["nbs_code"] = pd.Series([None] * len(sub), index=sub.index, dtype="object")
    sub = sub[["subdistrict", "nbs_code", "district", "osm_id", "geometry"]]
    return OSMBoundaries(subdistricts=sub.reset_index(drop=True),
                         districts=districts.reset_index(drop=True), join=join)


def _district_ref(value: object) -> str | None:
    text = str(value).strip() if isinstance(value, str) else ""
    return text[:6] if len(text) >= 6 and text[:6].isdigit() else None
