"""The Swagger UI (issue 8): off by default; with RELATCH_DOCS=on, one pinned version under
Subresource Integrity. /v1/openapi.json is served either way (the official clients need it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from relatch.app import create_app
from relatch.services.context import Services
from relatch.settings import Settings
from tests.conftest import test_settings as make_settings


def test_off_by_default(client: TestClient) -> None:
    assert Settings(_env_file=None).docs is False  # type: ignore[call-arg]
    for path in ("/v1/docs", "/v1/docs/oauth2-redirect"):
        resp = client.get(path)
        assert resp.status_code == 404
        assert resp.json()["success"] is False
    assert client.get("/v1/openapi.json").status_code == 200


def test_relatch_docs_on_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELATCH_DOCS", "on")
    assert Settings(_env_file=None).docs is True  # type: ignore[call-arg]


def test_on_loads_a_pinned_version_under_sri(tmp_path: Path, db_url: str, svc: Services) -> None:
    settings = make_settings(tmp_path, db_url, docs=True)
    with TestClient(create_app(settings, svc=svc), raise_server_exceptions=False) as client:
        page = client.get("/v1/docs")
        assert page.status_code == 200
        assert client.get("/v1/docs/oauth2-redirect").status_code == 200
        assert client.get("/v1/openapi.json").status_code == 200
    html = page.text
    assert "'/v1/openapi.json'" in html or '"/v1/openapi.json"' in html
    external = re.findall(r"<(?:script|link)\b[^>]*>", html)
    loaded = [tag for tag in external if "src=" in tag or "href=" in tag]
    assert len(loaded) == 2  # the bundle and its stylesheet, nothing else (no favicon)
    for tag in loaded:
        url = re.search(r'(?:src|href)="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
        assert re.fullmatch(
            r"https://cdn\.jsdelivr\.net/npm/swagger-ui-dist@\d+\.\d+\.\d+/swagger-ui[-\w]*\.(js|css)",
            url,
        ), url
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/]{64}"', tag), tag
        assert 'crossorigin="anonymous"' in tag, tag
