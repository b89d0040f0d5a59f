"""The package's shape: dependencies point one way in few layers, private names stay in their module, and the
modules that must stay light (no torch) do."""
from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ecglib"
MAX_LAYERS = 10


def _name(path: Path) -> str:
    """ecglib/data/beats.py -> data.beats; ecglib/data/__init__.py -> data; ecglib/__init__.py -> (root)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts) or "(root)"


FILES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
MODULES = sorted(FILES)


def _resolve(module: str, node: ast.ImportFrom) -> list[tuple[str, str]]:
    """(imported module, imported name) pairs of one ``from ... import`` inside ``module``."""
    is_package = FILES[module].name == "__init__.py"
    if node.level:
        base = [] if module == "(root)" else module.split(".")
        base = base if is_package else base[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    elif node.module and node.module.split(".")[0] == "ecglib":
        target = ".".join(node.module.split(".")[1:])
    else:
        return []
    out = []
    for alias in node.names:
        sub = f"{target}.{alias.name}" if target else alias.name
        out.append((sub, "") if sub in FILES else (target or "(root)", alias.name))
    return out


@cache
def imports_of(module: str) -> frozenset[tuple[str, str]]:
    """(module, name) pairs that ``module`` imports from ecglib anywhere in its source, lazy imports included."""
    found = set()
    for node in ast.walk(ast.parse(FILES[module].read_text())):
        if isinstance(node, ast.ImportFrom):
            found.update(_resolve(module, node))
        elif isinstance(node, ast.Import):
            found.update((a.name.split(".", 1)[1], "") for a in node.names if a.name.startswith("ecglib."))
    return frozenset((m, n) for m, n in found if m in FILES and m != module)


def graph() -> dict[str, set[str]]:
    return {m: {dep for dep, _ in imports_of(m)} for m in MODULES}


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [module])


def layers() -> dict[str, int]:
    """Each module's layer: 0 when it imports no ecglib module, else one above the highest it imports."""
    edges, memo = graph(), {}

    def layer(m: str) -> int:
        if m not in memo:
            memo[m] = 0 if not edges[m] else 1 + max(layer(d) for d in edges[m])
        return memo[m]

    return {m: layer(m) for m in MODULES}


def test_the_package_has_at_most_ten_layers():
    depth = layers()
    deepest = max(depth, key=depth.get)
    assert depth[deepest] + 1 <= MAX_LAYERS, (deepest, depth)


def test_no_module_imports_a_private_name_of_another():
    private = sorted((m, dep, name) for m in MODULES for dep, name in imports_of(m) if name.startswith("_"))
    assert private == []


def test_only_the_command_line_imports_the_command_line():
    importers = [m for m in MODULES if any(dep.split(".")[0] == "cli" for dep in graph()[m])
                 and m.split(".")[0] != "cli" and m != "__main__"]
    assert importers == []


@pytest.mark.parametrize("module, allowed", [
    ("metrics", {"data.facts"}),  # pure metrics: the class facts only
    ("models", {"config", "errors"}),  # models know no data
    ("runs", {"checkpoints", "config", "data.facts", "errors", "files", "models"}),  # run folders read no beats
])
def test_low_modules_depend_on_little(module, allowed):
    assert graph()[module] <= allowed, graph()[module] - allowed


@pytest.mark.parametrize("module, forbidden", [
    ("report.figures", "experiments.sweep"),  # figures take results tables, they run no sweep
    ("ec57.annotate", "training"),  # labelling a record needs a trained model, not the training loop
    ("data.sources", "training"),
    ("experiments.study", "report.figures"),
])
def test_dependencies_that_must_not_exist(module, forbidden):
    assert not any(dep == forbidden or dep.startswith(forbidden + ".") for dep in graph()[module])


def test_package_init_files_are_small_public_surfaces():
    """No re-export walls: a package's __init__ imports nothing eagerly (its surface resolves on first use) and
    lists a few dozen names at most; a module never re-exports what another defines behind a noqa."""
    for module, path in FILES.items():
        text = path.read_text()
        hidden = [line for line in text.splitlines() if line.lstrip().startswith("from .") and "noqa: F401" in line]
        assert hidden == [], (module, "re-exports behind noqa: F401")
        if path.name == "__init__.py" and module != "cli":  # the command's package holds main itself
            tree = ast.parse(text)
            assert not [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.level], \
                (module, "imports its submodules eagerly")
            exports = text.count('": "') + text.count("dict.fromkeys(")
            assert exports <= 40, (module, exports)


@pytest.mark.parametrize("module", [m for m in MODULES if m.split(".")[0] != "cli" and m != "__main__"])
def test_importing_a_module_does_not_load_the_command_line(module):
    """In a fresh interpreter per module: what importing it really loads."""
    name = "ecglib" if module == "(root)" else f"ecglib.{module}"
    code = f"import sys, {name}; print(' '.join(sorted(m for m in sys.modules if m.startswith('ecglib'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "ecglib.cli" not in out, out


@pytest.mark.parametrize("module", ["config", "params", "data", "data.facts", "data.sources", "files", "errors",
                                    "cli.arguments", "ec57.bxb", "ec57.score"])
def test_torch_free_modules_do_not_import_torch(module):
    """`ecglib prepare`, `ecglib score` and the command line's defaults must not pay for importing torch."""
    code = f"import sys, ecglib.{module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
