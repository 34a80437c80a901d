"""The Edge Impulse OpenAPI subset we serve, and a schema flattened for comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

SPEC = Path(__file__).parents[3] / "shared" / "spec" / "edge-impulse-user-api-subset.openapi.yaml"


def load_spec() -> dict[str, Any]:
    for candidate in (SPEC, Path("../shared/spec") / SPEC.name):
        if candidate.exists():
            return dict(yaml.safe_load(candidate.read_text()))
    pytest.fail(f"Edge Impulse spec not found at {SPEC}")


def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def schema_fields(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """Flattened (property -> type, required) of a schema, following $ref and allOf."""
    if "$ref" in schema:
        return schema_fields(doc, _resolve(doc, schema["$ref"]))
    props: dict[str, str] = {}
    required: set[str] = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        p, r = schema_fields(doc, part)
        props.update(p)
        required |= r
    for name, prop in schema.get("properties", {}).items():
        props[name] = prop.get("type", "ref" if "$ref" in prop else "any")
    return props, required
