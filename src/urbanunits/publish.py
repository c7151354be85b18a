"""Publish a finished run to PostGIS, or export it as an Esri File Geodatabase.

Both read the run's GeoPackage (every layer, the ``layer_styles`` and ``run_metadata`` tables)
rather than recomputing anything, so what GIS staff get on the server or in ArcGIS Pro is exactly
what the run wrote.

PostGIS publishing is atomic: the whole run is written into a temporary schema and swapped in for
the previous one inside **one** transaction. Readers (GeoServer, QGIS Server, a colleague's QGIS)
see the old run until the commit and the complete new run after it; a publish that is killed or
fails midway rolls back and leaves the previous run as it was.

Credentials come from the URL, libpq's ``PG*`` environment variables or ``~/.pgpass`` (libpq
reads both), never from the config file; logs and errors name user, host, port and database,
never the password.
"""

from __future__ import annotations

import logging
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from urbanunits._fields import LAYER_LABELS, field_label
from urbanunits.catalog import KNOWN_GEOMETRY
from urbanunits.errors import DataError, UserError
from urbanunits.export import METADATA_TABLE
from urbanunits.runfile import RunData, read_run
from urbanunits.webmap import write_webmap

if TYPE_CHECKING:
    from urbanunits.config import Config

__all__ = [
    "PublishError",
    "PublishResult",
    "RunData",
    "Target",
    "export_filegdb",
    "html_path",
    "parse_target",
    "publish_postgis",
    "read_run",
    "run_export",
]

logger = logging.getLogger(__name__)

GEOM_COLUMN = "geom"  # the PostGIS convention, and what GDAL names it in GeoPackages
_MAX_IDENT = 63  # PostgreSQL truncates identifiers beyond 63 bytes
# A layer's primary key: the first of these it has with unique, non-null values; otherwise a
# generated ``fid`` (QGIS needs a key to identify features of a PostGIS layer).
_ID_COLUMNS = ("unit_id", "block_id", "community_id", "package_id", "facility_id", "key")
_RESERVED_SCHEMAS = {"public", "information_schema", "topology", "tiger"}


class PublishError(UserError, ConnectionError):
    """The database refused the connection or the publish (wrong password, no PostGIS...)."""


def _epsg(gdf: gpd.GeoDataFrame, where: str) -> int:
    code = gdf.crs.to_epsg() if gdf.crs is not None else None
    if code is None:
        raise DataError(where, f"CRS {gdf.crs!r} has no EPSG code, which PostGIS needs as SRID",
                        "set study_area.crs to an EPSG code and run again")
    return int(code)


# --- PostGIS ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Where to publish: a SQLAlchemy URL and the schema to (re)place.

    Attributes
    ----------
    url
        ``sqlalchemy.engine.URL`` for psycopg2 (password only if the user put it in the URL).
    schema
        The run's schema.
    display
        ``user@host:port/database`` for logs and errors, without the password.
    """

    url: Any
    schema: str
    display: str


def parse_target(url: str, *, default_schema: str) -> Target:
    """Parse ``postgresql://[user[:password]@][host][:port]/database[?schema=NAME]``.

    Missing parts are left to libpq, which takes them from ``PGHOST``, ``PGPORT``, ``PGUSER``,
    ``PGPASSWORD``, ``PGDATABASE`` and ``~/.pgpass``. Other query parameters (``sslmode``...)
    are passed to libpq.

    Parameters
    ----------
    url
        The ``--to`` argument.
    default_schema
        Schema when the URL has no ``?schema=`` (the run's name).

    Returns
    -------
    Target
        URL, schema and a password-free display string.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # `from None`: the parser's message may quote the URL, password included
        raise UserError("--to", "not a database URL (check the port number)",
                        "use postgresql://user@host:port/dbname[?schema=NAME]") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise UserError("--to", f"{parsed.get_backend_name()!r} is not a PostgreSQL URL",
                        "use postgresql://user@host:port/dbname[?schema=NAME]")
    query = dict(parsed.query)
    schema = str(query.pop("schema", "") or default_schema)
    parsed = parsed.set(drivername="postgresql+psycopg2", query=query)
    display = (f"{parsed.username + '@' if parsed.username else ''}{parsed.host or '(PGHOST)'}"
               f"{':' + str(parsed.port) if parsed.port else ''}/{parsed.database or ''}")
    _check_schema(schema)
    return Target(url=parsed, schema=schema, display=display)


def _check_schema(schema: str) -> None:
    if (not schema or len(schema.encode()) > _MAX_IDENT - 16 or "\x00" in schema
            or schema.lower() in _RESERVED_SCHEMAS or schema.lower().startswith("pg_")):
        raise UserError("--to ?schema=", f"{schema!r} cannot hold a run (empty, too long, or a "
                        "system/shared schema)", "name a schema of your own, e.g. "
                        "?schema=urbanunits_lujiazui")


def _q(ident: str) -> str:
    """Quote an SQL identifier."""
    return '"' + ident.replace('"', '""') + '"'


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    # libpq prefixes "connection to server at ..., port ... failed:"; the reason is what helps
    text = re.sub(r'connection to server at "[^"]*" \([^)]*\), port \d+ failed:\s*', "", text)
    text = re.sub(r"connection to server at [^:]* failed:\s*", "", text)
    return " ".join(text.replace("FATAL:", "").split()) or type(exc).__name__


@dataclass(frozen=True)
class PublishResult:
    """What a publish wrote.

    Attributes
    ----------
    target
        ``user@host:port/database`` (no password).
    schema
        The run's schema.
    tables
        Table name → row count.
    styles
        Number of QGIS styles stored in ``public.layer_styles``.
    """

    target: str
    schema: str
    tables: dict[str, int]
    styles: int

    def report(self) -> str:
        """Lines for the command line."""
        lines = [f"publish: {len(self.tables)} tables in schema {self.schema} of {self.target}"]
        lines += [f"  {name}: {n} rows" for name, n in self.tables.items()]
        lines.append(f"  layer_styles: {self.styles} QGIS default styles" if self.styles else
                     "  layer_styles: not written (no right to create public.layer_styles)")
        return "\n".join(lines)


def publish_postgis(gpkg: str | Path, url: str, *, run_name: str) -> PublishResult:
    """Publish every layer of a run, its QGIS styles and metadata, replacing the previous run.

    Parameters
    ----------
    gpkg
        The run's GeoPackage.
    url
        ``postgresql://…[?schema=NAME]``; see :func:`parse_target`.
    run_name
        The run's name: the schema when the URL names none.

    Returns
    -------
    PublishResult
        Tables and row counts written.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    target = parse_target(url, default_schema=run_name)
    run = read_run(gpkg)
    engine = create_engine(target.url, poolclass=NullPool,
                           connect_args={"connect_timeout": 15,
                                         "application_name": "urbanunits publish"})
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise PublishError(target.display, f"cannot connect: {_first_line(exc)}",
                           "check host, port, user and password (in the URL, PGPASSWORD or "
                           "~/.pgpass)") from None
    tmp = f"{target.schema}__publishing_{secrets.token_hex(4)}"
    try:
        with conn, conn.begin():
            _ensure_postgis(conn, target)
            _check_replaceable(conn, target)
            conn.execute(text(f"CREATE SCHEMA {_q(tmp)}"))
            counts = {name: _write_table(conn, tmp, name, df) for name, df in run.layers.items()}
            meta = run.metadata[["key", "value"]].drop_duplicates("key", keep="last")
            counts[METADATA_TABLE] = _write_table(conn, tmp, METADATA_TABLE, meta)
            # The swap: readers blocked on the old tables see the new ones once this commits.
            _drop_previous(conn, target)
            conn.execute(text(f"ALTER SCHEMA {_q(tmp)} RENAME TO {_q(target.schema)}"))
            n_styles = _write_styles(conn, target.schema, run)
    except DBAPIError as exc:
        raise PublishError(target.display, f"publish to schema {target.schema} failed and was "
                           f"rolled back: {_first_line(exc)}", "the previous run is unchanged; "
                           "fix the cause (rights, disk space) and publish again") from None
    finally:
        engine.dispose()
    logger.info("published %d tables to schema %s of %s", len(counts), target.schema,
                target.display)
    return PublishResult(target=target.display, schema=target.schema, tables=counts,
                         styles=n_styles)


def _ensure_postgis(conn: Any, target: Target) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first():
        return
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    except DBAPIError as exc:
        raise PublishError(target.display, f"PostGIS is not enabled in this database "
                           f"({_first_line(exc)})", "ask its administrator to run "
                           "CREATE EXTENSION postgis; in it") from None


def _check_replaceable(conn: Any, target: Target) -> None:
    """Refuse to drop a schema that holds anything but an earlier urbanunits run."""
    from sqlalchemy import text

    s = target.schema
    if not conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": s}).first():
        return
    n_objects = conn.execute(text("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                                  "n.oid = c.relnamespace WHERE n.nspname = :s"),
                             {"s": s}).scalar_one()
    ours = conn.execute(text("SELECT to_regclass(:t)"),
                        {"t": f"{_q(s)}.{_q(METADATA_TABLE)}"}).scalar_one() is not None
    if ours:
        ours = conn.execute(text(f"SELECT count(*) FROM {_q(s)}.{_q(METADATA_TABLE)} WHERE "
                                 "key = 'toolkit' AND value = 'urbanunits'")).scalar_one() > 0
    if n_objects and not ours:
        raise PublishError(f"{target.display} schema {s}", "exists and is not an urbanunits "
                           "run, so publishing would delete other data",
                           "choose another schema with ?schema=NAME in the URL")


def _drop_previous(conn: Any, target: Target) -> None:
    """Drop the previous run's tables and schema, but nothing that others built on them.

    No CASCADE: a colleague's view (a GeoServer SQL view, a QGIS project's query) on the run's
    tables makes the publish fail and roll back, rather than silently disappear.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    s = target.schema
    tables = list(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                               {"s": s}).scalars())
    try:
        with conn.begin_nested():
            if tables:
                conn.execute(text("DROP TABLE " + ", ".join(f"{_q(s)}.{_q(t)}"
                                                            for t in tables)))
            conn.execute(text(f"DROP SCHEMA IF EXISTS {_q(s)}"))
    except DBAPIError as exc:
        detail = str(getattr(exc, "orig", exc)).split("HINT:")[0]
        raise PublishError(f"{target.display} schema {s}", "other objects depend on the "
                           f"previous run, so it was kept and nothing published: "
                           f"{' '.join(detail.split())}", "drop or re-create those objects "
                           "(e.g. views) after publishing, or publish to another ?schema=") \
            from None


def _primary_key(df: pd.DataFrame) -> str | None:
    for col in _ID_COLUMNS:
        if col in df.columns and df[col].notna().all() and df[col].is_unique:
            return col
    return None


def _write_table(conn: Any, schema: str, name: str, df: pd.DataFrame) -> int:
    from sqlalchemy import text

    key = _primary_key(df)
    if key is None:
        df = df.copy()
        df.insert(0, "fid", range(1, len(df) + 1))
        key = "fid"
    if isinstance(df, gpd.GeoDataFrame):
        gdf = df.rename_geometry(GEOM_COLUMN) if df.geometry.name != GEOM_COLUMN else df
        epsg = _epsg(gdf, name)
        gdf.to_postgis(name, conn, schema=schema, index=False, if_exists="fail")
        has_gist = conn.execute(text("SELECT 1 FROM pg_indexes WHERE schemaname = :s AND "
                                     "tablename = :t AND indexdef ILIKE '%USING gist%'"),
                                {"s": schema, "t": name}).first()
        if not has_gist:
            conn.execute(text(f"CREATE INDEX {_q(name[:40] + '_geom_idx')} ON "
                              f"{_q(schema)}.{_q(name)} USING GIST ({_q(GEOM_COLUMN)})"))
        srid = conn.execute(text("SELECT srid FROM geometry_columns WHERE f_table_schema = :s "
                                 "AND f_table_name = :t"), {"s": schema, "t": name}).scalar()
        if srid != epsg:  # an empty layer gives to_postgis no geometry to take the SRID from
            conn.execute(text(f"SELECT UpdateGeometrySRID(:s, :t, :g, {epsg})"),
                         {"s": schema, "t": name, "g": GEOM_COLUMN})
        if gdf.empty and name in KNOWN_GEOMETRY:  # nor a type: declare the run's own
            conn.execute(text(f"ALTER TABLE {_q(schema)}.{_q(name)} ALTER COLUMN "
                              f"{_q(GEOM_COLUMN)} TYPE geometry({KNOWN_GEOMETRY[name]}, {epsg})"))
    else:
        pd.DataFrame(df).to_sql(name, conn, schema=schema, index=False, if_exists="fail")
    conn.execute(text(f"ALTER TABLE {_q(schema)}.{_q(name)} ADD PRIMARY KEY ({_q(key)})"))
    label = LAYER_LABELS.get(name)
    if label:
        conn.execute(text(f"COMMENT ON TABLE {_q(schema)}.{_q(name)} IS "
                          f"'{label.replace(chr(39), chr(39) * 2)}'"))
    return len(df)


_STYLES_DDL = """CREATE TABLE IF NOT EXISTS public.layer_styles (
  id SERIAL PRIMARY KEY, f_table_catalog varchar, f_table_schema varchar,
  f_table_name varchar, f_geometry_column varchar, stylename text, styleqml xml,
  stylesld xml, useasdefault boolean, description text,
  owner varchar(63) DEFAULT CURRENT_USER, ui xml,
  update_time timestamp DEFAULT CURRENT_TIMESTAMP, type varchar)"""


def _write_styles(conn: Any, schema: str, run: RunData) -> int:
    """Store the run's QML in ``public.layer_styles``, where QGIS looks for PostGIS defaults."""
    from sqlalchemy import text

    exists = conn.execute(text("SELECT to_regclass('public.layer_styles')")).scalar_one()
    if exists is None:
        if not conn.execute(text("SELECT has_schema_privilege('public', 'CREATE')")).scalar_one():
            logger.warning("no right to create public.layer_styles: the published layers open "
                           "in QGIS without the run's styles (load them from the GeoPackage)")
            return 0
        conn.execute(text(_STYLES_DDL))
    elif not conn.execute(text("SELECT has_table_privilege('public.layer_styles', "
                               "'INSERT, DELETE')")).scalar_one():
        logger.warning("no right to write public.layer_styles: the published layers open in "
                       "QGIS without the run's styles (load them from the GeoPackage)")
        return 0
    cols = set(conn.execute(text("SELECT column_name FROM information_schema.columns WHERE "
                                 "table_schema = 'public' AND table_name = 'layer_styles'"))
               .scalars())
    conn.execute(text("DELETE FROM public.layer_styles WHERE f_table_catalog = "
                      "current_database() AND f_table_schema = :s"), {"s": schema})
    n = 0
    for row in run.styles.itertuples(index=False):
        name = str(row.f_table_name)
        layer = run.layers.get(name)
        if not isinstance(layer, gpd.GeoDataFrame):
            continue
        values = {"s": schema, "t": name, "g": GEOM_COLUMN, "qml": str(row.styleQML),
                  "n": f"urbanunits {name}", "d": "urbanunits report style",
                  "ty": _style_type(layer)}
        extra = ", type" if "type" in cols else ""
        conn.execute(text(
            "INSERT INTO public.layer_styles (f_table_catalog, f_table_schema, f_table_name, "
            "f_geometry_column, stylename, styleqml, useasdefault, description" + extra + ") "
            "VALUES (current_database(), :s, :t, :g, :n, XMLPARSE(DOCUMENT :qml), true, :d"
            + (", :ty" if extra else "") + ")"), values)
        n += 1
    return n


def _style_type(gdf: gpd.GeoDataFrame) -> str:
    types = set(gdf.geometry.geom_type.dropna())
    if types and types <= {"Point", "MultiPoint"}:
        return "Point"
    if types and types <= {"LineString", "MultiLineString"}:
        return "Line"
    return "Polygon"


# --- File Geodatabase -------------------------------------------------------------------------

def export_filegdb(gpkg: str | Path, dest: str | Path) -> dict[str, int]:
    """Write every layer of a run to an Esri File Geodatabase for ArcGIS Pro.

    Field names stay ASCII; each field gets a Chinese/English alias (shown by ArcGIS Pro) and
    each layer a Chinese/English alias. The folder is replaced only when complete.

    Parameters
    ----------
    gpkg
        The run's GeoPackage.
    dest
        The ``.gdb`` folder to write.

    Returns
    -------
    dict
        Layer name → rows written (``run_metadata`` included).
    """
    dest = Path(dest)
    if dest.suffix.lower() != ".gdb":
        raise UserError(dest, "a File Geodatabase folder must end in .gdb", "name it <x>.gdb")
    run = read_run(gpkg)
    counts: dict[str, int] = {}
    with _atomic_dir(dest) as tmp:
        for name, df in {**run.layers, METADATA_TABLE: run.metadata[["key", "value"]]}.items():
            _write_gdb_layer(tmp, name, df)
            counts[name] = len(df)
    logger.info("wrote %d layers to %s", len(counts), dest)
    return counts


@contextmanager
def _atomic_dir(dest: Path) -> Iterator[Path]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    # OpenFileGDB wants the folder name to end in .gdb
    tmp = dest.parent / f".{dest.stem}.part-{token}.gdb"
    old = dest.parent / f".{dest.stem}.old-{token}.gdb"
    try:
        yield tmp
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)


def _write_gdb_layer(path: Path, name: str, df: pd.DataFrame) -> None:
    import pyarrow as pa

    spatial = isinstance(df, gpd.GeoDataFrame)
    attrs = pd.DataFrame(df.drop(columns=[df.geometry.name]) if spatial else df)
    # Without ArcGIS Pro 3.2's 64-bit integers, FileGDB has 32-bit ones: counts fit; larger
    # identifiers (OSM ids) become text, which keeps them exact.
    for col in attrs.columns:
        if pd.api.types.is_integer_dtype(attrs[col]) and attrs[col].dtype.itemsize > 4:
            fits = attrs[col].dropna().abs().max() < 2**31 if attrs[col].notna().any() else True
            attrs[col] = attrs[col].astype("Int32" if fits else "string")
    table = pa.Table.from_pandas(attrs, preserve_index=False)
    # an all-empty column comes out as Arrow's null type, which GDAL cannot create a field for
    table = table.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_null(f.type)
                                  else f for f in table.schema]))
    # GDAL reads a field's alias from this Arrow field metadata key and FileGDB stores it.
    fields = [f.with_metadata({"GDAL:OGR:alternative_name": field_label(f.name)})
              if field_label(f.name) != f.name else f for f in table.schema]
    table = pa.Table.from_arrays(table.columns, schema=pa.schema(fields))
    kw: dict[str, Any] = {}
    if spatial:
        gdf = df
        wkb = pa.array(shapely.to_wkb(gdf.geometry.to_numpy()), type=pa.binary())
        table = table.append_column(pa.field("SHAPE", pa.binary(), metadata={
            "ARROW:extension:name": "geoarrow.wkb"}), wkb)
        types = sorted(set(gdf.geometry.geom_type.dropna()))
        kw = {"geometry_name": "SHAPE", "crs": gdf.crs.to_wkt() if gdf.crs else None,
              "geometry_type": types[0] if len(types) == 1 else _gdb_type(name, types)}
    options = {"LAYER_ALIAS": LAYER_LABELS.get(name, name)}
    pyogrio.write_arrow(table, path, layer=name, driver="OpenFileGDB",
                        layer_options=options, **kw)


def _gdb_type(name: str, types: list[str]) -> str:
    if not types:
        return KNOWN_GEOMETRY.get(name, "MultiPolygon")
    return "Multi" + types[0].removeprefix("Multi")



# --- command-line glue ------------------------------------------------------------------------

def html_path(cfg: Config) -> Path:
    """The run's HTML map, beside its GeoPackage: ``<output>/<name>.html``."""
    return cfg.html_path


def run_export(cfg: Config, fmt: str, *, output: str | Path | None = None) -> str:
    """``urbanunits export --format filegdb|html``: write the file, return the report lines.

    Parameters
    ----------
    cfg
        The run's config (its GeoPackage is read).
    fmt
        ``"filegdb"`` or ``"html"``.
    output
        Destination instead of ``<output>/<name>.gdb`` or ``<output>/<name>.html``.

    Returns
    -------
    str
        What was written, for the command line.
    """
    if fmt == "filegdb":
        dest = Path(output) if output else cfg.gpkg_path.with_suffix(".gdb")
        counts = export_filegdb(cfg.gpkg_path, dest)
        return "\n".join([f"export: File Geodatabase {dest} (open it in ArcGIS Pro)",
                          *(f"  {name}: {n} rows" for name, n in counts.items())])
    if fmt == "html":

        dest = write_webmap(cfg.gpkg_path, Path(output) if output else html_path(cfg),
                            title=cfg.name)
        return f"export: HTML map {dest} (open it in any web browser; no internet needed)"
    raise UserError("--format", f"unknown format {fmt!r}", "use filegdb or html")
