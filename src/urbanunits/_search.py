"""Many multi-source searches, one per group of sources, optionally on several cores.

scipy's Dijkstra holds the GIL, so threads do not help; with ``workers`` > 1 the searches are
shared with forked processes, which see the router's matrix without copying it (copy-on-write)
and send back only one distance per owner. Where ``fork`` is not available the searches run
one after another.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from urbanunits.network import Entries, Router

__all__ = ["nearest_per_owner"]

logger = logging.getLogger(__name__)

# What forked workers read: set just before the pool forks, cleared after.
_STATE: tuple[Router, Sequence[NDArray[np.intp]], _Grouped, int, float] | None = None


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


def _run(which: Sequence[int]) -> list[NDArray[np.float64]]:
    assert _STATE is not None
    router, groups, entries, n_owners, limit_m = _STATE
    out = []
    for i in which:
        d = entries.nearest(router.search_distances(router.to_search(groups[i]),
                                                    limit_m=limit_m), n_owners)
        d[d > limit_m] = np.inf
        out.append(d)
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
    global _STATE
    grouped = _Grouped(entries, router)
    k = len(groups)
    workers = max(1, min(int(workers), k))
    if workers == 1 or "fork" not in mp.get_all_start_methods():
        _STATE = (router, groups, grouped, n_owners, limit_m)
        try:
            return _run(range(k))
        finally:
            _STATE = None
    # Round-robin shares; this process takes the first, the pool the others.
    shares = [list(range(w, k, workers)) for w in range(workers)]
    _STATE = (router, groups, grouped, n_owners, limit_m)
    try:
        with ProcessPoolExecutor(workers - 1, mp_context=mp.get_context("fork")) as pool:
            futures = [pool.submit(_run, s) for s in shares[1:]]
            mine = _run(shares[0])
            theirs = [f.result() for f in futures]
    finally:
        _STATE = None
    out: list[NDArray[np.float64]] = [np.empty(0)] * k
    for share, res in zip(shares, [mine, *theirs], strict=True):
        for i, d in zip(share, res, strict=True):
            out[i] = d
    return out
