"""The served OpenAPI document matches the Edge Impulse operations field for field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

SPEC = Path(__file__).parents[3] / "shared" / "spec" / "edge-impulse-user-api-subset.openapi.yaml"
SEED_OPERATIONS = {
    "/api-user-reset-password": ("post", "resetPassword"),
    "/api-user-request-reset-password": ("post", "requestResetPassword"),
    "/api-user-verify-reset-password-code": ("post", "verifyResetPassword"),
    "/api-user-create": ("post", "createUser"),
    "/api-login": ("post", "login"),
    "/api/user": ("get", "getCurrentUser"),
}


def _spec() -> dict[str, Any]:
    for candidate in (SPEC, Path("../shared/spec") / SPEC.name):
        if candidate.exists():
            return dict(yaml.safe_load(candidate.read_text()))
    pytest.fail(f"Edge Impulse spec not found at {SPEC}")


def _resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def _fields(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """Flattened (property -> type, required) of a schema, following $ref and allOf."""
    if "$ref" in schema:
        return _fields(doc, _resolve(doc, schema["$ref"]))
    props: dict[str, str] = {}
    required: set[str] = set(schema.get("required", []))
    for part in schema.get("allOf", []):
        p, r = _fields(doc, part)
        props.update(p)
        required |= r
    for name, prop in schema.get("properties", {}).items():
        props[name] = prop.get("type", "ref" if "$ref" in prop else "any")
    return props, required


@pytest.fixture
def served(client: TestClient) -> dict[str, Any]:
    resp = client.get("/v1/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


@pytest.mark.parametrize("path", sorted(SEED_OPERATIONS))
def test_operation_ids_and_schemas(served: dict[str, Any], path: str) -> None:
    spec = _spec()
    method, op_id = SEED_OPERATIONS[path]
    ours, theirs = served["paths"][path][method], spec["paths"][path][method]
    assert ours["operationId"] == theirs["operationId"] == op_id
    if "requestBody" in theirs:
        t_schema = theirs["requestBody"]["content"]["application/json"]["schema"]
        o_schema = ours["requestBody"]["content"]["application/json"]["schema"]
        assert o_schema["$ref"].rsplit("/", 1)[1] == t_schema["$ref"].rsplit("/", 1)[1]
        assert _fields(served, o_schema) == _fields(spec, t_schema)
    t_resp = theirs["responses"]["200"]["content"]["application/json"]["schema"]
    o_resp = ours["responses"]["200"]["content"]["application/json"]["schema"]
    assert o_resp["$ref"].rsplit("/", 1)[1] == t_resp["$ref"].rsplit("/", 1)[1]
    t_props, t_req = _fields(spec, t_resp)
    o_props, o_req = _fields(served, o_resp)
    for name in t_req:  # every field the clients require is there and required
        assert name in o_props and name in o_req, name
    for name in o_props:
        assert name in t_props, f"{name} is not an Edge Impulse field"


def test_optional_fields_are_plain(served: dict[str, Any]) -> None:
    error = served["components"]["schemas"]["GenericApiResponse"]["properties"]["error"]
    assert error["type"] == "string"
    assert "anyOf" not in error and "nullable" not in error
    assert served["components"]["schemas"]["GenericApiResponse"]["required"] == ["success"]


def test_security_schemes_exactly_as_the_seed(served: dict[str, Any]) -> None:
    seed = Path(SPEC).parent / "seed-reset-password.md"
    text = seed.read_text()
    block = text.split("````yaml", 1)[1].split("````", 1)[0]
    block = block.split("\n", 1)[1]
    seed_doc = yaml.safe_load(block)
    assert served["components"]["securitySchemes"] == seed_doc["components"]["securitySchemes"]
    assert served["paths"]["/api-user-reset-password"]["post"]["security"] == []
    assert "security" not in served["paths"]["/api/user"]["get"]
    assert served["security"] == seed_doc["security"]
