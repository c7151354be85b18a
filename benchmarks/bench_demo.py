"""The demo run end to end, warm: ``urbanunits all`` on Lujiazui, the maps alone, start-up.

Targets (issue 17, item 4): ``urbanunits all --config <demo>`` warm (the parsed extract cached)
in ≤ 6 s, every map drawn and saved in ≤ 2 s together, ``urbanunits --help`` in ≤ 0.5 s.

``all`` and ``--help`` run as the user runs them, in a fresh process (imports included), on a
copy of ``configs/lujiazui.toml`` writing to a temporary folder; the first ``all`` fills the
cache and is not counted, the best of the next runs is. The maps are timed in one process: the
stages computed once in memory, then every map drawn and saved (``run_all(write=False)``), less
the same run without drawing. Imports are reported from ``python -X importtime``.

The package's bytecode is compiled first, as Python caches it on a user's first run: where
``PYTHONDONTWRITEBYTECODE`` is set (some CI and sandbox shells) every run would otherwise
compile the toolkit's modules again (about 0.2 s), which no installed toolkit does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "lujiazui.toml"
TARGET_ALL_S = 6.0
TARGET_MAPS_S = 2.0
TARGET_HELP_S = 0.5
REPEAT = 3


def _config(out: Path) -> Path:
    """The demo config with its inputs resolved and outputs (and caches) under ``out``."""
    text = DEMO.read_text(encoding="utf-8")
    text = re.sub(r'^osm = "(.*)"', lambda m: f'osm = "{ROOT / m.group(1)}"', text, flags=re.M)
    text = re.sub(r'^dir = ".*"', f'dir = "{out}"', text, flags=re.M)
    path = out / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _cli(*args: str) -> float:
    env = {**os.environ, "MPLBACKEND": "Agg", "URBANUNITS_PROGRESS": "0"}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "urbanunits.cli", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def _verdict(seconds: float, target: float) -> str:
    return f"{'PASS' if seconds <= target else 'FAIL'} (target ≤ {target:g} s)"


def _maps(cfg_path: Path) -> tuple[float, float, int]:
    """Best-of seconds of every stage in memory, and of the same with every map drawn."""
    from urbanunits import pipeline
    from urbanunits.config import load_config

    cfg = load_config(cfg_path)
    pipeline.run_all(cfg, write=False, draw=False)  # warm: cache read, lazy imports done
    compute, drawn, n = [], [], 0
    for _ in range(REPEAT):
        t = time.perf_counter()
        pipeline.run_all(cfg, write=False, draw=False)
        compute.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = pipeline.run_all(cfg, write=False, draw=True)
        drawn.append(time.perf_counter() - t)
        n = len(res.maps)
    return min(compute), min(drawn), n


def _imports() -> list[tuple[str, float]]:
    """Cumulative import time of the heavy packages in a run of ``all`` (from -X importtime)."""
    code = ("import urbanunits.cli, urbanunits.pipeline, urbanunits.maps, "
            "urbanunits.programme_maps, urbanunits.units, urbanunits.packages, "
            "urbanunits.lifecircle, urbanunits.sites, urbanunits.programme, urbanunits.export")
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True,
                         capture_output=True, text=True).stderr
    top: dict[str, float] = {}
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].strip()
        if "." not in name and not name.startswith("_"):
            top[name] = max(top.get(name, 0.0), int(parts[1]) / 1e6)
    return sorted(top.items(), key=lambda kv: -kv[1])


def _compile() -> None:
    """Write the toolkit's bytecode caches (``__pycache__``), as its first import does."""
    import compileall

    import urbanunits

    compileall.compile_dir(Path(urbanunits.__file__).parent, quiet=1)


def main() -> Iterator[str]:
    """Run the benchmark and yield report lines."""
    _compile()
    with tempfile.TemporaryDirectory(prefix="urbanunits_demo_") as tmp:
        cfg = _config(Path(tmp))
        help_s = min(_cli("--help") for _ in range(REPEAT))
        cold = _cli("all", "--config", str(cfg))
        warm = min(_cli("all", "--config", str(cfg)) for _ in range(REPEAT))
        compute, drawn, n_maps = _maps(cfg)
    maps_s = drawn - compute
    yield f"urbanunits --help: {help_s:.2f} s {_verdict(help_s, TARGET_HELP_S)}"
    yield f"urbanunits all, first run (cache filled): {cold:.1f} s"
    yield f"urbanunits all, warm (best of {REPEAT}): {warm:.2f} s {_verdict(warm, TARGET_ALL_S)}"
    yield (f"maps: {n_maps} drawn and saved in {maps_s:.2f} s {_verdict(maps_s, TARGET_MAPS_S)} "
           f"(stages in memory {compute:.2f} s; with the maps {drawn:.2f} s)")
    heavy = ", ".join(f"{name} {s:.2f} s" for name, s in _imports()[:8])
    yield f"imports of a full run, largest (cumulative): {heavy}"
