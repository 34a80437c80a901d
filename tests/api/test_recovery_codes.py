"""A lost second factor, the owner's side (issue 14): new recovery codes after a recent
sign-in that passed TOTP, how many are left, and the notices of the factor switched on or
off, new codes and codes running out. Through HTTP on SQLite and PostgreSQL; the notices
read from the mail the worker delivered."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.services.context import Services
from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import create_key, session_headers
from tests.helpers.audit import rows
from tests.helpers.lifecycle import totp_sign_in, with_totp
from tests.helpers.mfa import RECOVERY, STATUS
from tests.helpers.notices import SMTPMailbox, mails, text_of, the_notice
from tests.helpers.totp import MFA, enable, token

FACTOR_REAUTH = {
    "success": False,
    "error": "Sign in again with your password and second factor to get new recovery codes",
}
LOW = "recovery code(s) left"


@pytest.fixture
def mailbox(smtp_mailbox: SMTPMailbox) -> SMTPMailbox:
    """Every notice here is read from what a real SMTP server received."""
    return smtp_mailbox


def sign_in(client: TestClient, acct: Account, second: str) -> Any:
    body = {"username": acct.username, "password": acct.password, "totpToken": second}
    return client.post("/v1/api-login", json=body).json()


def status(client: TestClient, headers: dict[str, str]) -> Any:
    resp = client.get(STATUS, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_factor_on_and_off_mails_the_owner(
    client: TestClient, make_account: Any, clock: FakeClock, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    key, _ = enable(client, clock, headers)
    on = text_of(the_notice(mailbox, acct.email, "Two-step sign-in was turned on"))
    assert acct.email in on and "recovery codes" in on
    clock.advance(30)
    done = client.post(f"{MFA}/clear", json={"totpToken": token(clock, key)}, headers=headers)
    assert done.json() == {"success": True}
    off = text_of(the_notice(mailbox, acct.email, "Two-step sign-in was turned off"))
    assert "the password alone signs in" in off and "by an operator" not in off


def test_a_refused_clear_mails_nothing(
    client: TestClient, make_account: Any, clock: FakeClock, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    key, _ = enable(client, clock, headers)
    wrong = "123456" if token(clock, key) != "123456" else "654321"
    clock.advance(30)
    refused = client.post(f"{MFA}/clear", json={"totpToken": wrong}, headers=headers).json()
    assert refused["success"] is False
    assert mails(mailbox, acct.email, "turned off") == []


def test_owner_regenerates_codes(
    client: TestClient, make_account: Any, clock: FakeClock, mailbox: Mailbox, svc: Services
) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    key, old = enable(client, clock, headers)
    clock.advance(30)
    fresh = totp_sign_in(client, clock, acct, key)
    assert status(client, fresh) == {"success": True, "totpEnabled": True, "recoveryCodesLeft": 10}
    resp = client.post(RECOVERY, headers=fresh)
    assert resp.status_code == 200, resp.text
    new = resp.json()["recoveryCodes"]
    assert resp.json()["success"] is True and len(new) == 10 and len(set(new)) == 10
    assert not set(new) & set(old)
    text = text_of(the_notice(mailbox, acct.email, "New recovery codes"))
    assert "Every older recovery code no longer works" in text
    assert not any(code in text for code in new)  # the codes are never mailed
    # Old codes all die, used or not; a new one signs in once.
    assert sign_in(client, acct, old[0])["success"] is False
    assert sign_in(client, acct, new[0])["success"] is True
    assert sign_in(client, acct, new[0])["success"] is False
    assert status(client, fresh)["recoveryCodesLeft"] == 9
    assert [(r.event, r.outcome, r.account_id) for r in rows(svc) if "recovery" in r.event] == [
        ("recovery_codes_new", "ok", acct.id)
    ]


def test_no_codes_without_a_recent_sign_in_with_the_factor(
    client: TestClient, make_account: Any, clock: FakeClock, mailbox: Mailbox, svc: Services
) -> None:
    """The attacker's side: a stolen session, API key or old JWT mints no codes."""
    acct: Account = make_account()
    # A session that signed in before TOTP was turned on (still within the sudo window):
    # its sign-in never asked for the factor.
    before = session_headers(client, acct)
    api_key = create_key(client, before)["apiKey"]
    key, old = enable(client, clock, before)
    client.cookies.clear()
    assert client.post(RECOVERY, headers=before).json() == FACTOR_REAUTH
    assert client.post(RECOVERY, headers=before).status_code == 401
    # An API key (it passes no factor), even the owner's.
    assert client.post(RECOVERY, headers={"x-api-key": api_key}).json() == FACTOR_REAUTH
    # A session that did pass the factor, but longer ago than RELATCH_REAUTH_SECONDS.
    clock.advance(30)
    stale = totp_sign_in(client, clock, acct, key)
    client.cookies.clear()
    clock.advance(svc.settings.reauth_seconds + 1)
    assert client.post(RECOVERY, headers=stale).json() == FACTOR_REAUTH
    # No credential at all.
    assert client.post(RECOVERY).status_code == 401
    # Nothing changed: the old codes still work, no notice went out.
    assert mails(mailbox, acct.email, "New recovery codes") == []
    assert sign_in(client, acct, old[0])["success"] is True
    refused = [r.outcome for r in rows(svc) if r.event == "recovery_codes_new"]
    assert refused == ["factor_reauth_required"] * 4


def test_no_codes_without_a_factor(client: TestClient, make_account: Any) -> None:
    acct: Account = make_account()
    headers = session_headers(client, acct)
    assert client.post(RECOVERY, headers=headers).json() == {
        "success": False,
        "error": "MFA is not configured",
    }
    assert status(client, headers) == {
        "success": True,
        "totpEnabled": False,
        "recoveryCodesLeft": 0,
    }


def test_cookie_needs_json_for_new_codes(
    client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    """CSRF: a cross-site form post riding the jwt cookie mints no codes."""
    acct: Account = make_account()
    _, headers = with_totp(client, clock, acct)
    client.cookies.clear()
    client.cookies.set("jwt", headers["x-jwt-token"])
    forged = client.post(RECOVERY, content=b"a=b", headers={"content-type": "text/plain"})
    assert forged.status_code == 401
    ok = client.post(RECOVERY, json={})
    assert ok.json()["success"] is True


def test_low_codes_warning_once_per_set(
    client: TestClient, make_account: Any, clock: FakeClock, mailbox: Mailbox
) -> None:
    acct: Account = make_account()
    key, headers = with_totp(client, clock, acct)
    codes = client.post(RECOVERY, headers=headers).json()["recoveryCodes"]
    for code in codes[:7]:  # 3 left: no warning yet
        assert sign_in(client, acct, code)["success"] is True
    assert mails(mailbox, acct.email, LOW) == []
    assert sign_in(client, acct, codes[7])["success"] is True  # 2 left: the warning
    text = text_of(the_notice(mailbox, acct.email, LOW))
    assert "Only 2 recovery code(s) are left" in text
    for code in codes[8:]:  # 1, then 0 left: no second mail
        assert sign_in(client, acct, code)["success"] is True
    assert len(mails(mailbox, acct.email, LOW)) == 1
    assert status(client, headers)["recoveryCodesLeft"] == 0
    # A new set of codes starts over: its own crossing warns again.
    fresh = totp_sign_in(client, clock, acct, key)
    codes = client.post(RECOVERY, headers=fresh).json()["recoveryCodes"]
    for code in codes[:8]:
        assert sign_in(client, acct, code)["success"] is True
    assert len(mails(mailbox, acct.email, LOW)) == 2


def test_codes_left_is_beside_get_current_user(
    client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    """getCurrentUser keeps the Edge Impulse schema; the count is its own operation, which
    any credential of the owner may read."""
    acct: Account = make_account()
    _, headers = with_totp(client, clock, acct)
    me = client.get("/v1/api/user", headers=headers).json()
    assert "recoveryCodesLeft" not in me and "totpEnabled" not in me
    api_key = create_key(client, headers)["apiKey"]
    client.cookies.clear()
    assert status(client, {"x-api-key": api_key})["recoveryCodesLeft"] == 10
    assert client.get(STATUS).status_code == 401


def test_openapi_documents_them_under_their_own_tag(client: TestClient) -> None:
    doc = client.get("/v1/openapi.json").json()
    new = doc["paths"]["/api/user/mfa/recovery-codes"]["post"]
    state = doc["paths"]["/api/user/mfa"]["get"]
    assert new["operationId"] == "regenerateRecoveryCodes"
    assert state["operationId"] == "getMfaStatus"
    for op in (new, state):
        assert op["tags"] == ["Second factor"]
        assert "401" in op["responses"]
    assert "second factor" in new["responses"]["401"]["description"]
    schema = doc["components"]["schemas"]["MfaStatusResponse"]
    assert {"totpEnabled", "recoveryCodesLeft", "removalDue"} <= set(schema["properties"])
