"""The reset page through the ASGI client, on SQLite and PostgreSQL: steps, refusals tied to
fields, CSRF, headers, the code carried from the mail's link, translations."""

from __future__ import annotations

import base64
import gc
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.core.passwords import PasswordContext
from relatch.services.context import Services
from relatch.web import sent_notice
from tests.conftest import Account, FakeClock, Mailbox

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
CSP = "default-src 'self'"


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF field in the form"
    return found.group(1)


def ask(client: TestClient, email: str, **params: str) -> Any:
    page = client.get("/reset-password", params=params)
    return client.post(
        "/reset-password/ask",
        params=params,
        data={"csrf_token": csrf_of(page.text), "email": email},
        follow_redirects=False,
    )


def set_password(
    client: TestClient, email: str, code: str, pw: str, repeat: str | None = None
) -> Any:
    page = client.get("/reset-password", params={"email": email})
    return client.post(
        "/reset-password/new",
        data={
            "csrf_token": csrf_of(page.text),
            "email": email,
            "code": code,
            "newPassword": pw,
            "newPasswordRepeat": pw if repeat is None else repeat,
        },
        follow_redirects=False,
    )


def field_error(html: str, name: str) -> str:
    """The error tied to input `name`, checking the aria wiring on the way."""
    found = re.search(rf'<input id="{name}"[^>]*>', html)
    assert found, f"no input {name}"
    tag = found.group(0)
    assert 'aria-invalid="true"' in tag, tag
    assert f"{name}-error" in re.search(r'aria-describedby="([^"]*)"', tag).group(1)  # type: ignore[union-attr]
    msg = re.search(rf'<p class="error" id="{name}-error">(.*?)</p>', html, re.S)
    assert msg, f"no error paragraph for {name}"
    return re.sub(r"<[^>]+>", "", msg.group(1))


def test_step_one_answers_the_same_for_known_and_unknown(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    known = ask(client, acct.email)
    unknown = ask(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 303
    # Same redirect for both, and the address is not in it (it travels sealed).
    assert known.headers["location"] == unknown.headers["location"] == "/reset-password?sent=1"
    page = client.get(known.headers["location"])
    assert "If an account exists for nobody@example.com, a code is on its way" in page.text
    assert 'value="nobody@example.com"' in page.text  # step 2 is filled in
    ask(client, acct.email)
    page = client.get("/reset-password?sent=1")
    assert f"If an account exists for {acct.email}, a code is on its way" in page.text
    assert mailbox.last_code(acct.email)
    assert mailbox.to("nobody@example.com") == []


def test_the_whole_reset_through_the_pages(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    ask(client, acct.email)
    code = mailbox.last_code(acct.email)
    # As typed by a person: lower case, no hyphen.
    done = set_password(
        client, acct.email, code.replace("-", "").lower(), "a fresh page passphrase"
    )
    assert done.status_code == 303 and done.headers["location"] == "/reset-password/done"
    final = client.get("/reset-password/done")
    assert "Your password was changed" in final.text
    login = client.post(
        "/v1/api-login", json={"username": acct.username, "password": "a fresh page passphrase"}
    )
    assert login.json()["success"] is True


def no_rocks(password: str, _ctx: PasswordContext) -> str | None:
    return "Do not say rocks" if "rocks" in password else None


def test_refusals_say_what_to_change_next_to_the_field(
    client: TestClient, make_account: Any, mailbox: Mailbox, svc: Services
) -> None:
    acct: Account = make_account()
    ask(client, acct.email)
    code = mailbox.last_code(acct.email)
    wrong = set_password(client, acct.email, "ZZZZ-ZZZZ", "a fresh page passphrase")
    assert wrong.status_code == 400
    assert "wrong, already used or expired" in field_error(wrong.text, "code")
    assert 'value="ZZZZ-ZZZZ"' in wrong.text  # kept for correction
    assert "a fresh page passphrase" not in wrong.text  # a password is never echoed

    short = set_password(client, acct.email, code, "short")
    assert "at least 8 characters: this one has 5" in field_error(short.text, "newPassword")
    differ = set_password(client, acct.email, code, "a fresh page passphrase", "another one!")
    assert "differ" in field_error(differ.text, "newPasswordRepeat")
    # A rule of the service (whatever rules are configured) is shown at the field too.
    svc.password_rules = (*svc.password_rules, no_rocks)
    rocks = set_password(client, acct.email, code, "this password rocks")
    assert "Do not say rocks" in field_error(rocks.text, "newPassword")
    malformed = set_password(client, acct.email, "12", "a fresh page passphrase")
    assert "8 letters and digits" in field_error(malformed.text, "code")
    # None of the refusals used the code up: it still works.
    ok = set_password(client, acct.email, code, "a fresh page passphrase")
    assert ok.status_code == 303


@pytest.mark.parametrize("path", ["/reset-password/ask", "/reset-password/new", "/not-me"])
def test_non_ascii_csrf_field_is_refused_not_a_500(client: TestClient, path: str) -> None:
    """Found by tests/api/test_fuzz.py: hmac.compare_digest raised TypeError (a 500)."""
    client.get("/reset-password")  # the CSRF cookie
    resp = client.post(path, data={"csrf_token": "\u00e9" * 64, "email": "a@example.com"})
    assert resp.status_code == 403, resp.text


FILE_PART = 'Content-Disposition: form-data; name="{}"; filename="f.txt"\r\n\r\nx'
MULTIPART = {"content-type": "multipart/form-data; boundary=b"}


@pytest.mark.parametrize("path", ["/reset-password/ask", "/reset-password/new", "/not-me"])
@pytest.mark.parametrize(
    "body",
    [
        # two file parts of one name: only the last was closed (none on /not-me)
        "".join(f"--b\r\n{FILE_PART.format(n)}\r\n" for n in ("email", "email", "token", "token"))
        + "--b--\r\n",
        # a truncated file part: spooled by Starlette, never listed in the form, never closed
        "--b\r\n" + FILE_PART.format("email"),
        "--b\r\nno headers at all",
    ],
    ids=["repeated", "truncated", "garbage"],
)
def test_file_parts_are_refused_and_nothing_is_left_open(
    client: TestClient, path: str, body: str
) -> None:
    """Found by tests/api/test_fuzz.py (unclosed spooled files, ResourceWarning). No page
    takes a file: the page comes back, as for any form without its CSRF field."""
    client.get("/reset-password")  # the CSRF cookie: the refusal is for the missing field
    resp = client.post(path, content=body.encode(), headers=MULTIPART)
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("text/html")
    del resp
    gc.collect()  # an unclosed file warns here, and pytest turns the warning into an error


def test_csrf_is_required_on_every_form(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    client.get("/reset-password")  # has the cookie, but a forged post has no token
    no_token = client.post("/reset-password/ask", data={"email": acct.email})
    assert no_token.status_code == 403
    assert "This form has expired" in no_token.text
    forged = client.post(
        "/reset-password/new",
        data={
            "csrf_token": "0" * 64,
            "email": acct.email,
            "code": "ABCD-EFGH",
            "newPassword": "x" * 12,
            "newPasswordRepeat": "x" * 12,
        },
    )
    assert forged.status_code == 403
    client.cookies.clear()
    token = csrf_of(client.get("/reset-password").text)
    client.cookies.clear()  # a token without this browser's cookie is worthless
    assert (
        client.post(
            "/reset-password/ask", data={"csrf_token": token, "email": acct.email}
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    "path", ["/reset-password", "/reset-password/done", "/reset-password?email=a%40b.co"]
)
def test_security_headers_on_pages(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    assert CSP in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert "unsafe-inline" not in csp
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["cache-control"] == "no-store"
    assert "<script>" not in resp.text and "style=" not in resp.text  # nothing inline


def test_api_keeps_its_own_headers(client: TestClient) -> None:
    resp = client.get("/v1/openapi.json")
    assert "content-security-policy" not in resp.headers


def test_token_in_the_link_is_dropped_from_the_url(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    link = mailbox.last_link(acct.email)
    secret = link.rpartition(".")[2]
    resp = client.get(link, follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/reset-password?step=link"
    sealed = resp.cookies.get("relatch_reset_code")
    assert sealed and secret not in sealed  # encrypted, not just signed
    page = client.get(resp.headers["location"])
    assert f'value="{acct.email}"' in page.text  # the account's address, from the code
    assert secret not in page.text  # the cookie carries it to the form's POST
    assert page.headers["cache-control"] == "no-store"


def test_a_code_in_an_old_link_is_dropped_unread(client: TestClient) -> None:
    resp = client.get(
        "/reset-password",
        params={"email": "ada@example.com", "code": "abcd-1234"},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/reset-password?email=ada%40example.com"
    assert "relatch_reset_code" not in resp.cookies
    assert "abcd-1234" not in client.get(resp.headers["location"]).text


def test_forged_code_cookie_is_ignored(client: TestClient) -> None:
    client.cookies.set("relatch_reset_code", "gAAAAA-not-a-token", path="/reset-password")
    page = client.get("/reset-password", params={"email": "ada@example.com"})
    assert page.status_code == 200
    assert re.search(r'<input id="code"[^>]*value=', page.text) is None
    link_step = client.get("/reset-password", params={"step": "link"})
    assert link_step.status_code == 400  # no working link: the code field and one error
    assert re.search(r'<input id="code"[^>]*aria-invalid="true"', link_step.text)


def test_odd_forms_never_give_a_server_error(client: TestClient) -> None:
    token = csrf_of(client.get("/reset-password").text)
    for data in ({}, {"csrf_token": token}, {"csrf_token": token, "email": "not an address"}):
        assert client.post("/reset-password/ask", data=data).status_code in (400, 403)
    resp = client.post("/reset-password/new", data={"csrf_token": token, "email": "x" * 5000})
    assert resp.status_code == 400
    assert (
        client.post(
            "/reset-password/new",
            content=b"\xff\xfe",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ).status_code
        < 500
    )


def test_french_from_accept_language_and_lang_parameter(client: TestClient) -> None:
    fr = client.get("/reset-password", headers={"accept-language": "de;q=0.9, fr-CH, en;q=0.5"})
    assert '<html lang="fr">' in fr.text and "Réinitialiser votre mot de passe" in fr.text
    en = client.get("/reset-password", params={"lang": "en"}, headers={"accept-language": "fr"})
    assert '<html lang="en">' in en.text
    chosen = client.get("/reset-password", params={"lang": "fr"})
    assert 'action="/reset-password/ask?lang=fr"' in chosen.text  # the choice is kept
    refused = client.post("/reset-password/ask", params={"lang": "fr"}, data={"email": "a@b.co"})
    assert "Ce formulaire a expiré" in refused.text


# The "a code is on its way to ..." notice: only what this browser submitted -------------

INJECTED = "attacker@example.com. Your account is locked: call +1 555 0100 at once"


@pytest.mark.parametrize(
    "query",
    [
        {"sent": "1", "email": INJECTED},
        {"sent": "1", "email": INJECTED, "step": "code"},
        {"sent": "1", "email": "someone@example.com"},
    ],
)
def test_a_link_cannot_write_the_notice(client: TestClient, query: dict[str, str]) -> None:
    """Text injection: /reset-password?sent=1&email=... showed any text in the notice."""
    page = client.get("/reset-password", params=query)
    assert page.status_code == 200
    assert "If an account exists" not in page.text
    assert "555" not in page.text.split("<form")[0]  # nothing above the form either


def test_the_notice_names_what_was_posted_not_the_query(client: TestClient) -> None:
    resp = ask(client, "ada@example.com")
    sealed = resp.cookies.get(sent_notice.COOKIE)
    # Sealed, not just signed: neither the address nor its base64 shows (a three-letter
    # check, "ada", also matched random ciphertext now and then).
    plain = [b"ada@example.com", b"ada@example"]
    shown = {base64.urlsafe_b64encode(p[i:]).decode()[:8] for p in plain for i in range(3)}
    assert sealed and "example" not in sealed
    assert not any(s in sealed for s in shown)
    page = client.get("/reset-password", params={"sent": "1", "email": INJECTED})
    assert "If an account exists for ada@example.com, a code is on its way" in page.text
    assert "555" not in page.text
    # Another browser (no cookie), or a cookie that does not open: no notice.
    client.cookies.clear()
    assert "If an account exists" not in client.get("/reset-password?sent=1").text
    client.cookies.set(sent_notice.COOKIE, sealed[:-4] + "AAAA", path="/reset-password")
    assert "If an account exists" not in client.get("/reset-password?sent=1").text


def test_the_notice_expires(client: TestClient, clock: FakeClock) -> None:
    ask(client, "ada@example.com")
    clock.advance(sent_notice.MAX_AGE)
    assert "If an account exists for ada" in client.get("/reset-password?sent=1").text
    clock.advance(1)
    page = client.get("/reset-password?sent=1")
    assert "If an account exists" not in page.text
    assert "Choose a new password" in page.text  # step 2 still, to type the code
