"""Command line: ``urbanunits <command> [--config FILE]``.

User mistakes (:class:`~urbanunits.errors.UserError`) print one line,
``error: <where>: <what> — <what to do>``, and exit with status 2; ``--verbose`` adds the
traceback. Anything else is a bug and shows its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from urbanunits import __version__
from urbanunits.errors import UserError

__all__ = ["main"]

logger = logging.getLogger("urbanunits")

_STAGES = ("ingest", "units", "packages", "lifecircle", "sites", "maps", "all")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS,
                        help="TOML config (default: configs/lujiazui.toml)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="debug logging and tracebacks")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="warnings and errors only")
    p = argparse.ArgumentParser(
        prog="urbanunits", parents=[common],
        description="Update units, renewal packages and 15-minute life circles from OSM data.")
    p.add_argument("--version", action="version", version=f"urbanunits {__version__}")
    sub = p.add_subparsers(dest="command", metavar="command", required=True)
    sub.add_parser("ingest", parents=[common], help="parse the OSM extract and report layers")
    sub.add_parser("units", parents=[common], help="update units (更新单元)")
    sub.add_parser("packages", parents=[common], help="renewal packages (片区化改造)")
    sub.add_parser("lifecircle", parents=[common], help="15-minute life circles (生活圈)")
    sub.add_parser("sites", parents=[common],
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
    return p


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


def _run(command: str, config: str | None) -> int:
    from urbanunits import pipeline
    from urbanunits.config import Config, load_config

    cfg = load_config(config)
    runners: dict[str, Callable[[Config], pipeline.StageResult]] = {
        "ingest": pipeline.run_ingest, "units": pipeline.run_units,
        "packages": pipeline.run_packages, "lifecircle": pipeline.run_lifecircle,
        "sites": pipeline.run_sites,
        "maps": pipeline.run_maps, "all": pipeline.run_all,
    }
    result = runners[command](cfg)
    print(result.report())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``urbanunits`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(verbose=verbose, quiet=bool(getattr(args, "quiet", False)))
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        if args.command in ("fetch", "clip"):
            return _run_source(args)
        return _run(args.command, getattr(args, "config", None))
    except UserError as exc:
        if verbose:
            traceback.print_exc()
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
