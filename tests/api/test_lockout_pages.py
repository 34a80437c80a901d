"""Device cookies on the pages and the OAuth sign-in (OWASP "Slow Down Online Guessing
Attacks with Device Cookies"), and the warning for X-Forwarded-For from untrusted peers."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from relatch.http import client as http_client
from tests.conftest import DATABASES, FakeClock
from tests.helpers.lockout import (
    CSRF_RE,
    PASSWORD,
    WRONG,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
    limited,
    refused,
    signed_in_on_page,
    strangers,
)

HOME = "192.0.2.10"
DAY = 86400


def spend(d: Deployment, email: str, base: int = 1) -> None:
    """Strangers spend the account's shared budget (10/15m): 10 networks, one try each."""
    for ip in strangers(10, base=base):
        assert d.login(ip, email, "nope").json() == WRONG
    assert limited(d.login("100.64.250.9", email))


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_device_cookie_keeps_the_owner_in_on_the_sign_in_page(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    d.svc.settings.public_url = "https://relatch.test"  # OAuth: https only (Authlib)
    app = d.oauth_app()
    email, username = d.create(HOME, 1)
    other_email, other_username = d.create(HOME, 2)
    laptop = d.browser()
    assert signed_in_on_page(d.page_sign_in(laptop, HOME, app, username, PASSWORD))
    cookie = laptop.cookies["relatch_device"]
    clock.advance(DAY)
    spend(d, email)
    spend(d, other_email, base=20)

    # A café the laptop never used: without the cookie, a stranger who waits...
    cafe = "198.18.4.4"
    assert refused(d.page_sign_in(d.browser(), cafe, app, username, PASSWORD))
    # ...per account: the cookie buys nothing on another account, forged ones nothing.
    assert refused(d.page_sign_in(d.browser(cookie), cafe, app, other_username, PASSWORD))
    device_id, _, mac = cookie.partition(".")
    for forged in (f"{device_id}.{'A' * len(mac)}", "x" * 22 + "." + mac, "nonsense"):
        assert refused(d.page_sign_in(d.browser(forged), cafe, app, username, PASSWORD))
    # The laptop there: known by its device cookie, not its network, so the owner gets in.
    assert signed_in_on_page(d.page_sign_in(d.browser(cookie), cafe, app, username, PASSWORD))
    # A wrong password from it spends its own budget (5/15m by default), not a refusal.
    wrong = d.page_sign_in(d.browser(cookie), "198.18.44.4", app, username, "nope")
    assert wrong.status_code == 200 and "Invalid username or password" in wrong.text


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_the_reset_page_sets_the_device_cookie(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """A reset on the page makes the browser a known device: HttpOnly, SameSite=Lax, Path=/,
    Secure when the public URL is https. Its reset requests then have their own bucket."""
    d = deploy()
    d.svc.settings.public_url = "https://relatch.test"
    app = d.oauth_app()
    email, username = d.create(HOME, 1)
    spend(d, email)
    browser, phone = d.browser(), "198.18.6.6"
    xff = {"X-Forwarded-For": phone}
    page = browser.get("/reset-password", headers=xff)
    csrf = CSRF_RE.search(page.text)
    assert csrf
    ask = {"email": email, "csrf_token": csrf.group(1)}
    assert (
        browser.post(
            "/reset-password/ask", data=ask, headers=xff, follow_redirects=False
        ).status_code
        == 303
    )
    code = d.mailbox.last_code(email)
    new = "owner is back in"
    form = {**ask, "code": code, "newPassword": new, "newPasswordRepeat": new}
    done = browser.post("/reset-password/new", data=form, headers=xff, follow_redirects=False)
    assert done.status_code == 303
    set_cookie = [h for h in done.headers.get_list("set-cookie") if "relatch_device=" in h]
    assert len(set_cookie) == 1
    flags = {f.strip().lower() for f in set_cookie[0].split(";")[1:]}
    assert {"httponly", "secure", "path=/", "samesite=lax", f"max-age={30 * DAY}"} <= flags
    cookie = set_cookie[0].split(";")[0].split("=", 1)[1]

    clock.advance(DAY)
    spend(d, email, base=30)
    spend_requests = [d.ask_code(ip, email).status_code for ip in strangers(4, base=60)]
    assert spend_requests == [200, 200, 200, 429]
    # Another network, the same browser: signs in, and can still ask for a code.
    elsewhere = "198.18.7.7"
    laptop = d.browser(cookie)
    assert signed_in_on_page(d.page_sign_in(laptop, elsewhere, app, username, new))
    asker = d.browser(cookie)
    xff = {"X-Forwarded-For": elsewhere}
    page = asker.get("/reset-password", headers=xff)
    csrf = CSRF_RE.search(page.text)
    assert csrf
    ask = {"email": email, "csrf_token": csrf.group(1)}
    assert (
        asker.post("/reset-password/ask", data=ask, headers=xff, follow_redirects=False).status_code
        == 303
    )
    stranger, xff = d.browser(), {"X-Forwarded-For": "100.64.251.9"}
    page = stranger.get("/reset-password", headers=xff)
    csrf = CSRF_RE.search(page.text)
    assert csrf
    ask = {"email": email, "csrf_token": csrf.group(1)}
    assert (
        stranger.post(
            "/reset-password/ask", data=ask, headers=xff, follow_redirects=False
        ).status_code
        == 429
    )


def forwarded_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "X-Forwarded-For" in r.getMessage()
    ]


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_forwarded_header_from_an_untrusted_peer_is_warned_about_once(
    svc: object, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy missing from RELATCH_TRUSTED_PROXIES every client looks like the
    proxy (one per-IP budget, one known network for all): say so, once per peer."""
    from relatch.http.app import create_app

    monkeypatch.setattr(http_client, "_warned_peers", set(), raising=False)
    monkeypatch.setattr(http_client, "MAX_WARNED_PEERS", 3, raising=False)
    caplog.set_level(logging.WARNING, logger="relatch.http.client")

    def ask(peer: str, xff: str | None = "198.51.100.1") -> None:
        headers = {"X-Forwarded-For": xff} if xff else {}
        with TestClient(create_app(svc=svc), client=(peer, 5000)) as c:  # type: ignore[arg-type]
            body = {"email": "a@example.com"}
            c.post("/v1/api-user-request-reset-password", json=body, headers=headers)

    ask("203.0.113.7")
    ask("203.0.113.7")
    ask("203.0.113.7", xff=None)
    warned = forwarded_warnings(caplog)
    assert len(warned) == 1
    assert "203.0.113.7" in warned[0].getMessage()
    assert "RELATCH_TRUSTED_PROXIES" in warned[0].getMessage()
    ask("203.0.113.8")
    assert len(forwarded_warnings(caplog)) == 2
    # Bounded: a flood of spoofing peers cannot grow the set or the log without end.
    for i in range(10):
        ask(f"198.18.0.{i + 1}")
    assert len(forwarded_warnings(caplog)) == 3
    assert len(http_client._warned_peers) == 3
    # A configured proxy is believed, not warned about.
    svc.settings.trusted_proxies = "10.0.0.0/8"  # type: ignore[attr-defined]
    ask("10.0.0.9")
    assert len(forwarded_warnings(caplog)) == 3
