"""The package's import graph: no module imports, directly or through others, a module that imports it back, and
the lower rooms do not reach up.

Every ``import`` of an ``azr_trl`` module counts, also the deferred ones inside functions (a cycle broken only by
deferring an import is still a cycle); for cycles, imports under ``if TYPE_CHECKING:`` do not run and are not counted.
For the direction of the arrows they count too: nothing below the trainer names it, even for type checking, and
``generation`` and ``seeding`` do not import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest


PACKAGE = Path(__file__).resolve().parent.parent / "azr_trl"


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package)}`` for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for stmt in node.orelse for n in [stmt, *_runtime_nodes(stmt)])
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph(type_checking: bool = False) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``; ``from pkg import name`` points at ``pkg.name`` when that is
    a module, else at ``pkg``. With ``type_checking``, the imports under ``if TYPE_CHECKING:`` count too."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: set[str | None] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree) if type_checking else _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                edges.update(known(alias.name) for alias in node.names if alias.name.split(".")[0] == "azr_trl")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "azr_trl":
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    edges.add(full if full in modules else known(source))
        graph[name] = {edge for edge in edges if edge is not None and edge != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_import_cycle_detector_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_the_executor_imports():
    graph = import_graph()
    assert "azr_trl.executor.local" in graph["azr_trl.executor.factory"]
    assert "azr_trl.executor.base" in graph["azr_trl.executor.local"]


def test_no_import_cycle_in_the_package():
    assert import_cycles(import_graph()) == []


# The top of the house: the public API, the trainer, the training script and the command line.
_ABOVE_THE_TRAINER = {"azr_trl", "azr_trl.azr_trainer", "azr_trl.launch", "azr_trl.cli"}


def _above_the_trainer(name: str) -> bool:
    return name in _ABOVE_THE_TRAINER or name.startswith("azr_trl.cli.")


def _names_imported(path: Path) -> set[str]:
    """Every name a module imports from a package module (``from azr_trl import AZRTrainer``), TYPE_CHECKING too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}


def test_nothing_below_the_trainer_imports_it():
    """Lower rooms receive the values or a narrow object they read, never `AZRTrainer` (not even to annotate)."""
    graph, modules = import_graph(type_checking=True), _modules()
    reaching_up = sorted(
        name
        for name in graph
        if not _above_the_trainer(name)
        and ("azr_trl.azr_trainer" in graph[name] or "AZRTrainer" in _names_imported(modules[name][0]))
    )
    assert reaching_up == []


def test_generation_and_seeding_do_not_import_each_other():
    graph = import_graph(type_checking=True)
    crossings = sorted(
        (name, target)
        for name, targets in graph.items()
        for target in targets
        for here, there in (("generation", "seeding"), ("seeding", "generation"))
        if name.startswith(f"azr_trl.{here}") and target.startswith(f"azr_trl.{there}")
    )
    assert crossings == []


def test_the_config_imports_nothing_of_the_rooms_it_configures():
    """Config defaults live with the config: `AZRConfig` reads no default from seeding, self-play or generation."""
    graph = import_graph(type_checking=True)
    config = {
        "azr_trl.azr_config",
        "azr_trl.azr_config_checks",
        "azr_trl.azr_config_docs",
        "azr_trl.azr_config_defaults",
    }
    rooms = ("azr_trl.seeding", "azr_trl.selfplay", "azr_trl.generation", "azr_trl.azr_trainer")
    assert sorted((name, t) for name in config for t in graph[name] if t.startswith(rooms)) == []


def test_the_import_rules_see_a_type_checking_import(tmp_path):
    """The rules read ``if TYPE_CHECKING:`` blocks: a room that annotates with the trainer is caught."""
    module = tmp_path / "room.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..azr_trainer import AZRTrainer\n"
    )
    assert "AZRTrainer" in _names_imported(module)


# Run only inside the sandbox, from byte code the template is sent with what they need in their globals.
_SANDBOX_ONLY = ("azr_trl.executor._sandbox", "azr_trl.executor._child")


@pytest.mark.parametrize(
    "module", sorted(name for name in _modules() if name.startswith("azr_trl.executor") and name not in _SANDBOX_ONLY)
)
def test_each_executor_module_imports_alone(module):
    """Imported first, in a fresh interpreter, each executor module loads (no order in which a cycle bites)."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
