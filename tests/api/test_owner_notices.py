"""The owner's notices (issue 14): a sign-in from a new client, and an API key created.

Through HTTP behind a trusted proxy (`X-Forwarded-For` stands for each client, shipped
default limits), on SQLite and PostgreSQL, reading the mails the workers deliver to a
real SMTP server. Both sides: the owner hears once of each new client and never of a known
one; whoever signs in with the owner's password from a new place is announced, with a
"this was not me" link that works; a failed attempt announces nothing (that is the
guessing notice's business, tests/api/test_guessing_notice.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relatch.app import build
from relatch.core import totp
from relatch.storage import accounts as accounts_repo
from relatch.storage import oauth_repo as store
from tests.conftest import DATABASES, FakeClock
from tests.conftest import test_settings as make_settings
from tests.e2e.servers import SMTPInbox
from tests.helpers.activation import vouch
from tests.helpers.lockout import (
    PASSWORD,
    WRONG,
    Deployment,
    deploy_fixture,  # noqa: F401 (the `deploy` fixture)
    signed_in_on_page,
)
from tests.helpers.not_me import CSRF_RE
from tests.helpers.notices import (
    API_KEY_CREATED,
    NEW_SIGN_IN,
    html_of,
    mails,
    not_me_path,
    text_of,
)
from tests.helpers.totp import MFA

HOME = "192.0.2.10"
HOME_OTHER_HOST = "192.0.2.77"  # the same /24
CAFE = "198.18.5.5"
DAY = 86400
AGENT = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"

pytestmark = pytest.mark.parametrize("deploy", DATABASES, indirect=True)


def sign_in(d: Deployment, ip: str, login: str, password: str = PASSWORD, **extra: str) -> Any:
    body = {"username": login, "password": password, **extra}
    return d.api(ip, "api-login", body, **{"User-Agent": AGENT}).json()


def test_one_notice_per_new_network_none_for_a_known_one(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    # The fresh account's first sign-in, by the person who just chose the password: quiet.
    assert sign_in(d, HOME, username)["success"] is True
    assert mails(d.mailbox, email, NEW_SIGN_IN) == []
    clock.advance(3600)
    # Known network (another host of the same /24): nothing, however often.
    for ip in (HOME, HOME_OTHER_HOST, HOME):
        assert sign_in(d, ip, email)["success"] is True
    assert mails(d.mailbox, email, NEW_SIGN_IN) == []
    # A café: one notice, naming when, the client and its network.
    clock.advance(60)
    assert sign_in(d, CAFE, username)["success"] is True
    sent = mails(d.mailbox, email, NEW_SIGN_IN)
    assert len(sent) == 1
    text = text_of(sent[0])
    assert "2026-01-01 13:01 UTC" in text
    assert f"Device: {AGENT}" in text
    assert "Network: 198.18.5.0/24" in text
    assert "198.18.5.5" not in text + html_of(sent[0])  # the network, not the address
    not_me_path(sent[0])
    # The café is known from now on: no second notice, from it or its neighbours.
    for ip in (CAFE, "198.18.5.200"):
        assert sign_in(d, ip, username)["success"] is True
    assert len(mails(d.mailbox, email, NEW_SIGN_IN)) == 1
    # Forgotten after RELATCH_KNOWN_CLIENT_DAYS (30) without a sign-in: new again.
    clock.advance(30 * DAY)
    assert sign_in(d, CAFE, username)["success"] is True
    assert len(mails(d.mailbox, email, NEW_SIGN_IN)) == 2


def test_an_old_accounts_first_sign_in_is_announced(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """The quiet first sign-in is for a fresh account only: one whose password leaked a
    week after sign-up, never used since, still tells its owner."""
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    clock.advance(DAY)
    assert sign_in(d, CAFE, username)["success"] is True
    assert len(mails(d.mailbox, email, NEW_SIGN_IN)) == 1


def test_failed_sign_ins_announce_nothing(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """Only a whole sign-in is announced: a wrong password, or the right one without the
    second factor, neither makes the client known nor mails the owner."""
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    jwt = sign_in(d, HOME, username)["token"]
    headers = {"x-jwt-token": jwt}
    c = d.browser()
    made = c.post(f"{MFA}/create-key", headers=headers | {"X-Forwarded-For": HOME}).json()
    key = made["key"]
    token = totp.token_at(key, int(clock.now.timestamp()))
    done = c.post(
        f"{MFA}/set-key",
        json={"key": key, "totpToken": token},
        headers=headers | {"X-Forwarded-For": HOME},
    ).json()
    assert done["success"] is True
    clock.advance(DAY)
    assert sign_in(d, CAFE, username, "wrong password") == WRONG
    assert sign_in(d, CAFE, username)["success"] is False  # the second factor is missing
    wrong = f"{(int(token) + 1) % 10**6:06d}"
    assert sign_in(d, CAFE, username, totpToken=wrong)["success"] is False
    assert mails(d.mailbox, email, NEW_SIGN_IN) == []
    clock.advance(30)
    good = totp.token_at(key, int(clock.now.timestamp()))
    assert sign_in(d, CAFE, username, totpToken=good)["success"] is True
    assert len(mails(d.mailbox, email, NEW_SIGN_IN)) == 1


def test_the_not_me_link_of_a_sign_in_notice_signs_the_intruder_out(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    clock.advance(DAY)
    intruder = sign_in(d, CAFE, username)["token"]
    (mail,) = mails(d.mailbox, email, NEW_SIGN_IN)
    path = not_me_path(mail)
    owner = d.browser()
    page = owner.get(path, headers={"X-Forwarded-For": HOME})
    assert page.status_code == 200 and "It was not me" in page.text
    found = CSRF_RE.search(page.text)
    assert found
    form = {"token": path.split("token=", 1)[1], "csrf_token": found.group(1)}
    done = owner.post("/not-me", data=form, headers={"X-Forwarded-For": HOME})
    assert done.status_code == 200 and "Your account is secured" in done.text
    me = owner.get("/v1/api/user", headers={"x-jwt-token": intruder, "X-Forwarded-For": CAFE})
    assert me.status_code == 401
    assert sign_in(d, CAFE, username) == WRONG  # the password is disabled too


def test_a_new_browser_is_a_new_device_even_on_a_known_network(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """The OAuth sign-in form: the device cookie decides (a browser on the owner's home
    network is not the owner for that), and the same browser is announced once."""
    d = deploy(inbox=smtp_inbox)
    d.svc.settings.public_url = "https://relatch.test"  # OAuth: https only (Authlib)
    app = d.oauth_app()
    email, username = d.create(HOME, 1)
    laptop = d.browser()
    assert signed_in_on_page(d.page_sign_in(laptop, HOME, app, username, PASSWORD))
    assert mails(d.mailbox, email, NEW_SIGN_IN) == []  # the fresh account's first
    clock.advance(3600)
    assert signed_in_on_page(d.page_sign_in(laptop, HOME, app, username, PASSWORD))
    assert signed_in_on_page(d.page_sign_in(laptop, CAFE, app, username, PASSWORD))
    assert mails(d.mailbox, email, NEW_SIGN_IN) == []  # a known device, anywhere
    other = d.browser()
    assert signed_in_on_page(d.page_sign_in(other, HOME, app, username, PASSWORD))
    assert signed_in_on_page(d.page_sign_in(other, HOME, app, username, PASSWORD))
    assert len(mails(d.mailbox, email, NEW_SIGN_IN)) == 1


def test_the_password_grant_is_announced_like_a_sign_in(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    d = deploy(inbox=smtp_inbox)
    d.svc.settings.public_url = "https://relatch.test"
    email, username = d.create(HOME, 1)
    clock.advance(DAY)
    app = store.create_client(
        d.svc, "App", ["https://app.example/cb"], ["password"], ["openid"], False
    )
    assert app.client_secret is not None
    c = d.browser()
    form = {"grant_type": "password", "username": username, "password": PASSWORD}
    for _ in range(2):
        resp = c.post(
            "/v1/oauth/token",
            data=form,
            auth=(app.client_id, app.client_secret),
            headers={"X-Forwarded-For": CAFE},
        )
        assert resp.status_code == 200, resp.text
    assert len(mails(d.mailbox, email, NEW_SIGN_IN)) == 1


def test_an_api_key_created_is_announced_with_name_and_prefix(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    jwt = sign_in(d, HOME, username)["token"]
    c = d.browser()
    made = c.post(
        "/v1/api/user/apikeys",
        json={"name": "build server"},
        headers={"x-jwt-token": jwt, "X-Forwarded-For": HOME},
    ).json()
    assert made["success"] is True
    (mail,) = mails(d.mailbox, email, API_KEY_CREATED)
    text = text_of(mail)
    assert "Name: build server" in text
    assert f"Starts with: {made['prefix']}" in text
    assert "2026-01-01 12:00 UTC" in text
    assert made["apiKey"] not in text + html_of(mail)  # never the key itself
    # The not-me link ends the key with everything else (services/not_me.py).
    path = not_me_path(mail)
    page = c.get(path)
    found = CSRF_RE.search(page.text)
    assert found
    form = {"token": path.split("token=", 1)[1], "csrf_token": found.group(1)}
    assert c.post("/not-me", data=form).status_code == 200
    assert c.get("/v1/api/user", headers={"x-api-key": made["apiKey"]}).status_code == 401


def test_an_address_never_proven_gets_no_sign_in_notices(
    deploy: Callable[..., Deployment], clock: FakeClock, smtp_inbox: SMTPInbox
) -> None:
    """Mail bombing: whoever signs up with someone else's address must not make Relatch
    mail it once per sign-in from a fresh network or browser. Proven, it hears of them."""
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1, activated=False)
    clock.advance(DAY)
    for n in range(5):
        assert sign_in(d, f"198.18.{n}.5", username)["success"] is True
    assert mails(d.mailbox, email, NEW_SIGN_IN) == []
    with d.svc.sessions() as s:
        user = accounts_repo.by_email(s, email)
    assert user is not None
    vouch(d.svc, user.id)  # the address is proven (as by its activation code)
    assert sign_in(d, CAFE, username)["success"] is True
    assert len(mails(d.mailbox, email, NEW_SIGN_IN)) == 1


def test_a_key_rotation_forgets_no_client(
    deploy: Callable[..., Deployment], clock: FakeClock, tmp_path: Path, smtp_inbox: SMTPInbox
) -> None:
    """RELATCH_SECRET_KEY rotated, the old one in RELATCH_SECRET_KEY_FALLBACKS: a client
    known under the old key is still known, so the owner gets no notice for it."""
    d = deploy(inbox=smtp_inbox)
    email, username = d.create(HOME, 1)
    assert sign_in(d, HOME, username)["success"] is True
    clock.advance(DAY)
    old = d.svc.settings
    rotated = make_settings(
        tmp_path,
        old.database_url,
        secret_key="rotated-secret-" + "r" * 32,
        secret_key_fallbacks=old.secret.decode(),
        trusted_proxies=old.trusted_proxies,
    )
    after = Deployment(build(rotated, clock=clock), inbox=smtp_inbox)
    try:
        assert sign_in(after, HOME, username)["success"] is True
        assert mails(after.mailbox, email, NEW_SIGN_IN) == []
        assert sign_in(after, CAFE, username)["success"] is True
        assert len(mails(after.mailbox, email, NEW_SIGN_IN)) == 1
    finally:
        for c in after.clients:
            c.__exit__(None, None, None)
        after.svc.close()
