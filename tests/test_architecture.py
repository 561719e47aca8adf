"""The package's layering: imports point down (data <- analysis <- modeling <- inference <- top), no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fer"
# Lower numbers sit lower: a module may import its own layer's modules and anything below.
LAYERS = {
    "fer.errors": 0,
    "fer.quiet": 0,
    "fer.paths": 0,
    "fer.atomic": 0,
    "fer.data": 1,
    "fer.analysis": 2,
    "fer.modeling": 3,
    "fer.inference": 4,
    "fer.pipeline": 5,
    "fer.release": 6,
    "fer.demo": 7,
    "fer.cli": 7,
}
TOP = {"fer", "fer.__main__"}  # the public facade and the entry point may use everything


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every fer module `path` imports, at module level or inside functions (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from fer.data import loading` imports fer.data.loading; `from fer.x import name` imports fer.x
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            ]
        else:
            continue
        found.update(n for n in names if n == "fer" or n.startswith("fer."))
    return found


def layer_of(name: str) -> int | None:
    for prefix, layer in sorted(LAYERS.items(), key=lambda kv: -len(kv[0])):
        if name == prefix or name.startswith(prefix + "."):
            return layer
    return None


def test_every_module_has_a_layer_and_a_one_line_docstring():
    for name, path in modules().items():
        if name in TOP:
            continue
        assert layer_of(name) is not None, f"{name}: add it to a layer in tests/test_architecture.py"
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and doc.strip(), f"{path}: needs a docstring that says its one job"


def test_imports_point_down():
    mods = modules()
    wrong = []
    for name, path in mods.items():
        if name in TOP:
            continue
        for imported in imports_of(path, set(mods)):
            if imported in TOP:
                wrong.append(f"{name} imports the package facade {imported} (import the module itself)")
            elif layer_of(imported) > layer_of(name):
                wrong.append(f"{name} (layer {layer_of(name)}) imports {imported} (layer {layer_of(imported)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    mods = modules()
    graph = {
        name: {m for m in imports_of(path, set(mods)) if m in mods and m not in TOP} for name, path in mods.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_checker_sees_a_wrong_way_import(tmp_path):
    # The rule itself must be able to fail: a data module importing inference is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from fer.inference.predict import load_model\n")
    imported = imports_of(bad, set(modules()))
    assert imported == {"fer.inference.predict"} and layer_of("fer.inference.predict") > layer_of("fer.data.loading")


MAX_FUNCTION_LINES = 60  # one screen of code: the docstring does not count
# Functions allowed past it, each with the reason (none today; add one here rather than raise the limit).
LONG_FUNCTIONS: dict[str, str] = {}


def test_functions_fit_one_screen():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines = node.end_lineno - node.lineno + 1
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines -= first.end_lineno - first.lineno + 1
            if lines > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in LONG_FUNCTIONS:
                long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, "split these into steps (or allow-list one with its reason): " + ", ".join(long)
