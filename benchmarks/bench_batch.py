"""Many cities: 8 runs of ``urbanunits all`` one after another vs. a Dask LocalCluster(2).

The "cities" are the shipped Lujiazui extract under 8 names, each with its own output folder (a
real city's work, maps included, parsed afresh: the parse cache is off). The sequential baseline
calls the same task function in this process; the cluster runs it on 2 worker processes. On 2
cores the ideal ratio is 2×; process start-up and imports are the overhead.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from urbanunits.batch import run_batch, run_city

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
N_CITIES = 8
TARGET_SPEEDUP = 1.5  # of the 2× a 2-core machine allows


def _configs(folder: Path, tag: str) -> list[Path]:
    out = []
    for i in range(N_CITIES):
        p = folder / f"city{i}_{tag}.toml"
        p.write_text(f'name = "city{i}"\n[study_area]\n'
                     "bbox = [121.4865, 31.2225, 121.5125, 31.2475]\n"
                     f'[inputs]\nosm = "{ROOT / "data" / "raw" / "lujiazui.osm"}"\n'
                     f'[osm]\ncache = false\n[output]\ndir = "{folder / tag}"\n',
                     encoding="utf-8")
        out.append(p)
    return out


def main() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seq = _configs(folder, "seq")
        t0 = time.perf_counter()
        rows = [run_city(c) for c in seq]
        t_seq = time.perf_counter() - t0
        assert all(r["status"] == "done" for r in rows), rows
        par = _configs(folder, "par")
        t0 = time.perf_counter()
        res = run_batch(par, n_workers=2)
        t_par = time.perf_counter() - t0
        assert res.n_failed == 0
    ratio = t_seq / t_par
    yield f"{N_CITIES} demo-sized cities, make all each (maps included)"
    yield f"  sequential in one process: {t_seq:.1f} s ({t_seq / N_CITIES:.1f} s per city)"
    yield f"  LocalCluster(2 workers):   {t_par:.1f} s (start-up included)"
    verdict = "PASS" if ratio >= TARGET_SPEEDUP else "FAIL"
    yield f"  speed-up {ratio:.2f}× (target ≥ {TARGET_SPEEDUP}× on 2 cores) {verdict}"
