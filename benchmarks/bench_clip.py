"""Clip throughput and peak memory on a generated province-sized PBF (>= 200 MB).

The synthetic extract imitates a real one where it matters for the clip: node IDs spread sorted
over today's 13-billion ID space (so libosmium's ID bitmaps are as large as on real data), ways
are short random walks whose nodes have nearby IDs and share junction nodes, 3 % of nodes carry
tags, objects carry version/timestamp/changeset metadata, and there are multipolygon and boundary
relations. It covers a Zhejiang-sized box (118–123 E, 27–31.5 N); the clip cuts Ningbo's central
city out of it. Files are cached under ``benchmarks/out/`` (git-ignored); generation takes a few
minutes the first time.

Each clip runs in its own subprocess so that its peak resident memory (``VmHWM``) is its own.
Compared in the same run: the obvious pure-Python node pass (``method="python"``, otherwise the
same algorithm), and libosmium reading the file once with no Python at all (the floor).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
SRC = Path(__file__).resolve().parents[1] / "src"
EXTENT = (118.0, 27.0, 123.0, 31.5)
NINGBO = (121.45, 29.78, 121.68, 29.98)  # configs/ningbo.toml study area
MAX_NODE_ID = 13_000_000_000
GENERATOR_VERSION = 2

__all__ = ["generate_pbf", "main"]


def generate_pbf(path: Path, *, n_nodes: int, seed: int = 7) -> Path:
    """Write a sorted synthetic PBF with about ``n_nodes`` nodes (cached by name).

    Parameters
    ----------
    path
        Output file (``.osm.pbf``); reused when it exists.
    n_nodes
        Number of nodes; ways hold on average 8 nodes.
    seed
        Seed of the numpy generator.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if path.is_file():
        return path
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Ways as random walks of 2–14 nodes; consecutive IDs within a way, gaps between ways.
    lengths = rng.integers(2, 15, size=n_nodes // 8 + 1)
    lengths = lengths[np.cumsum(lengths) <= n_nodes]
    n = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    first = np.zeros(n, dtype=bool)
    first[np.cumsum(lengths) - lengths] = True
    x0 = rng.uniform(EXTENT[0], EXTENT[2], size=len(lengths))
    y0 = rng.uniform(EXTENT[1], EXTENT[3], size=len(lengths))
    step = rng.normal(0.0, 0.0004, size=(n, 2))
    step[first] = 0.0
    walk = np.cumsum(step, axis=0)
    walk -= walk[starts]
    way_of = np.repeat(np.arange(len(lengths)), lengths)
    lon = np.clip(x0[way_of] + walk[:, 0], -180, 180)
    lat = np.clip(y0[way_of] + walk[:, 1], -90, 90)
    gaps = rng.integers(1, 2 * MAX_NODE_ID // len(lengths), size=n)  # way starts spread IDs
    gaps[~first] = 1 + rng.integers(0, 3, size=int((~first).sum()))
    ids = np.cumsum(gaps)
    tagged = rng.random(n) < 0.03
    stamp = 1_500_000_000 + (ids // 20).astype(np.int64)
    kinds = ["residential", "service", "footway", "tertiary", "primary"]
    t0 = time.perf_counter()
    part = path.with_name(path.name + ".part.pbf")  # renamed when complete: the cache is sound
    with osmium.SimpleWriter(str(part), overwrite=True) as w:
        for i in range(n):
            w.add_node(Node(id=int(ids[i]), location=(float(lon[i]), float(lat[i])), version=1,
                            timestamp=datetime.fromtimestamp(int(stamp[i]), UTC),
                            changeset=int(ids[i] // 300),
                            tags={"amenity": "restaurant"} if tagged[i] else {}))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        way_ids = np.cumsum(rng.integers(1, 2 * 1_400_000_000 // len(lengths), len(lengths)))
        junction = rng.random(len(lengths)) < 0.3
        for j in range(len(lengths)):
            refs = ids[offsets[j]:offsets[j + 1]].tolist()
            if junction[j] and j > 0:  # share a node with an earlier way
                refs.append(int(ids[offsets[rng.integers(0, j)]]))
            w.add_way(Way(id=int(way_ids[j]), nodes=refs, version=2,
                          timestamp=datetime.fromtimestamp(int(stamp[offsets[j]]), UTC),
                          changeset=int(way_ids[j] // 50),
                          tags={"highway": kinds[j % len(kinds)]}))
        n_rel = max(10, len(lengths) // 200)
        members = rng.integers(0, len(lengths), size=(n_rel, 4))
        for r in range(n_rel):
            tags = ({"type": "multipolygon", "landuse": "residential"} if r % 3 else
                    {"type": "boundary", "boundary": "administrative",
                     "admin_level": str(8 if r % 2 else 6)})
            w.add_relation(Relation(id=r + 1, version=1, tags=tags, members=[
                ("w", int(way_ids[m]), "outer") for m in sorted(set(members[r].tolist()))]))
    part.replace(path)
    print(f"   generated {path.name}: {n:,} nodes, {len(lengths):,} ways in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return path


_CHILD = """
import json, re, resource, sys, time
from pathlib import Path


def hwm_mb():
    # VmHWM is this process's own peak; ru_maxrss survives exec and would report the parent's.
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", text).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


mode, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
box = tuple(json.loads(sys.argv[4]))
import osmium
from urbanunits.sources.clip import clip_osm
base = hwm_mb()
t = time.perf_counter()
if mode == "read":
    osmium.IdTracker().complete_forward_references(src)  # libosmium reads everything once
    extra = {}
else:
    r = clip_osm(src, dst, bbox_ll=box, method=mode)
    extra = {"out_mb": r.output_bytes / 1e6, "inside": r.nodes_in_box, "passes": r.pass_seconds}
print(json.dumps({"s": time.perf_counter() - t, "peak_mb": hwm_mb(), "base_mb": base, **extra}))
"""


def _run(mode: str, src: Path, dst: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "URBANUNITS_PROGRESS": "0"}
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(src), str(dst),
                          json.dumps(NINGBO)], capture_output=True, text=True, env=env,
                         check=True)
    dst.unlink(missing_ok=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> list[str]:
    """Generate (or reuse) 50 MB and >= 200 MB extracts, clip Ningbo out of them, report."""
    lines = []
    files = {"small": generate_pbf(OUT / f"synthetic_5M_v{GENERATOR_VERSION}.osm.pbf",
                                   n_nodes=5_000_000),
             "large": generate_pbf(OUT / f"synthetic_26M_v{GENERATOR_VERSION}.osm.pbf",
                                   n_nodes=26_000_000)}
    for label, src in files.items():
        mb = src.stat().st_size / 1e6
        lines.append(f"{label}: {src.name}, {mb:,.0f} MB")
        modes = ["read", "index", "python"] if label == "large" else ["index"]
        results = {m: _run(m, src, OUT / f"clip_{m}.osm.pbf") for m in modes}
        for m, r in results.items():
            what = {"read": "libosmium read only (floor)", "index": "urbanunits clip",
                    "python": "clip, Python node pass (baseline)"}[m]
            text = (f"  {what:36s} {r['s']:7.1f} s  {mb / r['s']:6.1f} MB/s  "
                    f"peak RSS {r['peak_mb']:6,.0f} MB (interpreter and libraries "
                    f"{r['base_mb']:,.0f} MB)")
            if "inside" in r:
                text += f"  ({int(r['inside']):,} nodes in the box, {r['out_mb']:.1f} MB out)"
            lines.append(text)
        if "python" in results:
            speedup = results["python"]["s"] / results["index"]["s"]
            floor = results["index"]["s"] / results["read"]["s"]
            lines.append(f"  clip is {speedup:.1f}x faster than the Python node pass and takes "
                         f"{floor:.1f}x the time of one libosmium read")
            passes = results["index"].get("passes", {})
            if isinstance(passes, dict):
                lines.append("  clip passes: " + ", ".join(f"{k} {v:.1f} s"
                                                          for k, v in passes.items()))
    return lines


if __name__ == "__main__":  # pragma: no cover
    print("\n".join(main()))
