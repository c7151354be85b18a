"""`urbanunits publish` against a real PostgreSQL + PostGIS server, and the FileGDB export.

The server is Debian's PostgreSQL with PostGIS, started by :mod:`tests.pgserver` on a free port
of 127.0.0.1 and deleted afterwards. Locally the PostGIS tests skip when it is not installed; in
CI (env CI set) they fail, since .ci/run installs it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

from urbanunits import cli
from urbanunits.errors import UserError
from urbanunits.publish import PublishError, export_filegdb, publish_postgis, read_run

from .pgserver import PgServer, find_postgres, running_server
from .runfixture import run_layers, write_run

SRC = Path(__file__).resolve().parents[1] / "src"


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostGIS tests: {why} (.ci/run installs it)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    bindir, why = find_postgres()
    if bindir is None:
        _missing(why)
    assert bindir is not None
    with running_server(bindir) as server:
        yield server


def _engine(pg: PgServer) -> object:
    import sqlalchemy as sa

    # a reader blocked by a publish's locks fails after 10 s instead of hanging the test
    return sa.create_engine(pg.url().replace("postgresql://", "postgresql+psycopg2://"),
                            poolclass=sa.pool.NullPool,
                            connect_args={"options": "-c lock_timeout=10000"})


def _sql(pg: PgServer, query: str, **params: object) -> list[tuple[object, ...]]:
    import sqlalchemy as sa

    with _engine(pg).connect() as conn:  # type: ignore[attr-defined]
        return [tuple(r) for r in conn.execute(sa.text(query), params)]


def _read_table(pg: PgServer, schema: str, table: str) -> pd.DataFrame:
    import sqlalchemy as sa

    eng = _engine(pg)
    geom = _sql(pg, "SELECT f_geometry_column FROM geometry_columns WHERE f_table_schema = :s "
                "AND f_table_name = :t", s=schema, t=table)
    with eng.connect() as conn:  # type: ignore[attr-defined]
        if geom:
            return gpd.read_postgis(sa.text(f'SELECT * FROM "{schema}"."{table}"'), conn,
                                    geom_col=str(geom[0][0]))
        return pd.read_sql(sa.text(f'SELECT * FROM "{schema}"."{table}"'), conn)


def _assert_same_rows(original: pd.DataFrame, published: pd.DataFrame, name: str) -> None:
    assert len(published) == len(original), name
    cols = [c for c in original.columns if c != "geometry"]
    a = pd.DataFrame(original[cols]).reset_index(drop=True)
    if "fid" in published.columns:  # generated key: 1..n in the run's row order
        assert sorted(published["fid"]) == list(range(1, len(original) + 1))
        aligned = published.sort_values("fid").reset_index(drop=True)
    else:  # the id column is the key; the server may return rows in any order
        key = cols[0]
        aligned = published.set_index(key).loc[a[key]].reset_index()
    b = pd.DataFrame(aligned[cols])
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, obj=name)
    if isinstance(original, gpd.GeoDataFrame):
        assert isinstance(published, gpd.GeoDataFrame)
        if len(original):  # an empty read has no geometry to carry the SRID (checked apart)
            assert published.crs is not None
            assert published.crs.to_epsg() == original.crs.to_epsg()
        pub = aligned.geometry.to_numpy()
        assert shapely.equals(original.geometry.to_numpy(), pub).all(), name


def test_publish_round_trip_styles_keys_indexes(pg: PgServer, tmp_path: Path) -> None:
    gpkg = write_run(tmp_path / "run.gpkg")
    res = publish_postgis(gpkg, pg.url(schema="roundtrip"), run_name="ignored")
    original = run_layers()
    assert res.schema == "roundtrip"
    assert set(res.tables) == {*original, "run_metadata"}
    for name, df in original.items():
        _assert_same_rows(df, _read_table(pg, "roundtrip", name), name)
    meta = _read_table(pg, "roundtrip", "run_metadata")
    assert dict(zip(meta["key"], meta["value"], strict=True))["toolkit"] == "urbanunits"
    # every geometry column: the run's EPSG code and a GiST index; every table: a primary key
    geoms = dict(_sql(pg, "SELECT f_table_name, srid FROM geometry_columns WHERE "
                      "f_table_schema = 'roundtrip'"))
    spatial = {n for n, df in original.items() if isinstance(df, gpd.GeoDataFrame)}
    assert geoms == dict.fromkeys(spatial, 32651)
    assert _sql(pg, "SELECT type FROM geometry_columns WHERE f_table_schema = 'roundtrip' AND "
                "f_table_name = 'package_links'") == [("MULTILINESTRING",)]  # empty, declared
    gist = {r[0] for r in _sql(pg, "SELECT tablename FROM pg_indexes WHERE schemaname = "
                               "'roundtrip' AND indexdef ILIKE '%USING gist%'")}
    assert gist == spatial
    pks = dict(_sql(pg, "SELECT tc.table_name, kcu.column_name FROM "
                    "information_schema.table_constraints tc JOIN "
                    "information_schema.key_column_usage kcu USING (constraint_name, "
                    "table_schema) WHERE tc.table_schema = 'roundtrip' AND "
                    "tc.constraint_type = 'PRIMARY KEY'"))
    assert pks["update_units"] == "unit_id" and pks["facilities"] == "facility_id"
    assert pks["service_gaps"] == "fid" and pks["run_metadata"] == "key"
    assert set(pks) == set(res.tables)
    # QGIS default styles: the GeoPackage's QML, one per spatial layer, for this schema
    styles = _sql(pg, "SELECT f_table_name, f_geometry_column, useasdefault, "
                  "styleqml::text FROM public.layer_styles WHERE f_table_schema = 'roundtrip' "
                  "AND f_table_catalog = current_database()")
    gpkg_styles = read_run(gpkg).styles.set_index("f_table_name")["styleQML"]
    assert {r[0] for r in styles} == spatial == set(gpkg_styles.index)
    for table, geom_col, default, qml in styles:
        assert geom_col == "geom" and default is True
        assert "renderer-v2" in str(qml)
        # PostgreSQL's xml type drops the DOCTYPE; the renderer is kept verbatim
        renderer = gpkg_styles[table].split("<renderer-v2", 1)[1].split("</renderer-v2>")[0]
        assert renderer in str(qml)


def test_second_publish_replaces_first(pg: PgServer, tmp_path: Path) -> None:
    url = pg.url(schema="replace")
    publish_postgis(write_run(tmp_path / "a.gpkg", 5), url, run_name="x")
    assert _sql(pg, "SELECT count(*) FROM replace.update_units") == [(5,)]
    publish_postgis(write_run(tmp_path / "b.gpkg", 2), url, run_name="x")
    assert _sql(pg, "SELECT count(*) FROM replace.update_units") == [(2,)]
    assert _sql(pg, "SELECT value FROM replace.run_metadata WHERE key = 'n_units'") == [("2",)]
    n_styles = _sql(pg, "SELECT count(*) FROM public.layer_styles WHERE "
                    "f_table_schema = 'replace'")[0][0]
    assert n_styles == 7  # replaced, not appended
    assert _sql(pg, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'replace%'") == [
        ("replace",)]


def test_publish_killed_midway_leaves_previous_run(pg: PgServer, tmp_path: Path) -> None:
    url = pg.url(schema="killed")
    publish_postgis(write_run(tmp_path / "old.gpkg", 4), url, run_name="x")
    before = _read_table(pg, "killed", "update_units")
    new = write_run(tmp_path / "new.gpkg", 2)
    # A real SIGKILL of the publishing process after its second table is written.
    script = textwrap.dedent("""
        import os, signal, sys
        import geopandas as gpd
        real = gpd.GeoDataFrame.to_postgis
        calls = []
        def dying(self, *args, **kwargs):
            real(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        gpd.GeoDataFrame.to_postgis = dying
        from urbanunits.publish import publish_postgis
        publish_postgis(sys.argv[1], sys.argv[2], run_name="x")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script, str(new), url], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    after = _read_table(pg, "killed", "update_units")
    assert len(after) == 4
    pd.testing.assert_frame_equal(pd.DataFrame(before.drop(columns="geom")),
                                  pd.DataFrame(after.drop(columns="geom")))
    assert _sql(pg, "SELECT value FROM killed.run_metadata WHERE key = 'n_units'") == [("4",)]
    assert _sql(pg, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'killed%'") == [
        ("killed",)]
    # and the next publish goes through
    publish_postgis(new, url, run_name="x")
    assert _sql(pg, "SELECT count(*) FROM killed.update_units") == [(2,)]


def test_readers_see_the_old_run_until_the_commit(pg: PgServer, tmp_path: Path) -> None:
    url = pg.url(schema="readers")
    publish_postgis(write_run(tmp_path / "old.gpkg", 4), url, run_name="x")
    new = write_run(tmp_path / "new.gpkg", 2)
    marker = tmp_path / "halfway"
    # The publisher pauses after its second table until the test has looked.
    script = textwrap.dedent("""
        import sys, time, pathlib
        import geopandas as gpd
        real = gpd.GeoDataFrame.to_postgis
        calls = []
        marker, go = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[3] + ".go")
        def pausing(self, *args, **kwargs):
            real(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                marker.touch()
                while not go.exists():
                    time.sleep(0.05)
        gpd.GeoDataFrame.to_postgis = pausing
        from urbanunits.publish import publish_postgis
        publish_postgis(sys.argv[1], sys.argv[2], run_name="x")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC),
                                                        os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "publisher.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", script, str(new), url, str(marker)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(1200):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), log.read_text()
        # halfway through: the whole old run, and no trace of the new one
        assert _sql(pg, "SELECT count(*) FROM readers.update_units") == [(4,)]
        assert _sql(pg, "SELECT value FROM readers.run_metadata WHERE key = 'n_units'") == [
            ("4",)]
        assert _sql(pg, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'readers%'") == [
            ("readers",)]
    finally:
        Path(str(marker) + ".go").touch()
        proc.wait(timeout=120)
    assert proc.returncode == 0, log.read_text()
    assert _sql(pg, "SELECT count(*) FROM readers.update_units") == [(2,)]


def test_wrong_password_is_one_line_without_secret(pg: PgServer, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    gpkg = write_run(tmp_path / "run.gpkg")
    secret = "Wr0ng-Passw0rd"
    capsys.readouterr()  # drop what writing the run printed (e.g. via an earlier CLI's handler)
    status = cli.main(["publish", "--config", str(_demo_toml(tmp_path, gpkg)),
                       "--to", pg.url(password=secret)])
    out, err = capsys.readouterr()
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "password authentication failed" in err
    assert secret not in out + err


def test_credentials_from_environment_not_logged(pg: PgServer, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PGPASSWORD", pg.password)
    caplog.set_level(logging.DEBUG)
    res = publish_postgis(write_run(tmp_path / "run.gpkg"), pg.url(password="", schema="envpw"),
                          run_name="x")
    assert res.tables["update_units"] == 3
    assert pg.password not in caplog.text + res.report()
    assert "127.0.0.1" in res.report()
    # ~/.pgpass (here through PGPASSFILE, which libpq reads instead), with host and port from
    # PGHOST/PGPORT: the URL names only the database
    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{pg.host}:{pg.port}:{pg.database}:{pg.user}:{pg.password}\n")
    pgpass.chmod(0o600)
    for var, value in (("PGPASSFILE", str(pgpass)), ("PGHOST", pg.host),
                       ("PGPORT", str(pg.port)), ("PGUSER", pg.user)):
        monkeypatch.setenv(var, value)
    res = publish_postgis(tmp_path / "run.gpkg", f"postgresql:///{pg.database}?schema=pgpass",
                          run_name="x")
    assert res.tables["update_units"] == 3
    with pytest.raises(UserError, match="not a database URL") as err:
        publish_postgis(tmp_path / "run.gpkg", "postgresql://u:Secret9@h:port/db", run_name="x")
    assert "Secret9" not in str(err.value) and err.value.__cause__ is None


def test_refuses_to_replace_a_foreign_schema(pg: PgServer, tmp_path: Path) -> None:
    _sql_exec(pg, "CREATE SCHEMA planning; CREATE TABLE planning.parcels (id int)")
    with pytest.raises(PublishError, match="not an urbanunits run"):
        publish_postgis(write_run(tmp_path / "run.gpkg"), pg.url(schema="planning"),
                        run_name="x")
    assert _sql(pg, "SELECT to_regclass('planning.parcels')::text") == [("planning.parcels",)]
    with pytest.raises(UserError, match="system/shared schema"):
        publish_postgis(tmp_path / "run.gpkg", pg.url(schema="public"), run_name="x")


def test_views_of_others_block_the_swap_instead_of_vanishing(pg: PgServer,
                                                             tmp_path: Path) -> None:
    url = pg.url(schema="viewed")
    publish_postgis(write_run(tmp_path / "a.gpkg", 4), url, run_name="x")
    _sql_exec(pg, "CREATE SCHEMA geoserver; CREATE VIEW geoserver.big_units AS "
              "SELECT unit_id, geom FROM viewed.update_units WHERE area_m2 > 10000")
    with pytest.raises(PublishError, match="depend") as err:
        publish_postgis(write_run(tmp_path / "b.gpkg", 2), url, run_name="x")
    assert "geoserver.big_units" in str(err.value) and "\n" not in err.value.one_line()
    assert _sql(pg, "SELECT count(*) FROM viewed.update_units") == [(4,)]
    assert _sql(pg, "SELECT count(*) FROM geoserver.big_units") == [(3,)]
    _sql_exec(pg, "DROP SCHEMA geoserver CASCADE")
    publish_postgis(tmp_path / "b.gpkg", url, run_name="x")
    assert _sql(pg, "SELECT count(*) FROM viewed.update_units") == [(2,)]


def _sql_exec(pg: PgServer, statements: str) -> None:
    import sqlalchemy as sa

    with _engine(pg).begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text(statements))


def _demo_toml(tmp_path: Path, gpkg: Path) -> Path:
    """A copy of the demo config whose run GeoPackage is a copy of ``gpkg``.

    A run's files live in ``<output.dir>/<name>/``; the GeoPackage is copied there.
    """
    import shutil

    root = Path(__file__).resolve().parents[1]
    text = (root / "configs" / "lujiazui.toml").read_text(encoding="utf-8")
    dest = tmp_path / "pub.toml"
    out = tmp_path / "out"
    text = text.replace('dir = "data/processed"', f'dir = "{out}"')
    # relative input paths must still resolve against the project
    dest.write_text(text.replace('"data/', f'"{root}/data/'), encoding="utf-8")
    (out / "lujiazui").mkdir(parents=True, exist_ok=True)
    shutil.copy(gpkg, out / "lujiazui" / "lujiazui.gpkg")
    return dest


# --- File Geodatabase (no server needed) ------------------------------------------------------

def test_filegdb_round_trip_with_aliases(tmp_path: Path) -> None:
    gpkg = write_run(tmp_path / "run.gpkg")
    dest = tmp_path / "out" / "run.gdb"
    counts = export_filegdb(gpkg, dest)
    original = run_layers()
    names = {str(r[0]) for r in pyogrio.list_layers(dest)}
    assert names == {*original, "run_metadata"}
    assert counts["update_units"] == 3
    for name, df in original.items():
        back = pyogrio.read_dataframe(dest, layer=name,
                                      read_geometry=isinstance(df, gpd.GeoDataFrame))
        cols = [c for c in df.columns if c != "geometry"]
        a = pd.DataFrame(df[cols]).reset_index(drop=True)
        b = pd.DataFrame(back[cols]).reset_index(drop=True)
        bools = [c for c in cols if a[c].dtype == bool]
        a[bools] = a[bools].astype(int)  # FileGDB has no boolean type
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=name)
        if isinstance(df, gpd.GeoDataFrame):
            assert back.crs.to_epsg() == 32651
            assert shapely.equals(df.geometry.to_numpy(), back.geometry.to_numpy()).all()
    _, table = pyogrio.read_arrow(dest, layer="communities")
    aliases = {f.name: (f.metadata or {}).get(b"GDAL:OGR:alternative_name", b"").decode()
               for f in table.schema}
    assert aliases["households"] == "户数 Households"
    assert aliases["floor_area_m2"].startswith("建筑面积")
    # replaced whole on a second export, no leftovers beside it
    write_run(tmp_path / "run2.gpkg", 1)
    export_filegdb(tmp_path / "run2.gpkg", dest)
    assert pyogrio.read_info(dest, layer="update_units")["features"] == 1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["run.gdb"]
