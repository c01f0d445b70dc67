"""The layer rule of docs/architecture.md, read from the source with `ast`: every import, at module level and
inside functions, of every .py under the repository's top-level packages.

    core < runtimes < model < export < {benchmarks, android_demo, web_demo} < docs

A package imports only the packages below it (web_demo also uses benchmarks' helpers; docs/generate.py reads
everyone's results), the package graph has no cycle, and core/ and runtimes/ never import torch at module level.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from core.paths import REPO  # noqa: E402

BELOW_TOOLS = {"core", "runtimes", "model", "export"}
ALLOWED: Dict[str, Set[str]] = {
    "core": set(),
    "runtimes": {"core"},
    "model": {"core", "runtimes"},
    "export": {"core", "runtimes", "model"},
    "benchmarks": BELOW_TOOLS,
    "android_demo": BELOW_TOOLS,
    "web_demo": BELOW_TOOLS | {"benchmarks"},
    "docs": BELOW_TOOLS | {"benchmarks", "android_demo", "web_demo"},
}
TORCH_FREE = ("core", "runtimes")
NOT_PACKAGES = {"tests", "outputs", "exports", "node_modules"}


def top_level_packages(root: Path) -> List[str]:
    """The folders directly under root that hold Python files (tests/ excluded: it may import anything)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name not in NOT_PACKAGES and any(python_files(p)))


def python_files(folder: Path) -> List[Path]:
    return sorted(f for f in folder.rglob("*.py") if not NOT_PACKAGES & set(f.parts) and ".venv" not in f.parts)


def imports(tree: ast.AST) -> List[Tuple[str, int, bool]]:
    """(imported module, line, at module level) for every absolute import of a parsed file; relative imports
    stay inside their package. Module level: not inside a function body (under `if`/`try` still counts)."""
    found: List[Tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, not in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module, child.lineno, not in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def package_graph(root: Path) -> Dict[str, Dict[str, List[str]]]:
    """package -> {package it imports: ['file:line', ...]} over the top-level packages under root."""
    packages = top_level_packages(root)
    graph: Dict[str, Dict[str, List[str]]] = {p: {} for p in packages}
    for pkg in packages:
        for f in python_files(root / pkg):
            rel = f.relative_to(root).as_posix()
            for module, line, _ in imports(ast.parse(f.read_text(), filename=rel)):
                top = module.split(".")[0]
                if top in graph and top != pkg:
                    graph[pkg].setdefault(top, []).append(f"{rel}:{line}")
    return graph


def find_cycle(graph: Dict[str, Dict[str, List[str]]]) -> Optional[List[str]]:
    """A cycle of packages (first package repeated at the end), or None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def dfs(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = dfs(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def forbidden_edges(graph: Dict[str, Dict[str, List[str]]], allowed: Dict[str, Set[str]]) -> List[str]:
    """'a -> b (where)' for every import the direction table does not allow (a package missing from the table
    may import nothing of the repository's until it is placed in it)."""
    return [f"{a} -> {b} ({', '.join(where[:3])})" for a, deps in sorted(graph.items()) for b, where in sorted(deps.items())
            if b not in allowed.get(a, set())]


def module_level_torch(root: Path, packages) -> List[str]:
    return [f"{f.relative_to(root).as_posix()}:{line}" for pkg in packages for f in python_files(root / pkg)
            for module, line, top in imports(ast.parse(f.read_text())) if top and module.split(".")[0] == "torch"]


def test_package_graph_has_no_cycle():
    graph = package_graph(REPO)
    assert {"core", "runtimes", "model", "export", "benchmarks"} <= set(graph)
    assert find_cycle(graph) is None, f"package cycle: {' -> '.join(find_cycle(graph))}"


def test_every_import_goes_down_the_layers():
    graph = package_graph(REPO)
    assert set(graph) <= set(ALLOWED), f"place {sorted(set(graph) - set(ALLOWED))} in ALLOWED (docs/architecture.md)"
    assert forbidden_edges(graph, ALLOWED) == []


def test_core_and_runtimes_import_no_torch_at_module_level():
    assert module_level_torch(REPO, TORCH_FREE) == []


def _tree(root: Path, files: Dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_checks_catch_a_new_cycle_a_wrong_direction_and_module_level_torch(tmp_path):
    """The same functions on a tiny tree: core imports runtimes inside a function (the hidden lazy import)
    and runtimes imports torch at module level."""
    root = _tree(tmp_path, {
        "core/__init__.py": "",
        "core/a.py": "import os\n\ndef f():\n    from runtimes.b import g\n    return g\n",
        "runtimes/__init__.py": "from . import b\n",
        "runtimes/b.py": "import torch\nfrom core.a import f\n\ndef g():\n    import numpy\n",
        "tests/test_x.py": "import core, runtimes\n",  # tests/ is not a layer
    })
    graph = package_graph(root)
    assert graph == {"core": {"runtimes": ["core/a.py:4"]}, "runtimes": {"core": ["runtimes/b.py:2"]}}
    assert find_cycle(graph) == ["core", "runtimes", "core"]
    assert forbidden_edges(graph, ALLOWED) == ["core -> runtimes (core/a.py:4)"]
    assert module_level_torch(root, TORCH_FREE) == ["runtimes/b.py:1"]
    # the same tree with the lazy import removed: no cycle, nothing forbidden; torch inside a function is allowed
    _tree(root, {"core/a.py": "import os\n", "runtimes/b.py": "from core.a import os\n\ndef g():\n    import torch\n"})
    graph = package_graph(root)
    assert find_cycle(graph) is None and forbidden_edges(graph, ALLOWED) == []
    assert module_level_torch(root, TORCH_FREE) == []
