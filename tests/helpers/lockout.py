"""A deployment behind a trusted reverse proxy, where `X-Forwarded-For` stands for the
client: each call names the address it comes from (issue 8, "nobody can lock an owner
out"). Limits are the shipped defaults unless a test says otherwise."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from relatch.app import build, create_app
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import migrate
from relatch.storage import oauth_repo as store
from tests.conftest import FakeClock
from tests.conftest import test_settings as make_settings
from tests.e2e.servers import SMTPInbox
from tests.helpers.activation import vouch
from tests.helpers.limit_backends import backend_settings
from tests.helpers.notices import Mailbox, SMTPMailbox

PROXY = ("10.0.0.2", 5000)
TRUSTED = "10.0.0.0/8"
LIMITED = {"success": False, "error": "Too many attempts, try again later"}
WRONG = {"success": False, "error": "Invalid username or password"}
PASSWORD = "correct horse battery"
REDIRECT = "https://app.example/cb"
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
LIMIT_NAMES = (
    "reset_per_address",
    "reset_per_ip",
    "failures_per_account",
    "failures_per_ip",
    "signup_per_ip",
    "failures_per_known_device",
    "failures_per_known_network",
    "reset_per_known_client",
    "activation_per_account",
)


def default(name: str) -> str:
    value = Settings.model_fields[f"limit_{name}"].default
    assert isinstance(value, str)
    return value


def strangers(n: int, base: int = 1) -> list[str]:
    """Addresses on n different /24 networks (carrier-grade NAT space), none of them known."""
    return [f"100.64.{base + i}.9" for i in range(n)]


@dataclass
class Deployment:
    """One process of the service. Its mail goes to the dev outbox, or with `inbox` to
    that real SMTP server (the notices' tests: every process of a test sends there)."""

    svc: Services
    clients: list[TestClient] = field(default_factory=list)
    inbox: SMTPInbox | None = None

    def browser(self, device: str | None = None) -> TestClient:
        """A client with its own cookie jar, behind the proxy; optionally a device cookie.
        Over https when the public URL is (Secure cookies are sent back only then)."""
        https = self.svc.settings.public_url.startswith("https://")
        c = TestClient(
            create_app(svc=self.svc),
            base_url="https://testserver" if https else "http://testserver",
            raise_server_exceptions=False,
            client=PROXY,
        )
        c.__enter__()
        if device is not None:
            c.cookies.set("relatch_device", device)
        self.clients.append(c)
        return c

    @property
    def mailbox(self) -> Mailbox:
        return Mailbox(self.svc) if self.inbox is None else SMTPMailbox(self.svc, self.inbox)

    def api(self, ip: str, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        c = self.clients[0] if self.clients else self.browser()
        c.cookies.clear()  # the API callers of these tests keep no cookies
        return c.post(f"/v1/{path}", json=body, headers={"X-Forwarded-For": ip, **headers})

    def create(self, ip: str, n: int, *, activated: bool = True) -> tuple[str, str]:
        body = {
            "name": f"User {n}",
            "username": f"user{n:04d}",
            "email": f"user{n}@example.com",
            "privacyPolicy": True,
            "password": PASSWORD,
        }
        made = self.api(ip, "api-user-create", body).json()
        assert made["success"] is True
        # Activated (tests/helpers/activation.py): the OAuth sign-in leads to consent only
        # for a proven address (issue 11); these tests are about sign-in limits.
        if activated:
            vouch(self.svc, made["id"])
        return body["email"], body["username"]

    def login(self, ip: str, username: str, password: str = PASSWORD) -> httpx.Response:
        return self.api(ip, "api-login", {"username": username, "password": password})

    def ask_code(self, ip: str, email: str) -> httpx.Response:
        return self.api(ip, "api-user-request-reset-password", {"email": email})

    def verify(self, ip: str, email: str, code: str) -> httpx.Response:
        return self.api(ip, "api-user-verify-reset-password-code", {"email": email, "code": code})

    def reset(self, ip: str, email: str, code: str, new: str) -> httpx.Response:
        body = {"email": email, "code": code, "newPassword": new}
        return self.api(ip, "api-user-reset-password", body)

    def oauth_app(self) -> str:
        app = store.create_client(
            self.svc, "App", [REDIRECT], ["authorization_code"], ["openid"], False
        )
        return app.client_id

    def page_sign_in(
        self, browser: TestClient, ip: str, client_id: str, username: str, password: str
    ) -> httpx.Response:
        """The OAuth sign-in form, as a person fills it in."""
        url = (
            f"/v1/oauth/authorize?response_type=code&client_id={client_id}"
            f"&redirect_uri={REDIRECT}&scope=openid&state=s1"
        )
        xff = {"X-Forwarded-For": ip}
        page = browser.get(url, headers=xff)
        found = CSRF_RE.search(page.text)
        assert found, page.text
        form = {"csrf_token": found.group(1), "step": "signin"}
        form |= {"username": username, "password": password}
        return browser.post(url, data=form, headers=xff)


def signed_in_on_page(resp: httpx.Response) -> bool:
    """The sign-in form was accepted: the consent form is shown."""
    return resp.status_code == 200 and 'name="decision"' in resp.text


def refused(resp: httpx.Response) -> bool:
    return resp.status_code == 429 and "retry-after" in resp.headers


def limited(resp: httpx.Response) -> bool:
    return refused(resp) and resp.json() == LIMITED


@pytest.fixture(name="deploy")
def deploy_fixture(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[..., Deployment]]:
    made: list[Deployment] = []
    with backend_settings(str(request.param), tmp_path) as backend:

        def make(*, inbox: SMTPInbox | None = None, **limits: str) -> Deployment:
            values: dict[str, Any] = {f"limit_{n}": default(n) for n in LIMIT_NAMES}
            values |= {f"limit_{k}": v for k, v in limits.items()}
            values |= backend
            values["trusted_proxies"] = TRUSTED
            settings = make_settings(tmp_path, values.pop("database_url"), **values)
            svc = build(settings, clock=clock)
            migrate.upgrade(svc.engine)
            d = Deployment(svc, inbox=inbox)
            made.append(d)
            return d

        yield make
        for d in made:
            for c in d.clients:
                c.__exit__(None, None, None)
            d.svc.close()
