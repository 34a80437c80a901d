"""The apps (OAuth clients) holding grants or tokens for the signed-in account (issue 14):
list them, revoke one.

Revoking takes back every access and refresh token, every code not yet exchanged and the
remembered consent, in one transaction: the app's next request is refused (401) and its
next authorize asks the person again. A client id that holds nothing for the caller,
another person's app or an unknown id, gets one answer (`OAuthAppNotFound`).
"""

from __future__ import annotations

from relatch.core.errors import OAuthAppNotFound
from relatch.core.meta import RequestMeta
from relatch.services import audit
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import oauth_apps as repo
from relatch.storage.db import transaction

App = repo.App


def listed(svc: Services, user: Account) -> list[App]:
    with svc.sessions() as s:
        return repo.held_by(s, user.id, user.credential_generation, svc.clock())


def revoke(svc: Services, user: Account, client_id: str, meta: RequestMeta) -> None:
    """Audited, the refusal too (on the caller's account)."""
    with (
        audit.trail(svc, audit.OAUTH_APP_REVOKE, meta, account_id=user.id) as t,
        transaction(svc.sessions) as s,
    ):
        if not repo.revoke(s, user.id, client_id, svc.clock()):
            raise OAuthAppNotFound()
        t.write(s)
