"""The whole reset flow and every credential scheme with the official Edge Impulse npm
client (`edge-impulse-api`, used unchanged, pointed at `http://HOST:PORT/v1`) against a real
`relatch serve` delivering mail to a real SMTP server.

Each call is one `node tests/e2e/npm/client.mjs <operation> <json>` subprocess that prints what
the client returned (or the message of the Error it threw) and what went over the wire."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CODE_LINE
from tests.e2e.browser import in_ci
from tests.e2e.servers import Server, SMTPInbox, relatch_server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "npm" / "client.mjs"
PACKAGE = ROOT / "node_modules" / "edge-impulse-api" / "package.json"
EMAIL, USERNAME = "grace@example.com", "grace-npm"
PASSWORD, NEW_PASSWORD = "cobol compiler one", "cobol compiler two"
THIRD_PASSWORD = "cobol compiler three"


def missing(what: str) -> None:
    """In CI (make test installs node's package) a missing piece fails; locally it skips."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: the npm client test must run; `make node-deps`)")
    pytest.skip(f"{what}; run `make node-deps` to install it")


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        missing("node is not installed")
    if not PACKAGE.exists():
        missing("the npm package edge-impulse-api is not installed")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, inbox: SMTPInbox) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("relatch-npm")
    with relatch_server(workdir, RELATCH_SMTP_URL=f"smtp://127.0.0.1:{inbox.port}") as srv:
        yield srv


def call(node: str, server: Server, operation: str, **args: Any) -> dict[str, Any]:
    """One operation through the npm client; its JSON report."""
    env = {**os.environ, "RELATCH_API": f"{server.url}/v1"}
    done = subprocess.run(
        [node, str(SCRIPT), operation, json.dumps(args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def ok(report: dict[str, Any]) -> dict[str, Any]:
    assert report["ok"] is True, report
    result: dict[str, Any] = report["result"]
    assert result["success"] is True
    (wire,) = report["calls"]
    assert wire["status"] == 200 and wire["contentType"].startswith("application/json")
    return result


def refused(report: dict[str, Any], status: int) -> str:
    """The message of the Error the client threw; it is our `error` field, not the client's
    fallback text (which it uses only when a failed response has no `error`)."""
    assert report["ok"] is False, report
    (wire,) = report["calls"]
    assert wire["status"] == status, report
    assert wire["contentType"].startswith("application/json"), report
    message: str = report["error"]
    assert message and not message.startswith("Failed to call"), report
    return message


def count(inbox: SMTPInbox, subject_part: str) -> int:
    return sum(m["To"] == EMAIL and subject_part in str(m["Subject"]) for m in inbox.messages)


def wait_for_another(inbox: SMTPInbox, subject_part: str, seen: int) -> None:
    """Until a mail beyond the `seen` ones with that subject has arrived for EMAIL."""
    deadline = time.monotonic() + 20
    while count(inbox, subject_part) <= seen:
        assert time.monotonic() < deadline, f"no new mail '{subject_part}'"
        time.sleep(0.05)


def test_reset_flow_and_every_scheme_with_the_npm_client(
    node: str, server: Server, inbox: SMTPInbox
) -> None:
    created = ok(
        call(
            node, server, "createUser",
            name="Grace Hopper", username=USERNAME, email=EMAIL, password=PASSWORD,
            privacyPolicy=True, turnstileResponse="not-checked-by-relatch",
            utmParams=[], jobTitle="Rear admiral", companyName="US Navy",
        )
    )  # fmt: skip
    assert isinstance(created["id"], int)
    first = ok(call(node, server, "login", username=USERNAME, password=PASSWORD))["token"]
    assert isinstance(first, str) and first

    ok(call(node, server, "requestResetPassword", email=EMAIL))
    mail = inbox.wait_for(EMAIL, "reset code")
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None
    found = CODE_LINE.search(text.get_content())
    assert found, text.get_content()
    code = found.group(1)

    ok(call(node, server, "verifyResetPassword", email=EMAIL, code=code.lower()))
    # `success: false` on HTTP 200: the client throws an Error carrying our message.
    wrong = "0000-0000" if code != "0000-0000" else "1111-1111"
    bad = call(node, server, "verifyResetPassword", email=EMAIL, code=wrong)
    assert refused(bad, 200) == "Invalid or expired reset code"

    ok(call(node, server, "resetPassword", email=EMAIL, code=code, newPassword=NEW_PASSWORD))
    wait_for_another(inbox, "password was changed", seen=0)

    old = call(node, server, "login", username=USERNAME, password=PASSWORD)
    assert refused(old, 200) == "Invalid username or password"
    token = ok(call(node, server, "login", username=EMAIL, password=NEW_PASSWORD))["token"]

    made = server.cli("apikey", "create", "--email", EMAIL, "--name", "npm client")
    assert made.returncode == 0, made.stderr
    api_key = made.stdout.strip().splitlines()[-1]

    # The client sends each credential in its own place, as the Edge Impulse API defines it.
    schemes = {
        "jwtToken": (token, ["x-jwt-token"], []),
        "jwtCookie": (token, ["cookie"], ["jwt"]),
        "apiKey": (api_key, ["x-api-key"], []),
    }
    for scheme, (credential, sent, cookies) in schemes.items():
        report = call(node, server, "getCurrentUser", **{scheme: credential})
        me = ok(report)
        wire = report["calls"][0]
        assert wire["path"] == "/v1/api/user"
        credential_headers = {"x-jwt-token", "x-api-key", "cookie", "authorization"}
        assert sorted(set(wire["headers"]) & credential_headers) == sent, scheme
        assert wire["cookies"] == cookies, scheme
        assert me["email"] == EMAIL and me["username"] == USERNAME
        assert me["name"] == "Grace Hopper" and me["id"] == created["id"]
        assert me["activated"] is True  # a successful reset marks the address verified
        assert me["projects"] == [] and me["organizations"] == []
        # The client turns ISO date strings into Date objects (only up to milliseconds).
        assert set(me["created"]) == {"$date"}, me["created"]

    # The JWT issued before the reset is revoked: 401 for both JWT schemes, contract shape.
    for scheme in ("jwtToken", "jwtCookie"):
        refused(call(node, server, "getCurrentUser", **{scheme: first}), 401)
    refused(call(node, server, "getCurrentUser"), 401)
    slim = call(node, server, "getCurrentUser", jwtToken=token, query={"excludeProjects": True})
    assert ok(slim)["email"] == EMAIL

    # Change password with the JWT: the fresh JWT arrives in the `x-jwt-token` response
    # header, which the client hands to `responseHeadersCallback`; the old one is revoked.
    changed = ok(
        call(
            node, server, "changePasswordCurrentUser",
            jwtToken=token, currentPassword=NEW_PASSWORD, newPassword=THIRD_PASSWORD,
        )
    )  # fmt: skip
    fresh = changed["newToken"]
    assert isinstance(fresh, str) and fresh and fresh != token
    wait_for_another(inbox, "password was changed", seen=1)
    refused(call(node, server, "getCurrentUser", jwtToken=token), 401)
    assert ok(call(node, server, "getCurrentUser", jwtToken=fresh))["email"] == EMAIL
    # API keys are deliberate credentials: a password change leaves them working.
    assert ok(call(node, server, "getCurrentUser", apiKey=api_key))["email"] == EMAIL


def activation_code(inbox: SMTPInbox, address: str, nth: int) -> str:
    """The code of the `nth` activation mail to `address` (1 = the sign-up's), once it came."""
    deadline = time.monotonic() + 20
    while True:
        mails = [m for m in list(inbox.messages)
                 if m["To"] == address and "activation code" in str(m["Subject"])]  # fmt: skip
        if len(mails) >= nth:
            break
        assert time.monotonic() < deadline, f"no activation mail #{nth} for {address}"
        time.sleep(0.05)
    text = mails[nth - 1].get_body(preferencelist=("plain",))
    assert text is not None
    found = CODE_LINE.search(text.get_content())
    assert found, text.get_content()
    return found.group(1)


def test_activation_with_the_npm_client(node: str, server: Server, inbox: SMTPInbox) -> None:
    email, username, password = "hedy@example.com", "hedy-npm", "frequency hopping one"
    created = ok(
        call(
            node, server, "createUser",
            name="Hedy Lamarr", username=username, email=email, password=password,
            privacyPolicy=True, turnstileResponse="not-checked-by-relatch",
        )
    )  # fmt: skip
    assert isinstance(created["id"], int)
    token = ok(call(node, server, "login", username=username, password=password))["token"]
    me = ok(call(node, server, "getCurrentUser", jwtToken=token))
    assert (me["activated"], me["pending"]) == (False, True)

    first = activation_code(inbox, email, 1)
    wrong = "0000-0000" if first != "0000-0000" else "1111-1111"
    bad = call(node, server, "activateCurrentUser", jwtToken=token, code=wrong)
    assert refused(bad, 200) == "Invalid or expired activation code"
    # A new code (a bodiless POST from the client); the older one is dead from then on.
    asked = call(node, server, "requestActivationCodeCurrentUser", jwtToken=token)
    ok(asked)
    assert asked["calls"][0]["path"] == "/v1/api/user/request-activation"
    second = activation_code(inbox, email, 2)
    old = call(node, server, "activateCurrentUser", jwtToken=token, code=first)
    assert refused(old, 200) == "Invalid or expired activation code"
    done = call(node, server, "activateCurrentUser", jwtToken=token, code=second.lower())
    ok(done)
    assert done["calls"][0]["path"] == "/v1/api/user/activate"
    me = ok(call(node, server, "getCurrentUser", jwtToken=token))
    assert (me["activated"], me["pending"]) == (True, False)
    again = call(node, server, "activateCurrentUser", jwtToken=token, code=second)
    assert refused(again, 200) == "This account is already activated"


def test_unknown_address_answers_success_with_the_npm_client(node: str, server: Server) -> None:
    ok(call(node, server, "requestResetPassword", email="nobody-npm@example.com"))


def test_bad_body_is_a_400_the_npm_client_reports(node: str, server: Server) -> None:
    # A required field missing: HTTP 400 in the contract shape; the client throws its message.
    report = call(node, server, "resetPassword", email=EMAIL, code="0000-0000")
    assert "newPassword" in refused(report, 400)
