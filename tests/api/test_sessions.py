"""Sessions (issue 14): sign out, list my sessions, end one, end all but this one.

Attacker side: a signed-out or ended session's JWT is dead on every endpoint; another
account's sessions can be neither seen nor ended (its id answers like an unknown one); an
API key cannot act on sessions. Owner side: ending the others keeps mine; a password reset
still ends every session. On SQLite and PostgreSQL (the `client` fixture).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from relatch.app import create_app
from relatch.core import tokens
from relatch.core.errors import SessionNotFound
from relatch.services import sign_in_sessions
from relatch.services.audit import outcome_of
from relatch.services.context import Services
from tests.conftest import Account, FakeClock, Mailbox
from tests.helpers.api import create_key
from tests.helpers.audit import rows as audit_rows

SESSIONS = "/v1/api/user/sessions"
LOGOUT = "/v1/api/user/logout"
END_OTHERS = "/v1/api/user/sessions/end-others"
NOT_AUTHENTICATED = {"success": False, "error": "Not authenticated"}
NOT_FOUND = {"success": False, "error": "Session not found"}


def sign_in(client: TestClient, acct: Account, agent: str = "pytest-agent") -> str:
    body = {"username": acct.username, "password": acct.password}
    resp = client.post("/v1/api-login", json=body, headers={"user-agent": agent})
    assert resp.json()["success"] is True, resp.text
    token: str = resp.json()["token"]
    return token


def h(token: str) -> dict[str, str]:
    return {"x-jwt-token": token}


def sessions(client: TestClient, token: str) -> list[dict[str, Any]]:
    resp = client.get(SESSIONS, headers=h(token))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["success"] is True
    listed: list[dict[str, Any]] = data["sessions"]
    return listed


def current_id(client: TestClient, token: str) -> str:
    (mine,) = [s for s in sessions(client, token) if s["current"]]
    return str(mine["id"])


# Every authenticated endpoint a session JWT may call, probed after sign-out.
PROBES = [
    ("GET", "/v1/api/user", None),
    ("POST", "/v1/api/user", {"name": "x"}),
    ("GET", "/v1/api/user/apikeys", None),
    ("GET", SESSIONS, None),
    ("POST", END_OTHERS, None),
    ("POST", LOGOUT, None),
    ("POST", "/v1/api/user/change-password", {"currentPassword": "a", "newPassword": "b"}),
]


def test_sign_out_kills_the_jwt_everywhere_and_clears_the_cookie(
    client: TestClient, make_account: Any
) -> None:
    acct = make_account()
    token, other = sign_in(client, acct), sign_in(client, acct)
    resp = client.post(LOGOUT, headers=h(token))
    assert resp.status_code == 200 and resp.json() == {"success": True}
    cleared = resp.headers["set-cookie"]
    assert cleared.startswith('jwt="";') or cleared.startswith("jwt=;"), cleared
    assert "Max-Age=0" in cleared and "HttpOnly" in cleared and "Path=/" in cleared
    for method, path, body in PROBES:
        for creds in (h(token), {"cookie": f"jwt={token}"}):
            dead = client.request(method, path, json=body, headers=creds)
            assert dead.status_code == 401, (method, path, dead.text)
    # Only that session ended: the other one still works.
    assert client.get("/v1/api/user", headers=h(other)).status_code == 200


def test_sign_out_with_the_cookie_needs_json(client: TestClient, make_account: Any) -> None:
    # CSRF: a cross-site form cannot sign the owner out (auth/dependencies.py rule).
    token = sign_in(client, make_account())
    jar = {"cookie": f"jwt={token}"}
    forged = client.post(LOGOUT, content=b"", headers={**jar, "content-type": "text/plain"})
    assert forged.status_code == 401
    assert client.get("/v1/api/user", headers=jar).status_code == 200
    assert client.post(LOGOUT, json={}, headers=jar).json() == {"success": True}
    assert client.get("/v1/api/user", headers=jar).status_code == 401


def test_list_shows_each_session_with_its_client_and_the_current_one(
    client: TestClient, make_account: Any, clock: FakeClock
) -> None:
    acct = make_account()
    first = sign_in(client, acct, "Firefox/1")
    clock.advance(120)
    second = sign_in(client, acct, "curl/8")
    listed = sessions(client, second)
    assert [s["userAgent"] for s in listed] == ["curl/8", "Firefox/1"]  # newest first
    assert [s["current"] for s in listed] == [True, False]
    assert listed[1]["created"] == "2026-01-01T12:00:00.000Z"
    assert listed[0]["created"] == listed[0]["lastSeen"] == "2026-01-01T12:02:00.000Z"
    assert set(listed[0]) <= {"id", "created", "lastSeen", "userAgent", "network", "current"}
    # Last seen moves with use, at most once a minute: the listing itself is a use.
    clock.advance(30)  # 12:02:30
    assert client.get("/v1/api/user", headers=h(first)).status_code == 200
    listed = sessions(client, second)
    assert [s["lastSeen"] for s in listed] == [
        "2026-01-01T12:02:00.000Z",  # seen 30 s ago: not written again
        "2026-01-01T12:02:30.000Z",  # seen 150 s ago: written
    ]
    clock.advance(30)  # 12:03:00, a minute after `second` was last written
    assert sessions(client, second)[0]["lastSeen"] == "2026-01-01T12:03:00.000Z"


@pytest.mark.parametrize(
    ("peer", "network"),
    [("203.0.113.77", "203.0.113.0/24"), ("2001:db8:1:2:3::9", "2001:db8:1:2::/64")],
)
def test_network_is_the_slash_24_or_64_never_the_address(
    svc: Services, make_account: Any, peer: str, network: str
) -> None:
    acct = make_account()
    with TestClient(create_app(svc=svc), client=(peer, 50000)) as there:
        token = sign_in(there, acct)
        (listed,) = sessions(there, token)
    assert listed["network"] == network


def test_end_one_session_and_ending_my_own_signs_out(client: TestClient, make_account: Any) -> None:
    acct = make_account()
    mine, other = sign_in(client, acct), sign_in(client, acct)
    other_id = current_id(client, other)
    resp = client.delete(f"{SESSIONS}/{other_id}", headers=h(mine))
    assert resp.json() == {"success": True} and "set-cookie" not in resp.headers
    assert client.get("/v1/api/user", headers=h(other)).status_code == 401
    assert [s["current"] for s in sessions(client, mine)] == [True]
    # Ended twice: it is gone.
    assert client.delete(f"{SESSIONS}/{other_id}", headers=h(mine)).json() == NOT_FOUND
    own = client.delete(f"{SESSIONS}/{current_id(client, mine)}", headers=h(mine))
    assert own.json() == {"success": True} and "jwt=" in own.headers["set-cookie"]
    assert client.get("/v1/api/user", headers=h(mine)).status_code == 401


def test_another_accounts_session_is_neither_seen_nor_ended(
    client: TestClient, make_account: Any
) -> None:
    victim, attacker = make_account(), make_account()
    victim_jwt, attacker_jwt = sign_in(client, victim), sign_in(client, attacker)
    victim_id = current_id(client, victim_jwt)
    listed = sessions(client, attacker_jwt)
    assert [s["id"] for s in listed] != [victim_id] and len(listed) == 1
    # Same answer as an unknown id; the victim's session lives on.
    for sid in (victim_id, "no-such-session"):
        resp = client.delete(f"{SESSIONS}/{sid}", headers=h(attacker_jwt))
        assert resp.status_code == 200 and resp.json() == NOT_FOUND
    client.post(END_OTHERS, headers=h(attacker_jwt))
    assert client.get("/v1/api/user", headers=h(victim_jwt)).status_code == 200


def test_end_others_keeps_mine(client: TestClient, make_account: Any) -> None:
    acct = make_account()
    others = [sign_in(client, acct) for _ in range(3)]
    mine = sign_in(client, acct)
    assert client.post(END_OTHERS, headers=h(mine)).json() == {"success": True}
    for token in others:
        assert client.get("/v1/api/user", headers=h(token)).status_code == 401
    assert client.get("/v1/api/user", headers=h(mine)).status_code == 200
    assert [s["current"] for s in sessions(client, mine)] == [True]


def test_an_api_key_cannot_act_on_sessions(client: TestClient, make_account: Any) -> None:
    acct = make_account()
    token = sign_in(client, acct)
    key = {"x-api-key": create_key(client, h(token))["apiKey"]}
    sid = current_id(client, token)
    for method, path in (
        ("GET", SESSIONS),
        ("POST", LOGOUT),
        ("POST", END_OTHERS),
        ("DELETE", f"{SESSIONS}/{sid}"),
    ):
        resp = client.request(method, path, headers=key)
        assert resp.status_code == 401, (method, path)
        assert "session JWT" in resp.json()["error"]
    assert client.get("/v1/api/user", headers=h(token)).status_code == 200


def test_a_reset_still_ends_every_session(
    client: TestClient, make_account: Any, mailbox: Mailbox
) -> None:
    acct = make_account()
    tokens_ = [sign_in(client, acct) for _ in range(2)]
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    body = {"email": acct.email, "code": mailbox.last_code(acct.email), "newPassword": "x" * 20}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    for token in tokens_:
        assert client.get("/v1/api/user", headers=h(token)).status_code == 401
    acct.password = "x" * 20
    assert [s["current"] for s in sessions(client, sign_in(client, acct))] == [True]


def test_a_password_change_keeps_only_the_callers_session(
    client: TestClient, make_account: Any
) -> None:
    acct = make_account()
    other, mine = sign_in(client, acct), sign_in(client, acct)
    mine_id = current_id(client, mine)
    body = {"currentPassword": acct.password, "newPassword": "another long passphrase"}
    resp = client.post("/v1/api/user/change-password", json=body, headers=h(mine))
    assert resp.json() == {"success": True}
    renewed = resp.headers["x-jwt-token"]
    assert client.get("/v1/api/user", headers=h(other)).status_code == 401
    assert [(s["id"], s["current"]) for s in sessions(client, renewed)] == [(mine_id, True)]
    # The renewed JWT is still that session: signing out ends it.
    client.post(LOGOUT, headers=h(renewed))
    assert client.get("/v1/api/user", headers=h(renewed)).status_code == 401


def legacy_jwt(svc: Services, clock: FakeClock, account_id: int) -> str:
    """A session JWT as issued before migration 0015: no `sid`."""
    now = int(clock().timestamp())
    s = svc.settings
    return tokens.issue(s.secret, s.issuer, account_id, 0, now, s.jwt_ttl)


@pytest.mark.parametrize("how", ["logout", "end-others"])
def test_a_pre_upgrade_jwt_works_until_signed_out_or_others_end(
    client: TestClient, svc: Services, clock: FakeClock, make_account: Any, how: str
) -> None:
    acct = make_account()
    old, old2 = legacy_jwt(svc, clock, acct.id), legacy_jwt(svc, clock, acct.id)
    assert client.get("/v1/api/user", headers=h(old)).status_code == 200
    assert client.get(SESSIONS, headers=h(old)).json() == {"success": True, "sessions": []}
    new = sign_in(client, acct)
    caller = old if how == "logout" else new
    client.post(LOGOUT if how == "logout" else END_OTHERS, headers=h(caller))
    for token in (old, old2):
        assert client.get("/v1/api/user", headers=h(token)).status_code == 401
    if how == "end-others":
        assert client.get("/v1/api/user", headers=h(new)).status_code == 200


def test_each_ending_is_audited_on_the_callers_account(
    client: TestClient, svc: Services, make_account: Any
) -> None:
    owner, stranger = make_account(), make_account()
    mine, other = sign_in(client, owner), sign_in(client, owner)
    theirs = sign_in(client, stranger)
    client.delete(f"{SESSIONS}/{current_id(client, mine)}", headers=h(theirs))  # refused
    client.delete(f"{SESSIONS}/{current_id(client, other)}", headers=h(mine))
    client.post(END_OTHERS, headers=h(mine))
    client.post(LOGOUT, headers=h(mine))
    events = [
        (r.event, r.outcome, r.account_id)
        for r in audit_rows(svc)
        if r.event.startswith(("session", "sign_out"))
    ]
    refused = outcome_of(SessionNotFound())
    assert events == [
        ("session_end", refused, stranger.id),
        ("session_end", "ok", owner.id),
        ("sessions_end_others", "ok", owner.id),
        ("sign_out", "ok", owner.id),
    ]


def test_a_pre_upgrade_jwt_ending_the_others_ends_itself_too(
    client: TestClient, svc: Services, clock: FakeClock, make_account: Any
) -> None:
    acct = make_account()
    old, new = legacy_jwt(svc, clock, acct.id), sign_in(client, acct)
    resp = client.post(END_OTHERS, headers=h(old))
    assert resp.json() == {"success": True} and "jwt=" in resp.headers["set-cookie"]
    for token in (old, new):
        assert client.get("/v1/api/user", headers=h(token)).status_code == 401


def test_past_the_cap_the_oldest_sign_ins_end(
    client: TestClient, make_account: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sign_in_sessions, "MAX_SESSIONS", 3)
    acct = make_account()
    made = []
    for _ in range(5):
        made.append(sign_in(client, acct))
        clock.advance(1)
    alive = [client.get("/v1/api/user", headers=h(t)).status_code for t in made]
    assert alive == [401, 401, 200, 200, 200]
    assert len(sessions(client, made[-1])) == 3
