"""Activation in the tests: an account whose address is proven, as most tests need one.

`vouch` leaves an account as `relatch user create` makes it (the operator vouches:
activated, no activation code, no activation mail): for the many tests about something
else that create accounts through createUser and then make API keys, TOTP factors or
OAuth grants, which only activated accounts may, or count the mails an address gets.
The activation tests themselves (tests/api/test_activation.py) go through the mailed code.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete

from relatch.services.context import Services
from relatch.storage import accounts
from relatch.storage.db import transaction
from relatch.storage.models import ActivationCode, OutboxMessage
from tests.helpers.notices import Mailbox

ACTIVATE = "/v1/api/user/activate"
REQUEST = "/v1/api/user/request-activation"


def vouch(svc: Services, account_id: int) -> None:
    """The account's address proven; its activation code and unsent activation mail gone."""
    with transaction(svc.sessions) as s:
        user = accounts.by_id(s, account_id)
        assert user is not None
        accounts.mark_proven(s, account_id)
        s.execute(delete(ActivationCode).where(ActivationCode.user_id == account_id))
        s.execute(
            delete(OutboxMessage).where(
                OutboxMessage.template == "activation_code",
                OutboxMessage.status == "pending",
                OutboxMessage.recipient == user.email,
            )
        )


def activate(
    client: TestClient, mailbox: Mailbox, email: str, headers: dict[str, str]
) -> dict[str, Any]:
    """activateCurrentUser with the code of the newest activation mail; its JSON answer."""
    code = mailbox.last_activation_code(email)
    resp = client.post(ACTIVATE, json={"code": code}, headers=headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())
