"""The account's life in the tests (issue 11): delete, staff, and the rows an account owns."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relatch.core import totp
from relatch.core.meta import CLI
from relatch.services import operator
from relatch.services.context import Services
from relatch.storage.models import ActivationCode, OutboxMessage, ResetCode, User
from relatch.storage.models_audit import NotMeLink
from relatch.storage.models_auth import ApiKey, RecoveryCode, TotpFactor
from relatch.storage.models_clients import KnownClient
from relatch.storage.models_oauth import OAuthCode, OAuthConsent, OAuthToken
from tests.helpers.api import session_headers
from tests.helpers.app import Account, FakeClock
from tests.helpers.totp import enable

ME = "/v1/api/user"
BY_ID = "/v1/api/users"
NOT_FOUND = {"success": False, "error": "User not found"}
LOGIN_FAILED = {"success": False, "error": "Invalid username or password"}
TOTP_REQUIRED = "ERR_TOTP_TOKEN IS REQUIRED"
REAUTH = {
    "success": False,
    "error": "Sign in again (with your password) to change your sign-in methods",
}
STAFF_REAUTH = {
    "success": False,
    "error": "Staff operations on other accounts need a session JWT from a sign-in within "
    "RELATCH_REAUTH_SECONDS; sign in again",
}
STAFF_MFA = {
    "success": False,
    "error": "Staff operations on other accounts need two-factor authentication: turn TOTP on "
    "for this account, then sign in again",
}
# Every table whose rows sign in as an account, or are secrets mailed to it.
CREDENTIAL_TABLES = (
    ApiKey,
    TotpFactor,
    RecoveryCode,
    ResetCode,
    ActivationCode,
    NotMeLink,
    KnownClient,
    OAuthCode,
    OAuthToken,
    OAuthConsent,
)


def delete_account(
    client: TestClient,
    headers: dict[str, str],
    password: str | None,
    totp_token: str | None = None,
    path: str = ME,
) -> Any:
    body: dict[str, str] = {}
    if password is not None:
        body["password"] = password
    if totp_token is not None:
        body["totpToken"] = totp_token
    return client.request("DELETE", path, json=body, headers=headers)


def rows_of(svc: Services, account_id: int) -> dict[str, int]:
    """How many rows each credential table holds for the account (and its own row)."""
    with svc.sessions() as s:
        counts = {
            model.__tablename__: int(
                s.scalar(select(func.count()).where(model.user_id == account_id)) or 0
            )
            for model in CREDENTIAL_TABLES
        }
        counts["users"] = int(s.scalar(select(func.count()).where(User.id == account_id)) or 0)
    return counts


def unsent_mail(svc: Services, address: str) -> list[str]:
    """Templates of the mails to `address` not yet sent."""
    with svc.sessions() as s:
        return list(
            s.scalars(
                select(OutboxMessage.template)
                .where(OutboxMessage.recipient == address, OutboxMessage.status == "pending")
                .order_by(OutboxMessage.id)
            )
        )


def totp_sign_in(client: TestClient, clock: FakeClock, acct: Account, key: str) -> dict[str, str]:
    body = {
        "username": acct.username,
        "password": acct.password,
        "totpToken": totp.token_at(key, int(clock.now.timestamp())),
    }
    resp = client.post("/v1/api-login", json=body)
    assert resp.json()["success"] is True, resp.text
    clock.advance(30)  # that step is spent: the next token comes from the next step
    return {"x-jwt-token": resp.json()["token"]}


def with_totp(client: TestClient, clock: FakeClock, acct: Account) -> tuple[str, dict[str, str]]:
    """TOTP turned on for `acct`; its key and a session signed in with it."""
    key, _ = enable(client, clock, session_headers(client, acct))
    clock.advance(30)
    return key, totp_sign_in(client, clock, acct, key)


def make_staff(svc: Services, acct: Account) -> None:
    operator.set_staff(svc, acct.email, True, CLI)
