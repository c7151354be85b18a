"""Stage resume: reuse a stage's layers from the run's GeoPackage when nothing it reads changed.

Each stage has a digest: SHA-256 over the package version, the config sections the stage reads,
the content hashes of the input files it reads and the digests of the stages it is computed
from. When a stage's layers are written, ``run_metadata`` gets two rows for it:
``stage_digest:<stage>`` and ``stage_schema:<stage>`` (JSON: per layer its columns, dtypes,
geometry column, CRS and the rows whose geometry type GDAL's multi-type promotion changes), so
that the layers can be read back exactly as they were written. A later run whose digest for the
stage (and every stage before it) is the same reads the layers instead of computing them.

A row is dropped whenever its stage's layers are rewritten without a digest (by a caller that
passed its own frames) or removed; a layer that cannot be stored exactly (list values) gets
no row, so such a stage is always computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import pyproj
import shapely

from urbanunits import __version__
from urbanunits._files import file_sha256

if TYPE_CHECKING:
    from urbanunits.config import Config

__all__ = ["Reused", "config_text_hash", "merge_metadata", "read_metadata", "read_stage",
           "stage_digests"]

logger = logging.getLogger(__name__)

DIGEST_KEY = "stage_digest:"
SCHEMA_KEY = "stage_schema:"
#: SHA-256 of the config file's text a stage's layers (and maps) were last made with.
CONFIG_KEY = "stage_config:"
METADATA_TABLE = "run_metadata"

# The stages in order and the one each is computed from.
UPSTREAM: dict[str, str | None] = {"units": None, "packages": "units",
                                   "lifecircle": "packages", "programme": "lifecircle",
                                   "sites": "lifecircle"}
# Config sections each stage reads (besides what its upstream stage's digest covers).
SECTIONS: dict[str, tuple[str, ...]] = {
    "units": ("study_area", "inputs", "osm", "units"), "packages": ("packages",),
    "lifecircle": ("lifecircle",), "programme": ("programme",), "sites": ("sites",)}
# Input files (``inputs.<role>``) each stage reads; facility files are the life circles'.
INPUT_ROLES: dict[str, tuple[str, ...]] = {
    "units": ("osm", "subdistricts", "subdistrict_codes", "heritage_areas"),
    "packages": ("inventory", "community_overrides", "population_raster"),
    "lifecircle": (), "programme": (), "sites": ("candidate_sites",)}


def ancestors(stage: str) -> list[str]:
    """``stage`` and the stages it is computed from, first stage first."""
    out: list[str] = []
    s: str | None = stage
    while s is not None:
        out.insert(0, s)
        s = UPSTREAM[s]
    return out


# Hashes of input files by (path, size, mtime): a run hashes each file once.
_HASHES: dict[tuple[str, int, int], str] = {}


#: Files read together with a file of this suffix (a Shapefile's attributes, CRS and encoding;
#: a raster's georeferencing): a change to any of them changes what the input says.
#: ``.x`` replaces the suffix (``sd.dbf``), ``+x`` is appended to the name (``pop.tif.aux.xml``).
_COMPANIONS = {".shp": (".dbf", ".shx", ".prj", ".cpg"), ".tif": (".tfw", "+.aux.xml", "+.ovr"),
               ".tiff": (".tfw", "+.aux.xml", "+.ovr")}


def _one_hash(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]


def _file_hash(path: Path) -> str:
    """SHA-256 of an input file, with its companion files (``.dbf`` of a ``.shp``…) when any."""
    own = _one_hash(path)
    side = [(sfx, path.with_name(path.name + sfx[1:]) if sfx.startswith("+")
             else path.with_suffix(sfx)) for sfx in _COMPANIONS.get(path.suffix.lower(), ())]
    parts = [f"{sfx}:{_one_hash(p)}" for sfx, p in side if p.is_file()]
    if not parts:
        return own
    return hashlib.sha256("|".join([own, *parts]).encode()).hexdigest()


def _input_files(cfg: Config, stage: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for role in INPUT_ROLES[stage]:
        p = getattr(cfg.inputs, role, None)
        if p is not None:
            files[role] = Path(p)
    if stage == "units" and cfg.study_area.boundary is not None:
        files["study_area"] = Path(cfg.study_area.boundary)
    if stage == "lifecircle":
        for key, cat in cfg.lifecircle.categories.items():
            for i, f in enumerate(cat.files):
                files[f"facilities:{key}:{i}"] = Path(f.path)
    return files


def stage_digests(cfg: Config) -> dict[str, str]:
    """The digest of every stage under ``cfg`` (hex SHA-256).

    Parameters
    ----------
    cfg
        The run's config.

    Returns
    -------
    dict
        Stage name → digest. An input file that is missing hashes as ``"missing"``, so the
        stage that reads it is computed (and reports the missing file).
    """

    out: dict[str, str] = {}
    for stage, up in UPSTREAM.items():
        sections = {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS[stage]}
        inputs = {role: _file_hash(p) if p.is_file() else "missing"
                  for role, p in _input_files(cfg, stage).items()}
        doc = {"stage": stage, "version": __version__, "sections": sections, "inputs": inputs,
               "upstream": out[up] if up else None}
        text = json.dumps(doc, sort_keys=True, default=str, ensure_ascii=False)
        out[stage] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return out


# --- recording ----------------------------------------------------------------------------


_NA_KINDS: dict[type, str] = {type(None): "none", float: "nan", type(pd.NA): "pd.NA",
                              np.float64: "nan"}
_NA_VALUES: dict[str, Any] = {"none": None, "nan": np.nan, "pd.NA": pd.NA}


def _layer_schema(df: gpd.GeoDataFrame | pd.DataFrame) -> dict[str, Any] | None:
    """What is needed to read ``df`` back exactly, or None when a GeoPackage cannot hold it."""
    if not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0
            and df.index.step == 1):
        return None
    missing: dict[str, str] = {}
    for col in df.columns:
        if df[col].dtype != object or col == getattr(df, "_geometry_column_name", None):
            continue
        if df[col].map(lambda v: isinstance(v, list | tuple | set | dict)).any():
            return None  # written joined with ";": not the same values when read back
        # GDAL reads every missing value back as None: remember which one it was
        kinds = {_NA_KINDS.get(type(v), "other") for v in df[col][df[col].isna()]}
        if len(kinds) > 1 or "other" in kinds:
            return None
        if kinds:
            missing[str(col)] = kinds.pop()
    out: dict[str, Any] = {"columns": [str(c) for c in df.columns],
                           "dtypes": [str(df[c].dtype) for c in df.columns],
                           "rows": len(df), "geometry": None, "missing": missing}
    if isinstance(df, gpd.GeoDataFrame):
        geoms = df.geometry.to_numpy()
        types = set(shapely.get_type_id(geoms[~shapely.is_missing(geoms)]).tolist())
        # GEOS type ids: 0 Point, 1 LineString, 3 Polygon; 4, 5, 6 their Multi types
        mixed = any({t, t + 3 if t < 3 else 6} <= types for t in (0, 1, 3))
        single_multi: list[int] = []
        if mixed:
            is_multi = shapely.get_type_id(geoms) >= 4
            one = shapely.get_num_geometries(geoms) == 1
            single_multi = [int(i) for i in (is_multi & one).nonzero()[0]]
        out.update(geometry=str(df.geometry.name),
                   crs=df.crs.to_wkt() if df.crs is not None else None, mixed=mixed,
                   single_multi=single_multi)
    return out


def read_metadata(gpkg: Path) -> dict[str, str]:
    """Every row of the run metadata in ``gpkg`` (empty when there is none or it is unreadable)."""
    if not gpkg.is_file():
        return {}
    try:
        names = [str(r[0]) for r in pyogrio.list_layers(gpkg)]
        if METADATA_TABLE not in names:
            return {}
        meta = pyogrio.read_dataframe(gpkg, layer=METADATA_TABLE, read_geometry=False)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError):
        return {}
    return {str(k): str(v) for k, v in zip(meta["key"], meta["value"], strict=True)}


def _previous_rows(gpkg: Path) -> dict[str, str]:
    """The stage rows of the metadata already in ``gpkg`` (empty when there is none)."""
    return {k: v for k, v in read_metadata(gpkg).items()
            if k.startswith((DIGEST_KEY, SCHEMA_KEY, CONFIG_KEY))}


def config_text_hash(text: str | None) -> str:
    """What :data:`CONFIG_KEY` rows hold: the SHA-256 of a config file's text ("" for none)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else ""


def merge_metadata(meta: pd.DataFrame, gpkg: Path,
                   layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame], *,
                   owned: Mapping[str, frozenset[str]], drop: frozenset[str] | set[str],
                   digests: Mapping[str, str], drawn: Collection[str] = ()) -> pd.DataFrame:
    """``meta`` with the stage rows that hold after ``layers`` are written to ``gpkg``.

    Parameters
    ----------
    meta
        The new ``run_metadata`` rows (:func:`urbanunits.export.run_metadata`).
    gpkg
        The GeoPackage about to be written (its current stage rows are carried over).
    layers
        The layers written.
    owned
        Stage → the layers it owns.
    drop
        Layers removed by this write.
    digests
        Stage → digest for the stages whose layers in ``layers`` were computed (or reused)
        under the current config; other stages touched by the write lose their rows.
    drawn
        Stages whose maps this run draws: their :data:`CONFIG_KEY` row becomes this config's;
        the other stages of ``digests`` keep theirs (their maps are the earlier run's).

    Returns
    -------
    pandas.DataFrame
        ``meta`` plus ``stage_digest:*`` and ``stage_schema:*`` rows.
    """
    rows = _previous_rows(gpkg)
    previous = dict(rows)
    touched = set(layers) | set(drop)
    keys = (DIGEST_KEY, SCHEMA_KEY, CONFIG_KEY)
    for stage, names in owned.items():
        if names & touched or stage in digests:
            for k in keys:
                rows.pop(k + stage, None)
    toml = meta.loc[meta["key"] == "config_toml", "value"]
    config = config_text_hash(str(toml.iloc[0]) if len(toml) else None)
    for stage, digest in digests.items():
        present = {n: layers[n] for n in owned[stage] if n in layers}
        schemas = {n: _layer_schema(df) for n, df in present.items()}
        if not present or any(s is None for s in schemas.values()):
            logger.debug("%s: layers cannot be stored exactly; no resume row", stage)
            continue
        rows[DIGEST_KEY + stage] = digest
        rows[SCHEMA_KEY + stage] = json.dumps(schemas, ensure_ascii=False)
        made_with = config if stage in drawn else previous.get(CONFIG_KEY + stage)
        if made_with is not None:
            rows[CONFIG_KEY + stage] = made_with
    # A stage whose upstream lost its row is computed again next time, so its row goes too.
    for stage, up in UPSTREAM.items():
        if up is not None and DIGEST_KEY + up not in rows:
            for k in keys:
                rows.pop(k + stage, None)
    extra = pd.DataFrame(sorted(rows.items()), columns=["key", "value"])
    return pd.concat([meta, extra], ignore_index=True) if len(extra) else meta


# --- reading back -------------------------------------------------------------------------


@dataclass
class Reused:
    """A stage's layers (and those of the stages before it) read back from the GeoPackage."""

    stages: list[str]
    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame]
    digests: dict[str, str]


class _NotReusable(Exception):  # noqa: N818 - internal control flow, carries the reason
    """Why a stage's layers cannot be reused (the message is the log line)."""


def _read_layer(gpkg: Path, name: str, schema: Mapping[str, Any]
                ) -> gpd.GeoDataFrame | pd.DataFrame:
    cols, dtypes, geom = schema["columns"], schema["dtypes"], schema["geometry"]
    try:
        if geom is None:
            df: pd.DataFrame = pyogrio.read_dataframe(gpkg, layer=name, read_geometry=False)
        else:
            df = gpd.read_file(gpkg, layer=name, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise _NotReusable(f"layer {name} cannot be read ({str(exc).splitlines()[0]})") from exc
    if geom is not None:
        g = df.geometry.to_numpy()
        if schema.get("mixed"):
            # undo the promotion to one multi type, except where the multi was the original
            keep = set(schema.get("single_multi", []))
            one = (shapely.get_type_id(g) >= 4) & (shapely.get_num_geometries(g) == 1)
            one[list(keep)] = False
            g = g.copy()
            g[one] = shapely.get_geometry(g[one], 0)
        crs = pyproj.CRS.from_wkt(schema["crs"]) if schema.get("crs") else None
        df = gpd.GeoDataFrame(df.drop(columns=df.geometry.name),
                              geometry=gpd.GeoSeries(g, crs=crs, name=geom), crs=crs)
    if len(df) != schema["rows"] or set(df.columns) != set(cols):
        raise _NotReusable(f"layer {name} in the file differs from what was written "
                           f"({len(df)} rows, columns {sorted(map(str, df.columns))})")
    df = df[cols]
    try:
        for c, dt in zip(cols, dtypes, strict=True):
            if c != geom and str(df[c].dtype) != dt:
                df[c] = df[c].astype(dt)
    except (TypeError, ValueError) as exc:
        raise _NotReusable(f"layer {name}: column types cannot be restored ({exc})") from exc
    for c, kind in schema.get("missing", {}).items():
        df[c] = df[c].astype(object).where(df[c].notna(), _NA_VALUES[kind])
    return df


def read_stage(gpkg: Path, stage: str, expected: Mapping[str, str], *,
               owned: Mapping[str, frozenset[str]], have: Collection[str] = ()) -> Reused | str:
    """Read ``stage``'s layers and those of the stages before it, if their digests match.

    Parameters
    ----------
    gpkg
        The run's GeoPackage.
    stage
        The stage whose results are wanted.
    expected
        Every stage's digest under the current config (:func:`stage_digests`).
    owned
        Stage → the layers it owns.
    have
        Stages whose layers the caller has already read: their digests are checked, their
        layers not read again (nor returned).

    Returns
    -------
    Reused or str
        The layers read back, or why they cannot be reused (one line for the log).
    """
    if not gpkg.is_file():
        return f"no GeoPackage at {gpkg}"
    try:
        names = [str(r[0]) for r in pyogrio.list_layers(gpkg)]
    except (pyogrio.errors.DataSourceError, OSError) as exc:
        return f"{gpkg} cannot be read ({str(exc).splitlines()[0]})"
    rows = _previous_rows(gpkg)
    chain = ancestors(stage)
    for s in chain:
        recorded = rows.get(DIGEST_KEY + s)
        if recorded is None:
            return f"{gpkg} records no digest for {s}"
        if recorded != expected[s]:
            return (f"{s}'s inputs or config changed (digest {recorded[:12]} in {gpkg.name}, "
                    f"now {expected[s][:12]})")
    # The packages stage recounts old communities into update_units: the file's units are
    # the packages stage's when its layers are there.
    if stage == "units" and DIGEST_KEY + "packages" in rows:
        return ("update_units in the file carries the counts of the packages stage, which "
                "has to be computed again")
    layers: dict[str, gpd.GeoDataFrame | pd.DataFrame] = {}
    try:
        for s in chain:
            if s in have:
                continue
            schemas = json.loads(rows[SCHEMA_KEY + s])
            if not set(schemas) <= owned[s]:
                raise _NotReusable(f"{s}'s layers in {gpkg.name} ("
                                   f"{', '.join(sorted(set(schemas) - owned[s]))}) are not "
                                   "the stage's layers now")
            for name, schema in schemas.items():
                if name not in names:
                    raise _NotReusable(f"layer {name} is missing from {gpkg.name}")
                layers[name] = _read_layer(gpkg, name, schema)
    except (_NotReusable, KeyError, json.JSONDecodeError) as exc:
        return str(exc) if isinstance(exc, _NotReusable) else f"bad stage rows ({exc})"
    return Reused(stages=[s for s in chain if s not in have], layers=layers,
                  digests={s: expected[s] for s in chain})
