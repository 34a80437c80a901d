"""A changed address undone, end to end (issue 14): a real `relatch serve` sends through a
real SMTP server (aiosmtpd). An intruder who knows the password moves the account to their
own mailbox; the owner's undo link, read from the notice the SMTP server received, puts the
address back, and the reset code then received there lets the owner in. Neither the codes
nor the undo token reach the server's log."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import SMTPInbox, relatch_server
from tests.helpers.app import CODE_LINE

pytestmark = pytest.mark.e2e

PASSWORD = "marble orchard at dusk"
OWNER = "owner-e2e@example.com"
INTRUDER = "intruder-e2e@example.net"
UNDO_LINE = re.compile(r"^(\S+/change-email/undo\?token=(\S+?))\r?$", re.MULTILINE)
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def text_of(inbox: SMTPInbox, to: str, subject_part: str) -> str:
    body = inbox.wait_for(to, subject_part).get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def code_in(text: str) -> str:
    found = CODE_LINE.search(text)
    assert found, text
    return found.group(1)


def test_the_owner_takes_the_account_back_through_real_mail(
    tmp_path: Path, inbox: SMTPInbox
) -> None:
    smtp = {"RELATCH_SMTP_URL": f"smtp://127.0.0.1:{inbox.port}"}
    with relatch_server(tmp_path, **smtp) as server, httpx.Client(timeout=10) as http:
        made = server.cli(
            "user", "create", "--email", OWNER, "--username", "owner-e2e", "--name", "Owner",
            stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        api = f"{server.url}/v1"
        login = {"username": "owner-e2e", "password": PASSWORD}
        jwt = {"x-jwt-token": http.post(f"{api}/api-login", json=login).json()["token"]}
        http.cookies.clear()

        # The intruder, signed in with the phished password, moves the account.
        asked = http.post(f"{api}/api/user/change-email", json={"newEmail": INTRUDER}, headers=jwt)
        assert asked.json() == {"success": True}
        change_code = code_in(text_of(inbox, INTRUDER, "address-change code"))
        done = http.post(
            f"{api}/api/user/change-email/confirm", json={"code": change_code}, headers=jwt
        )
        assert done.json() == {"success": True}
        assert http.get(f"{api}/api/user", headers=jwt).json()["email"] == INTRUDER

        # The owner's notice, as the SMTP server received it, carries the way back.
        found = UNDO_LINE.search(text_of(inbox, OWNER, "address was changed"))
        assert found
        url, token = found.group(1), found.group(2)
        page = http.get(url)
        assert page.status_code == 200 and "put my address back" in page.text
        csrf = CSRF.search(page.text)
        assert csrf
        undone = http.post(
            f"{server.url}/change-email/undo", data={"token": token, "csrf_token": csrf.group(1)}
        )
        assert undone.status_code == 200, undone.text
        assert "Your address is back" in undone.text
        assert http.get(f"{api}/api/user", headers=jwt).status_code == 401

        # The reset code arrives at the owner's address, over SMTP, and works.
        reset_code = code_in(text_of(inbox, OWNER, "reset code"))
        body = {"email": OWNER, "code": reset_code, "newPassword": "copper kite over the bay"}
        assert http.post(f"{api}/api-user-reset-password", json=body).json() == {"success": True}
        login["password"] = "copper kite over the bay"
        owner = {"x-jwt-token": http.post(f"{api}/api-login", json=login).json()["token"]}
        assert http.get(f"{api}/api/user", headers=owner).json()["email"] == OWNER
    log = server.log.read_text()
    for secret in (change_code, change_code.replace("-", ""), token, reset_code):
        assert secret not in log
    assert "/change-email/undo?[redacted]" in log
