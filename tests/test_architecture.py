"""The shape of the package: no import cycles, and stages import no reader or writer.

Read from the source (every ``import`` statement, inside functions too, except those under
``if TYPE_CHECKING:``), so a lazy import cannot hide a cycle. ``make lint`` enforces the same
rules with import-linter (``.importlinter``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src" / "urbanunits"

#: Pure stages: frames in, frames out.
STAGES = {"units", "unit_lines", "unit_faces", "unit_regions", "unit_classes", "unit_ids",
          "packages", "communities", "package_barriers", "package_clusters",
          "lifecircle", "isochrones", "network", "network.graph", "network.snap", "network.entries",
          "network.router", "programme", "phasing", "elevators", "sites", "covering",
          "floor_area", "tables"}
#: Writers, drawing and orchestration: stages never import them.
OUTSIDE = {"export", "maps", "map_files", "programme_maps", "sites_maps", "pipeline", "cli",
           "publish", "webmap", "runfile", "batch", "split", "_outputs"}
#: Stage → sources imports allowed (none: since issue 12 every input comes through
#: ``urbanunits.sources.inputs``). The test fails if one is added.
SOURCES_DEBT: set[tuple[str, str]] = set()


def _module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts) or "__init__"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "urbanunits"):
            base = node.module.removeprefix("urbanunits").lstrip(".")
            for a in node.names:  # `from urbanunits.sources import _cache` names a module
                sub = f"{base}.{a.name}" if base else a.name
                out.add(sub if (SRC / Path(*sub.split("."))).with_suffix(".py").is_file()
                         or (SRC / Path(*sub.split(".")) / "__init__.py").is_file() else base)
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("urbanunits.") for a in node.names
                       if a.name.startswith("urbanunits."))
    return out


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    mods = {_module(p): p for p in SRC.rglob("*.py")}
    for name, path in mods.items():
        g.add_node(name)
        for target in _imports(path):
            if target in mods and target != name:
                g.add_edge(name, target)
    return g


def test_no_import_cycles() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(_graph()) if len(c) > 1]
    assert not cycles, cycles


def test_stages_import_no_writer_and_no_new_reader() -> None:
    g = _graph()
    for stage in STAGES:
        bad = sorted(t for t in g.successors(stage) if t in OUTSIDE)
        assert not bad, f"{stage} imports {bad}"
    debt = {(s, t) for s in STAGES for t in g.successors(s) if t.startswith("sources")}
    assert debt == SOURCES_DEBT


#: Modules allowed to import project modules inside functions: the command line defers the
#: whole toolkit so that ``urbanunits --help`` and errors in arguments answer at once.
DEFERRED_OK = {"cli"}


def test_project_imports_at_module_level() -> None:
    """No import of a project module inside a function (issue 12): a cycle cannot hide there."""
    found = []
    for path in SRC.rglob("*.py"):
        if _module(path) in DEFERRED_OK:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                        "urbanunits")) or (isinstance(node, ast.Import) and any(
                        a.name.startswith("urbanunits") for a in node.names)):
                    found.append(f"{_module(path)}.{fn.name} line {node.lineno}")
    assert not found, found
