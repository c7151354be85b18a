"""Writing maps to PNG: the shared matplotlib style, cropping and drawing in parallel.

Kept apart from :mod:`urbanunits.maps` (what a map shows) because how a figure becomes a file is
one concern of its own: drawn once and cropped to its content (what ``bbox_inches="tight"``
gives at half the cost), written atomically, and optionally spread over forked processes.
"""

from __future__ import annotations

import gc
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from urbanunits._files import atomic_path
from urbanunits._fonts import cjk_font_family

__all__ = ["map_style", "save_map", "saving_in_parallel"]

logger = logging.getLogger(__name__)


@contextmanager
def map_style() -> Iterator[None]:
    """Matplotlib settings shared by all maps (applied only inside the block)."""
    family = cjk_font_family()
    with mpl.rc_context({
        # Concrete family names, not "sans-serif": text resolves its font when drawn, which may
        # be after this context has closed (fig.savefig outside the with-block).
        "font.family": [family, "DejaVu Sans"],
        "axes.unicode_minus": False,
        "font.size": 9,
        "legend.fontsize": 8,
        "legend.title_fontsize": 9,
        "axes.titlesize": 12,
    }):
        yield


#: White margin kept around a map's content, inches (matplotlib's ``pad_inches``).
_PAD_IN = 0.1
#: zlib level of the PNGs: 1 encodes several times faster than the default 6, for files about a
#: third larger (the maps are mostly flat colour); PNG stays lossless either way.
_PNG_COMPRESS_LEVEL = 1
#: zlib strategy Z_RLE: runs of one colour are what a map is made of; it encodes a third faster
#: than the default strategy at level 1, for files about a tenth larger (same pixels).
_PNG_COMPRESS_TYPE = 3


#: At most this many processes draw the maps of one run (:func:`saving_in_parallel`).
_MAX_MAP_WORKERS = 4
# Figures queued by save_map inside saving_in_parallel(): (figure, path, dpi).
_queue: list[tuple[Figure, Path, int]] | None = None


def save_map(fig: Figure, path: str | Path, *, dpi: int = 200) -> Path:
    """Write a figure to PNG atomically, cropped to its content, and return the path.

    The figure is drawn once and the white border around what was drawn is cropped off, leaving
    a margin of 0.1 in. This is what ``savefig(bbox_inches="tight")`` gives, at half the cost:
    that option draws the figure twice (once to measure it). Inside :func:`saving_in_parallel`
    the figure is only queued, and written when the block ends.
    """
    path = Path(path)
    if _queue is not None:
        _queue.append((fig, path, dpi))
        return path
    _write_map(fig, path, dpi=dpi)
    logger.debug("map written: %s", path)  # the pipeline reports final paths (not staging)
    return path


@contextmanager
def saving_in_parallel(workers: int | None = None) -> Iterator[None]:
    """Queue the figures :func:`save_map` is given in the block, then draw them in parallel.

    Drawing and encoding a map takes longer than building it, and a run draws a dozen: at the
    end of the block they are split over up to ``workers`` processes (default: the CPUs this
    process may use, at most 4), forked so that nothing is copied or pickled. A worker that fails
    leaves its maps to this process, which then raises the error itself. Where ``os.fork`` is
    missing (Windows) the maps are drawn one after the other. Nothing is written when the block
    raises.

    Parameters
    ----------
    workers
        Number of processes, this one included.
    """
    global _queue
    if _queue is not None:  # nested: the outer block draws
        yield
        return
    queue: list[tuple[Figure, Path, int]] = []
    _queue = queue
    try:
        with _fewer_gc_sweeps():
            yield
            _draw_queue(queue, workers)
    finally:
        _queue = None


@contextmanager
def _fewer_gc_sweeps() -> Iterator[None]:
    """Run the cyclic garbage collector less often inside the block (thresholds only raised).

    Building and drawing figures allocates hundreds of thousands of artists, paths and arrays
    over the run's large heap, and at Python's default threshold (700) the collector sweeps that
    heap again and again (0.15-0.3 s of a demo run's maps). Garbage without cycles is freed by
    reference counting either way, so memory stays the same.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 10_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _draw_queue(queue: list[tuple[Figure, Path, int]], workers: int | None) -> None:
    """Write the queued figures, split over up to ``workers`` processes (this one included)."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    n = max(1, min(workers, len(queue), _MAX_MAP_WORKERS))
    if n == 1 or not hasattr(os, "fork"):
        for fig, path, dpi in queue:
            _write_map(fig, path, dpi=dpi)
        return
    children = []
    for k in range(1, n):
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a process with threads; the child only draws
            # with matplotlib and writes files, then leaves with os._exit (no lock, no logging)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover (a child process)
            code = 0
            try:
                for fig, path, dpi in queue[k::n]:
                    _write_map(fig, path, dpi=dpi)
            except BaseException:
                code = 1
            os._exit(code)
        children.append((pid, k))
    for fig, path, dpi in queue[0::n]:
        _write_map(fig, path, dpi=dpi)
    for pid, k in children:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            logger.debug("map worker %d failed: drawing its maps here", pid)
            for fig, path, dpi in queue[k::n]:
                _write_map(fig, path, dpi=dpi)


def _write_map(fig: Figure, path: Path, *, dpi: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    # Fonts are resolved when the figure is drawn, so the CJK style must be active here too.
    with map_style(), atomic_path(path) as tmp:
        fig.set_dpi(dpi)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        # savefig's tight box holds each axes whole, blank edges of the view included
        boxes = [ax.get_window_extent().extents for ax in fig.axes if ax.get_visible()]
        legends = [lg.get_window_extent().extents for lg in
                   [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
        width, height = canvas.get_width_height()
        if any(x0 < 0 or y0 < 0 or x1 > width or y1 > height for x0, y0, x1, y1 in legends):
            # a legend reaches past the canvas (beside an equal-aspect map): only savefig's
            # tight box, which widens the canvas, shows it whole
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight", pad_inches=_PAD_IN,
                        pil_kwargs={"compress_level": _PNG_COMPRESS_LEVEL,
                                    "compress_type": _PNG_COMPRESS_TYPE})
            return
        image = _crop_to_content(np.asarray(canvas.buffer_rgba()), pad=round(_PAD_IN * dpi),
                                 boxes=boxes)
        picture = Image.fromarray(image, "RGBA")
        # maps are opaque (white figure): RGB encodes a quarter fewer bytes than RGBA. PIL drops
        # the alpha band in C, several times faster than a strided numpy copy.
        if (image[..., 3] == 255).all():
            picture = picture.convert("RGB")
        picture.save(tmp, format="png", dpi=(dpi, dpi), compress_level=_PNG_COMPRESS_LEVEL,
                     compress_type=_PNG_COMPRESS_TYPE)


def _crop_to_content(rgba: np.ndarray, *, pad: int,
                     boxes: Sequence[Sequence[float]] = ()) -> np.ndarray:
    """The smallest box holding every pixel unlike the corner's colour and every one of
    ``boxes`` (display coordinates x0, y0, x1, y1, origin bottom left), with a ``pad`` margin."""
    pixels = np.ascontiguousarray(rgba).view(np.uint32)[..., 0]  # one compare per pixel
    ink = pixels != pixels[0, 0]
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return rgba
    h, w = ink.shape
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    for x0, y0, x1, y1 in boxes:
        r0, r1 = min(r0, max(int(h - y1), 0)), max(r1, min(int(np.ceil(h - y0)), h))
        c0, c1 = min(c0, max(int(x0), 0)), max(c1, min(int(np.ceil(x1)), w))
    content = rgba[r0:r1, c0:c1]
    out = np.empty((content.shape[0] + 2 * pad, content.shape[1] + 2 * pad, rgba.shape[2]),
                   dtype=rgba.dtype)
    # the margin may reach past the canvas, as savefig's does; filled one 32-bit pixel at a
    # time, several times faster than broadcasting the four bytes
    out.view(np.uint32)[...] = pixels[0, 0]
    out[pad:pad + content.shape[0], pad:pad + content.shape[1]] = content
    return out
