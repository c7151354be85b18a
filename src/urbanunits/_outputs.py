"""A run's output folder: locked, staged in a temporary folder, swapped in whole.

Everything a run writes (GeoPackage, maps, tables) goes to ``<output.dir>/<name>/``. A run
writes into a staging folder beside it, ``.<name>.staging-*``, and only when every file is
complete renames it to ``.<name>.ready-*`` and swaps it with the run folder, so the outputs of
one run appear together or not at all. On Linux the swap is one atomic ``renameat2`` exchange;
elsewhere it is two renames, and a run stopped between them is completed at the next start
(a ``ready`` folder is finished output, an ``old`` folder is the previous run). Leftover
temporary folders of a killed run are removed at the next start.

One run per output at a time: ``.<name>.lock`` beside the run folder is locked with
``flock`` for the whole run and records the holder (pid, host, start time). The kernel
releases the lock when its process dies, so the lock of a killed run is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from urbanunits.errors import OutputError, RunLockedError

__all__ = ["Staging", "clean_leftovers", "lock_path", "output_error", "run_lock", "staged_run"]

logger = logging.getLogger(__name__)

# Below this much free space a GDAL write failure is reported as a full disk: GDAL turns ENOSPC
# into unrelated messages ("table ... already exists") and loses the errno.
LOW_DISK_BYTES = 64 * 2**20


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            try:
                return shutil.disk_usage(p).free
            except OSError:
                return None
    return None


def output_error(path: str | Path, exc: BaseException, *,
                 doing: str = "cannot be written") -> OutputError:
    """Turn an operating-system or GDAL write failure into a one-line :class:`OutputError`.

    Parameters
    ----------
    path
        The output file or folder to name in the message.
    exc
        The failure (``OSError`` or a pyogrio error).
    doing
        What failed, e.g. ``"cannot be written"``.

    Returns
    -------
    OutputError
        Says why (disk full, permission, file in the way, file in use) and what to do.
    """
    path = Path(path)
    no = getattr(exc, "errno", None)
    free = _free_bytes(path)
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    if no in (errno.ENOSPC, errno.EDQUOT) or (
            no is None and free is not None and free < LOW_DISK_BYTES):
        left = f" ({free / 2**20:.0f} MB free)" if free is not None else ""
        return OutputError(path, f"{doing}: the disk is full{left}",
                           "free some space or set output.dir to a folder on another disk")
    if no in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(path, f"{doing}: permission denied or read-only folder",
                           "make the folder writable or set output.dir to a folder you can "
                           "write to")
    if no == errno.ENOTDIR or isinstance(exc, FileExistsError | NotADirectoryError):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path)
        return OutputError(path, f"{doing}: {blocker} is a file, not a folder",
                           "move that file away or set output.dir to a folder")
    if no in (errno.EBUSY, errno.ETXTBSY):
        return OutputError(path, f"{doing}: it is in use by another program",
                           "close it (QGIS, Excel...) and run again")
    return OutputError(path, f"{doing} ({first})",
                       "check free space and the folder's permissions, or set output.dir to "
                       "another folder")


# --- lock ---------------------------------------------------------------------------------

# Lock files held by this process → (fd, depth): a pipeline function called inside another
# (or from the CLI that already holds the lock) must not lock against itself.
_HELD: dict[Path, list[int]] = {}


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        # Lock one byte far past the holder text so that other runs can still read it.
        os.lseek(fd, 1 << 30, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 1 << 30, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _read_holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace").strip()
    return " ".join(text.split())


def lock_path(run_dir: Path) -> Path:
    """The lock file of a run folder, ``.<name>.lock`` beside it."""
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run's lock; stop at once with :class:`RunLockedError` if another run holds it.

    Parameters
    ----------
    run_dir
        The run folder, ``<output.dir>/<name>``.
    """
    run_dir = Path(run_dir)
    path = lock_path(run_dir).absolute()
    if path in _HELD:
        _HELD[path][1] += 1
        try:
            yield
        finally:
            _HELD[path][1] -= 1
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise output_error(path.parent, exc, doing="cannot create the output folder or its "
                           "lock file") from exc
    try:
        if not _try_lock(fd):
            holder = _read_holder(fd) or "holder unknown"
            raise RunLockedError(run_dir, f"another run is writing these outputs ({holder})",
                                 f"wait for it to finish or stop it; the lock {path.name} is "
                                 "released when that process ends")
        stale = _read_holder(fd)
        if stale:
            # flock is released by the kernel when its process dies: text left in the file
            # means the previous holder never reached the end of its run.
            logger.warning("taking over the lock of a run that did not finish (%s); its "
                           "temporary files are removed and its outputs were never swapped in",
                           stale)
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n"
                 .encode())
    except BaseException:
        os.close(fd)
        raise
    _HELD[path] = [fd, 1]
    try:
        yield
    finally:
        del _HELD[path]
        try:
            os.ftruncate(fd, 0)  # an empty lock file says the last run finished
            _unlock(fd)
        finally:
            os.close(fd)


# --- staging and swap ---------------------------------------------------------------------


@dataclass(frozen=True)
class Staging:
    """Where a run writes: ``root`` stands in for ``run_dir`` until the swap."""

    run_dir: Path
    root: Path

    def path(self, final: str | Path) -> Path:
        """The staging path of an output whose final path is ``final`` (inside ``run_dir``)."""
        final = Path(final)
        try:
            rel = final.relative_to(self.run_dir)
        except ValueError:
            msg = f"{final} is not inside the run folder {self.run_dir}"
            raise ValueError(msg) from None
        return self.root / rel

    def final(self, staged: str | Path) -> Path:
        """The final path of a staging path (the inverse of :meth:`path`)."""
        return self.run_dir / Path(staged).relative_to(self.root)


def _leftovers(run_dir: Path, kind: str) -> list[Path]:
    found = run_dir.parent.glob(f".{run_dir.name}.{kind}-*")
    return sorted(found, key=lambda p: p.stat().st_mtime)


def _rmtree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_leftovers(run_dir: Path) -> None:
    """Finish or undo a swap a stopped run left half done; remove its temporary folders.

    Call with the run's lock held.
    """
    if not run_dir.exists():
        ready, old = _leftovers(run_dir, "ready"), _leftovers(run_dir, "old")
        if ready:
            ready[-1].rename(run_dir)
            logger.warning("%s: completed the swap of a run that stopped while swapping",
                           run_dir)
        elif old:
            old[-1].rename(run_dir)
            logger.warning("%s: restored the previous run's outputs (a run stopped while "
                           "swapping)", run_dir)
    for kind in ("staging", "ready", "old"):
        for p in _leftovers(run_dir, kind):
            _rmtree(p)
            logger.info("removed %s, left by a run that was stopped", p)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                   ctypes.c_uint]
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    no = ctypes.get_errno()
    if no in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # filesystem cannot exchange
        return False
    raise OSError(no, os.strerror(no), str(b))


def _swap(ready: Path, run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(run_dir, "is a file, not the run's output folder",
                          "move that file away or set output.dir/name differently")
    if not run_dir.exists():
        ready.rename(run_dir)
        return
    if _exchange(ready, run_dir):
        _rmtree(ready)  # now the previous run
        return
    old = ready.with_name(ready.name.replace(".ready-", ".old-", 1))
    try:
        run_dir.rename(old)
    except PermissionError as exc:
        raise OutputError(run_dir, "cannot be replaced: a file in it is open in another "
                          "program", "close it (QGIS, Excel...) and run again") from exc
    try:
        ready.rename(run_dir)
    except OSError:
        old.rename(run_dir)
        raise
    _rmtree(old)


def _link_or_copy(src: str, dst: str) -> None:
    # Every writer replaces files by renaming a new one over them (export.atomic_path), never
    # writes into them, so a hard link is as safe as a copy and costs nothing.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def staged_run(run_dir: str | Path, *, keep: bool) -> Iterator[Staging]:
    """Lock the run, stage its outputs in a temporary folder and swap them in on success.

    Parameters
    ----------
    run_dir
        The run folder, ``<output.dir>/<name>``.
    keep
        Start from the previous run's files (a stage run updating part of the outputs);
        otherwise start empty (a whole run replaces everything).

    Yields
    ------
    Staging
        Write each output to ``staging.path(final_path)``.

    Raises
    ------
    OutputError
        The folder cannot be written (named with its final path and the fix) or another run
        holds the lock (:class:`RunLockedError`). The previous run's outputs stay as they were.
    """
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        try:
            clean_leftovers(run_dir)
            root = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.staging-",
                                         dir=run_dir.parent))
        except OSError as exc:
            raise output_error(run_dir.parent, exc) from exc
        staging = Staging(run_dir, root)
        try:
            if keep and run_dir.is_dir():
                try:
                    shutil.copytree(run_dir, root, dirs_exist_ok=True,
                                    copy_function=_link_or_copy)
                except (OSError, shutil.Error) as exc:
                    raise output_error(run_dir.parent, exc,
                                       doing="cannot stage the previous outputs") from exc
            try:
                yield staging
            except OutputError as exc:
                where = Path(exc.where)
                if where == root or root in where.parents:
                    # name the output the user knows, not the temporary folder
                    raise OutputError(staging.final(where), exc.what, exc.fix) from exc
                raise
            ready = root.with_name(root.name.replace(".staging-", ".ready-", 1))
            try:
                root.rename(ready)
                root = ready
                _swap(ready, run_dir)
            except OutputError:
                raise
            except OSError as exc:
                raise output_error(run_dir, exc, doing="cannot be replaced") from exc
        finally:
            if root.exists():
                _rmtree(root)
