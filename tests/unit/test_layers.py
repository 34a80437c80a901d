"""Folders import only from their own layer or below, and never each other in a cycle.

Layers, lowest first (issue 9):
    core, settings  <  storage, infra  <  services  <  mail, auth, oauth  <  http, web, cli  <  app
where `infra` holds process machinery the services reach through their ports
(services/ports.py: the hashing pool), and `app` is relatch/app.py and relatch/workers.py,
the one place the process is assembled.
No exceptions list: a new upward import is a design question, not an entry here. Imports inside
functions count too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import relatch

LAYERS: dict[str, int] = {
    "core": 0,
    "settings": 0,
    "storage": 1,
    "infra": 1,
    "services": 2,
    "mail": 3,
    "auth": 3,
    "oauth": 3,
    "http": 4,
    "web": 4,
    "cli": 4,
    "app": 5,
    "workers": 5,
}

ROOT = Path(relatch.__file__).parent


def _unit(path: Path) -> str:
    """The folder (or top-level module) a source file belongs to."""
    parts = path.relative_to(ROOT).parts
    if len(parts) == 1:
        return "relatch" if parts[0] == "__init__.py" else parts[0].removesuffix(".py")
    return parts[0]


def _package(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).with_suffix("").parts
    pkg = ["relatch", *rel]
    return pkg if path.name == "__init__.py" else pkg[:-1]


def _imported_units(path: Path) -> set[tuple[str, int]]:
    """(folder, line) of every relatch import in a file, relative ones resolved."""
    found: set[tuple[str, int]] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(path)
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from relatch import web` names a folder, not an attribute.
            modules = (
                [f"{module}.{a.name}" for a in node.names] if module == "relatch" else [module]
            )
        for module in modules:
            parts = module.split(".")
            if parts[0] == "relatch" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def _graph() -> dict[str, dict[str, list[str]]]:
    """folder -> imported folder -> where (file:line)."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        unit = _unit(path)
        for target, line in _imported_units(path):
            if target != unit:
                graph[unit][target].append(f"{path.relative_to(ROOT)}:{line}")
    return graph


def test_every_folder_has_a_layer() -> None:
    units = {_unit(p) for p in ROOT.rglob("*.py")} - {"relatch"}
    assert sorted(units - LAYERS.keys()) == []


def test_no_import_from_a_higher_layer() -> None:
    offenders = [
        f"{where}: {unit} (layer {LAYERS[unit]}) imports {target} (layer {LAYERS[target]})"
        for unit, targets in _graph().items()
        if unit in LAYERS
        for target, places in targets.items()
        if target in LAYERS and LAYERS[target] > LAYERS[unit]
        for where in places
    ]
    assert offenders == [], "\n".join(offenders)


def test_no_cycle_between_folders() -> None:
    graph = {unit: set(targets) for unit, targets in _graph().items()}
    cycles: list[str] = []

    def visit(unit: str, trail: list[str]) -> None:
        for target in sorted(graph.get(unit, ())):
            if target in trail:
                cycle = [*trail[trail.index(target) :], target]
                # Report each cycle once, from its smallest folder name.
                if cycle[0] == min(cycle[:-1]):
                    cycles.append(" -> ".join(cycle))
            else:
                visit(target, [*trail, target])

    for unit in sorted(graph):
        visit(unit, [unit])
    assert sorted(set(cycles)) == [], "\n".join(sorted(set(cycles)))


# The front ends see accounts as services/account.py's frozen Account, never as ORM rows
# (issue 9: "routes import the ORM User directly").
FRONT_ENDS = ("http", "web")
FRONT_END_FILES = ("auth/dependencies.py",)


def test_front_ends_never_import_the_orm_models() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in FRONT_ENDS and rel.as_posix() not in FRONT_END_FILES:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "relatch.storage.models"
            ):
                offenders.append(f"{rel}:{node.lineno}: {node.module}")
    assert offenders == [], "\n".join(offenders)
