"""The mailbox always works: the reset mail's link carries an unguessable single-use token
that strangers cannot use up (issue 8, finding 1), on SQLite and PostgreSQL, through HTTP.

Strangers who know an address can spend each code's 5 tries for unknown clients; the link's
256-bit token has no try counter, so the owner on a new network and a new browser follows
the mailed link and sets a password whatever strangers did. One row, two ways in: the link
and the code consume the same code row once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relatch.core import codes, keyed
from relatch.services.context import Services
from relatch.storage.models import ResetCode
from relatch.web.logs import RedactPageQueries
from tests.conftest import DATABASES, Account, FakeClock, Mailbox
from tests.helpers.lockout import (
    CSRF_RE,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
    strangers,
)

LINK_ERROR = (
    "Error: This link is wrong, already used or expired. Enter the code from the newest mail, "
    "or ask for a new code."
)
CODE_REFUSED = {"success": False, "error": "Invalid or expired reset code"}
CAFE = "198.18.5.5"  # a network the owner never used


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def secret_of(link: str) -> str:
    token = token_of(link)
    parts = codes.split_link_token(token)
    assert parts, token
    return parts[1]


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, html
    return found.group(1)


def follow_link(
    browser: TestClient, link: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """What a browser does with the mailed link: the redirect that drops the token, then
    the page."""
    first = browser.get(link, headers=headers, follow_redirects=False)
    assert first.status_code == 303
    assert "token" not in first.headers["location"]
    return browser.get(first.headers["location"], headers=headers)


def set_password_by_link(
    browser: TestClient, page: httpx.Response, new: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """The set-password step of the link's page: only the new password, twice."""
    form = {"csrf_token": csrf_of(page.text), "newPassword": new, "newPasswordRepeat": new}
    return browser.post("/reset-password/new", data=form, headers=headers, follow_redirects=False)


def link_error(html: str) -> str:
    found = re.search(r'<p class="error" id="code-error">(.*?)</p>', html, re.S)
    assert found, "no error next to the code field"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def done(resp: httpx.Response) -> bool:
    return resp.status_code == 303 and resp.headers["location"] == "/reset-password/done"


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_strangers_who_burn_the_code_cannot_stop_the_mailed_link(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    email, username = d.create("203.0.113.1", 1)
    # The owner, on a network and a browser never used for this account, asks for a code.
    assert d.ask_code(CAFE, email).json() == {"success": True}
    code, link = d.mailbox.last_code(email), d.mailbox.last_link(email)
    assert code not in link  # the link carries the token, not the code
    # Strangers who know the address spend the code's 5 tries, each from its own network.
    for ip in strangers(5):
        wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
        assert d.verify(ip, email, wrong).json() == CODE_REFUSED
    # The code itself is dead now for every unknown client, the owner's café included.
    assert d.verify(CAFE, email, code).json() == CODE_REFUSED
    assert d.verify("100.64.77.9", email, code).json() == CODE_REFUSED

    # The mailbox still works: the owner follows the link in a fresh browser (no device
    # cookie), sees the account's address, types the new password twice, and is in.
    owner = d.browser()
    xff = {"X-Forwarded-For": CAFE}
    page = follow_link(owner, link, xff)
    assert page.status_code == 200
    assert re.search(rf'<input id="email"[^>]*value="{re.escape(email)}"[^>]*readonly', page.text)
    assert '<input id="code"' not in page.text  # nothing to type but the password
    assert secret_of(link) not in page.text  # the token never enters the page
    assert done(set_password_by_link(owner, page, "owner is back in", xff))
    assert d.login(CAFE, email, "owner is back in").json()["success"] is True
    assert d.login(CAFE, username, "owner is back in").json()["success"] is True


def ask(client: TestClient, mailbox: Mailbox, email: str) -> tuple[str, str]:
    assert client.post("/v1/api-user-request-reset-password", json={"email": email}).json() == {
        "success": True
    }
    return mailbox.last_code(email), mailbox.last_link(email)


def test_the_mail_keeps_the_code_alone_on_its_line_and_links_the_page(
    client: TestClient, make_account: Any, mailbox: Mailbox, svc: Services
) -> None:
    acct: Account = make_account()
    code, link = ask(client, mailbox, acct.email)
    mail = next(m for m in mailbox.to(acct.email) if "reset code" in str(m["Subject"]))
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    lines = body.get_content().splitlines()
    assert code in lines  # alone on its line (the contract)
    base = svc.settings.public_url.rstrip("/")
    assert any(line.strip().startswith(f"{base}/reset-password") for line in lines)
    assert f"{base}{link}" in lines
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and f"{base}{link}" in html.get_content()
    # Stored only as a keyed digest bound to the account.
    secret = secret_of(link)
    with svc.sessions() as s:
        row = s.scalars(select(ResetCode).order_by(ResetCode.id.desc())).first()
        assert row is not None and row.link_digest
        assert secret not in row.link_digest and secret not in row.digest
        assert row.link_digest != keyed.digest(svc.keys, keyed.RESET_LINK, 0, secret)


@pytest.mark.parametrize(
    "kind",
    ["wrong", "forged", "other_account", "malformed", "nul", "huge", "expired", "used", "replaced"],
)
def test_a_bad_link_gets_the_one_error(
    client: TestClient,
    make_account: Any,
    mailbox: Mailbox,
    clock: FakeClock,
    svc: Services,
    kind: str,
) -> None:
    """Enumeration and equal work: whatever is wrong with a link, the same page and message,
    and the new password is never set."""
    acct: Account = make_account()
    other: Account = make_account()
    code, link = ask(client, mailbox, acct.email)
    row_id, secret = codes.split_link_token(token_of(link)) or (0, "")
    if kind == "wrong":
        link = f"/reset-password?token={row_id}.{codes.link_secret()}"
    elif kind == "forged":
        link = f"/reset-password?token={row_id + 1000}.{secret}"
    elif kind == "other_account":
        _, other_link = ask(client, mailbox, other.email)
        other_id = (codes.split_link_token(token_of(other_link)) or (0, ""))[0]
        link = f"/reset-password?token={other_id}.{secret}"  # a secret of another row
    elif kind == "malformed":
        link = "/reset-password?token=%C2%B2.abc"  # "²".isdigit() is true, int() refuses it
    elif kind == "nul":
        link = f"/reset-password?token={row_id}.%00{secret}"  # PostgreSQL refuses NUL
    elif kind == "huge":
        link = f"/reset-password?token={row_id}.{secret * 200}"
    elif kind == "expired":
        clock.advance(svc.settings.reset_code_ttl)
    elif kind == "used":
        body = {"email": acct.email, "code": code, "newPassword": "used up by the code"}
        assert client.post("/v1/api-user-reset-password", json=body).json()["success"] is True
    elif kind == "replaced":
        ask(client, mailbox, acct.email)  # a newer mail: only the newest works
    page = follow_link(client, link)
    assert page.status_code == 400
    assert link_error(page.text) == LINK_ERROR
    assert '<input id="code"' in page.text  # back to the code
    # The POST with the carried token (a stale tab) fails the same way.
    client.get(link, follow_redirects=False)  # seals the token again
    fresh = client.get("/reset-password?step=code")
    resp = set_password_by_link(client, fresh, "never set by a bad link")
    assert resp.status_code == 400
    assert link_error(resp.text) == LINK_ERROR
    login = {"username": acct.username, "password": "never set by a bad link"}
    assert client.post("/v1/api-login", json=login).json()["success"] is False


def test_link_then_code_and_code_then_link_are_single_use(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    code, link = ask(client, mailbox, acct.email)
    assert done(set_password_by_link(client, follow_link(client, link), "set by the link"))
    body = {"email": acct.email, "code": code, "newPassword": "set by the code after"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == CODE_REFUSED
    assert client.post("/v1/api-user-verify-reset-password-code", json=body).json() == (
        CODE_REFUSED
    )
    # And the link twice: the second time is refused.
    page = follow_link(client, link)
    assert page.status_code == 400 and link_error(page.text) == LINK_ERROR

    code, link = ask(client, mailbox, acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "set by the code first"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    page = follow_link(client, link)
    assert page.status_code == 400 and link_error(page.text) == LINK_ERROR
    login = {"username": acct.username, "password": "set by the code first"}
    assert client.post("/v1/api-login", json=login).json()["success"] is True


def test_a_failed_password_keeps_the_link(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    """A refusal of the new password uses nothing up: the form comes back without a code
    field and the link still works."""
    acct: Account = make_account()
    _code, link = ask(client, mailbox, acct.email)
    page = follow_link(client, link)
    short = set_password_by_link(client, page, "short")
    assert short.status_code == 400
    assert '<input id="code"' not in short.text and "at least 8 characters" in short.text
    assert done(set_password_by_link(client, short, "the second try works"))
    login = {"username": acct.username, "password": "the second try works"}
    assert client.post("/v1/api-login", json=login).json()["success"] is True


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_twenty_parallel_link_uses_give_one_success(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy(failures_per_ip="20/15m")
    email, _ = d.create("203.0.113.1", 1)
    assert d.ask_code(CAFE, email).json() == {"success": True}
    link = d.mailbox.last_link(email)
    opener = d.browser()
    xff = {"X-Forwarded-For": CAFE}
    page = follow_link(opener, link, xff)
    assert page.status_code == 200
    # Every racer sends the same cookies (the carried token, the CSRF cookie) and token.
    cookie = "; ".join(f"{k}={v}" for k, v in opener.cookies.items())
    token = csrf_of(page.text)
    racer = d.browser()
    barrier = threading.Barrier(20)

    def attempt(i: int) -> tuple[str, bool]:
        new = f"new password number {i}"
        barrier.wait()
        resp = racer.post(
            "/reset-password/new",
            data={"csrf_token": token, "newPassword": new, "newPasswordRepeat": new},
            headers={**xff, "Cookie": cookie},
            follow_redirects=False,
        )
        assert resp.status_code in (303, 400), resp.text
        if resp.status_code == 400:
            assert link_error(resp.text) == LINK_ERROR
        return new, done(resp)

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    winners = [password for password, ok in outcomes if ok]
    assert len(winners) == 1
    assert d.login(CAFE, email, winners[0]).json()["success"] is True


def test_the_token_never_reaches_a_log_line_or_the_final_url(
    client: TestClient,
    make_account: Any,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acct: Account = make_account()
    caplog.set_level(logging.DEBUG)
    _code, link = ask(client, mailbox, acct.email)
    secret = secret_of(link)
    page = client.get(link)  # following redirects, as a browser
    assert page.status_code == 200
    assert secret not in str(page.url) and "token" not in str(page.url)
    assert secret not in page.text
    assert done(set_password_by_link(client, page, "logged nowhere at all"))
    final = client.get("/reset-password/done")
    assert secret not in str(final.url)
    for record in caplog.records:
        if record.name.startswith("httpx"):
            continue  # the test's own HTTP client, not the server
        assert secret not in record.getMessage(), record
    # The server's access log line of the first request (uvicorn's format).
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", link, "1.1", 303),
        None,
    )
    RedactPageQueries().filter(access)
    assert secret not in access.getMessage()


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_junk_tokens_spend_the_ip_budget_and_the_right_one_gives_its_slot_back(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    """Hygiene: no try counter on the link, but wrong tokens spend the per-IP failure budget
    like wrong codes; the right token, even of a used link (a reload), spends nothing."""
    d = deploy(failures_per_ip="3/15m")
    email, _ = d.create("203.0.113.1", 1)
    assert d.ask_code(CAFE, email).json() == {"success": True}
    link = d.mailbox.last_link(email)
    row_id = (codes.split_link_token(token_of(link)) or (0, ""))[0]
    owner, prober = d.browser(), d.browser()
    home, junk = {"X-Forwarded-For": CAFE}, {"X-Forwarded-For": "100.64.9.9"}
    for _ in range(5):  # the right link, used or not, never spends the owner's budget
        assert follow_link(owner, link, home).status_code == 200
    for _ in range(3):
        bad = f"/reset-password?token={row_id}.{codes.link_secret()}"
        assert follow_link(prober, bad, junk).status_code == 400
    refused = follow_link(prober, link, junk)  # even the right token, from that IP, waits
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert done(set_password_by_link(owner, follow_link(owner, link, home), "still works", home))
    for _ in range(3):
        assert follow_link(owner, link, home).status_code == 400  # used: no slot spent
    assert d.login(CAFE, email, "still works").json()["success"] is True
