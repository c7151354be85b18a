"""Atomic output: the run's GeoPackage and tables.

Nothing is written in place. Each write goes to a temporary file next to the destination and is
renamed over it only when complete, so a failed or interrupted run never leaves a half-written file
and never destroys the previous good one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
import pyogrio
import pyogrio.errors

from urbanunits import ATTRIBUTION, __version__, _qml
from urbanunits._files import atomic_path, file_sha256
from urbanunits._fonts import cjk_font_family
from urbanunits.catalog import (
    CATALOG,
    CATEGORY_COLORS,
    DEFAULT_STYLE,
    KNOWN_GEOMETRY,
    LAYER_ALIASES,
    canonical_name,
)
from urbanunits.errors import InputFileError
from urbanunits.tables import data_dictionary, format_table, header

if TYPE_CHECKING:
    from urbanunits.config import Config

__all__ = [
    "CATEGORY_COLORS",
    "KNOWN_GEOMETRY",
    "atomic_path",
    "layer_styles",
    "list_layers",
    "read_layer",
    "run_metadata",
    "write_layers",
    "write_tables",
]

logger = logging.getLogger(__name__)


STYLES_TABLE = "layer_styles"
METADATA_TABLE = "run_metadata"


def write_layers(gpkg: str | Path, layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame], *,
                 styles: Mapping[str, str] | None = None,
                 metadata: pd.DataFrame | None = None,
                 drop: Iterable[str] = (), shown_as: str | Path | None = None) -> Path:
    """Write (or replace) layers in a GeoPackage atomically, keeping its other layers.

    Parameters
    ----------
    gpkg
        The GeoPackage path.
    layers
        Layer name → GeoDataFrame (spatial) or DataFrame (attribute-only table).
    styles
        Layer name → QGIS QML, stored in the ``layer_styles`` table as each layer's default
        style (rows for other layers are kept).
    metadata
        Replaces the ``run_metadata`` table (key/value rows, see :func:`run_metadata`).
    drop
        Layers to remove (with their styles), e.g. results that the new layers make stale.
    shown_as
        The path to name in log messages (the final path of a file written in staging).

    Returns
    -------
    pathlib.Path
        ``gpkg``.
    """
    gpkg = Path(gpkg)
    existing = set(list_layers(gpkg)) if gpkg.is_file() else set()
    # a layer written under its current name replaces the one an earlier release wrote under
    # the former name
    drop = {*drop, *(old for old, new in LAYER_ALIASES.items() if new in layers)}
    stale = (set(drop) & existing) - set(layers)
    with atomic_path(gpkg, copy_existing=not stale) as tmp, _unsynced_sqlite():
        if stale:
            # GDAL cannot drop a GeoPackage layer through pyogrio: rebuild without it instead.
            _copy_layers(gpkg, tmp, exclude=stale | set(layers))
        for name, df in layers.items():
            _write_one(tmp, name, df)
        if styles:
            _write_styles(tmp, styles, {n: df for n, df in layers.items()
                                        if isinstance(df, gpd.GeoDataFrame)})
        if metadata is not None:
            _write_one(tmp, METADATA_TABLE, metadata)
        # one sync for the whole file instead of two per layer: the file renamed in is complete
        # on disk even after a power cut
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
    shown = shown_as or gpkg
    if stale:
        logger.info("removed stale layers %s from %s", ", ".join(sorted(stale)), shown)
    logger.info("wrote %s to %s", ", ".join(layers), shown)
    return gpkg


@contextmanager
def _unsynced_sqlite() -> Iterator[None]:
    """GDAL's SQLite writes without fsync inside the block (``OGR_SQLITE_SYNCHRONOUS=OFF``).

    Each layer written is a SQLite transaction, and each commit waits for the disk twice: most of
    a run's GeoPackage time (0.8 s of 1 s for the demo's 20 layers). The GeoPackage is written to
    a temporary file renamed over the old one when complete (:func:`atomic_path`), like every
    other output, so a crash mid-write leaves the previous file untouched either way; the caller
    syncs the finished file once before the rename. The previous setting is restored when the
    block ends.
    """
    key = "OGR_SQLITE_SYNCHRONOUS"
    before = pyogrio.get_gdal_config_option(key)
    pyogrio.set_gdal_config_options({key: "OFF"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({key: before})


def _copy_layers(src: Path, dst: Path, *, exclude: set[str]) -> None:
    for name in list_layers(src):
        if name in exclude:
            continue
        info = pyogrio.read_info(src, layer=name)
        if info.get("geometry_type") is None:
            df: pd.DataFrame = pyogrio.read_dataframe(src, layer=name, read_geometry=False)
            if name == STYLES_TABLE:
                df = df[~df["f_table_name"].isin(exclude)]
        else:
            df = gpd.read_file(src, layer=name, engine="pyogrio")
        _write_one(dst, name, df)


def _write_styles(path: Path, styles: Mapping[str, str],
                  layers: Mapping[str, gpd.GeoDataFrame]) -> None:
    """Store QML styles the way QGIS does, in a ``layer_styles`` attribute table."""
    from datetime import UTC, datetime

    rows = []
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, qml in styles.items():
        geom_col = layers[name].geometry.name if name in layers else "geom"
        rows.append({"f_table_catalog": "", "f_table_schema": "", "f_table_name": name,
                     # GDAL names the geometry column "geom" in GeoPackages it writes
                     "f_geometry_column": "geom" if geom_col == "geometry" else geom_col,
                     "styleName": f"urbanunits {name}", "styleQML": qml, "styleSLD": "",
                     "useAsDefault": True, "description": "urbanunits report style",
                     "owner": "urbanunits", "ui": "", "update_time": now})
    new = pd.DataFrame(rows)
    if STYLES_TABLE in list_layers(path):
        old = pyogrio.read_dataframe(path, layer=STYLES_TABLE, read_geometry=False)
        old = old[~old["f_table_name"].isin(list(styles))]
        new = pd.concat([old[new.columns], new], ignore_index=True)
    _write_one(path, STYLES_TABLE, new)


def run_metadata(cfg: Config, *, inputs: Mapping[str, Path] | None = None) -> pd.DataFrame:
    """Key/value rows describing a run: version, config, inputs and their hashes, time, licence.

    Parameters
    ----------
    cfg
        The run's config (its TOML text is stored when it came from a file).
    inputs
        Role → path of every input file read (hashed with SHA-256).

    Returns
    -------
    pandas.DataFrame
        Columns ``key`` and ``value``.
    """
    from datetime import UTC, datetime


    rows = [("toolkit", "urbanunits"), ("version", __version__),
            ("run_name", cfg.name),
            ("created_utc", datetime.now(UTC).isoformat(timespec="seconds")),
            ("crs", cfg.study_area.crs), ("attribution", ATTRIBUTION),
            ("licence", "Map data © OpenStreetMap contributors, available under the Open "
                        "Database License (ODbL 1.0): https://www.openstreetmap.org/copyright")]
    if cfg.source is not None and Path(cfg.source).is_file():
        rows += [("config_path", str(cfg.source)),
                 ("config_toml", Path(cfg.source).read_text(encoding="utf-8"))]
    for role, path in (inputs or {}).items():
        p = Path(path)
        if p.is_file():
            rows += [(f"input:{role}", str(p)), (f"sha256:{role}", file_sha256(p))]
    return pd.DataFrame(rows, columns=["key", "value"])


def write_tables(folder: str | Path, tables: Mapping[str, pd.DataFrame], *,
                 workbook: str = "tables.xlsx", categories: Mapping[str, object] | None = None,
                 about: Sequence[tuple[str, str]] = ()) -> list[Path]:
    """Write each table as CSV (UTF-8 with BOM, for Excel) and all of them as one XLSX workbook.

    Tables are formatted for people (:func:`urbanunits.tables.format_table`): bilingual headers
    (``建筑面积(㎡) floor_area_m2``), metres to 1 m, hectares to 0.01, shares in percent, 是/否.
    The workbook also gets column widths, a frozen header, filters, number formats, a
    ``数据字典 Dictionary`` sheet (every column of every sheet) and an ``说明 About`` sheet
    (source, version, attribution).

    Parameters
    ----------
    folder
        Output folder (created).
    tables
        Sheet/file name → table. Geometry columns are dropped.
    workbook
        File name of the workbook.
    categories
        ``lifecircle.categories``, whose labels name the per-category columns.
    about
        (key, value) rows for the About sheet, after the attribution.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """

    folder = Path(folder)
    written = []
    formatted = {name: format_table(df, categories=categories) for name, df in tables.items()}
    for name, (df, infos) in formatted.items():
        dest = folder / f"{name}.csv"
        with atomic_path(dest) as tmp:
            df.set_axis([header(i) for i in infos], axis=1).to_csv(tmp, index=False,
                                                                  encoding="utf-8-sig")
        written.append(dest)
    dest = folder / workbook
    with atomic_path(dest) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xl:
            for name, (df, infos) in formatted.items():
                sheet = name[:31]
                df.set_axis([header(i) for i in infos], axis=1).to_excel(
                    xl, sheet_name=sheet, index=False)
                _style_sheet(xl.sheets[sheet], infos)
            dictionary = data_dictionary({n: infos for n, (_, infos) in formatted.items()})
            dictionary.to_excel(xl, sheet_name="数据字典 Dictionary", index=False)
            _style_sheet(xl.sheets["数据字典 Dictionary"], None)
            meta = pd.DataFrame([("工具 toolkit", f"urbanunits {__version__}"),
                                 ("数据来源 attribution", ATTRIBUTION), *about],
                                columns=["项目 item", "内容 value"])
            meta.to_excel(xl, sheet_name="说明 About", index=False)
            _style_sheet(xl.sheets["说明 About"], None)
        written.append(dest)
    return written


_NUMBER_FORMATS = {"metres": "#,##0", "m2": "#,##0", "count": "#,##0", "year": "0",
                   "ha": "#,##0.00", "share": "0.0", "minutes": "0.0", "ratio": "0.00",
                   "yuan": "#,##0", "points": "0.0", "years": "0.0", "per_1000": "0.0",
                   "wan_m2": "#,##0.00", "wan_yuan": "#,##0.0"}


def _style_sheet(ws: Any, infos: Sequence[Any] | None) -> None:
    """Column widths from the content, frozen bilingual header, filters, number formats."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    ws.freeze_panes = "A2"
    if ws.max_row > 1:
        ws.auto_filter.ref = ws.dimensions
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for j, column in enumerate(ws.iter_cols(min_row=1, max_row=ws.max_row), start=1):
        # CJK characters are about twice as wide as Latin ones in spreadsheet fonts; the width
        # is judged on the first 200 rows, the number format set on every row.
        width = max((sum(2 if ord(c) > 0x2E80 else 1 for c in str(c_.value or ""))
                     for c_ in column[:200]), default=8)
        ws.column_dimensions[get_column_letter(j)].width = min(max(8, width + 2), 60)
        if infos is not None and j <= len(infos):
            fmt = _NUMBER_FORMATS.get(infos[j - 1].kind)
            if fmt:
                for c_ in column[1:]:
                    c_.number_format = fmt
    ws.row_dimensions[1].height = 30


def _write_one(path: Path, name: str, df: gpd.GeoDataFrame | pd.DataFrame) -> None:
    df = df.copy()
    for col in df.columns:
        # lists and pd.NA live in object columns only (numbers and strings need no look)
        if col == getattr(df, "_geometry_column_name", None) or df[col].dtype != object:
            continue
        if df[col].map(lambda v: isinstance(v, list | tuple | set | dict)).any():
            df[col] = df[col].map(
                lambda v: ";".join(map(str, v)) if isinstance(v, list | tuple | set) else v)
        if df[col].dtype == object and df[col].map(lambda v: v is pd.NA).any():
            # GDAL would store pd.NA in a text column as the text "<NA>", not as NULL
            df[col] = df[col].map(lambda v: None if v is pd.NA else v)
    if isinstance(df, gpd.GeoDataFrame):
        # Polygons mixed with MultiPolygons would be declared "GEOMETRY", which QGIS shows as an
        # unknown type; one multi type is what GIS staff expect. An empty layer has no type to
        # infer, so the known type of the run's layers is declared.
        types = set(df.geometry.geom_type.dropna())
        mixed = any({t, f"Multi{t}"} <= types for t in ("Point", "LineString", "Polygon"))
        kw: dict[str, object] = {}
        if not types and name in KNOWN_GEOMETRY:
            kw["geometry_type"] = KNOWN_GEOMETRY[name]
        pyogrio.write_dataframe(df, path, layer=name, driver="GPKG",
                                layer_options={"OVERWRITE": "YES"}, promote_to_multi=mixed,
                                **kw)
    else:
        pyogrio.write_dataframe(df, path, layer=name, driver="GPKG",
                                layer_options={"OVERWRITE": "YES"})


def list_layers(gpkg: str | Path) -> list[str]:
    """Names of the layers (spatial and attribute tables) in a GeoPackage."""
    return [str(r[0]) for r in pyogrio.list_layers(gpkg)]


def read_layer(gpkg: str | Path, layer: str) -> gpd.GeoDataFrame:
    """Read one layer, with a clear error if the file or layer is missing.

    Parameters
    ----------
    gpkg
        The run's GeoPackage.
    layer
        Layer name, e.g. ``"update_units"``; a GeoPackage of an earlier release holding the
        layer under its former name (:data:`urbanunits.catalog.LAYER_ALIASES`) is read too,
        with a warning.

    Returns
    -------
    geopandas.GeoDataFrame
        The layer in its stored CRS.
    """
    gpkg = Path(gpkg)
    if not gpkg.is_file():
        raise InputFileError(gpkg, "GeoPackage not found", "run the earlier stage first "
                             "(e.g. `make units`)")
    names = list_layers(gpkg)
    former = [old for old, new in LAYER_ALIASES.items() if new == layer and old in names]
    if layer not in names and former:
        canonical_name(former[0])  # warns once that the file uses the former name
        layer = former[0]
    if layer not in names:
        raise InputFileError(gpkg, f"has no layer {layer!r} (layers: {', '.join(names)})",
                             "run the stage that makes it first")
    return gpd.read_file(gpkg, layer=layer, engine="pyogrio")


# --- QGIS styles for the run's layers ---------------------------------------------------------

def _kind(gdf: gpd.GeoDataFrame, name: str = "") -> str:
    types = set(gdf.geometry.geom_type.dropna()) or {KNOWN_GEOMETRY.get(name, "Polygon")}
    if types and types <= {"Point", "MultiPoint"}:
        return "marker"
    if types and types <= {"LineString", "MultiLineString"}:
        return "line"
    return "fill"


def layer_styles(layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame]) -> dict[str, str]:
    """QGIS QML styles matching the report maps, for the spatial layers among ``layers``.

    Parameters
    ----------
    layers
        Layer name → data, as written to the run's GeoPackage.

    Returns
    -------
    dict
        Layer name → QML document (only spatial layers get a style).
    """
    font = cjk_font_family()
    styles: dict[str, str] = {}
    for name, df in layers.items():
        if not isinstance(df, gpd.GeoDataFrame):
            continue
        kind = _kind(df, name)
        cols = set(df.columns)
        spec = CATALOG.get(name)
        style = spec.style if spec is not None and spec.style is not None else DEFAULT_STYLE
        if not style.applies_to(cols):
            style = DEFAULT_STYLE
        kw: dict[str, Any] = {"alpha": style.alpha, "label_field": style.label_field(cols),
                              "font": font}
        if style.breaks:
            qml = _qml.graduated(kind, str(style.column), style.breaks, **kw)
        elif style.classes:
            qml = _qml.categorized(kind, str(style.column), style.classes, **kw)
        else:
            qml = _qml.single(kind, style.fill, outline=style.edge, width_mm=style.width_mm,
                              **kw)
        styles[name] = qml
    return styles
