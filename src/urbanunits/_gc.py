"""Fewer sweeps of Python's cyclic garbage collector while a block allocates heavily.

Stages that make several short-lived geometries per feature (packages: search boxes, segments,
links, unions) and map drawing (hundreds of thousands of artists, paths and arrays) allocate
over a large live heap. At Python's default threshold (700 allocations) the collector then runs
every few hundred of them, promotes the live objects and sweeps the whole heap again and again:
7-15 % of the packages stage at 15,000 communities (next to nothing at 3,000, so the stage grew
faster than its data) and 0.15-0.3 s of a demo run's maps. None of these objects is in a
reference cycle; they are freed by reference counting either way, so memory stays the same.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GC_THRESHOLD", "fewer_gc_sweeps"]

#: First-generation threshold used inside the block (and by the CLI for a whole run).
GC_THRESHOLD = 10_000


@contextmanager
def fewer_gc_sweeps() -> Iterator[None]:
    """Raise the collector's first threshold to :data:`GC_THRESHOLD` inside the block.

    Thresholds are only raised, never lowered, and restored when the block ends, so a caller's
    own setting (the CLI's, a notebook's) is left as it was.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
