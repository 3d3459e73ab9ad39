"""The package's import graph has no circle, and what runs inside kernel dirs imports only the
standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ozkernels"


def module_name(path: Path) -> str:
    """ozkernels.a.b for ozkernels/a/b.py (and ozkernels.a for ozkernels/a/__init__.py)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, code: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere (functions and TYPE_CHECKING too)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.add(sub)
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle in the graph (as a path that returns to its start), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


@pytest.mark.parametrize(("graph", "circle"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ({"x": {"y", "z"}, "y": {"z"}, "z": set()}, []),
])
def test_find_cycle(graph, circle):
    assert find_cycle(graph) == circle


KNOWN = {"ozkernels", "ozkernels.a", "ozkernels.b", "ozkernels.c", "ozkernels.d",
         "ozkernels.e", "ozkernels.p", "ozkernels.p.q"}


@pytest.mark.parametrize(("name", "is_package", "code", "expected"), [
    ("ozkernels.a", False, "from .b import thing\n", {"ozkernels.b"}),
    ("ozkernels.a", False, "from . import c, helper\n", {"ozkernels.c", "ozkernels"}),
    ("ozkernels.a", False, "def f():\n    from .d import x\n", {"ozkernels.d"}),
    ("ozkernels.a", False, "import ozkernels.e\nimport json\n", {"ozkernels.e"}),
    ("ozkernels.a", False, "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from .b import T\n", {"ozkernels.b"}),
    ("ozkernels.p.q", False, "from ..b import x\nfrom . import y\n",
     {"ozkernels.b", "ozkernels.p"}),
    ("ozkernels.p", True, "from .q import x\n", {"ozkernels.p.q"}),
])
def test_the_import_finder(name, is_package, code, expected):
    assert imports(name, code, is_package, KNOWN) == expected


def test_no_import_circle_in_the_package():
    mods = modules()
    known = set(mods)
    graph = {name: imports(name, path.read_text(), path.name == "__init__.py", known)
             for name, path in mods.items()}
    assert graph["ozkernels.sync"], "the graph must see sync.py's imports"
    assert find_cycle(graph) == []


def test_kernel_dir_python_is_standard_library_only():
    stdlib = set(sys.stdlib_module_names) if hasattr(sys, "stdlib_module_names") else None
    files = [p for p in (PACKAGE / "kernel_files").glob("*.py") if p.name != "__init__.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.ImportFrom):
                assert not node.level, f"{path.name}: relative import"
            for name in names:
                top = name.split(".")[0]
                assert top != "ozkernels", f"{path.name} imports {name}"
                if stdlib is not None:
                    assert top in stdlib or top == "__future__", f"{path.name} imports {name}"
