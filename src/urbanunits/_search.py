"""Many multi-source searches, one per group of sources, optionally on several cores.

scipy's Dijkstra holds the GIL, so threads do not help; with ``workers`` > 1 the searches are
shared with forked processes, which see the router's matrix without copying it (copy-on-write).
Each process takes the next search not yet taken (the next index in a pipe), so a long search
does not leave a core idle, and writes one distance per owner into shared memory: no pool, no
pickling.
Where ``fork`` is not available the searches run one after another.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

    from urbanunits.network import Entries, Router

__all__ = ["nearest_per_owner"]

logger = logging.getLogger(__name__)


class _Grouped:
    """Entries sorted by owner once, so each search takes a ``reduceat`` per owner run."""

    def __init__(self, entries: Entries, router: Router) -> None:
        order = np.argsort(entries.owner, kind="stable")
        owner = entries.owner[order]
        self.node = router.to_search(entries.node[order])
        self.offset_m = entries.offset_m[order]
        first = np.ones(len(owner), dtype=bool)
        first[1:] = owner[1:] != owner[:-1]
        self.starts = np.flatnonzero(first)
        self.owners = owner[self.starts]

    def nearest(self, dist: NDArray[np.float64], n_owners: int) -> NDArray[np.float64]:
        out = np.full(n_owners, np.inf)
        if len(self.starts):
            out[self.owners] = np.minimum.reduceat(dist[self.node] + self.offset_m, self.starts)
        return out


def nearest_per_owner(router: Router, groups: Sequence[NDArray[np.intp]], entries: Entries,
                      n_owners: int, *, limit_m: float, workers: int = 1
                      ) -> list[NDArray[np.float64]]:
    """For each group of source nodes, every owner's distance to the nearest of them.

    Parameters
    ----------
    router
        The search graph.
    groups
        Source graph nodes per search (negatives ignored).
    entries
        Owners' entry nodes and offsets.
    n_owners
        Number of owners.
    limit_m
        Search limit (m); farther owners get inf.
    workers
        Processes to share the searches among (1: this one only).

    Returns
    -------
    list of numpy.ndarray
        One array of length ``n_owners`` per group.
    """
    grouped = _Grouped(entries, router)
    k = len(groups)

    def one(i: int) -> NDArray[np.float64]:
        d = grouped.nearest(router.search_distances(router.to_search(groups[i]),
                                                    limit_m=limit_m), n_owners)
        d[d > limit_m] = np.inf
        return d

    workers = max(1, min(int(workers), k))
    if workers == 1 or not hasattr(os, "fork"):
        return [one(i) for i in range(k)]
    # No other thread may run while forking: a lock it held would stay held in the child.
    router.net.wait_background()
    return _shared_run(one, k, n_owners, workers)


def _shared_run(one: Callable[[int], NDArray[np.float64]], k: int, n_owners: int,
                workers: int) -> list[NDArray[np.float64]]:
    """``[one(i) for i in range(k)]`` shared by ``workers`` forked processes."""
    # Searches are taken as 4-byte reads from a pipe, not from a locked counter: a process
    # killed while taking one (the OOM killer) then holds no lock the others would wait for.
    # Reads of 4 bytes from a stream of whole 4-byte indices are atomic, and once the pipe is
    # empty every read returns at end of file, because the write end is closed before forking.
    # The indices are written without blocking, in writes of at most PIPE_BUF bytes (each goes
    # in whole or not at all): a pipe can hold as little as 4 KiB, and the searches that do not
    # fit are run by this process at the end.
    taken, put = os.pipe()
    os.set_blocking(put, False)
    data = np.arange(k, dtype="<u4").tobytes()
    try:
        for at in range(0, len(data), select.PIPE_BUF):
            os.write(put, data[at:at + select.PIPE_BUF])
    except BlockingIOError:
        logger.debug("the pipe holds %d of %d searches; this process runs the rest",
                     at // 4, k)
    finally:
        os.close(put)
    # Anonymous shared memory: the rows, then a flag per row set once it is written.
    buf = mmap.mmap(-1, k * n_owners * 8 + k)
    rows = np.frombuffer(buf, dtype=np.float64, count=k * n_owners).reshape(k, n_owners)
    done = np.frombuffer(buf, dtype=np.uint8, count=k, offset=k * n_owners * 8)

    def work() -> None:
        while b := os.read(taken, 4):
            i = int.from_bytes(b, "little")
            rows[i] = one(i)
            done[i] = 1

    pids = []
    try:
        for _ in range(workers - 1):
            with warnings.catch_warnings():
                # Python 3.12+ warns about fork() in a process with threads (a Jupyter kernel
                # has some); the child only runs scipy searches into shared memory and leaves
                # with os._exit, taking no lock
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # child: its searches into shared memory, then leave at once
                code = 1
                try:
                    work()
                    code = 0
                except BaseException as exc:  # the parent reruns the searches; say why here
                    with contextlib.suppress(Exception):
                        os.write(2, f"search process {os.getpid()}: {type(exc).__name__}: "
                                    f"{exc}\n".encode(errors="replace"))
                finally:
                    os._exit(code)
            pids.append(pid)
        work()
    finally:
        try:
            failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in pids)
        finally:
            os.close(taken)
    if failed:
        logger.warning("%d search process(es) failed; their searches were run again here",
                       failed)
    # A search a failed child took and did not finish is run here.
    return [rows[i].copy() if done[i] else one(i) for i in range(k)]
