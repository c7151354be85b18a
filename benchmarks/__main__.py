"""Run every benchmark module (``python -m benchmarks [name ...]``) and print their reports.

Each module runs in its own process, so that the peak-memory figures a benchmark reports (the
process's maximum RSS) are its own and not left over from the one before.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import time
from pathlib import Path


def _run_one(name: str) -> int:
    mod = importlib.import_module(f"benchmarks.{name}")
    for line in mod.main():
        print(line, flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        return _run_one(argv[1])
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    if not names:
        print("no benchmarks found")
        return 1
    status = 0
    for name in names:
        t0 = time.perf_counter()
        print(f"== {name} ==", flush=True)
        rc = subprocess.call([sys.executable, "-m", "benchmarks", "--one", name],
                             cwd=here.parent)
        status = status or rc
        print(f"   ({time.perf_counter() - t0:.1f} s in all)\n", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
