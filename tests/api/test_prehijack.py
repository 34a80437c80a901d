"""Account pre-hijacking (issue 11), replayed: a squatter signs up the owner's address first
and plants what would outlive the owner's recovery; the owner's reset through the mailbox
leaves the squatter nothing. Behind a trusted proxy, each call from its own network, on
SQLite and PostgreSQL.

The squatter cannot activate (no mailbox) and so cannot make an API key, a TOTP factor or
an OAuth grant over HTTP any more; they are planted through the services and storage here,
as an account from before that rule has them, or as anyone might get them some other way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from relatch.core import totp
from relatch.core.meta import RequestMeta
from relatch.services import accounts, api_keys, mfa
from relatch.storage import oauth_repo as store
from tests.conftest import DATABASES, FakeClock
from tests.helpers.activation import ACTIVATE, REQUEST
from tests.helpers.audit import rows as audit_rows
from tests.helpers.lockout import (
    REDIRECT,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
    limited,
)

SQUATTER = "203.0.113.5"
OWNER = "198.51.100.7"
VICTIM = "victor@example.org"
SQUAT_PASSWORD = "a squatter chose this"
OWNER_PASSWORD = "the mailbox holder chose this"
TOTP_REQUIRED = "ERR_TOTP_TOKEN IS REQUIRED"


def sign_up_victims_address(d: Deployment) -> int:
    body = {"name": "Victor", "username": "victor", "email": VICTIM, "privacyPolicy": True,
            "password": SQUAT_PASSWORD}  # fmt: skip
    made = d.api(SQUATTER, "api-user-create", body).json()
    assert made["success"] is True
    return int(made["id"])


def get_me(d: Deployment, ip: str, **headers: str) -> Any:
    c = d.clients[0] if d.clients else d.browser()
    c.cookies.clear()
    return c.get("/v1/api/user", headers={"X-Forwarded-For": ip, **headers})


def owner_resets(d: Deployment, password: str = OWNER_PASSWORD) -> None:
    assert d.ask_code(OWNER, VICTIM).json() == {"success": True}
    code = d.mailbox.last_code(VICTIM)
    assert d.reset(OWNER, VICTIM, code, password).json() == {"success": True}


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_the_owners_reset_leaves_the_squatter_nothing(
    deploy: Callable[..., Deployment], clock: FakeClock
) -> None:
    d = deploy()
    d.svc.settings.public_url = "https://relatch.test"  # OAuth: https only (Authlib)
    svc, meta = d.svc, RequestMeta(client_ip=SQUATTER)
    squatted = sign_up_victims_address(d)
    session = d.login(SQUATTER, "victor", SQUAT_PASSWORD).json()["token"]
    squatter = accounts.by_id(svc, squatted)
    assert squatter is not None and squatter.email_verified is False

    # What the squatter plants: an API key, a TOTP factor, an OAuth grant with its tokens.
    api_key = api_keys.create(svc, squatted, "persistence", meta).key
    key = mfa.create_key(svc, squatter, meta).key
    mfa.set_key(svc, squatter, key, totp.token_at(key, int(clock.now.timestamp())), meta)
    app = store.create_client(svc, "App", [REDIRECT], ["authorization_code", "refresh_token"],
                              ["openid", "email"], False)  # fmt: skip
    client = store.load_client(svc, app.client_id)
    user = store.user_by_id(svc, squatted)
    assert client is not None and user is not None and app.client_secret is not None
    store.remember_consent(svc, squatted, app.client_id, "openid email")
    grant = {"access_token": "rlat_squat", "refresh_token": "rlrt_squat", "expires_in": 3600,
             "scope": "openid email"}  # fmt: skip
    store.save_token(svc, grant, client, user, "authorization_code")
    store.save_code(svc, "squat-code", client, user, redirect_uri=REDIRECT, scope="openid",
                    auth_time=0)  # fmt: skip
    for credential in ({"x-jwt-token": session}, {"x-api-key": api_key},
                       {"Authorization": "Bearer rlat_squat"}):  # fmt: skip
        assert get_me(d, SQUATTER, **credential).status_code == 200
    clock.advance(30)

    # Victor: "already exists"; he resets through his mailbox.
    body = {"name": "V", "username": "victor2", "email": VICTIM, "privacyPolicy": True,
            "password": OWNER_PASSWORD}  # fmt: skip
    assert d.api(OWNER, "api-user-create", body).json()["success"] is False
    owner_resets(d)

    # The squatter holds nothing: no session, key, bearer token, refresh token, code,
    # consent or factor; and their password is gone.
    for credential in ({"x-jwt-token": session}, {"x-api-key": api_key},
                       {"Authorization": "Bearer rlat_squat"}):  # fmt: skip
        assert get_me(d, SQUATTER, **credential).status_code == 401
    browser = d.browser()
    for form in ({"grant_type": "refresh_token", "refresh_token": "rlrt_squat"},
                 {"grant_type": "authorization_code", "code": "squat-code",
                  "redirect_uri": REDIRECT}):  # fmt: skip
        refused = browser.post("/v1/oauth/token", data=form,
                               auth=(app.client_id, app.client_secret))  # fmt: skip
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert not store.has_consent(svc, squatted, app.client_id, "openid")
    assert not mfa.is_configured(svc, squatted)
    assert api_keys.list_keys(svc, squatted) == []
    assert d.login(SQUATTER, "victor", SQUAT_PASSWORD).json()["success"] is False

    # Victor signs in without a TOTP prompt, activated, with nothing of the squatter's.
    signed_in = d.login(OWNER, VICTIM, OWNER_PASSWORD).json()
    assert signed_in["success"] is True, signed_in
    me = get_me(d, OWNER, **{"x-jwt-token": signed_in["token"]}).json()
    assert (me["activated"], me["pending"], me["mfaConfigured"]) == (True, False, False)
    d.mailbox.run_workers()
    notice = [m for m in d.mailbox.to(VICTIM) if "password was changed" in str(m["Subject"])]
    plain = notice[0].get_body(preferencelist=("plain",))
    assert plain is not None and "still work" not in plain.get_content()
    events = [(r.event, r.client_ip) for r in audit_rows(svc) if r.account_id == squatted]
    assert ("unproven_purge", OWNER) in events


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_a_later_reset_keeps_what_the_owner_made(deploy: Callable[..., Deployment]) -> None:
    """Only the first proof removes anything: after it, the owner's key and factor stay."""
    d = deploy()
    squatted = sign_up_victims_address(d)
    owner_resets(d)
    meta = RequestMeta(client_ip=OWNER)
    api_key = api_keys.create(d.svc, squatted, "mine", meta).key
    owner_resets(d, "and later another one")
    assert get_me(d, OWNER, **{"x-api-key": api_key}).status_code == 200
    events = [r.event for r in audit_rows(d.svc) if r.account_id == squatted]
    assert events.count("unproven_purge") == 1


@pytest.mark.parametrize("deploy", DATABASES, indirect=True)
def test_strangers_burning_activation_tries_never_stop_the_owner(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy(failures_per_ip="8/15m")
    sign_up_victims_address(d)
    squat = {"x-jwt-token": d.login(SQUATTER, "victor", SQUAT_PASSWORD).json()["token"]}
    # The squatter burns the squatted account's code, then the network's code budget...
    for _ in range(8):
        burnt = d.api(SQUATTER, ACTIVATE[4:], {"code": "0000-0000"}, **squat).json()
        assert burnt == {"success": False, "error": "Invalid or expired activation code"}
    assert limited(d.api(SQUATTER, ACTIVATE[4:], {"code": "0000-0000"}, **squat))
    # ...and the account's budget of new activation mails (to the owner's mailbox).
    for _ in range(3):
        assert d.api(SQUATTER, REQUEST[4:], {}, **squat).json() == {"success": True}
    assert limited(d.api(SQUATTER, REQUEST[4:], {}, **squat))

    # Someone else signing up meanwhile activates from their own network.
    email, username = d.create(OWNER, 7, activated=False)
    mine = {"x-jwt-token": d.login(OWNER, username).json()["token"]}
    code = d.mailbox.last_activation_code(email)
    assert d.api(OWNER, ACTIVATE[4:], {"code": code}, **mine).json() == {"success": True}
    # And the address's owner takes the squatted account over through the mailbox.
    owner_resets(d)
    owner = {"x-jwt-token": d.login(OWNER, VICTIM, OWNER_PASSWORD).json()["token"]}
    assert get_me(d, OWNER, **owner).json()["activated"] is True
    assert get_me(d, SQUATTER, **squat).status_code == 401
