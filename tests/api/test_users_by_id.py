"""Operations by id under `/v1/api/users/{userId}` (issue 11): on one's own id exactly the
current-user operations; on another id only staff, through a recent session JWT on an account
with TOTP; anyone else gets the answer for an id that does not exist. Nobody sets another
person's password. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.core import totp
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import oauth_repo as store
from tests.conftest import Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings
from tests.helpers.api import create_key, session_headers
from tests.helpers.audit import rows as audit_rows
from tests.helpers.lifecycle import (
    BY_ID,
    LOGIN_FAILED,
    ME,
    NOT_FOUND,
    REAUTH,
    STAFF_MFA,
    STAFF_REAUTH,
    delete_account,
    make_staff,
    rows_of,
    totp_sign_in,
    unsent_mail,
    with_totp,
)

NOT_YOURS = {
    "success": False,
    "error": "Nobody can set another person's password; an operator can send a reset code "
    "(relatch user reset)",
}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


def every_operation(client: TestClient, headers: dict[str, str], user_id: int | str) -> list[Any]:
    """(status, body) of each operation by id, with harmless bodies."""
    path = f"{BY_ID}/{user_id}"
    answers = [
        client.get(path, headers=headers),
        client.post(path, json={"name": "Renamed"}, headers=headers),
        client.request("DELETE", path, json={"password": "p", "totpToken": "1"}, headers=headers),
        client.post(f"{path}/request-activation", headers=headers),
        client.post(
            f"{path}/change-password",
            json={"currentPassword": "a", "newPassword": "a new passphrase"},
            headers=headers,
        ),
    ]
    return [(r.status_code, r.json()) for r in answers]


def test_on_ones_own_id_they_are_the_current_user_operations(
    client: TestClient, make_account: Any, mailbox: Mailbox, svc: Services
) -> None:
    acct: Account = make_account(activated=False)
    headers = session_headers(client, acct)
    own = f"{BY_ID}/{acct.id}"
    assert client.get(own, headers=headers).json() == client.get(ME, headers=headers).json()
    assert client.post(own, json={"timezone": "Asia/Tokyo"}, headers=headers).json() == {
        "success": True
    }
    assert client.get(ME, headers=headers).json()["timezone"] == "Asia/Tokyo"
    assert client.post(f"{own}/request-activation", headers=headers).json() == {"success": True}
    assert unsent_mail(svc, acct.email) == ["activation_code", "activation_code"]
    changed = client.post(
        f"{own}/change-password",
        json={"currentPassword": acct.password, "newPassword": "a newer passphrase"},
        headers=headers,
    )
    assert changed.json() == {"success": True}
    headers = {"x-jwt-token": changed.headers["x-jwt-token"]}  # renewed, as the current-user op
    acct.password = "a newer passphrase"
    assert delete_account(client, headers, "wrong", path=own).json() == LOGIN_FAILED
    assert delete_account(client, headers, acct.password, path=own).json() == {"success": True}
    assert rows_of(svc, acct.id)["users"] == 0


def test_on_ones_own_id_an_api_key_cannot_delete_or_change_the_password(
    client: TestClient, make_account: Any, svc: Services
) -> None:
    acct: Account = make_account()
    key = {"x-api-key": create_key(client, session_headers(client, acct))["apiKey"]}
    client.cookies.clear()
    own = f"{BY_ID}/{acct.id}"
    assert client.get(own, headers=key).json()["id"] == acct.id  # reading: any scheme
    refused = delete_account(client, key, acct.password, path=own)
    assert (refused.status_code, refused.json()) == (401, REAUTH)
    body = {"currentPassword": acct.password, "newPassword": "a newer passphrase"}
    changed = client.post(f"{own}/change-password", json=body, headers=key)
    assert (changed.status_code, changed.json()) == (401, REAUTH)
    assert rows_of(svc, acct.id)["users"] == 1


def test_anyone_but_staff_gets_not_found_for_existing_and_unknown_ids_alike(
    client: TestClient, make_account: Any, svc: Services
) -> None:
    # Attacker side: an ordinary account probes ids with each of its credentials.
    prober: Account = make_account()
    other: Account = make_account()
    session = session_headers(client, prober)
    key = {"x-api-key": create_key(client, session)["apiKey"]}
    client.cookies.clear()
    expected = [(200, NOT_FOUND)] * 5
    for headers in (session, key):
        for user_id in (other.id, 999_999, 0, -1, 2**63, 10**30):
            assert every_operation(client, headers, user_id) == expected, user_id
    assert client.get(ME, headers={"x-jwt-token": session["x-jwt-token"]}).json()["name"] == (
        "User 1"
    )
    me = client.get(f"{BY_ID}/{other.id}", headers=session_headers(client, other)).json()
    assert me["name"] == "User 2" and rows_of(svc, other.id)["users"] == 1
    # Without credentials: the plain 401, whatever the id.
    assert client.get(f"{BY_ID}/{other.id}").status_code == 401
    assert client.get(f"{BY_ID}/not-a-number", headers=session).status_code == 400
    probes = [r for r in audit_rows(svc) if r.event == "staff_access"]
    assert {(r.outcome, r.account_id) for r in probes} == {("user_not_found", prober.id)}


def test_staff_need_a_recent_session_with_totp_behind_it(
    client: TestClient, clock: FakeClock, make_account: Any, svc: Services
) -> None:
    staff: Account = make_account()
    target: Account = make_account()
    make_staff(svc, staff)
    path = f"{BY_ID}/{target.id}"
    # Without TOTP on the staff account: refused, before any lookup.
    plain = session_headers(client, staff)
    for user_id in (target.id, 999_999):
        assert client.get(f"{BY_ID}/{user_id}", headers=plain).json() == STAFF_MFA
    # TOTP turned on with that very session: its sign-in had no second factor behind it.
    key, signed_in = with_totp(client, clock, staff)
    assert client.get(path, headers=plain).json() == STAFF_MFA
    # A staff API key and a bearer token are never enough.
    api_key = {"x-api-key": create_key(client, signed_in)["apiKey"]}
    client.cookies.clear()
    assert every_operation(client, api_key, target.id)[:4] == [(401, STAFF_REAUTH)] * 4
    app = store.create_client(
        svc, "App", ["https://app.example/cb"], ["password"], ["openid"], public=False
    )
    assert app.client_secret is not None
    form = {
        "grant_type": "password",
        "username": staff.username,
        "password": staff.password,
        "totpToken": totp.token_at(key, int(clock.now.timestamp())),
    }
    clock.advance(30)
    granted = client.post("/v1/oauth/token", data=form, auth=(app.client_id, app.client_secret))
    bearer = {"authorization": f"Bearer {granted.json()['access_token']}"}
    assert client.get(path, headers=bearer).json() == STAFF_REAUTH
    # A staff session works while recent, not once the sudo window is over.
    assert client.get(path, headers=signed_in).json()["id"] == target.id
    clock.advance(svc.settings.reauth_seconds + 1)
    stale = client.get(path, headers=signed_in)
    assert (stale.status_code, stale.json()) == (401, STAFF_REAUTH)
    fresh = totp_sign_in(client, clock, staff, key)
    assert client.get(path, headers=fresh).json()["id"] == target.id
    # Staff on an unknown id: not found (staff may tell ids apart: they read every account).
    assert client.get(f"{BY_ID}/999999", headers=fresh).json() == NOT_FOUND
    outcomes = [r.outcome for r in audit_rows(svc) if r.event == "staff_access"]
    assert outcomes[:3] == ["staff_mfa_required"] * 3
    assert "staff_reauth_required" in outcomes and "ok" in outcomes


def test_staff_read_update_activate_and_delete_another_account(
    client: TestClient, clock: FakeClock, make_account: Any, svc: Services, mailbox: Mailbox
) -> None:
    staff: Account = make_account()
    target: Account = make_account(activated=False)
    make_staff(svc, staff)
    key, headers = with_totp(client, clock, staff)
    path = f"{BY_ID}/{target.id}"
    seen = client.get(path, headers=headers).json()
    assert (seen["id"], seen["email"], seen["activated"], seen["suspended"]) == (
        target.id,
        target.email,
        False,
        False,
    )
    assert seen["staffInfo"] == {"isStaff": False, "hasSudoRights": False}
    assert client.get(ME, headers=headers).json()["staffInfo"]["isStaff"] is True
    assert client.get(f"{BY_ID}/999999", headers=headers).json() == NOT_FOUND
    body = {"name": "Set By Staff", "companyName": "Acme"}
    assert client.post(path, json=body, headers=headers).json() == {"success": True}
    assert (
        client.post(path, json={"timezone": "Bad/Zone"}, headers=headers)
        .json()["error"]
        .startswith("Unknown time zone")
    )
    assert client.post(f"{path}/request-activation", headers=headers).json() == {"success": True}
    mine = session_headers(client, target)
    me = client.get(ME, headers=mine).json()
    assert (me["name"], me["companyName"]) == ("Set By Staff", "Acme")
    assert unsent_mail(svc, target.email) == ["activation_code", "activation_code"]
    # Nobody sets another person's password, staff included.
    body = {"currentPassword": staff.password, "newPassword": "chosen by staff"}
    refused = client.post(f"{path}/change-password", json=body, headers=headers)
    assert refused.json() == NOT_YOURS
    # Deleting: confirmed with the staff member's own password and TOTP token.
    assert (
        delete_account(client, headers, target.password, path=path)
        .json()["error"]
        .startswith("ERR_TOTP_TOKEN IS REQUIRED")
    )
    token = totp.token_at(key, int(clock.now.timestamp()))
    assert delete_account(client, headers, staff.password, token, path=path).json() == {
        "success": True
    }
    assert set(rows_of(svc, target.id).values()) == {0}
    assert client.get(ME, headers=mine).status_code == 401
    assert client.get(ME, headers=headers).status_code == 200  # the staff member stays
    mailbox.run_workers()
    (notice,) = mailbox.to(target.email)
    body_text = notice.get_body(preferencelist=("plain",))
    assert body_text is not None and "by the service's staff" in body_text.get_content()
    # Every staff action is audited with the staff account as actor and the account as
    # subject.
    acted = [
        (r.event, r.outcome)
        for r in audit_rows(svc)
        if r.account_id == staff.id and r.subject_id == target.id
    ]
    assert acted == [
        ("staff_access", "ok"),
        ("profile_update", "ok"),
        ("profile_update", "invalid_input"),
        ("activation_request", "ok"),
        ("staff_access", "not_your_password"),
        ("account_delete", "totp_required"),
        ("account_delete", "ok"),
    ]
