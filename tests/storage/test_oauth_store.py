"""The OAuth2 provider's storage contracts and token endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from relatch.oauth import keys
from relatch.services.context import Services
from relatch.settings import Settings
from relatch.storage import migrate
from relatch.storage import oauth_repo as store
from relatch.storage.models import User
from relatch.storage.models_oauth import OAuthClient, OAuthSigningKey, OAuthToken
from tests.conftest import Account, FakeClock, Mailbox
from tests.conftest import test_settings as make_settings

TOKEN = "/v1/oauth/token"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Authlib refuses plain http except on loopback; the public URL is what it judges.
    return make_settings(tmp_path, db_url, public_url="https://relatch.test")


def new_client(svc: Services, *grants: str, public: bool = False) -> store.NewClient:
    return store.create_client(
        svc, "App", ["https://app.example/cb"], list(grants), ["openid", "email"], public
    )


def user(svc: Services, acct: Account) -> User:
    found = store.user_by_id(svc, acct.id)
    assert found is not None
    return found


def password_token(client: TestClient, app: store.NewClient, acct: Account) -> Any:
    assert app.client_secret is not None
    resp = client.post(
        TOKEN,
        data={
            "grant_type": "password",
            "username": acct.username,
            "password": acct.password,
            "scope": "openid email",
        },
        auth=(app.client_id, app.client_secret),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_secrets_are_stored_only_as_digests(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    app = new_client(svc, "password", "refresh_token")
    token = password_token(client, app, make_account())
    with svc.sessions() as s:
        rows = [
            json.dumps([str(v) for v in vars(r).values()]) for r in s.scalars(select(OAuthToken))
        ]
        rows += [
            json.dumps([str(v) for v in vars(r).values()]) for r in s.scalars(select(OAuthClient))
        ]
    dump = "\n".join(rows)
    for secret in (app.client_secret, token["access_token"], token["refresh_token"]):
        assert secret and secret not in dump


def test_a_code_is_consumed_once(svc: Services, make_account: Any) -> None:
    app = new_client(svc, "authorization_code")
    client = store.load_client(svc, app.client_id)
    assert client is not None
    owner = user(svc, make_account())
    store.save_code(svc, "the-code", client, owner, redirect_uri="", scope="openid", auth_time=0)
    code = store.find_code(svc, "the-code", client)
    assert code is not None
    token = {"access_token": "a1", "expires_in": 60, "scope": "openid"}
    store.save_token(svc, token, client, owner, "authorization_code", consume_code=code.id)
    with pytest.raises(store.SpentSecret):
        store.save_token(
            svc,
            {**token, "access_token": "a2"},
            client,
            owner,
            "authorization_code",
            consume_code=code.id,
        )
    assert store.find_code(svc, "the-code", client) is None
    assert store.find_token(svc, "a2") is None  # the refused grant stored nothing


def test_a_code_expires(svc: Services, clock: FakeClock, make_account: Any) -> None:
    app = new_client(svc, "authorization_code")
    client = store.load_client(svc, app.client_id)
    assert client is not None
    store.save_code(
        svc, "c", client, user(svc, make_account()), redirect_uri="", scope="", auth_time=0
    )
    clock.advance(store.CODE_TTL.total_seconds() - 1)
    assert store.find_code(svc, "c", client) is not None
    clock.advance(1)
    assert store.find_code(svc, "c", client) is None


def test_access_token_lifetime_boundary(
    svc: Services, client: TestClient, clock: FakeClock, make_account: Any
) -> None:
    app = new_client(svc, "password")
    token = password_token(client, app, make_account())
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    clock.advance(store.ACCESS_TTL.total_seconds() - 1)
    assert client.get("/v1/api/user", headers=bearer).status_code == 200
    clock.advance(1)
    resp = client.get("/v1/api/user", headers=bearer)
    assert resp.status_code == 401
    assert resp.json() == {"success": False, "error": "Not authenticated"}


def test_refresh_rotation_spends_the_old_token_once(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    app = new_client(svc, "password", "refresh_token")
    assert app.client_secret is not None
    first = password_token(client, app, make_account())
    body = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    auth = (app.client_id, app.client_secret)
    second = client.post(TOKEN, data=body, auth=auth)
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    again = client.post(TOKEN, data=body, auth=auth)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # The replay also ended the rotated-to grant (one of the two holders is a thief).
    newer = {"Authorization": f"Bearer {second.json()['access_token']}"}
    assert client.get("/v1/api/user", headers=newer).status_code == 401


def test_a_reset_revokes_every_token(
    svc: Services, client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct = make_account()
    app = new_client(svc, "password", "refresh_token")
    token = password_token(client, app, acct)
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/v1/api/user", headers=bearer).json()["id"] == acct.id
    assert client.post("/v1/api-user-request-reset-password", json={"email": acct.email}).json()[
        "success"
    ]
    code = mailbox.last_code(acct.email)
    done = client.post(
        "/v1/api-user-reset-password",
        json={"email": acct.email, "code": code, "newPassword": "another fine passphrase"},
    )
    assert done.json() == {"success": True}
    assert client.get("/v1/api/user", headers=bearer).status_code == 401
    with svc.sessions() as s:
        live = s.scalars(select(OAuthToken).where(OAuthToken.revoked_at.is_(None))).all()
    assert live == []  # the hook revoked the rows, not only the generation check


def test_client_credentials_token_is_no_user(svc: Services, client: TestClient) -> None:
    app = new_client(svc, "client_credentials")
    assert app.client_secret is not None
    resp = client.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(app.client_id, app.client_secret)
    )
    assert resp.status_code == 200 and "refresh_token" not in resp.json()
    bearer = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    assert client.get("/v1/api/user", headers=bearer).status_code == 401
    wrong = client.post(
        TOKEN, data={"grant_type": "client_credentials"}, auth=(app.client_id, "not-the-secret")
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_unreadable_token_requests_are_4xx(svc: Services, client: TestClient) -> None:
    assert (
        client.post(TOKEN, content=b"\xff\xfe", headers={"content-type": "text/plain"}).status_code
        == 400
    )
    assert client.post(TOKEN, json={"grant_type": "password"}).status_code == 400
    assert client.get("/v1/oauth/authorize").status_code == 400
    assert client.get("/v1/oauth/userinfo").status_code == 401


UNREADABLE_BASIC = [
    b"Basic ",  # no credentials: Authlib's split raised ValueError
    "Basic \u00e9t\u00e9".encode(),  # non-ASCII base64: b64decode raised ValueError
    b"Basic " + base64.b64encode(b"\xbe\xff:secret"),  # not UTF-8: UnicodeDecodeError
]


@pytest.mark.parametrize("auth", UNREADABLE_BASIC)
@pytest.mark.parametrize("path", [TOKEN, "/v1/oauth/revoke", "/v1/oauth/introspect"])
def test_unreadable_basic_credentials_are_invalid_client(
    svc: Services, client: TestClient, path: str, auth: bytes
) -> None:
    """Found by tests/api/test_fuzz.py: each of these was a 500."""
    resp = client.post(
        path,
        content=b"grant_type=client_credentials&token=x",
        headers={"content-type": "application/x-www-form-urlencoded", "authorization": auth},
    )
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_client"


@pytest.mark.parametrize("response_type", ["\u00e9", 'code"', "code\\", "token\x7f"])
def test_unreadable_response_type_is_an_error_page(
    svc: Services, client: TestClient, response_type: str
) -> None:
    """Found by tests/api/test_fuzz.py: Authlib put the raw response_type in an
    error_description, which refuses such characters (ValueError, a 500)."""
    app = new_client(svc, "authorization_code")
    query = {"client_id": app.client_id, "response_type": response_type}
    resp = client.get("/v1/oauth/authorize", params=query, follow_redirects=False)
    assert resp.status_code == 400, resp.text
    assert "unsupported_response_type" in resp.text
    assert response_type not in resp.text


def test_signing_keys_sealed_rotated_and_retired(svc: Services, clock: FakeClock) -> None:
    kid, private = keys.current(svc)
    secret_part = private.as_dict(private=True)["d"]
    with svc.sessions() as s:
        row = s.scalars(select(OAuthSigningKey).where(OAuthSigningKey.kid == kid)).one()
    assert secret_part not in row.sealed_private and secret_part not in row.public_jwk
    new_kid = keys.rotate(svc)
    assert keys.current(svc)[0] == new_kid
    assert {k["kid"] for k in keys.jwks(svc)["keys"]} == {kid, new_kid}
    clock.advance(keys.PUBLISH_GRACE.total_seconds() + 1)
    assert {k["kid"] for k in keys.jwks(svc)["keys"]} == {new_kid}
    assert timedelta(seconds=3600) < keys.PUBLISH_GRACE


# A replayed authorization code revokes what it issued (RFC 6749 4.1.2) ---------------


def issue_code(
    svc: Services, app: store.NewClient, acct: Account, code: str, **fields: Any
) -> None:
    found = store.load_client(svc, app.client_id)
    assert found is not None
    store.save_code(
        svc, code, found, user(svc, acct), redirect_uri="", scope="openid", auth_time=0, **fields
    )


def token_call(client: TestClient, app: store.NewClient, **data: str) -> Any:
    if app.client_secret is None:
        return client.post(TOKEN, data={**data, "client_id": app.client_id})
    return client.post(TOKEN, data=data, auth=(app.client_id, app.client_secret))


def redeem(client: TestClient, app: store.NewClient, code: str, **extra: str) -> Any:
    return token_call(client, app, grant_type="authorization_code", code=code, **extra)


def works(client: TestClient, access_token: str) -> bool:
    resp = client.get("/v1/api/user", headers={"Authorization": f"Bearer {access_token}"})
    assert resp.status_code in (200, 401), resp.text
    return bool(resp.status_code == 200)


def introspect(client: TestClient, app: store.NewClient, token: str) -> Any:
    assert app.client_secret is not None
    auth = (app.client_id, app.client_secret)
    return client.post("/v1/oauth/introspect", data={"token": token}, auth=auth).json()


def test_a_replayed_code_revokes_its_tokens_and_their_rotations(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    app = new_client(svc, "authorization_code", "refresh_token")
    issue_code(svc, app, make_account(), "code-1")
    first = redeem(client, app, "code-1")
    assert first.status_code == 200, first.text
    first_tokens = first.json()
    assert works(client, first_tokens["access_token"])
    rotated = token_call(
        client, app, grant_type="refresh_token", refresh_token=first_tokens["refresh_token"]
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert works(client, second["access_token"])
    assert introspect(client, app, second["access_token"])["active"] is True

    replay = redeem(client, app, "code-1")
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    # The rotated-to pair came from the code too: the whole family is dead.
    for tok in (first_tokens, second):
        assert not works(client, tok["access_token"])
        assert introspect(client, app, tok["access_token"]) == {"active": False}
        assert introspect(client, app, tok["refresh_token"]) == {"active": False}
    again = token_call(
        client, app, grant_type="refresh_token", refresh_token=second["refresh_token"]
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    with svc.sessions() as s:
        rows = s.scalars(select(OAuthToken)).all()
    assert len(rows) == 2 and all(r.revoked_at is not None for r in rows)
    assert {r.code_id for r in rows} == {rows[0].code_id} and rows[0].code_id is not None


def test_a_replay_revokes_only_that_codes_tokens(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    acct = make_account()
    app = new_client(svc, "authorization_code", "password")
    issue_code(svc, app, acct, "code-a")
    issue_code(svc, app, acct, "code-b")
    a = redeem(client, app, "code-a").json()
    b = redeem(client, app, "code-b").json()
    by_password = password_token(client, app, acct)
    other_app = new_client(svc, "authorization_code")
    issue_code(svc, other_app, acct, "code-c")
    c = redeem(client, other_app, "code-c").json()

    # Another client presenting code-a is no replay of it: nothing is revoked.
    assert redeem(client, other_app, "code-a").json()["error"] == "invalid_grant"
    assert works(client, a["access_token"])

    assert redeem(client, app, "code-a").json()["error"] == "invalid_grant"
    assert not works(client, a["access_token"])
    for live in (b, by_password, c):
        assert works(client, live["access_token"])


def test_a_replay_without_the_pkce_verifier_revokes_nothing(
    svc: Services, client: TestClient, make_account: Any
) -> None:
    app = new_client(svc, "authorization_code", public=True)
    verifier = "v" * 43 + secrets.token_urlsafe(8)
    challenge = create_s256_code_challenge(verifier)
    issue_code(
        svc,
        app,
        make_account(),
        "pkce-code",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    first = redeem(client, app, "pkce-code", code_verifier=verifier)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    # Someone who only saw the code could never have redeemed it: no kill switch for them.
    for wrong in ({"code_verifier": "w" * 50}, {"code_verifier": "é" * 50}, {}):
        refused = redeem(client, app, "pkce-code", **wrong)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        assert works(client, access)
    # The verifier's holder replaying: one of the two is not the client, both lose.
    assert redeem(client, app, "pkce-code", code_verifier=verifier).status_code == 400
    assert not works(client, access)


def test_a_raced_redemption_revokes_the_winners_token(svc: Services, make_account: Any) -> None:
    """Both requests found the code live; the loser of the consuming UPDATE revokes."""
    app = new_client(svc, "authorization_code")
    client = store.load_client(svc, app.client_id)
    assert client is not None
    owner = user(svc, make_account())
    store.save_code(svc, "raced", client, owner, redirect_uri="", scope="openid", auth_time=0)
    code = store.find_code(svc, "raced", client)
    assert code is not None
    token = {"access_token": "winner", "expires_in": 60, "scope": "openid"}
    store.save_token(svc, token, client, owner, "authorization_code", consume_code=code.id)
    found = store.find_token(svc, "winner")
    assert found is not None and found.is_active()
    with pytest.raises(store.SpentSecret):
        store.save_token(
            svc,
            {**token, "access_token": "loser"},
            client,
            owner,
            "authorization_code",
            consume_code=code.id,
        )
    assert store.find_token(svc, "loser") is None
    found = store.find_token(svc, "winner")
    assert found is not None and found.is_revoked()  # committed despite the SpentSecret


def test_code_id_migration_downgrades_and_upgrades(svc: Services) -> None:
    def columns() -> tuple[set[str], set[str]]:
        found = inspect(svc.engine)
        return (
            {c["name"] for c in found.get_columns("oauth_tokens")},
            {i["name"] or "" for i in found.get_indexes("oauth_tokens")},
        )

    assert "code_id" in columns()[0] and "ix_oauth_tokens_code" in columns()[1]
    cfg = migrate.alembic_config()
    with svc.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005_oauth")
    assert "code_id" not in columns()[0] and "ix_oauth_tokens_code" not in columns()[1]
    migrate.upgrade(svc.engine)
    assert "code_id" in columns()[0] and "ix_oauth_tokens_code" in columns()[1]


def test_parallel_redemptions_of_one_code_leave_no_live_token(
    svc: Services, make_account: Any
) -> None:
    """Ten requests that all found the code live race to consume it: one stores a token,
    nine are refused, and their refusals revoke the one stored (on both databases the
    losers' UPDATE runs after the winner committed: row lock, or SQLite's write lock)."""
    parallel = 10
    app = new_client(svc, "authorization_code")
    client = store.load_client(svc, app.client_id)
    assert client is not None
    owner = user(svc, make_account())
    store.save_code(svc, "contended", client, owner, redirect_uri="", scope="openid", auth_time=0)
    code = store.find_code(svc, "contended", client)
    assert code is not None
    barrier = threading.Barrier(parallel)

    def redeem_once(i: int) -> str:
        barrier.wait()
        token = {"access_token": f"at-{i}", "expires_in": 60, "scope": "openid"}
        try:
            store.save_token(svc, token, client, owner, "authorization_code", consume_code=code.id)
        except store.SpentSecret:
            return "refused"
        return "issued"

    with ThreadPoolExecutor(parallel) as pool:
        outcomes = list(pool.map(redeem_once, range(parallel)))
    assert outcomes.count("issued") == 1 and outcomes.count("refused") == parallel - 1
    with svc.sessions() as s:
        rows = s.scalars(select(OAuthToken)).all()
    assert len(rows) == 1 and rows[0].code_id == code.id and rows[0].revoked_at is not None
