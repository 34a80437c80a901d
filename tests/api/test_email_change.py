"""A changed address (issue 14), through HTTP, on SQLite and PostgreSQL, reading the mail a
real SMTP server received: a code to the new address, a notice with a 7-day undo link to
the old one; the undo puts the address back, ends every session and mails a reset code
there. Both sides: the owner who moves, and the intruder who moves the account to their
own mailbox."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.core.meta import RequestMeta
from relatch.services import operator
from relatch.services.context import Services
from tests.api.test_equal_work import assert_equal_work, work
from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import create_key, login, post, session_headers
from tests.helpers.audit import rows as audit_rows
from tests.helpers.email_change import (
    CHANGE,
    CHANGED_SUBJECT,
    CODE_SUBJECT,
    CONFIRM,
    REJECTED,
    TAKEN_SUBJECT,
    UNDO_PATH,
    ask,
    change,
    changed_notice,
    confirm,
    last_code,
    undo_link,
)
from tests.helpers.not_me import open_page, token_of
from tests.helpers.notices import SMTPMailbox, subjects, text_of
from tests.helpers.recent_sign_in import REAUTH
from tests.helpers.totp import enable, token

WEEK = 7 * 24 * 3600
NOT_AUTHENTICATED = {"success": False, "error": "Not authenticated"}
STORED = "New.Home@example.org"  # as typed, the domain lower-cased (email-validator)


@pytest.fixture
def mailbox(smtp_mailbox: SMTPMailbox) -> SMTPMailbox:
    """Every mail here is read from what a real SMTP server received."""
    return smtp_mailbox


def me(client: TestClient, headers: dict[str, str]) -> Any:
    resp = client.get("/v1/api/user", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wrong(code: str) -> str:
    return "0000-0000" if code != "0000-0000" else "1111-1111"


def undo(client: TestClient, path: str) -> Any:
    _, csrf = open_page(client, path)
    return client.post(UNDO_PATH, data={"token": token_of(path), "csrf_token": csrf})


def test_the_owner_moves_and_the_new_address_then_gets_reset_codes(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    assert ask(client, headers, "New.Home@Example.org") == {"success": True}
    # Nothing changes until the code is entered.
    assert me(client, headers)["email"] == acct.email
    code = last_code(mailbox, STORED)
    assert confirm(client, headers, code) == {"success": True}
    user = me(client, headers)  # the owner's session lives on
    assert (user["email"], user["activated"]) == (STORED, True)
    # The old address is told, with a way back.
    notice = changed_notice(mailbox, acct.email)
    assert "moved to another e-mail address" in text_of(notice)
    undo_link(mailbox, acct.email)
    # The code is used up.
    assert confirm(client, headers, code) == REJECTED
    # Sign-in by the new address, case-insensitively (one address key everywhere).
    assert login(client, "new.home@example.org", acct.password)["success"] is True
    # Reset codes now go to the new address, and none to the old one.
    before = len(mailbox.to(acct.email))
    post(client, "api-user-request-reset-password", {"email": "new.home@EXAMPLE.org"})
    code = mailbox.last_code(STORED)
    body = {"email": STORED, "code": code, "newPassword": "moved house safely"}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    post(client, "api-user-request-reset-password", {"email": acct.email})
    mailbox.run_workers()
    assert len(mailbox.to(acct.email)) == before


def test_a_session_without_a_recent_sign_in_cannot_move_the_account(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock, svc: Services
) -> None:
    """The thief's side: an old session JWT (lifted from a browser) or an API key is
    refused on both steps, and no code is mailed; the owner's fresh sign-in works."""
    acct: Account = make_account()
    headers = session_headers(client, acct)
    key = create_key(client, headers)["apiKey"]
    client.cookies.clear()
    clock.advance(svc.settings.reauth_seconds + 1)
    steps = ((CHANGE, {"newEmail": "thief@evil.example.net"}), (CONFIRM, {"code": "x"}))
    for stolen in (headers, {"x-api-key": key}):
        for path, body in steps:
            resp = client.post(path, json=body, headers=stolen)
            assert (resp.status_code, resp.json()) == (401, REAUTH), path
    for bad in ({}, {"x-jwt-token": "nope"}):
        resp = client.post(CHANGE, json={"newEmail": "thief@evil.example.net"}, headers=bad)
        assert (resp.status_code, resp.json()) == (401, NOT_AUTHENTICATED)
    assert subjects(mailbox, "thief@evil.example.net") == []
    assert me(client, headers)["email"] == acct.email
    fresh = session_headers(client, acct)
    change(client, mailbox, fresh, "owner.moved@example.org")


def test_the_owner_undoes_an_intruders_change(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """The intruder has the password (phished) and so a recent sign-in: they move the
    account to their own mailbox and mint an API key. The owner's undo link puts the
    address back, ends the intruder's session and key, and the reset code reaches the
    owner's mailbox."""
    acct: Account = make_account()
    intruder = session_headers(client, acct)
    change(client, mailbox, intruder, "intruder@evil.example.net")
    key = create_key(client, intruder)["apiKey"]
    client.cookies.clear()
    path = undo_link(mailbox, acct.email)
    page, _ = open_page(client, path)
    assert "put my address back" in page.text
    # Opening the page changes nothing (mail scanners fetch links).
    assert me(client, intruder)["email"] == "intruder@evil.example.net"
    done = undo(client, path)
    assert done.status_code == 200, done.text
    assert "Your address is back" in done.text
    # Every session and key of the intruder is dead; the password they know is disabled.
    assert client.get("/v1/api/user", headers=intruder).status_code == 401
    assert client.get("/v1/api/user", headers={"x-api-key": key}).status_code == 401
    assert login(client, acct.username, acct.password)["success"] is False
    # The reset code went to the owner's (restored) address and works there.
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "mine again, for good"}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    back = Account(acct.id, acct.email, acct.username, "mine again, for good")
    owner = session_headers(client, back)
    assert me(client, owner)["email"] == acct.email
    # The intruder's mailbox gets nothing more: it is no account's address now.
    before = len(subjects(mailbox, "intruder@evil.example.net"))
    post(client, "api-user-request-reset-password", {"email": "intruder@evil.example.net"})
    assert len(subjects(mailbox, "intruder@evil.example.net")) == before
    # Single use.
    again = client.get(path)
    assert again.status_code == 400
    assert "This link cannot be used" in again.text


def test_an_intruders_own_later_undo_link_cannot_cancel_the_owners(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    intruder = session_headers(client, acct)
    change(client, mailbox, intruder, "first@evil.example.net")
    change(client, mailbox, intruder, "second@evil.example.net")
    owners = undo_link(mailbox, acct.email)
    intruders = undo_link(mailbox, "first@evil.example.net")
    # The intruder undoes their second move first: the account goes to their first address.
    assert undo(client, intruders).status_code == 200
    code = mailbox.last_code("first@evil.example.net")
    body = {"email": "first@evil.example.net", "code": code, "newPassword": "intruder resets it"}
    assert post(client, "api-user-reset-password", body) == {"success": True}
    # The owner's link, issued before, still works and wins.
    assert undo(client, owners).status_code == 200
    assert login(client, acct.username, "intruder resets it")["success"] is False
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "owner has it back"}
    assert post(client, "api-user-reset-password", body) == {"success": True}


def test_the_owners_undo_kills_the_intruders_later_links(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    intruder = session_headers(client, acct)
    change(client, mailbox, intruder, "first@evil.example.net")
    change(client, mailbox, intruder, "second@evil.example.net")
    assert undo(client, undo_link(mailbox, acct.email)).status_code == 200
    late = client.get(undo_link(mailbox, "first@evil.example.net"))
    assert late.status_code == 400  # it would have moved the account back to the intruder


def test_undo_page_needs_the_csrf_field_and_lives_seven_days(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    change(client, mailbox, headers, "moved@example.org")
    path = undo_link(mailbox, acct.email)
    open_page(client, path)
    for bad in ({}, {"csrf_token": "0" * 64}):
        resp = client.post(UNDO_PATH, data={"token": token_of(path), **bad})
        assert resp.status_code == 403
        assert "This form has expired" in resp.text
    assert me(client, headers)["email"] == "moved@example.org"
    clock.advance(WEEK - 1)
    _, csrf = open_page(client, path)
    clock.advance(1)
    assert client.get(path).status_code == 400
    late = client.post(UNDO_PATH, data={"token": token_of(path), "csrf_token": csrf})
    assert late.status_code == 400
    # (a fresh sign-in: the session JWT itself lives 7 days)
    assert me(client, session_headers(client, acct))["email"] == "moved@example.org"


def test_forged_tokens_and_not_me_tokens_are_refused(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    change(client, mailbox, headers, "moved@example.org")
    token = token_of(undo_link(mailbox, acct.email))
    link_id, secret = token.split(".", 1)
    for bad in (f"{link_id}.{'A' * len(secret)}", f"999999.{secret}", "nonsense", "1.²", ""):
        resp = client.get(UNDO_PATH, params={"token": bad})
        assert resp.status_code == 400
        assert "This link cannot be used" in resp.text
    # A "this was not me" token is no undo token (each kind has its own purpose and table).
    assert client.get("/not-me", params={"token": token}).status_code == 400


def test_five_wrong_codes_kill_the_change(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    assert ask(client, headers, "moved@example.org") == {"success": True}
    code = last_code(mailbox, "moved@example.org")
    for _ in range(4):
        assert confirm(client, headers, wrong(code)) == REJECTED
    assert confirm(client, headers, code) == {"success": True}  # the 5th try may be right
    # A new change: 5 wrong tries, and the right code no longer works.
    assert ask(client, headers, "again@example.org") == {"success": True}
    code = last_code(mailbox, "again@example.org")
    for _ in range(5):
        assert confirm(client, headers, wrong(code)) == REJECTED
    assert confirm(client, headers, code) == REJECTED
    assert me(client, headers)["email"] == "moved@example.org"


def test_one_live_change_at_a_time_and_codes_expire(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock, svc: Services
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    assert ask(client, headers, "one@example.org") == {"success": True}
    first = last_code(mailbox, "one@example.org")
    assert ask(client, headers, "two@example.org") == {"success": True}
    assert confirm(client, headers, first) == REJECTED  # the newer request killed it
    second = last_code(mailbox, "two@example.org")
    clock.advance(svc.settings.reset_code_ttl)
    headers = session_headers(client, acct)  # (a fresh sign-in: the window is not the code's)
    assert confirm(client, headers, second) == REJECTED
    assert me(client, headers)["email"] == acct.email


def test_a_taken_address_cannot_be_told_from_a_free_one(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """Enumeration: the same answer, and the same mail count to the asking account, for an
    address another account holds and one nobody holds; the holder of the taken address is
    told someone tried (no code), and no code can confirm the change."""
    asker: Account = make_account()
    holder: Account = make_account()
    headers = session_headers(client, asker)
    mine = len(subjects(mailbox, asker.email))
    taken = ask(client, headers, holder.email)
    assert taken == {"success": True}
    assert len(subjects(mailbox, asker.email)) == mine
    tried = [s for s in subjects(mailbox, holder.email) if TAKEN_SUBJECT in s]
    assert len(tried) == 1
    mail = mailbox.to(holder.email)[0]
    assert CODE_SUBJECT not in str(mail["Subject"])
    assert "no code was sent" in text_of(mail)
    for guess in ("0000-0000", "ABCD-EFGH"):
        assert confirm(client, headers, guess) == REJECTED
    free = ask(client, headers, "nobody.yet@example.org")
    assert free == taken
    assert len(subjects(mailbox, asker.email)) == mine
    assert len(subjects(mailbox, "nobody.yet@example.org")) == 1
    assert me(client, headers)["email"] == asker.email


def test_two_accounts_confirming_one_address_one_wins(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """Uniqueness at confirm: both were free when asked; of two confirmations (in turn,
    then at once) exactly one moves, the other gets the wrong code's answer, never a 500."""
    for target in ("contested@example.org", "raced@example.org"):
        a, b = make_account(), make_account()
        ha, hb = session_headers(client, a), session_headers(client, b)
        client.cookies.clear()
        assert ask(client, ha, target) == {"success": True}
        code_a = last_code(mailbox, target)
        assert ask(client, hb, target) == {"success": True}
        code_b = last_code(mailbox, target)
        if target.startswith("contested"):
            results = [confirm(client, ha, code_a), confirm(client, hb, code_b)]
        else:
            with ThreadPoolExecutor(2) as pool:
                futures = [
                    pool.submit(confirm, client, h, c) for h, c in ((ha, code_a), (hb, code_b))
                ]
                results = [f.result() for f in futures]
        assert sorted(r["success"] for r in results) == [False, True], results
        assert REJECTED in results
        emails = {me(client, ha)["email"], me(client, hb)["email"]}
        assert target in emails and len(emails) == 2


def test_the_old_address_stays_reserved_while_its_undo_link_lives(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock
) -> None:
    """An intruder must not block the undo by taking the old address for another account;
    once the link is dead, the address is free for anyone."""
    acct: Account = make_account()
    change(client, mailbox, session_headers(client, acct), "intruder@evil.example.net")
    body = {"name": "X", "username": "blocker", "email": acct.email, "privacyPolicy": True,
            "password": "correct horse battery"}  # fmt: skip
    refused = client.post("/v1/api-user-create", json=body).json()
    assert refused == {
        "success": False,
        "error": "An account with this username or e-mail address already exists",
    }
    other: Account = make_account()
    assert ask(client, session_headers(client, other), acct.email) == {"success": True}
    assert any(TAKEN_SUBJECT in s for s in subjects(mailbox, acct.email))  # no code there
    assert undo(client, undo_link(mailbox, acct.email)).status_code == 200
    # A deliberate move: 7 days later the old address is nobody's.
    mover: Account = make_account()
    change(client, mailbox, session_headers(client, mover), "moved.on@example.org")
    body["email"] = mover.email
    assert client.post("/v1/api-user-create", json=body).json() == refused
    clock.advance(WEEK)
    assert client.post("/v1/api-user-create", json=body).json()["success"] is True


def test_an_address_never_proven_gets_no_undo_link(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """A sign-up with a mistyped address: fixing it must not hand the account to whoever
    holds the mistyped one. The notice goes, without a way back; the new address is proven."""
    acct: Account = make_account(activated=False)
    headers = session_headers(client, acct)
    change(client, mailbox, headers, "typo.fixed@example.org")
    notice = changed_notice(mailbox, acct.email)
    assert "/change-email/undo" not in text_of(notice)
    assert me(client, headers)["activated"] is True


def test_bad_input_is_answered_in_the_contract_shape(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    cases = [
        ({"newEmail": "not an address"}, 200, "Invalid e-mail address"),
        ({"newEmail": acct.email.upper()}, 200, "This is already your e-mail address"),
        ({"newEmail": "a\nb@example.org"}, 400, None),
        ({"newEmail": 7}, 400, None),
        ({}, 400, "Missing field 'newEmail'"),
    ]
    for body, status, error in cases:
        resp = client.post(CHANGE, json=body, headers=headers)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["success"] is False
        if error:
            assert resp.json()["error"] == error
    for body in ({}, {"code": 12345678}, {"code": "x" * 1000}):
        resp = client.post(CONFIRM, json=body, headers=headers)
        assert resp.status_code == 400, resp.text
    assert confirm(client, headers, "\u00b2\u00b2\u00b2\u00b2-\u00b2\u00b2\u00b2\u00b2") == REJECTED


def test_requests_count_against_the_reset_limits(
    client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """Mail bombing: per new address, as reset requests (default 3 per 15 minutes), with
    the same answer whether or not the address is taken."""
    holder: Account = make_account()
    headers = session_headers(client, make_account())
    for target in ("bombed@example.org", holder.email):
        for _ in range(3):
            assert ask(client, headers, target) == {"success": True}
        resp = client.post(CHANGE, json={"newEmail": target}, headers=headers)
        assert resp.status_code == 429
        assert int(resp.headers["Retry-After"]) > 0
    assert len(subjects(mailbox, "bombed@example.org")) == 3


def test_openapi_lists_both_operations_under_their_own_tag(client: TestClient) -> None:
    paths = client.get("/v1/openapi.json").json()["paths"]
    for path, op_id in (
        ("/api/user/change-email", "changeEmailCurrentUser"),
        ("/api/user/change-email/confirm", "confirmEmailChangeCurrentUser"),
    ):
        op = paths[path]["post"]
        assert (op["operationId"], op["tags"]) == (op_id, ["Address"])
        assert "recent sign-in" in op["responses"]["401"]["description"]
    assert UNDO_PATH not in paths
    assert CHANGED_SUBJECT  # (the notice's subject, used by the helpers)


def test_a_taken_address_costs_the_same_database_work_as_a_free_one(
    client: TestClient, mailbox: Mailbox, make_account: Any, svc: Services
) -> None:
    """Timing (enumeration, CWE-208), without a clock: asking for an address another account
    holds, one reserved by another account's undo link, and a free one run the same
    statements (kind and tables, in order) and write the same number of rows."""
    holder: Account = make_account()
    mover: Account = make_account()
    change(client, mailbox, session_headers(client, mover), "mover.now@example.org")
    targets = {"taken": holder.email, "reserved": mover.email, "free": "free.one@example.org"}
    askers = {side: session_headers(client, make_account()) for side in targets}
    client.cookies.clear()
    sides = {}
    for side, target in targets.items():
        sides[side] = work(svc, functools.partial(ask, client, askers[side], target))
    assert_equal_work(sides)
    mailbox.run_workers()
    assert any(TAKEN_SUBJECT in s for s in subjects(mailbox, mover.email))


def test_a_suspension_kills_a_pending_change(
    client: TestClient, mailbox: Mailbox, make_account: Any, svc: Services
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    assert ask(client, headers, "moved@example.org") == {"success": True}
    code = last_code(mailbox, "moved@example.org")
    operator.suspend(svc, acct.email, "investigating", RequestMeta())
    operator.unsuspend(svc, acct.email, RequestMeta())
    assert confirm(client, session_headers(client, acct), code) == REJECTED


def test_with_totp_on_the_sign_in_must_have_passed_it(
    client: TestClient, mailbox: Mailbox, make_account: Any, clock: FakeClock
) -> None:
    """The second factor when set: a session signed in with the password alone, before
    TOTP was turned on, is refused though recent; a sign-in with the token works."""
    acct: Account = make_account()
    before = session_headers(client, acct)
    key, _ = enable(client, clock, before)
    client.cookies.clear()
    for path, body in ((CHANGE, {"newEmail": "moved@example.org"}), (CONFIRM, {"code": "x"})):
        resp = client.post(path, json=body, headers=before)
        assert (resp.status_code, resp.json()) == (401, REAUTH), path
    assert subjects(mailbox, "moved@example.org") == []
    clock.advance(30)  # the next TOTP step (the set-key token is spent)
    login = {"username": acct.username, "password": acct.password, "totpToken": token(clock, key)}
    signed = client.post("/v1/api-login", json=login).json()
    assert signed["success"] is True, signed
    client.cookies.clear()
    change(client, mailbox, {"x-jwt-token": signed["token"]}, "moved@example.org")


def test_the_audit_trail_records_each_step(
    client: TestClient, mailbox: Mailbox, make_account: Any, svc: Services
) -> None:
    acct: Account = make_account()
    holder: Account = make_account()
    headers = session_headers(client, acct)
    ask(client, headers, holder.email)
    confirm(client, headers, "0000-0000")
    change(client, mailbox, headers, "moved@example.org")
    path = undo_link(mailbox, acct.email)
    undo(client, path)
    mine = [(r.event, r.outcome) for r in audit_rows(svc) if r.account_id == acct.id]
    steps = [e for e in mine if e[0].startswith("email_")]
    assert steps == [
        ("email_change_request", "taken"),
        ("email_change", "email_change_rejected"),
        ("email_change_request", "ok"),
        ("email_change", "ok"),
        ("email_undo_view", "ok"),
        ("email_undo", "ok"),
    ]
