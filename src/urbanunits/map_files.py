"""Writing maps to PNG: the shared matplotlib style, cropping and drawing in parallel.

Kept apart from :mod:`urbanunits.maps` (what a map shows) because how a figure becomes a file is
one concern of its own: drawn once and cropped to its content (what ``bbox_inches="tight"``
gives at half the cost), written atomically, and optionally spread over forked processes.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from urbanunits._files import atomic_path
from urbanunits._fonts import cjk_font_family
from urbanunits._gc import fewer_gc_sweeps

__all__ = ["MapSource", "encode_png", "map_style", "save_map", "saving_in_parallel",
           "start_drawing"]

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
#: tenth larger (the maps are mostly flat colour); PNG stays lossless either way.
_PNG_COMPRESS_LEVEL = 1
#: zlib strategy of the savefig path (legend past the canvas): Z_RLE, runs of one colour being
#: what a map is made of.
_PNG_COMPRESS_TYPE = 3
#: PIL's options on the savefig paths.
_SAVEFIG_PNG = {"compress_level": _PNG_COMPRESS_LEVEL, "compress_type": _PNG_COMPRESS_TYPE}


#: At most this many processes draw the maps of one run (:func:`saving_in_parallel`).
_MAX_MAP_WORKERS = 4


#: A map to save: its figure, or a function that builds it (called by the process that draws it).
MapSource = Figure | Callable[[], Figure]


@dataclass
class _Batch:
    """The figures queued in one :func:`saving_in_parallel` block, and its workers."""

    figures: list[tuple[MapSource, Path, int]] = field(default_factory=list)
    workers: int = 1
    # read end of a pipe holding the index (2 bytes) of each figure handed to the workers: each
    # process takes the next one when it is free, so the drawing is shared out evenly
    claims: int | None = None
    handed: int = 0  # figures[:handed] went into the pipe
    children: list[int] = field(default_factory=list)
    frozen: bool = False  # this block froze the heap (gc.freeze) before forking


# The open saving_in_parallel() block, where save_map queues its figures.
_batch: _Batch | None = None


def save_map(fig: MapSource, path: str | Path, *, dpi: int = 200) -> Path:
    """Write a figure to PNG atomically, cropped to its content, and return the path.

    The figure is drawn once and the white border around what was drawn is cropped off, leaving
    a margin of 0.1 in. This is what ``savefig(bbox_inches="tight")`` gives, at half the cost:
    that option draws the figure twice (once to measure it). Inside :func:`saving_in_parallel`
    the figure is only queued, and written when the block ends (or by :func:`start_drawing`).

    ``fig`` may be a function without arguments that returns the figure: inside
    :func:`saving_in_parallel` it is called by the process that draws the map, so that building
    the figures is shared out over the workers as well as drawing them; outside, at once.
    """
    path = Path(path)
    if _batch is not None:
        _batch.figures.append((fig, path, dpi))
        return path
    _write_map(fig, path, dpi=dpi)
    logger.debug("map written: %s", path)  # the pipeline reports final paths (not staging)
    return path


@contextmanager
def saving_in_parallel(workers: int | None = None) -> Iterator[None]:
    """Queue the figures :func:`save_map` is given in the block, then draw them in parallel.

    Drawing and encoding a map takes longer than building it, and a run draws a dozen: they are
    shared out over up to ``workers`` processes (default: the CPUs this process may use, at most
    4), forked so that nothing is copied or pickled, each taking the next map when it is free
    (and building its figure then, when :func:`save_map` was given a function).
    The workers start at the end of the block, or earlier at :func:`start_drawing`, so that they
    draw while this process goes on (writing the other outputs); this process joins in at the
    end. If a worker fails, this process draws every map again and so raises the error itself.
    Where ``os.fork`` is missing (Windows) the maps are drawn one after the other. Nothing is
    written when the block raises before :func:`start_drawing` (after it, the workers are
    stopped, and what they wrote is left).

    Parameters
    ----------
    workers
        Number of processes, this one included (default: in a nested block, the outer
        block's).
    """
    global _batch
    outer = _batch
    if workers is None:
        if outer is not None:
            workers = outer.workers
        else:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    # A nested block draws its own maps when it ends, with the outer block's processes unless
    # told otherwise: its caller may move the files right after (run_all swaps its staging
    # folder in), so leaving them to the outer block would write them where nobody looks.
    batch = _Batch(workers=workers)
    _batch = batch
    try:
        with fewer_gc_sweeps():
            try:
                yield
            except BaseException:
                _stop_workers(batch)
                raise
            _finish(batch)
    finally:
        _batch = outer
        if batch.frozen:
            gc.unfreeze()


def start_drawing() -> None:
    """Start the workers of the open :func:`saving_in_parallel` block on the maps queued so far.

    They draw while this process goes on; maps queued later are drawn when the block ends. Does
    nothing outside such a block, when already started, or with one process.
    """
    batch = _batch
    if batch is None or batch.claims is not None or not hasattr(os, "fork"):
        return
    n = max(1, min(batch.workers, len(batch.figures), _MAX_MAP_WORKERS))
    if n == 1 or len(batch.figures) >= 1 << 16:
        return
    read, write = os.pipe()
    # a pipe holds 64 KiB without a reader: 2 bytes a map, far fewer maps than that
    os.write(write, b"".join(i.to_bytes(2, "big") for i in range(len(batch.figures))))
    os.close(write)  # the workers see the end of the pipe once every map is taken
    batch.claims, batch.handed = read, len(batch.figures)
    if not gc.get_freeze_count():
        # The run's heap, hundreds of thousands of objects, is left out of the collector's
        # sweeps here and in the workers: a sweep would touch (so copy) every page of it in
        # each forked process. Unfrozen when the block ends.
        gc.freeze()
        batch.frozen = True
    for _ in range(1, n):
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a process with threads; the child only draws
            # with matplotlib and writes files, then leaves with os._exit (no lock, no logging)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover (a child process)
            code = 0
            try:
                _draw_claimed(batch)
            except BaseException:
                code = 1
            os._exit(code)
        batch.children.append(pid)


def _draw_claimed(batch: _Batch) -> set[int]:
    """Draw the maps this process takes from the pipe until none is left; their indices."""
    assert batch.claims is not None
    drawn = set()
    while len(claim := os.read(batch.claims, 2)) == 2:  # a read of a pipe is never split
        k = int.from_bytes(claim, "big")
        fig, path, dpi = batch.figures[k]
        _write_map(fig, path, dpi=dpi)
        drawn.add(k)
    return drawn


def _finish(batch: _Batch) -> None:
    """This process's part at the end of the block: the maps left, then the workers'."""
    start_drawing()
    failed, here = False, set()
    try:
        if batch.claims is not None:
            here = _draw_claimed(batch)
        for fig, path, dpi in batch.figures[batch.handed:]:
            _write_map(fig, path, dpi=dpi)
    finally:
        for pid in batch.children:
            _, status = os.waitpid(pid, 0)
            failed = failed or status != 0
        batch.children.clear()
        if batch.claims is not None:
            os.close(batch.claims)
            batch.claims = None
    if failed:
        # which maps the failed worker had written is unknown: every map the workers took is
        # drawn again here (each figure is drawn once in this process, as a second draw of a
        # figure may settle its layout differently)
        logger.debug("a map worker failed: drawing the workers' maps here")
        for k, (fig, path, dpi) in enumerate(batch.figures[:batch.handed]):
            if k not in here:
                _write_map(fig, path, dpi=dpi)


def _stop_workers(batch: _Batch) -> None:
    """Stop the workers of a block that raised (they would draw maps of a failed run)."""
    for pid in batch.children:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    batch.children.clear()
    if batch.claims is not None:
        os.close(batch.claims)
        batch.claims = None


def _write_map(source: MapSource, path: Path, *, dpi: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = source if isinstance(source, Figure) else source()
    # Fonts are resolved when the figure is drawn, so the CJK style must be active here too.
    with map_style(), atomic_path(path) as tmp:
        fig.set_dpi(dpi)
        if _legend_beside(fig):
            # a legend anchored beside the map reaches past the canvas: only savefig's tight
            # box, which widens the canvas, shows it whole (a layout pass, then the picture)
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight", pad_inches=_PAD_IN,
                        pil_kwargs=_SAVEFIG_PNG)
            return
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        # savefig's tight box holds each axes whole, blank edges of the view included
        boxes = [ax.get_window_extent().extents for ax in fig.axes if ax.get_visible()]
        legends = [lg.get_window_extent().extents for lg in
                   [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
        width, height = canvas.get_width_height()
        if any(x0 < 0 or y0 < 0 or x1 > width or y1 > height for x0, y0, x1, y1 in legends):
            # a legend reaches past the canvas all the same: savefig's tight box of the layout
            # just drawn; with the layout engine off, savefig draws once (with it, a layout
            # pass first, then the picture)
            tight = fig.get_tightbbox(canvas.get_renderer()).padded(_PAD_IN)
            engine = fig.get_layout_engine()
            fig.set_layout_engine(None)
            try:
                fig.savefig(tmp, dpi=dpi, format="png", bbox_inches=tight,
                            pil_kwargs=_SAVEFIG_PNG)
            finally:
                fig.set_layout_engine(engine)
            return
        image = _crop_to_content(np.asarray(canvas.buffer_rgba()), pad=round(_PAD_IN * dpi),
                                 boxes=boxes)
        tmp.write_bytes(encode_png(image, dpi=dpi))


def _legend_beside(fig: Figure) -> bool:
    """Whether a legend is anchored outside its axes (``bbox_to_anchor=(1.01, 1)`` beside the
    map), which is known before the figure is drawn."""
    for ax in fig.axes:
        lg = ax.get_legend()
        if lg is None:
            continue
        a, b = lg.get_bbox_to_anchor(), ax.bbox
        if a.x0 >= b.x1 or a.x1 <= b.x0 or a.y0 >= b.y1 or a.y1 <= b.y0:
            return True
    return False


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


def encode_png(rgba: np.ndarray, *, dpi: float | None = None) -> bytes:
    """An 8-bit RGBA image (rows top down) as PNG file bytes: RGB when every pixel is opaque.

    Each row is stored with PNG's "Sub" filter (each byte less the same byte of the pixel to its
    left, so flat colour becomes zeros), computed with numpy, and compressed with zlib at
    :data:`_PNG_COMPRESS_LEVEL`. PIL picks a filter per row by trying all five, which takes
    most of its time; this encodes a map in under half of it, to files a tenth smaller than
    PIL's at the same level with Z_RLE. Lossless: the pixels decode exactly as given.

    Parameters
    ----------
    rgba
        ``(height, width, 4)`` array of ``uint8``.
    dpi
        Resolution recorded in the file (``pHYs``), as PIL's ``dpi=`` records it.
    """
    from PIL import Image

    h, w, _ = rgba.shape
    # every alpha byte 255: the top byte of each little-endian 32-bit pixel (one compare each)
    opaque = bool((np.ascontiguousarray(rgba).view("<u4")[..., 0] >= 0xFF000000).all())
    bands = 3 if opaque else 4
    # maps are opaque (white figure): RGB holds a quarter fewer bytes. PIL drops the alpha band
    # in C, several times faster than a strided numpy copy; the filter then runs on whole rows.
    pixels = (np.asarray(Image.fromarray(rgba, "RGBA").convert("RGB")) if opaque
              else np.ascontiguousarray(rgba)).reshape(h, w * bands)
    # one filter-type byte (1 = Sub), then the row's differences from the pixel to the left
    # (uint8 arithmetic wraps modulo 256, as PNG's does)
    rows = np.empty((h, 1 + w * bands), dtype=np.uint8)
    rows[:, 0] = 1
    rows[:, 1:1 + bands] = pixels[:, :bands]
    np.subtract(pixels[:, bands:], pixels[:, :-bands], out=rows[:, 1 + bands:])
    data = zlib.compress(rows.data, _PNG_COMPRESS_LEVEL)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind))))

    # width, height, bit depth 8, colour type 2 (RGB) or 6 (RGBA), deflate, filtering per row,
    # no interlace
    parts = [b"\x89PNG\r\n\x1a\n",
             chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if opaque else 6, 0, 0, 0))]
    if dpi:
        ppm = int(dpi / 0.0254 + 0.5)  # pixels per metre, unit 1 = metre
        parts.append(chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)))
    parts += [chunk(b"IDAT", data), chunk(b"IEND", b"")]
    return b"".join(parts)
