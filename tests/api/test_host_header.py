"""Host header poisoning (issue 8): only RELATCH_PUBLIC_URL's host and loopback are served.

`GET /reset-password/` with `Host: evil.example` used to redirect to `http://evil.example/`.
The app here is built as in production (no `testserver` allowance from tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relatch.app import build, create_app
from relatch.services.context import Services
from tests.conftest import FakeClock, database
from tests.conftest import test_settings as make_settings

PUBLIC = "https://account.example.com"


@pytest.fixture
def production(tmp_path: Path, db_kind: str, clock: FakeClock) -> Iterator[TestClient]:
    with database(db_kind, tmp_path, migrated=True) as url:
        yield from _production(tmp_path, url, clock)


def _production(tmp_path: Path, url: str, clock: FakeClock) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, url, public_url=PUBLIC, allowed_hosts=None)
    services = build(settings, clock=clock)
    try:
        with TestClient(
            create_app(svc=services), base_url=PUBLIC, raise_server_exceptions=False
        ) as client:
            yield client
    finally:
        services.close()


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:443", "account.example.com.evil.example", "[::2]"]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/reset-password/"), ("GET", "/reset-password"), ("POST", "/v1/api-login")],
)
def test_other_hosts_get_400_and_no_redirect(
    production: TestClient, host: str, method: str, path: str
) -> None:
    resp = production.request(method, path, headers={"host": host}, json={}, follow_redirects=False)
    assert resp.status_code == 400
    assert resp.json() == {"success": False, "error": "Invalid Host header"}
    assert "location" not in resp.headers
    assert "evil" not in resp.text


def test_missing_host_header_gets_400(production: TestClient) -> None:
    resp = production.get("/reset-password", headers={"host": ""})
    assert resp.status_code == 400


@pytest.mark.parametrize(
    "host",
    [
        "account.example.com",
        "ACCOUNT.example.com:443",
        "127.0.0.1:8000",
        "localhost:8000",
        "[::1]:8000",
    ],
)
def test_public_host_and_loopback_are_served(production: TestClient, host: str) -> None:
    resp = production.get("/reset-password/", headers={"host": host}, follow_redirects=False)
    assert resp.status_code in (301, 307, 308)
    assert resp.headers["location"].split("/")[2].lower() == host.lower()
    page = production.get("/reset-password", headers={"host": host})
    assert page.status_code == 200
    api = production.post("/v1/api-login", headers={"host": host}, json={})
    assert api.status_code == 400  # the API's own answer to a bad body, past the host check
    assert api.json()["error"] != "Invalid Host header"


def test_extra_allowed_hosts(tmp_path: Path, db_url: str, svc: Services) -> None:
    settings = make_settings(
        tmp_path, db_url, public_url=PUBLIC, allowed_hosts="relatch.internal, 10.0.0.5"
    )
    with TestClient(create_app(settings, svc=svc), raise_server_exceptions=False) as client:
        for host in ("relatch.internal", "10.0.0.5:8000", "account.example.com"):
            assert client.get("/reset-password", headers={"host": host}).status_code == 200
        assert client.get("/reset-password", headers={"host": "testserver"}).status_code == 400
