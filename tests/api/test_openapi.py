"""The served OpenAPI document matches the Edge Impulse operations field for field."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.helpers.openapi import SPEC, load_spec, schema_fields

OPERATIONS = [
    ("/api-user-reset-password", "post", "resetPassword"),
    ("/api-user-request-reset-password", "post", "requestResetPassword"),
    ("/api-user-verify-reset-password-code", "post", "verifyResetPassword"),
    ("/api-user-create", "post", "createUser"),
    ("/api-login", "post", "login"),
    ("/api/user", "get", "getCurrentUser"),
    ("/api/user/change-password", "post", "changePasswordCurrentUser"),
    # Activation (issue 11).
    ("/api/user/activate", "post", "activateCurrentUser"),
    ("/api/user/request-activation", "post", "requestActivationCodeCurrentUser"),
    # The account's life (issue 11).
    ("/api/user", "post", "updateCurrentUser"),
    ("/api/user", "delete", "deleteCurrentUser"),
    ("/api/users/{userId}", "get", "getUser"),
    ("/api/users/{userId}", "post", "updateUser"),
    ("/api/users/{userId}", "delete", "deleteUser"),
    ("/api/users/{userId}/request-activation", "post", "requestActivationCodeUser"),
    ("/api/users/{userId}/change-password", "post", "changePasswordUser"),
]


def official_client_fields(schema: str) -> set[str]:
    """The JSON fields of a model of the official Python client (`edgeimpulse-api`): the
    subset spec leaves some out that the real API sends (GetUserResponse.suspensionReason)."""
    module = re.sub(r"(?<!^)(?=[A-Z])", "_", schema).lower()
    model = getattr(importlib.import_module(f"edgeimpulse_api.models.{module}"), schema)
    return set(getattr(model, f"_{schema}__properties"))  # (a private, name-mangled list)


@pytest.fixture
def served(client: TestClient) -> dict[str, Any]:
    resp = client.get("/v1/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


@pytest.mark.parametrize(("path", "method", "op_id"), OPERATIONS)
def test_operation_ids_and_schemas(
    served: dict[str, Any], path: str, method: str, op_id: str
) -> None:
    spec = load_spec()
    ours, theirs = served["paths"][path][method], spec["paths"][path][method]
    assert ours["operationId"] == theirs["operationId"] == op_id
    if "requestBody" in theirs:
        t_schema = theirs["requestBody"]["content"]["application/json"]["schema"]
        o_schema = ours["requestBody"]["content"]["application/json"]["schema"]
        assert o_schema["$ref"].rsplit("/", 1)[1] == t_schema["$ref"].rsplit("/", 1)[1]
        assert schema_fields(served, o_schema) == schema_fields(spec, t_schema)
    t_resp = theirs["responses"]["200"]["content"]["application/json"]["schema"]
    o_resp = ours["responses"]["200"]["content"]["application/json"]["schema"]
    assert o_resp["$ref"].rsplit("/", 1)[1] == t_resp["$ref"].rsplit("/", 1)[1]
    t_props, t_req = schema_fields(spec, t_resp)
    o_props, o_req = schema_fields(served, o_resp)
    for name in t_req:  # every field the clients require is there and required
        assert name in o_props and name in o_req, name
    for name in o_props:
        if name not in t_props:  # (the client's import is slow: only when needed)
            official = official_client_fields(t_resp["$ref"].rsplit("/", 1)[1])
            assert name in official, f"{name} is not an Edge Impulse field"
    # Path parameters: the same names and types (userId, an integer).
    theirs_params = {
        p["name"]: p["schema"]["type"]
        for p in (
            spec["components"]["parameters"][x["$ref"].rsplit("/", 1)[1]] if "$ref" in x else x
            for x in theirs.get("parameters", [])
        )
        if p["in"] == "path"
    }
    ours_params = {
        p["name"]: p["schema"]["type"] for p in ours.get("parameters", []) if p["in"] == "path"
    }
    assert ours_params == theirs_params


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
