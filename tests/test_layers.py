"""Imports point downward only (DESIGN.md's layers): every `import ttscale...` in ttscale/, at module
level or inside a function, goes to a lower layer. The runtime and the analysis share a layer: neither
imports the other; both read and write a run's results through ttscale.results below them."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "ttscale"

# lowest first; the units of one layer do not import each other
LAYERS = [
    {"version", "confidence"},
    {"types", "schemas"},  # plain dataclasses: the problems and results; the config schemas
    {"reaper", "preload", "config"},  # process utilities; the config schemas
    {"backends", "graders", "models"},
    {"verifiers", "data"},
    {"strategies"},
    {"tracing", "results", "provenance"},  # traces, a run's rows and summary, what a run came from
    {"runtime", "analysis"},
    {"build"},  # configs into objects
    {"serve", "servers", "loggers"},
    {"cli_checks", "rerun"},  # the command's checks before its first job, and of a rerun
    {"cli"},
    {"__init__"},  # the package's API: exports every layer
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def unit_of(module: str) -> str:
    """ttscale.x.y -> x (a top-level module or package of ttscale); ttscale -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, file) for every import of ttscale in ttscale/."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        source = unit_of(".".join(p for p in rel.parts if p != "__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("ttscale"):
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                raise AssertionError(f"{path}: a relative import; ttscale imports by absolute name")
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name == "ttscale" or a.name.startswith("ttscale.")]
            else:
                continue
            found += [(source, unit_of(name), str(path.relative_to(ROOT.parent))) for name in names]
    return found


def test_every_unit_of_ttscale_has_a_layer():
    units = {unit_of(".".join(p.relative_to(ROOT.parent).with_suffix("").parts)) for p in ROOT.glob("*.py")}
    units |= {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert units == set(RANK), f"new: {sorted(units - set(RANK))}, gone: {sorted(set(RANK) - units)}"


def test_no_import_points_up_or_sideways():
    wrong = sorted({f"{path}: {src} imports {dst}" for src, dst, path in imports()
                    if src != dst and RANK[dst] >= RANK[src]})
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The test can fail: a function-level import of the analysis in the runtime is found."""
    fake = tmp_path / "ttscale"
    (fake / "results").mkdir(parents=True)
    (fake / "runtime.py").write_text("def f():\n    from ttscale.analysis import leaderboard\n")
    (fake / "results" / "__init__.py").write_text("import ttscale.types\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    assert ("runtime", "analysis", "ttscale/runtime.py") in imports()
    assert ("results", "types", "ttscale/results/__init__.py") in imports()
