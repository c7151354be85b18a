"""Many cities at once on Dask: one task per config, a summary row per city.

``urbanunits batch CONFIG...`` runs the same pipeline as ``urbanunits all`` for each config as one
task of a :mod:`dask.distributed` cluster: an embedded :class:`~dask.distributed.LocalCluster` of
worker *processes* by default (nothing to install or start), or the scheduler at ``--scheduler``
(``tcp://host:8786``, e.g. started with ``dask scheduler`` on another machine, workers with
``dask worker tcp://host:8786`` where the toolkit and the input files are installed at the same
paths). Each city writes its own outputs as ``urbanunits all`` would.

A failing city is one line in the summary and never stops the others. A rerun skips cities whose
config and input files are unchanged (their digest is kept next to the city's outputs), so an
interrupted batch resumes where it stopped. The summary across cities is a GeoPackage (study areas
in WGS84, one row per city), an XLSX and a comparison chart.

Why not a process pool: the same code then runs on one laptop and on a cluster, with Dask's
scheduling, worker restarts and dashboard, which a home-made pool would have to reinvent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from urbanunits import __version__, maps, pipeline
from urbanunits._files import atomic_path
from urbanunits.config import load_config
from urbanunits.errors import UserError
from urbanunits.sources.osm import study_area_polygon

__all__ = ["BatchResult", "city_digest", "dask_client", "run_batch", "run_city",
           "write_summary"]

logger = logging.getLogger(__name__)

#: Summary columns before the per-category shares (``share_<category>``).
SUMMARY_COLUMNS = ["city", "config", "status", "error", "seconds", "n_units", "n_communities",
                   "n_old_communities", "old_floor_area_m2", "n_packages", "population",
                   "share_all"]
_MARKER = "batch.json"


def _input_paths(cfg: Any) -> list[Path]:
    paths = [cfg.inputs.osm]
    for key in ("subdistricts", "subdistrict_codes", "inventory", "population_raster",
                "heritage_areas", "community_overrides"):
        p = getattr(cfg.inputs, key, None)
        if p is not None:
            paths.append(p)
    if cfg.study_area.boundary is not None:
        paths.append(cfg.study_area.boundary)
    for cat in cfg.lifecircle.categories.values():
        paths += [f.path for f in cat.files]
    return paths


def city_digest(cfg: Any) -> str:
    """Digest of a city's config and of every input file it names (size, mtime and path).

    Size and modification time stand in for a content hash: re-hashing a 200 MB extract on every
    rerun would cost more than the check saves; a file replaced by a copy with a new time is
    recomputed, never skipped wrongly.
    """
    h = hashlib.sha256()
    h.update(cfg.digest().encode())
    h.update(__version__.encode())
    for p in _input_paths(cfg):
        p = Path(p)
        st = p.stat() if p.exists() else None
        h.update(f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}".encode())
    return h.hexdigest()[:24]


def _marker(cfg: Any) -> Path:
    return Path(cfg.gpkg_path).with_name(f"{cfg.name}.{_MARKER}")


def _summary_row(layers: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    units = layers.get("update_units")
    comm = layers.get("communities")
    packages = layers.get("renewal_packages")
    row["n_units"] = len(units) if units is not None else 0
    if comm is not None and len(comm):
        old = comm["is_old"].astype(bool) if "is_old" in comm else pd.Series(False,
                                                                             index=comm.index)
        row["n_communities"] = len(comm)
        row["n_old_communities"] = int(old.sum())
        if "floor_area_m2" in comm:
            row["old_floor_area_m2"] = float(pd.to_numeric(comm.loc[old, "floor_area_m2"],
                                                           errors="coerce").sum())
    row["n_packages"] = len(packages) if packages is not None else 0
    cov = layers.get("lifecircle_summary")
    if cov is not None and len(cov):
        cats = cov[cov["subtype"].fillna("") == ""] if "subtype" in cov else cov
        for r in cats.itertuples(index=False):
            row[f"share_{r.category}"] = float(r.pop_share_ok)
        row["population"] = float(cats["population"].iloc[0])
    prog = layers.get("programme")
    if prog is not None and len(prog) and "year" in prog:
        row["programme_n_scheduled"] = int(prog["year"].notna().sum())
    return row


def _study_area_wkt(cfg: Any) -> str | None:
    try:
        return str(study_area_polygon(cfg).to_crs("EPSG:4326").geometry.iloc[0].wkt)
    except UserError:
        return None


def run_city(config: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Run ``urbanunits all`` for one config and return its summary row (a Dask task).

    Never raises: a bad config or input gives ``status = "failed"`` and the one-line error; an
    unexpected exception gives its type and message (a bug to report, still one line). An
    unchanged city (same :func:`city_digest` as its last finished run, outputs present) is
    ``"unchanged"`` and not recomputed unless ``force``.
    """

    t0 = time.perf_counter()
    row: dict[str, Any] = {"config": str(config), "city": Path(config).stem, "status": "failed",
                           "error": ""}
    try:
        cfg = load_config(config)
        row["city"] = cfg.name
        row["geometry_wkt"] = _study_area_wkt(cfg)
        digest = city_digest(cfg)
        marker = _marker(cfg)
        if not force and marker.is_file() and Path(cfg.gpkg_path).is_file():
            try:
                done = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                done = {}
            if done.get("digest") == digest:
                return {**done.get("row", {}), **row, "status": "unchanged",
                        "seconds": time.perf_counter() - t0}
        # each worker already has a core of its own: its maps are drawn in this process, not
        # in forked ones that would compete with the other cities
        with maps.saving_in_parallel(workers=1):
            res = pipeline.run_all(cfg)
        row.update(_summary_row(res.layers))
        row["status"] = "done"
        row["seconds"] = time.perf_counter() - t0
        marker.write_text(json.dumps({"digest": digest, "row": row}, default=str),
                          encoding="utf-8")
        return row
    except UserError as exc:
        row["error"] = exc.one_line()
    except Exception as exc:  # one city's bug must not stop the batch
        first = str(exc).splitlines()[0] if str(exc) else ""
        row["error"] = f"{type(exc).__name__}: {first} (a bug: rerun this config alone with -v)"
    row["seconds"] = time.perf_counter() - t0
    return row


@dataclass
class BatchResult:
    """One row per city (``status`` done/unchanged/failed) and the summary files written."""

    cities: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        """Cities that failed."""
        return int((self.cities["status"] == "failed").sum())

    def summary_lines(self) -> list[str]:
        """One line per city, for the terminal."""
        lines = []
        for r in self.cities.itertuples(index=False):
            if r.status == "failed":
                lines.append(f"{r.city}: FAILED — {r.error}")
                continue
            share = getattr(r, "share_all", float("nan"))
            pct = "" if pd.isna(share) else f", {100 * share:.0f}% of residents meet every standard"
            counts = ", ".join(_count(int(n), word) for n, word in (
                (r.n_units, "unit"), (r.n_old_communities, "old community"),
                (r.n_packages, "package")))
            lines.append(f"{r.city}: {r.status} ({r.seconds:.1f} s): {counts}{pct}")
        n_ok = len(self.cities) - self.n_failed
        lines.append(f"{n_ok}/{len(self.cities)} cities done in {self.seconds:.1f} s")
        return lines


def _count(n: int, word: str) -> str:
    """``1 package``, ``2 packages``, ``3 old communities``."""
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A Dask client on ``scheduler``, or on a local cluster closed again afterwards."""
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            # for the cluster's whole life: a worker restarted after a crash starts the same way
            stack.enter_context(_local_worker_settings())
        client = _client(scheduler, n_workers)
        try:
            yield client
        finally:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and scheduler is None:
                cluster.close()


def _local_worker_settings() -> Any:
    """Dask settings for the worker processes of a local cluster (a ``dask.config.set``).

    Processes, one thread each: the stages hold the GIL in shapely/pandas code paths, and a
    crashing city must not take the others down. Dask's nanny starts its workers with
    MALLOC_TRIM_THRESHOLD_=65536, which also turns glibc's adaptive mmap threshold off: every
    array over 128 KiB is then mapped and faulted in afresh (four times the page faults of a
    city run alone, 7 % more CPU). Left unset, workers allocate as a lone run does.

    On Linux, workers come from a fork server: a fresh single-threaded process, so forking it
    is safe, unlike forking this one (the client's event loop thread, a notebook's threads),
    and each worker starts with distributed, numpy and pandas already imported where spawning
    imports them again: 2.7 s → 1.4 s to start two workers. The server keeps the environment
    it started with, the first time a batch runs in this process. Elsewhere (macOS, where it
    is untested; Windows, which has none) workers are spawned.
    """
    import dask

    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                            "distributed.worker.multiprocessing-method": method})


def _client(scheduler: str | None, n_workers: int) -> Any:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except OSError as exc:
            raise UserError(f"--scheduler {scheduler}", f"no Dask scheduler answers ({exc})",
                            "start one with `dask scheduler` (and workers with `dask worker "
                            f"{scheduler}`), or leave --scheduler out for a local cluster"
                            ) from exc
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    return Client(cluster)


def run_batch(configs: Sequence[str | Path], *, scheduler: str | None = None,
              n_workers: int = 2, summary_dir: Path | None = None, force: bool = False,
              progress: Callable[[dict[str, Any]], None] | None = None) -> BatchResult:
    """Run every config as one task on a Dask cluster and write the summary across cities.

    Parameters
    ----------
    configs
        TOML files, one per city (or per part of a large area).
    scheduler
        Address of a running Dask scheduler; None starts a ``LocalCluster`` of ``n_workers``
        processes for the batch.
    n_workers
        Worker processes of the local cluster.
    summary_dir
        Folder for ``batch_summary.gpkg``, ``batch_summary.xlsx`` and ``batch_summary.png``;
        None writes no summary files.
    force
        Recompute unchanged cities too.
    progress
        Called with each city's row as it finishes.

    Returns
    -------
    BatchResult
        The rows in config order, the files written and the wall time.
    """
    from dask.distributed import as_completed

    t0 = time.perf_counter()
    paths = [str(Path(c).resolve()) for c in configs]
    if not paths:
        raise UserError("batch", "no config given", "name one or more TOML files")
    # A config that is missing or does not load is the user's to fix before anything starts
    # (one line, exit 2), not a city failing on the cluster after it has been started.
    for p in paths:
        if not Path(p).is_file():
            raise UserError(p, "no such config file",
                            "check the path (batch takes one TOML file per city: urbanunits "
                            "batch configs/a.toml configs/b.toml)")
        load_config(p)
    with dask_client(scheduler, n_workers) as client:
        futures = {client.submit(run_city, p, force=force, pure=False,
                                 key=f"city-{i}-{Path(p).stem}"): i
                   for i, p in enumerate(paths)}
        rows: dict[int, dict[str, Any]] = {}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                row = fut.result()
            except Exception as exc:  # a worker died: that city failed
                row = {"config": paths[i], "city": Path(paths[i]).stem, "status": "failed",
                       "error": f"worker lost ({type(exc).__name__}: {exc})", "seconds": 0.0}
            rows[i] = row
            logger.info("%s: %s", row["city"], row["status"])
            if progress is not None:
                progress(row)
    table = pd.DataFrame([rows[i] for i in range(len(paths))])
    for c in SUMMARY_COLUMNS:
        if c not in table:
            table[c] = pd.NA
    shares = sorted(c for c in table.columns if c.startswith("share_") and c != "share_all")
    rest = [c for c in table.columns if c not in SUMMARY_COLUMNS and c not in shares]
    table = table[SUMMARY_COLUMNS + shares + rest]
    result = BatchResult(cities=table, seconds=time.perf_counter() - t0)
    if summary_dir is not None:
        result.files = write_summary(table, summary_dir)
    return result


def write_summary(cities: pd.DataFrame, folder: Path) -> list[Path]:
    """Write ``batch_summary.gpkg`` (WGS84 study areas), ``.xlsx`` and a comparison chart."""
    import geopandas as gpd
    import shapely


    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    table = cities.drop(columns=["geometry_wkt"], errors="ignore")
    wkt = cities["geometry_wkt"] if "geometry_wkt" in cities else pd.Series([None] * len(cities))
    geom = [shapely.from_wkt(w) if isinstance(w, str) else None for w in wkt]
    gdf = gpd.GeoDataFrame(table.astype({c: "object" for c in table.columns
                                         if table[c].dtype == "object"}),
                           geometry=geom, crs="EPSG:4326")
    path = folder / "batch_summary.gpkg"
    with atomic_path(path) as tmp:
        gdf.to_file(tmp, layer="cities", driver="GPKG", engine="pyogrio")
    files.append(path)
    xlsx = folder / "batch_summary.xlsx"
    with atomic_path(xlsx) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        table.to_excel(xw, sheet_name="cities", index=False)
    files.append(xlsx)
    shares = [c for c in table.columns if c.startswith("share_")]
    ok = table[table["status"] != "failed"]
    if shares and len(ok):
        from matplotlib.figure import Figure

        with maps.map_style():
            fig = Figure(figsize=(max(6.0, 1.2 * len(ok) * len(shares) / 3), 4.5),
                         layout="constrained")
            ax = fig.add_subplot()
            data = ok.set_index("city")[shares].astype(float) * 100
            data.columns = [c.removeprefix("share_") for c in shares]
            data.plot.bar(ax=ax, rot=0)
            ax.set_ylabel("达标居民占比 residents meeting the standard (%)")
            ax.set_ylim(0, 100)
            ax.set_title("各城市生活圈达标 Life-circle coverage by city")
            ax.legend(title="类别 category", fontsize=7)
        files.append(maps.save_map(fig, folder / "batch_summary.png", dpi=150))
    return files
