"""The package's shape: dependencies point one way, and no module but the command line imports the command line."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ecglib"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imports_of(module: str) -> set[str]:
    """The ecglib modules ``module`` imports anywhere in its source, function-level (lazy) imports included."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import y / from . import x
                names = [node.module] if node.module else [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "ecglib":
                names = [node.module.split(".")[1]] if "." in node.module else [a.name for a in node.names]
            else:
                continue
            found.update(n.split(".")[0] for n in names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ecglib."))
    return found & set(MODULES)


def test_the_import_graph_has_no_cycle():
    graph = {m: imports_of(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [module])


def test_only_the_command_line_imports_the_command_line():
    importers = [m for m in MODULES if "cli" in imports_of(m) and m not in ("cli", "__main__")]
    assert importers == []


@pytest.mark.parametrize("module", [m for m in MODULES if m not in ("cli", "__main__")])
def test_importing_a_module_does_not_load_the_command_line(module):
    """In a fresh interpreter per module: what importing it really loads, lazy package exports included."""
    code = (f"import sys, ecglib.{module}; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('ecglib'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "ecglib.cli" not in out, out


@pytest.mark.parametrize("module", ["config", "data", "files", "errors", "arguments"])
def test_torch_free_modules_do_not_import_torch(module):
    """`ecglib prepare` and the command line's defaults must not pay for importing torch."""
    code = f"import sys, ecglib.{module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_no_module_is_overgrown():
    """Modules of about 450 lines at most: one that grows past 510 holds two things and should be split."""
    sizes = {m: len((PACKAGE / f"{m}.py").read_text().splitlines()) for m in MODULES}
    assert max(sizes.values()) <= 510, sizes
