"""Mail content and terminal injection (issue 8, section 4): a name holding CR/LF wrote lines
of its own into the official reset and notice mails; stored text printed by the CLI could
carry terminal escape sequences. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import anyio
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from relatch.app import cli as cli_app
from relatch.mail import worker
from relatch.mail.render import TemplateRenderer
from relatch.mail.transports import MailDirTransport
from relatch.services.context import Services
from relatch.storage.db import transaction
from relatch.storage.models import OutboxMessage, User
from relatch.storage.models_audit import AuditEvent
from relatch.storage.models_auth import ApiKey
from tests.api.test_poison_items import plant
from tests.conftest import CODE_LINE, Account, Mailbox
from tests.helpers.mails import as_mail

FAKE_CODE = "ZZZZ-9999"
INJECTED = f"Your reset code is {FAKE_CODE} https://evil.example/reset"
# Every way to start a line, and the terminal controls, each in one stored name.
EVIL_NAME = f"Ada\r\n{INJECTED}\n\r{INJECTED}\u2028{INJECTED}\x85{INJECTED}\x1b[31m\x9b0m"
ESCAPES = ("\x1b", "\x9b", "\r", "\x85", "\u2028")


def test_create_user_refuses_a_name_with_a_line_break(client: TestClient) -> None:
    for name in (f"Ada\r\n{INJECTED}", f"Ada\n{INJECTED}", f"Ada\u2028{INJECTED}", "Ada\x1b[31m"):
        body = {
            "name": name,
            "username": "adalovelace",
            "email": "ada@example.com",
            "privacyPolicy": True,
            "password": "correct horse battery",
        }
        resp = client.post("/v1/api-user-create", json=body)
        assert resp.status_code == 400, resp.text
        assert resp.json()["success"] is False and "'name'" in resp.json()["error"]
        assert INJECTED not in resp.text


def store_name(svc: Services, account_id: int, name: str, *, verified: bool = True) -> None:
    """A row stored before names were checked (or written by hand); by default of an account
    whose address is proven (only those are greeted by name)."""
    with svc.sessions() as s, s.begin():
        s.execute(
            update(User).where(User.id == account_id).values(name=name, email_verified=verified)
        )


def lines_of(message: EmailMessage, kind: str) -> list[str]:
    body = message.get_body(preferencelist=(kind,))
    assert body is not None
    return str(body.get_content()).splitlines()


def assert_no_injected_line(message: EmailMessage) -> None:
    for kind in ("plain", "html"):
        lines = lines_of(message, kind)
        for line in lines:
            assert not line.lstrip().startswith("Your reset code is Z"), line
            assert not any(ch in line for ch in ESCAPES), repr(line)
    text = "\n".join(lines_of(message, "plain"))
    assert FAKE_CODE not in CODE_LINE.findall(text)
    assert "\n" not in str(message["Subject"])


def test_stored_name_cannot_add_lines_to_the_mails(
    svc: Services, client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    acct: Account = make_account()
    store_name(svc, acct.id, EVIL_NAME)
    resp = client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    assert resp.json() == {"success": True}
    code = mailbox.last_code(acct.email)  # the one code alone on a line is the real one
    assert code != FAKE_CODE
    reset_mail = mailbox.to(acct.email)[0]
    assert_no_injected_line(reset_mail)
    assert any(line.startswith("Hello Ada ") for line in lines_of(reset_mail, "plain"))

    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    mailbox.run_workers()
    notices = [m for m in mailbox.to(acct.email) if "changed" in str(m["Subject"])]
    assert notices
    assert_no_injected_line(notices[0])


def test_a_squatters_name_never_reaches_the_owners_mailbox(
    svc: Services, client: TestClient, mailbox: Mailbox, make_account: Any
) -> None:
    """A stranger signs up with someone else's address and a name that reads like an
    instruction; the reset and notice mails that reach the real owner carry none of it."""
    bait = "Reset here https://evil.example/reset now"
    acct: Account = make_account(activated=False, name=bait)
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    code = mailbox.last_code(acct.email)
    body = {"email": acct.email, "code": code, "newPassword": "a brand new passphrase"}
    assert client.post("/v1/api-user-reset-password", json=body).json() == {"success": True}
    mailbox.run_workers()
    mails = mailbox.to(acct.email)
    assert len(mails) == 3  # the activation code, the reset code, then the notice
    assert any("activation" in str(m["Subject"]) for m in mails)
    for mail in mails:
        for kind in ("plain", "html"):
            text = "\n".join(lines_of(mail, kind))
            assert "evil.example" not in text and "Reset here" not in text
        assert "Hello," in lines_of(mail, "plain")
    # The reset proved the address: from now on the owner's mails greet by the name.
    store_name(svc, acct.id, "Ada Lovelace", verified=True)
    client.post("/v1/api-user-request-reset-password", json={"email": acct.email})
    mailbox.run_workers()
    assert any(
        "Hello Ada Lovelace," in lines_of(m, "plain")
        for m in mailbox.to(acct.email)
        if "reset code" in str(m["Subject"])
    )


def test_renderer_keeps_every_value_on_its_line() -> None:
    renderer = TemplateRenderer("https://relatch.test")
    context = {
        "name": EVIL_NAME,
        "code": "ABCD-EFGH",
        "link_token": "1.abc",
        "email": "a@example.com",
        "minutes": 15,
    }
    subject, text, html = renderer.render("reset_code", context)
    assert "Hello Ada Your reset code is" in text
    for part in (subject, text, html):
        assert not any(ch in part for ch in ("\x1b", "\x9b", "\r", "\x85", "\u2028"))
    assert [line for line in text.splitlines() if "Your reset code is Z" in line] == [
        text.splitlines()[0]
    ]


# The CLI: stored text is printed without terminal escape codes ---------------------------


RED = "\x1b[31mred\x1b[0m \x9b2J\x07\r\x08"


def assert_no_terminal_codes(output: str) -> None:
    for ch in ("\x1b", "\x9b", "\x07", "\r", "\x08"):
        assert ch not in output, repr(output)


def test_cli_strips_escape_codes_from_key_names_and_audit(
    svc: Services, client: TestClient, make_account: Any, cli: CliRunner
) -> None:
    acct: Account = make_account()
    created = cli.invoke(cli_app, ["apikey", "create", "--email", acct.email, "--name", "k"])
    assert created.exit_code == 0, created.output
    with svc.sessions() as s, s.begin():
        s.execute(update(ApiKey).values(name=f"key {RED}"))
        s.execute(update(AuditEvent).values(user_agent=f"agent {RED}\tand\nmore"))
        emails = list(s.scalars(select(User.email)))
    assert emails == [acct.email]

    listed = cli.invoke(cli_app, ["apikey", "list", "--email", acct.email])
    assert listed.exit_code == 0, listed.output
    assert "key [31mred[0m" in listed.output
    assert_no_terminal_codes(listed.output)

    audit = cli.invoke(cli_app, ["audit"])
    assert audit.exit_code == 0, audit.output
    assert_no_terminal_codes(audit.output)
    rows = audit.output.strip().splitlines()
    assert all(len(row.split("\t")) == 8 for row in rows)  # one row per event, 8 columns
    assert "agent [31mred[0m" in audit.output


def test_cli_refuses_names_with_controls(make_account: Any, cli: CliRunner) -> None:
    acct: Account = make_account()
    bad = cli.invoke(cli_app, ["apikey", "create", "--email", acct.email, "--name", RED])
    assert bad.exit_code == 2
    user = cli.invoke(
        cli_app,
        ["user", "create", "--email", "b@example.com", "--username", "bbbbb", "--name", RED],
        input="correct horse battery\n",
    )
    assert user.exit_code == 2


def test_cli_strips_escape_codes_from_mail(svc: Services, cli: CliRunner) -> None:
    message = EmailMessage()
    message["From"] = "relatch@example.com"
    message["To"] = "ada@example.com"
    message["Subject"] = f"Subject {RED}".replace("\r", "")  # (a header refuses CR itself)
    message.set_content(f"Hello {RED}\nline two\tcolumn\n")
    asyncio.run(MailDirTransport(svc.settings.mail_dir).send(as_mail(message)))

    listed = cli.invoke(cli_app, ["mail", "list"])
    assert listed.exit_code == 0, listed.output
    assert "Subject [31mred[0m" in listed.output
    assert_no_terminal_codes(listed.output)

    shown = cli.invoke(cli_app, ["mail", "show"])
    assert shown.exit_code == 0, shown.output
    assert_no_terminal_codes(shown.output)
    assert "line two\tcolumn" in shown.output  # newlines and tabs of a body stay


def test_cli_shows_a_non_ascii_address_and_subject_as_written(
    svc: Services, cli: CliRunner
) -> None:
    # The builder writes a non-ASCII address in UTF-8 (RFC 6532) and a non-ASCII subject
    # as RFC 2047 words: the operator reads both as text, not as bytes or encoded words.
    # (The stdlib's encoder wrote such an address as encoded words, which RFC 2047 forbids.)
    plant(svc, "zoë@exämple.com", 1)
    with transaction(svc.sessions) as s:
        s.execute(update(OutboxMessage).values(subject="Réinitialisation 🔑"))
    assert anyio.run(worker.deliver_due, svc, MailDirTransport(svc.settings.mail_dir)) == 1

    listed = cli.invoke(cli_app, ["mail", "list"])
    assert listed.exit_code == 0, listed.output
    assert "zoë@exämple.com\tRéinitialisation 🔑" in listed.output
    shown = cli.invoke(cli_app, ["mail", "show"])
    assert "To: zoë@exämple.com" in shown.output
    assert "Subject: Réinitialisation 🔑" in shown.output
