"""Writing a file all at once, and fingerprinting input files: helpers every module may use.

:func:`atomic_path` is how every output appears (GeoPackage, tables, maps, caches, downloads):
written beside its destination and renamed over it only when complete. It lives here, not in the
GeoPackage writer, so that readers, maps and downloads use it without importing one another.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyogrio.errors

from urbanunits._outputs import output_error
from urbanunits.errors import OutputError, UserError

__all__ = ["atomic_path", "file_sha256"]


@contextlib.contextmanager
def atomic_path(dest: str | Path, *, copy_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it over ``dest`` on success.

    A write that fails for a reason the user can fix (disk full, read-only folder, a file in
    the way or in use) is raised as a one-line :class:`~urbanunits.errors.OutputError` naming
    ``dest``; ``dest`` is left as it was either way.

    Parameters
    ----------
    dest
        Final file path.
    copy_existing
        Start from a copy of ``dest`` (to add layers to an existing GeoPackage).

    Yields
    ------
    pathlib.Path
        The temporary file to write.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part" + dest.suffix,
                                    dir=dest.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(dest, exc) from exc
    tmp = Path(name)
    tmp.unlink()
    try:
        try:
            if copy_existing and dest.exists():
                shutil.copy2(dest, tmp)
            yield tmp
        except UserError:
            raise
        except (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            # GDAL reports a full disk as e.g. "table ... already exists" (no errno): the
            # free space decides in output_error.
            raise output_error(dest, exc) from exc
        try:
            tmp.replace(dest)
        except PermissionError as exc:
            raise OutputError(dest, "cannot be replaced (is it open in QGIS, Excel or "
                              "another program?)", "close it and run again") from exc
        except OSError as exc:
            raise output_error(dest, exc) from exc
    finally:
        for leftover in (tmp, Path(str(tmp) + "-journal"), Path(str(tmp) + "-wal"),
                         Path(str(tmp) + "-shm")):
            if leftover.exists():
                leftover.unlink()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
