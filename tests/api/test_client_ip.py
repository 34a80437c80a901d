"""Which address the per-IP limits and the audit trail see for an HTTP caller."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from starlette.requests import Request

from relatch.auth.request import NO_PEER, client_ip


def request(client: TestClient, peer: Any, xff: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", xff.encode())] if xff else []
    scope = {"type": "http", "headers": headers, "client": peer, "app": client.app}
    return Request(scope)


def test_socket_peer(client: TestClient) -> None:
    assert client_ip(request(client, ("203.0.113.9", 5000), "198.51.100.1")) == "203.0.113.9"


def test_callers_without_a_peer_share_one_bucket(client: TestClient) -> None:
    # A unix socket gives no peer: such callers must still meet the per-IP limits.
    assert client_ip(request(client, None)) == NO_PEER
    assert client_ip(request(client, None, "198.51.100.1")) == NO_PEER
