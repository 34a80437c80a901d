"""Every credential scheme with the official `edgeimpulse-api` client against `relatch serve`:
API key (made by the CLI), JWT cookie, JWT header; revocation by reset; TOTP at sign-in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeimpulse_api import ApiClient, Configuration, LoginApi, UserApi
from edgeimpulse_api.exceptions import ApiException
from edgeimpulse_api.models.activate_user_or_verify_email_request import (
    ActivateUserOrVerifyEmailRequest,
)
from edgeimpulse_api.models.create_user_request import CreateUserRequest
from edgeimpulse_api.models.get_jwt_request import GetJWTRequest
from edgeimpulse_api.models.request_reset_password_request import RequestResetPasswordRequest
from edgeimpulse_api.models.reset_password_request import ResetPasswordRequest
from edgeimpulse_api.models.user_delete_totp_mfa_key_request import UserDeleteTotpMfaKeyRequest
from edgeimpulse_api.models.user_set_totp_mfa_key_request import UserSetTotpMfaKeyRequest

from relatch.core import totp
from tests.e2e.servers import Server, relatch_server

pytestmark = pytest.mark.e2e
PASSWORD = "analytical engine two"
NEW_PASSWORD = "difference engine three"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("relatch-schemes")
    with relatch_server(workdir) as srv:  # mail goes to the dev outbox in workdir/mail
        yield srv


def api(server: Server, **api_key: str) -> ApiClient:
    cfg = Configuration(host=f"{server.url}/v1", api_key=api_key or None)
    return ApiClient(cfg)


def make_user(server: Server, n: int) -> tuple[str, str]:
    username, email = f"schemes-{n}", f"schemes{n}@example.com"
    created = UserApi(api(server)).create_user(
        CreateUserRequest(
            name=f"Schemes {n}", username=username, email=email, password=PASSWORD,
            privacy_policy=True, turnstile_response="not-checked-by-relatch",
        )
    )  # fmt: skip
    assert created.success is True
    # Activated with the code of its activation mail, through the official client: API keys
    # and TOTP are only for accounts whose address is proven (issue 11).
    session = sign_in(server, username, PASSWORD)
    code = server.mailed_code(email, "activation code")
    done = UserApi(api(server, JWTHttpHeaderAuthentication=session)).activate_current_user(
        ActivateUserOrVerifyEmailRequest(code=code)
    )
    assert done.success is True
    return username, email


def sign_in(server: Server, username: str, password: str, token: str | None = None) -> str:
    resp = LoginApi(api(server)).login(
        GetJWTRequest(username=username, password=password, totp_token=token)
    )
    assert resp.success is True, resp.error
    assert resp.token
    return str(resp.token)


def login_error(server: Server, username: str, password: str, token: str | None = None) -> str:
    """The error of a refused sign-in (the generated client raises it as an Exception)."""
    with pytest.raises(Exception) as err:  # the generated client raises a bare Exception
        LoginApi(api(server)).login(
            GetJWTRequest(username=username, password=password, totp_token=token)
        )
    return str(err.value)


def whoami(server: Server, **api_key: str) -> str:
    return str(UserApi(api(server, **api_key)).get_current_user().email)


def refused(server: Server, **api_key: str) -> None:
    with pytest.raises(ApiException) as err:
        UserApi(api(server, **api_key)).get_current_user()
    assert err.value.status == 401


def reset_code(server: Server, email: str) -> str:
    return server.mailed_code(email, "reset code")


def reset(server: Server, email: str) -> None:
    users = UserApi(api(server))
    users.request_reset_password(RequestResetPasswordRequest(email=email))
    done = users.reset_password(
        ResetPasswordRequest(email=email, code=reset_code(server, email), new_password=NEW_PASSWORD)
    )
    assert done.success is True, done.error


def test_each_scheme_then_revocation_by_reset(server: Server) -> None:
    username, email = make_user(server, 1)
    jwt = sign_in(server, username, PASSWORD)
    made = server.cli("apikey", "create", "--email", email, "--name", "e2e")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]

    assert whoami(server, ApiKeyAuthentication=key) == email
    assert whoami(server, JWTAuthentication=jwt) == email
    assert whoami(server, JWTHttpHeaderAuthentication=jwt) == email

    reset(server, email)
    refused(server, JWTAuthentication=jwt)
    refused(server, JWTHttpHeaderAuthentication=jwt)
    assert whoami(server, ApiKeyAuthentication=key) == email  # API keys survive, by design

    listed = server.cli("apikey", "list", "--email", email)
    assert key[:11] in listed.stdout and key not in listed.stdout
    revoked = server.cli("apikey", "revoke", listed.stdout.split("\t", 1)[0])
    assert revoked.returncode == 0, revoked.stderr
    refused(server, ApiKeyAuthentication=key)


def test_totp_with_the_official_client(server: Server) -> None:
    username, email = make_user(server, 2)
    users = UserApi(api(server, JWTHttpHeaderAuthentication=sign_in(server, username, PASSWORD)))
    made = users.user_generate_new_totp_mfa_key()
    assert made.success is True and made.url.startswith("otpauth://")
    now = int(time.time())
    done = users.user_set_totp_mfa_key(
        UserSetTotpMfaKeyRequest(key=made.key, totp_token=totp.token_at(made.key, now))
    )
    assert done.success is True and len(done.recovery_codes) == 10
    assert users.get_current_user().mfa_configured is True

    assert login_error(server, username, PASSWORD).startswith("ERR_TOTP_TOKEN IS REQUIRED")
    assert login_error(server, username, "wrong password!") == "Invalid username or password"
    # The next step's token (inside the drift window): the set-key step is used up.
    jwt = sign_in(server, username, PASSWORD, totp.token_at(made.key, now + 30))

    reset(server, email)
    refused(server, JWTHttpHeaderAuthentication=jwt)
    still = login_error(server, username, NEW_PASSWORD)
    assert still.startswith("ERR_TOTP_TOKEN IS REQUIRED")  # a reset keeps the second factor
    code = done.recovery_codes[0]
    fresh = sign_in(server, username, NEW_PASSWORD, code)
    # Recovery codes are single use.
    assert login_error(server, username, NEW_PASSWORD, code) == "Invalid or already used TOTP token"

    cleared = UserApi(api(server, JWTAuthentication=fresh)).user_delete_totp_mfa_key(
        UserDeleteTotpMfaKeyRequest(totp_token=done.recovery_codes[1])
    )
    assert cleared.success is True
    sign_in(server, username, NEW_PASSWORD)


def test_bodiless_operations_with_the_official_client(server: Server) -> None:
    # The official client sends create-key with no body and no Content-Type. With the JWT in
    # the x-jwt-token header that keeps working; with the jwt cookie the same request is
    # what a cross-site form could send, so it is refused (CSRF, issue 8).
    username, email = make_user(server, 3)
    jwt = sign_in(server, username, PASSWORD)
    made = UserApi(api(server, JWTHttpHeaderAuthentication=jwt)).user_generate_new_totp_mfa_key()
    assert made.success is True and made.key
    with pytest.raises(ApiException) as err:
        UserApi(api(server, JWTAuthentication=jwt)).user_generate_new_totp_mfa_key()
    assert err.value.status == 401 and "application/json" in str(err.value.body)
    assert whoami(server, JWTAuthentication=jwt) == email  # reading with the cookie: as before
