"""The reset page used by a person in a real browser (Debian's chromium, headless) against
`relatch serve` delivering mail to a real SMTP server. Screenshots: build/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, update

from relatch.storage.models import ResetCode
from tests.conftest import CODE_LINE
from tests.e2e.browser import accessibility_problems, chromium, shot
from tests.e2e.servers import Server, SMTPInbox, relatch_server

pytestmark = pytest.mark.e2e
LINK = re.compile(r"(http://\S+/reset-password\?\S+)")
DESKTOP = {"width": 1024, "height": 800}
NARROW = {"width": 320, "height": 640}
NEW_PASSWORD = "seven purple otters juggle"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, inbox: SMTPInbox, browser: Any
) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("relatch-page")
    with relatch_server(workdir, RELATCH_SMTP_URL=f"smtp://127.0.0.1:{inbox.port}") as srv:
        yield srv


def account(server: Server, name: str) -> tuple[str, str]:
    email = f"{name}@example.com"
    resp = httpx.post(
        f"{server.url}/v1/api-user-create",
        json={
            "name": name.title(),
            "username": name,
            "email": email,
            "password": "the old password 1",
            "privacyPolicy": True,
        },
    )
    assert resp.json()["success"] is True, resp.text
    return name, email


def sign_in(server: Server, username: str, password: str) -> bool:
    resp = httpx.post(
        f"{server.url}/v1/api-login", json={"username": username, "password": password}
    )
    return bool(resp.json()["success"])


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def ask_for_code(page: Any, server: Server, email: str) -> None:
    page.goto(f"{server.url}/reset-password")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_role("button", name="Send me a code").click()
    page.get_by_role("heading", name="Choose a new password").wait_for()


def fill_new_password(page: Any, code: str, password: str = NEW_PASSWORD) -> None:
    page.get_by_label("Code from the mail").fill(code)
    page.get_by_label("New password", exact=True).fill(password)
    page.get_by_label("New password again").fill(password)


def test_a_person_resets_from_the_address_to_signing_in(
    browser: Any, server: Server, inbox: SMTPInbox
) -> None:
    username, email = account(server, "grace")
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    page.goto(f"{server.url}/reset-password")
    shot(page, "01-ask-for-a-code")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_role("button", name="Send me a code").click()
    notice = page.get_by_role("status")
    notice.wait_for()
    assert f"If an account exists for {email}, a code is on its way" in notice.inner_text()
    shot(page, "02-code-sent")

    mail = inbox.wait_for(email, "reset code")
    text = text_of(mail)
    code = CODE_LINE.search(text).group(1)  # type: ignore[union-attr]
    # The person types it as they read it: lower case, without the hyphen.
    fill_new_password(page, code.replace("-", "").lower())
    # Progressive enhancement under the real CSP: strength hint and show/hide work.
    assert "Strength" in page.locator("#password-strength").inner_text()
    toggle = page.get_by_role("button", name="Show the passwords")
    toggle.click()
    assert page.get_by_label("New password", exact=True).get_attribute("type") == "text"
    shot(page, "03-new-password")
    toggle.click()
    page.get_by_role("button", name="Set my new password").click()
    page.get_by_role("heading", name="Your password was changed").wait_for()
    shot(page, "04-done")
    assert sign_in(server, username, NEW_PASSWORD)
    assert not sign_in(server, username, "the old password 1")
    assert inbox.wait_for(email, "password was changed")
    context.close()


def test_the_link_in_the_mail_fills_the_form_and_leaves_the_url(
    browser: Any, server: Server, inbox: SMTPInbox
) -> None:
    username, email = account(server, "linus")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    ask_for_code(page, server, email)
    text = text_of(inbox.wait_for(email, "reset code"))
    code = CODE_LINE.search(text).group(1)  # type: ignore[union-attr]
    link = LINK.search(text).group(1)  # type: ignore[union-attr]
    assert code not in link and "token=" in link  # the link carries a token, not the code
    token = link.partition("token=")[2]
    page.goto(link)
    assert token not in page.url and "token=" not in page.url  # dropped after reading
    assert token not in page.content()  # carried sealed in a cookie, never in the page
    assert page.get_by_label("Code from the mail").count() == 0  # nothing to type but...
    assert page.get_by_label("E-mail address").input_value() == email
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set my new password").click()
    page.get_by_role("heading", name="Your password was changed").wait_for()
    assert token not in page.url
    assert sign_in(server, username, NEW_PASSWORD)
    # Secrets in logs: not in the server's log, access lines included.
    log = server.log.read_text()
    assert "/reset-password?[redacted]" in log  # the access lines are there
    assert token not in log
    context.close()


def test_a_wrong_code_is_refused_next_to_the_field(
    browser: Any, server: Server, inbox: SMTPInbox
) -> None:
    _username, email = account(server, "wrongcode")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    ask_for_code(page, server, email)
    inbox.wait_for(email, "reset code")
    fill_new_password(page, "ZZZZ-ZZZZ")
    page.get_by_role("button", name="Set my new password").click()
    code_input = page.get_by_label("Code from the mail")
    code_input.wait_for()
    assert code_input.get_attribute("aria-invalid") == "true"
    error = page.locator("#code-error")
    assert "wrong, already used or expired" in error.inner_text()
    assert "code-error" in (code_input.get_attribute("aria-describedby") or "")
    assert "wrong, already used or expired" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("New password", exact=True).input_value() == ""  # never echoed
    shot(page, "05-wrong-code")
    context.close()


def test_an_expired_code_is_refused(browser: Any, server: Server, inbox: SMTPInbox) -> None:
    username, email = account(server, "expired")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    ask_for_code(page, server, email)
    code = CODE_LINE.search(text_of(inbox.wait_for(email, "reset code"))).group(1)  # type: ignore[union-attr]
    # Time travel without waiting the TTL (60 s at least): the server's clock is real, so
    # the stored deadline is moved into the past. TTL boundaries are unit-tested with the
    # fake clock; this checks what the person sees when it has passed.
    engine = create_engine(server.env["RELATCH_DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(update(ResetCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    engine.dispose()
    fill_new_password(page, code)
    page.get_by_role("button", name="Set my new password").click()
    page.locator("#code-error").wait_for()
    assert "expired" in page.locator("#code-error").inner_text()
    assert not sign_in(server, username, NEW_PASSWORD)
    shot(page, "06-expired-code")
    context.close()


def test_it_works_with_javascript_off(browser: Any, server: Server, inbox: SMTPInbox) -> None:
    username, email = account(server, "nojs")
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = context.new_page()
    ask_for_code(page, server, email)
    code = CODE_LINE.search(text_of(inbox.wait_for(email, "reset code"))).group(1)  # type: ignore[union-attr]
    assert page.get_by_role("button", name="Show the passwords").count() == 0  # no script ran
    fill_new_password(page, code, "short")
    page.get_by_role("button", name="Set my new password").click()
    assert "at least 8 characters" in page.locator("#newPassword-error").inner_text()
    shot(page, "07-no-javascript-refusal")
    fill_new_password(page, code)
    page.get_by_role("button", name="Set my new password").click()
    page.get_by_role("heading", name="Your password was changed").wait_for()
    assert sign_in(server, username, NEW_PASSWORD)
    context.close()


def test_readable_at_320_px_and_in_french(browser: Any, server: Server, inbox: SMTPInbox) -> None:
    _username, email = account(server, "narrow")
    context = browser.new_context(viewport=NARROW, locale="fr-FR", is_mobile=True)
    page = context.new_page()
    page.goto(f"{server.url}/reset-password")
    assert page.locator("html").get_attribute("lang") == "fr"
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_role("button", name="M’envoyer un code").click()
    page.get_by_role("heading", name="Choisissez un nouveau mot de passe").wait_for()
    inbox.wait_for(email, "reset code")
    page.get_by_role("button", name="Enregistrer mon nouveau mot de passe").click()
    page.get_by_role("alert").wait_for()
    # Nothing wider than the screen: no sideways scrolling (WCAG 2.2 1.4.10 Reflow).
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], width
    shot(page, "08-narrow-320px-french")
    context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, NARROW], ids=["desktop", "320px"])
def test_accessibility(browser: Any, server: Server, viewport: dict[str, int]) -> None:
    # bypass_csp only here: axe-core is injected as a script the page's CSP would refuse.
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{server.url}/reset-password")
    assert accessibility_problems(page) == [], "step 1"
    ask_for_code(page, server, "a@example.com")  # step 2 with the notice (only after a POST)
    assert page.get_by_role("status").is_visible()
    assert accessibility_problems(page) == [], "step 2 with the notice"
    page.goto(f"{server.url}/reset-password?email=a%40example.com")
    page.get_by_role("button", name="Set my new password").click()
    page.get_by_role("alert").wait_for()
    assert accessibility_problems(page) == [], "step 2 with errors"
    page.goto(f"{server.url}/reset-password/done")
    assert accessibility_problems(page) == [], "done"
    context.close()
