"""A throw-away PostgreSQL + PostGIS server for the publish tests (not a mock).

It runs Debian's ``postgresql`` binaries from a temporary folder on a free port of 127.0.0.1,
with password authentication, and is removed afterwards. PostgreSQL refuses to run as root, so
as root the server runs as the ``postgres`` system user (or ``nobody``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "find_postgres", "running_server"]

SUPERUSER_PASSWORD = "s3cret-pw-for-tests"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, *, password: str | None = None, schema: str | None = None) -> str:
        pw = self.password if password is None else password
        auth = f"{self.user}:{pw}@" if pw else f"{self.user}@"
        q = f"?schema={schema}" if schema else ""
        return f"postgresql://{auth}{self.host}:{self.port}/{self.database}{q}"


def find_postgres() -> tuple[Path | None, str]:
    """The newest PostgreSQL bin folder with PostGIS installed, or None and the reason."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0, reverse=True)
    if not versions:
        return None, ("PostgreSQL server not installed (apt-get install postgresql-15-postgis-3)")
    for initdb in versions:
        ver = initdb.parent.parent.name
        if Path(f"/usr/share/postgresql/{ver}/extension/postgis.control").is_file():
            return initdb.parent, ""
    return None, ("PostGIS not installed for PostgreSQL "
                  f"{versions[0].parent.parent.name} (apt-get install postgresql-15-postgis-3)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as(user: str | None, cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    full = ["runuser", "-u", user, "--", *cmd] if user else cmd
    return subprocess.run(full, check=True, capture_output=True, text=True, timeout=120, **kw)


@contextlib.contextmanager
def running_server(bindir: Path) -> Iterator[PgServer]:
    """Start a server, create a database with PostGIS, yield it, then stop and delete it."""
    user: str | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                user = name
                break
    base = Path(tempfile.mkdtemp(prefix="urbanunits-pg-"))
    if user:
        info = pwd.getpwnam(user)
        os.chown(base, info.pw_uid, info.pw_gid)
    data, pwfile, log = base / "data", base / "pw", base / "log"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    if user:
        os.chown(pwfile, pwd.getpwnam(user).pw_uid, -1)
    port = _free_port()
    started = False
    try:
        _run_as(user, [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                       "--locale=C", "--auth=scram-sha-256", f"--pwfile={pwfile}"])
        _run_as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                       "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c max_connections=20", "start"])
        started = True
        server = PgServer("127.0.0.1", port, "postgres", SUPERUSER_PASSWORD, "urbanunits_test")
        import psycopg2

        conn = psycopg2.connect(host=server.host, port=port, user="postgres",
                                password=SUPERUSER_PASSWORD, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE urbanunits_test")
        conn.close()
        conn = psycopg2.connect(host=server.host, port=port, user="postgres",
                                password=SUPERUSER_PASSWORD, dbname="urbanunits_test")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION postgis")
        conn.close()
        yield server
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"{exc.cmd} failed: {exc.stderr}\n{tail}") from exc
    finally:
        if started:
            with contextlib.suppress(subprocess.SubprocessError):
                _run_as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                               "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)
