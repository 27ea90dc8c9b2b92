"""The layout holds: layers import only downwards, the trainer stands alone, the CLI stays light,
and functions, files and commands stay small enough to read. Measured from the source with `ast`.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IRQ = ROOT / "irq"
BASE = {"errors", "faults", "config", "config_files", "cache_files", "inputs", "ui", "fields", "__init__"}
# lower rank first; a folder imports itself and lower ranks only (never a sibling of its own rank)
RANK = {"base": 0, "ledger": 1, "backends": 2, "policy": 2, "formats": 3, "experiments": 4, "jobs": 5, "results": 6,
        "daemon": 6, "cli": 7, "__main__": 8}
HEAVY = ("sqlmodel", "sqlalchemy", "paramiko", "scipy", "matplotlib", "torch")


def layer(module: str) -> str:
    """'irq.jobs.submit' -> 'jobs'; 'irq.errors' -> 'base'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    return "base" if parts[1] in BASE else parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement names, at module level or inside a function."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            if node.module == "irq":  # `from irq import errors`
                out += [(node.lineno, f"irq.{a.name}") for a in node.names]
    return out


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def allowed(importer: str, imported: str) -> bool:
    """May module `importer` import module `imported`?"""
    me, other = layer(importer), layer(imported)
    return me == other or RANK[other] < RANK[me]


def test_layers_import_only_downwards():
    bad = []
    for path in sources(IRQ):
        me = module_name(path)
        bad += [f"{path.relative_to(ROOT)}:{line} imports {name}" for line, name in imports(path)
                if (name == "irq" or name.startswith("irq.")) and not allowed(me, name)]
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize("importer,imported,ok", [
    ("irq.cli.jobs", "irq.jobs.submit", True), ("irq.daemon.loop", "irq.jobs.submit", True),
    ("irq.jobs.status", "irq.experiments.views", True), ("irq.formats.render", "irq.config", True),
    ("irq.ledger.database", "irq.errors", True), ("irq.ui", "irq.errors", True),
    ("irq.jobs.submit", "irq.daemon.loop", False), ("irq.experiments.edit", "irq.jobs.sync", False),
    ("irq.ledger.models", "irq.formats.export", False), ("irq.policy.diagnose", "irq.formats.export", False),
    ("irq.ledger.models", "irq.fields", True), ("irq.results.service", "irq.jobs.actions", True),
    ("irq.config", "irq.ledger.database", False), ("irq.daemon.demo", "irq.cli", False),
])
def test_the_rule(importer, imported, ok):
    assert allowed(importer, imported) is ok


def test_nothing_imports_the_cli():
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in sources(IRQ) if layer(module_name(p)) not in ("cli", "__main__")
           for line, name in imports(p) if name == "irq.cli" or name.startswith("irq.cli.")]
    assert not bad


def test_the_trainer_imports_nothing_of_irq():
    bad = [f"{p.relative_to(ROOT)}:{line} {name}" for p in sources(ROOT / "trainer")
           for line, name in imports(p) if name == "irq" or name.startswith("irq.")]
    assert not bad


def test_irq_never_imports_torch_or_the_trainer():
    bad = [f"{p.relative_to(ROOT)}:{line} {name}" for p in sources(IRQ)
           for line, name in imports(p) if name.split(".")[0] in ("torch", "trainer")]
    assert not bad


def test_loading_the_cli_loads_no_heavy_module():
    probe = f"import sys, irq.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip() == "", r.stdout


# -- sizes ---------------------------------------------------------------------------------------
def functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def length(fn: ast.AST) -> int:
    return fn.end_lineno - fn.lineno + 1


def all_functions() -> list[tuple[str, int]]:
    return [(f"{p.relative_to(ROOT)}:{fn.lineno} {fn.name}", length(fn)) for p in sources(IRQ) for fn in functions(p)]


def p90(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def test_no_function_over_60_lines():
    long = [f"{name}: {n} lines" for name, n in all_functions() if n > 60]
    assert not long, "\n".join(long)


def test_p90_function_length_at_most_30():
    assert p90([n for _, n in all_functions()]) <= 30


def test_no_file_over_400_lines():
    big = [f"{p.relative_to(ROOT)}: {n}" for p in sources(IRQ) if (n := len(p.read_text().splitlines())) > 400]
    assert not big


def command_bodies() -> list[tuple[str, int]]:
    """Every function the CLI registers (`@app.command`, `@<group>.command`): its body, docstring excluded."""
    out = []
    for path in sources(IRQ / "cli"):
        for fn in functions(path):
            if not any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
                       for d in fn.decorator_list):
                continue
            body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
            out.append((f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}", body[-1].end_lineno - body[0].lineno + 1))
    return out


def test_every_cli_command_body_is_at_most_25_lines():
    bodies = command_bodies()
    assert len(bodies) >= 20  # the measure finds the commands (18 verbs and the daemon's 4)
    long = [f"{name}: {n}" for name, n in bodies if n > 25]
    assert not long, "\n".join(long)


def test_the_measures_see_a_long_function(tmp_path):
    src = tmp_path / "long.py"
    src.write_text("def f():\n" + "    x = 1\n" * 70)
    assert [length(fn) for fn in functions(src)] == [71]
    assert p90([1] * 9 + [100]) == 100 and p90([1] * 10 + [100]) == 1


@pytest.mark.parametrize("name,expected", [("irq.cli", "cli"), ("irq.errors", "base"), ("irq", "base"),
                                           ("irq.backends.ssh.session", "backends")])
def test_layer_of(name, expected):
    assert layer(name) == expected
