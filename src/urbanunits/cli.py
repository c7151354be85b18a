"""Command line: ``urbanunits <command> [--config FILE]``.

Exit status: 0 done; 2 a user mistake or an output that cannot be written
(:class:`~urbanunits.errors.UserError`, printed as one line,
``error: <where>: <what> — <what to do>``; ``--verbose`` adds the traceback), nothing written;
3 ``all`` or ``maps`` skipped a stage for want of data (one ``skipped stage`` line each) and
wrote the others; 1 a bug (traceback); 130 interrupted, nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence

from urbanunits import __version__
from urbanunits._gc import GC_THRESHOLD
from urbanunits.errors import UserError

__all__ = ["main"]

logger = logging.getLogger("urbanunits")

_STAGES = ("ingest", "units", "packages", "lifecircle", "programme", "sites", "maps", "all")
EXIT_USER_ERROR = 2
EXIT_SKIPPED = 3  # a stage was skipped for want of data; the others were written
EXIT_CITY_FAILED = 4  # batch: at least one city failed; the others were written


def _parser() -> argparse.ArgumentParser:
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                           help="debug logging and tracebacks")
    verbosity.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                           help="warnings and errors only")
    common = argparse.ArgumentParser(add_help=False, parents=[verbosity])
    common.add_argument("-c", "--config", default=argparse.SUPPRESS,
                        help="TOML config (default: configs/lujiazui.toml)")
    p = argparse.ArgumentParser(
        prog="urbanunits", parents=[common],
        description="Update units, renewal packages and 15-minute life circles from OSM data.")
    p.add_argument("--version", action="version", version=f"urbanunits {__version__}")
    sub = p.add_subparsers(dest="command", metavar="command", required=True)
    sub.add_parser("ingest", parents=[common], help="parse the OSM extract and report layers")
    # a stage whose results in the run are current is not computed again (make-like)
    forced = argparse.ArgumentParser(add_help=False, parents=[common])
    forced.add_argument("--force", action="store_true", default=argparse.SUPPRESS,
                        help="compute the stage even when the run's results are up to date")
    sub.add_parser("units", parents=[forced], help="update units (更新单元)")
    sub.add_parser("packages", parents=[forced], help="renewal packages (片区化改造)")
    sub.add_parser("lifecircle", parents=[forced], help="15-minute life circles (生活圈)")
    sub.add_parser("programme", parents=[forced],
                   help="project library: scores and phasing into years (项目库)")
    sub.add_parser("sites", parents=[forced],
                   help="sites for missing facilities, supply and demand (选址)")
    sub.add_parser("maps", parents=[common], help="redraw all maps")
    sub.add_parser("all", parents=[common], help="every stage, tables and maps")
    fetch = sub.add_parser("fetch", parents=[common],
                           help="download the study area from Overpass (online users)")
    fetch.add_argument("-o", "--output", default=None,
                       help="write here instead of the config's inputs.osm")
    clip = sub.add_parser("clip", parents=[common],
                          help="cut the study area out of a large .osm.pbf (offline users)")
    clip.add_argument("pbf", help="a large OSM extract, e.g. china-latest.osm.pbf")
    clip.add_argument("-o", "--output", default=None,
                      help="write here instead of the config's inputs.osm")
    batch = sub.add_parser("batch", parents=[verbosity],
                           help="many configs (cities) at once on a Dask cluster")
    batch.add_argument("configs", nargs="+", metavar="CONFIG", help="TOML files, one per city")
    batch.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a "
                            "local cluster started for the batch)")
    batch.add_argument("--workers", type=int, default=2, metavar="N",
                       help="worker processes of the local cluster (default 2)")
    batch.add_argument("--summary-dir", default="data/processed/batch", metavar="DIR",
                       help="where batch_summary.gpkg/.xlsx/.png go (default %(default)s)")
    batch.add_argument("--force", action="store_true",
                       help="recompute cities whose config and inputs are unchanged")
    batch.add_argument("--split-by", default=None, metavar="HOW",
                       help="one config's area as many tasks: grid:KM, subdistrict or district")
    pub = sub.add_parser("publish", parents=[common],
                         help="publish the run to PostGIS (for GeoServer / QGIS Server)")
    pub.add_argument("--to", required=True, metavar="URL",
                     help="postgresql://user@host:port/dbname[?schema=NAME]; keep the password "
                          "in PGPASSWORD or ~/.pgpass rather than in the URL")
    exp = sub.add_parser("export", parents=[common],
                         help="export the run: filegdb (ArcGIS Pro) or html (browser map)")
    exp.add_argument("--format", required=True, choices=("filegdb", "html"))
    exp.add_argument("-o", "--output", default=None,
                     help="write here instead of <output>/<name>.gdb or .html")
    return p


def _run_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from urbanunits.batch import run_batch

    if args.workers < 1:
        raise UserError("--workers", f"{args.workers}", "give at least 1")
    if args.split_by:
        from urbanunits.batch import dask_client
        from urbanunits.split import run_split

        if len(args.configs) != 1:
            raise UserError("--split-by", f"{len(args.configs)} configs given",
                            "split one config at a time")
        with dask_client(args.scheduler, args.workers) as client:
            split = run_split(args.configs[0], args.split_by, client=client)
        print("batch: done")
        print("\n".join(f"  {line}" for line in split.summary_lines()))
        return 0
    res = run_batch(args.configs, scheduler=args.scheduler, n_workers=args.workers,
                    summary_dir=Path(args.summary_dir), force=args.force,
                    progress=lambda row: logger.info("  %s: %s", row["city"], row["status"]))
    print("batch: done")
    print("\n".join(f"  {line}" for line in res.summary_lines()))
    print("\n".join(f"  summary {p}" for p in res.files))
    return EXIT_CITY_FAILED if res.n_failed else 0


def _run_publish(args: argparse.Namespace) -> int:
    """``publish`` and ``export``: hand the finished run to GIS staff and street offices."""
    from urbanunits import publish
    from urbanunits.config import load_config

    cfg = load_config(getattr(args, "config", None))
    if args.command == "publish":
        print(publish.publish_postgis(cfg.gpkg_path, args.to, run_name=cfg.name).report())
    else:
        print(publish.run_export(cfg, args.format, output=args.output))
    return 0


def _setup_logging(*, verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose
                                           else "%(message)s"))
    root = logging.getLogger("urbanunits")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _run_source(args: argparse.Namespace) -> int:
    """``fetch`` and ``clip``: get the OSM extract the config's ``inputs.osm`` names."""
    from urbanunits.config import load_config

    cfg = load_config(getattr(args, "config", None))
    if args.command == "fetch":
        from urbanunits.sources.fetch import fetch_osm

        lines = fetch_osm(cfg, output=args.output).summary_lines()
    else:
        from urbanunits.sources.clip import clip_for_config

        lines = clip_for_config(args.pbf, cfg, output=args.output).summary_lines()
    print(f"{args.command}: done")
    print("\n".join(f"  {line}" for line in lines))
    return 0


def _run(command: str, config: str | None, *, force: bool = False) -> int:
    from urbanunits import pipeline, redraw
    from urbanunits.config import Config, load_config
    from urbanunits.run_store import STAGE_MAPS, up_to_date

    cfg = load_config(config)
    if command in STAGE_MAPS and not force:
        current = up_to_date(cfg, command)
        if current is not None:
            print(current)
            return 0
    runners: dict[str, Callable[[Config], pipeline.StageResult]] = {
        "ingest": pipeline.run_ingest, "units": pipeline.run_units,
        "packages": pipeline.run_packages, "lifecircle": pipeline.run_lifecircle,
        "programme": pipeline.run_programme,
        "sites": pipeline.run_sites,
        # `all` writes the HTML map into the run folder with the rest (cfg.html_path)
        "maps": redraw.run_maps, "all": lambda c: pipeline.run_all(c, webmap=True),
    }
    t0 = time.perf_counter()
    result = runners[command](cfg)
    # the whole command, maps and tables included (the stage's own clock stops before the maps
    # drawn in other processes are saved)
    result.seconds = time.perf_counter() - t0
    print(result.report())
    if "html" in result.extra:
        print(f"export: HTML map {result.extra['html']} (open it in any web browser; "
              "no internet needed)")
    # the skipped stages were logged as one warning line each
    return EXIT_SKIPPED if result.skipped else 0


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``urbanunits`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    # A run allocates millions of short-lived objects (frames, shapes, matplotlib artists) over a
    # large long-lived heap; at the default threshold (700) the cyclic collector sweeps that heap
    # often: 0.65 s of the demo `all`, 0.2 s at 10 000. Memory use stays the same (most garbage
    # is freed by reference counting, not by the collector).
    gc.set_threshold(GC_THRESHOLD, 20, 10)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(verbose=verbose, quiet=bool(getattr(args, "quiet", False)))
    os.environ.setdefault("MPLBACKEND", "Agg")
    # `kill` (SIGTERM) unwinds like Ctrl-C: the staging folder is removed and the lock released.
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread (embedded use)
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command in ("fetch", "clip"):
            return _run_source(args)
        if args.command == "batch":
            return _run_batch(args)
        if args.command in ("publish", "export"):
            return _run_publish(args)
        return _run(args.command, getattr(args, "config", None),
                    force=bool(getattr(args, "force", False)))
    except UserError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if argv is None:
            # The program itself (console script, python -m), about to exit: Python's
            # finalization collects garbage over the whole heap again and again while it tears
            # the modules down (0.4 s after a demo `all`, every output already written). Frozen
            # objects are left to the operating system; atexit handlers still run.
            gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
