"""No secret reaches a log line (issue 13; STYLE rule 12), in either RELATCH_LOG_FORMAT.

A real `relatch serve` (its whole stdout and stderr: Relatch's lines and uvicorn's access
log) goes through a password sign-in, an API key made and used, a reset (a refused
password, a wrong code, the mailed link opened, the code used), too many reset requests,
the "this was not me" link, and an OAuth authorization-code flow with PKCE. Then no
password, code, link token, JWT, API key, client secret, OAuth code or token, nor PKCE
verifier appears anywhere in the log. In JSON every line is one object with the request
id of the request it was written for.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from tests.conftest import CODE_LINE
from tests.e2e.servers import Server, relatch_server
from tests.e2e.test_oauth import REDIRECT, Browser, Person, authorize_url, register, token_url

pytestmark = pytest.mark.e2e

PASSWORD = "marble orchard at dusk"
NEW_PASSWORD = "copper kite over the bay"
NOT_ME_LINE = re.compile(r"^(\S+/not-me\?token=(\S+?))\r?$", re.MULTILINE)
RESET_LINK_LINE = re.compile(r"^\S+/reset-password\?token=(\S+?)\r?$", re.MULTILINE)
JSON_KEYS = {"time", "level", "logger", "message", "request_id", "operation", "outcome"}


def newest_mail(server: Server, to: str, subject_part: str) -> str:
    """The text body of the newest mail to `to` with `subject_part` in its subject."""
    folder = Path(server.env["RELATCH_MAIL_DIR"])
    for _ in range(200):
        for path in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            msg = message_from_bytes(path.read_bytes(), policy=policy.default)
            if msg["To"] == to and subject_part in str(msg["Subject"]):
                body = msg.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
                return str(body.get_content())
        time.sleep(0.1)
    raise AssertionError(f"no mail '{subject_part}' to {to}")


def post(server: Server, path: str, body: Any, **headers: str) -> requests.Response:
    return requests.post(f"{server.url}/v1/{path}", json=body, headers=headers, timeout=10)


def every_flow(server: Server) -> tuple[list[str], str]:
    """Runs the flows; the secrets they handled, and the request id of a refused request."""
    n = secrets.token_hex(3)
    email, username = f"logs-{n}@example.com", f"logs-{n}"
    made = server.cli(
        "user", "create", "--email", email, "--username", username, "--name", "Logs",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    seen: list[str] = [PASSWORD, NEW_PASSWORD]

    # Sign in; an API key made and used.
    jwt = post(server, "api-login", {"username": username, "password": PASSWORD}).json()["token"]
    key = post(server, "api/user/apikeys", {"name": "logs"}, **{"x-jwt-token": jwt}).json()
    assert key["success"] is True, key
    me = requests.get(f"{server.url}/v1/api/user", headers={"x-api-key": key["apiKey"]}, timeout=10)
    assert me.json()["email"] == email
    seen += [jwt, key["apiKey"]]

    # A reset: a wrong code, the link opened, a refused password, then the code used.
    assert post(server, "api-user-request-reset-password", {"email": email}).json()["success"]
    mail = newest_mail(server, email, "reset code")
    found = CODE_LINE.search(mail)
    link = RESET_LINK_LINE.search(mail)
    assert found and link
    code = found.group(1)
    seen += [code, code.replace("-", ""), link.group(1)]
    wrong = {"email": email, "code": "0000-0000"}
    assert post(server, "api-user-verify-reset-password-code", wrong).json()["success"] is False
    page = requests.get(f"{server.url}/reset-password?token={link.group(1)}", timeout=10)
    assert page.status_code == 200
    # Refused: the new password may not be the current one.
    body = {"email": email, "code": code, "newPassword": PASSWORD}
    assert post(server, "api-user-reset-password", body).json()["success"] is False
    body["newPassword"] = NEW_PASSWORD
    assert post(server, "api-user-reset-password", body).json() == {"success": True}

    # Too many reset requests for one address (3/15m): the refusal is logged.
    for _ in range(2):
        post(server, "api-user-request-reset-password", {"email": email})
    limited = post(server, "api-user-request-reset-password", {"email": email})
    assert limited.status_code == 429

    # The "this was not me" link of the "password changed" notice, opened.
    not_me = NOT_ME_LINE.search(newest_mail(server, email, "password was changed"))
    assert not_me
    seen.append(not_me.group(2))
    assert requests.get(not_me.group(1), timeout=10).status_code == 200

    # OAuth: authorization code with PKCE, the sign-in and consent pages, the bearer used.
    client = register(server, "authorization_code", "refresh_token")
    oauth = OAuth2Session(
        client["client_id"],
        client["client_secret"],
        scope="openid email profile",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, _state = oauth.create_authorization_url(
        authorize_url(server), nonce="n-" + secrets.token_hex(8), code_verifier=verifier
    )
    person = Person(0, username, email, NEW_PASSWORD)
    location = Browser(server).authorize(url, person)
    oauth_code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = oauth.fetch_token(
        token_url(server), authorization_response=location, code_verifier=verifier
    )
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(f"{server.url}/v1/api/user", headers=bearer, timeout=10).ok
    seen += [client["client_secret"], verifier, oauth_code]
    seen += [tokens["access_token"], tokens["refresh_token"], tokens["id_token"]]
    return seen, limited.headers["x-request-id"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_in_any_log_line(tmp_path: Path, log_format: str) -> None:
    with relatch_server(
        tmp_path, RELATCH_LOG_FORMAT=log_format, RELATCH_LIMIT_RESET_PER_ADDRESS="3/15m"
    ) as srv:
        seen, limited_id = every_flow(srv)
    log = srv.log.read_text()

    # The log holds the flows (the access lines of the operations)...
    for path in ("/v1/api-user-reset-password", "/v1/oauth/token", "/not-me?[redacted]"):
        assert path in log, path
    # ...and none of their secrets, nor their long enough parts.
    for secret in seen:
        assert len(secret) >= 8
        assert secret not in log, f"a secret of {len(secret)} characters is in the log"
        if len(secret) >= 32:
            assert secret[:16] not in log and secret[-16:] not in log

    if log_format == "json":
        check_json_lines(log, limited_id)
    else:
        assert not log.lstrip().startswith("{")


def check_json_lines(log: str, limited_id: str) -> None:
    """Every line one JSON object with the same keys; the lines of a request name it."""
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines and all(set(line) >= JSON_KEYS for line in lines)
    assert all(line["time"].endswith("+00:00") for line in lines)
    mine = [line for line in lines if line["request_id"] == limited_id]
    # Written while it was handled (the limit, in a worker thread)...
    refusal = [line for line in mine if line["logger"] == "relatch.services.limits"]
    assert refusal and refusal[0]["operation"] == "requestResetPassword"
    assert refusal[0]["message"] == "rate limit reset: 1 window(s) full"
    # ...and uvicorn's access line, with the outcome.
    (access,) = [line for line in mine if line["logger"] == "uvicorn.access"]
    assert access["operation"] == "requestResetPassword" and access["outcome"] == "limited"
    assert '"POST /v1/api-user-request-reset-password HTTP/1.1" 429' in access["message"]
    # Lines outside any request (start-up, the workers) carry none.
    assert any(line["request_id"] is None for line in lines)
