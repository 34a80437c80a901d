"""core/ is pure: it imports nothing from the rest of Relatch, nor web, database or mail."""

from __future__ import annotations

import ast
from pathlib import Path

import relatch.core

FORBIDDEN = ("relatch.", "fastapi", "starlette", "sqlalchemy", "aiosmtplib", "redis", "os")


def test_core_imports_nothing_impure() -> None:
    core = Path(relatch.core.__file__).parent
    offenders = []
    for path in core.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("relatch.core"):
                    continue
                if any(name == f.rstrip(".") or name.startswith(f) for f in FORBIDDEN):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
