""" "This was not me": the owner of an address disowns a password change.

Following the link of the notice shows a page (`check`); confirming it (`confirm`) revokes
every session and token, disables the password the change set, cancels an operator's
pending removal of the second factor (services/mfa_reset.py), and mails a fresh reset
code. The owner is never locked out: the code, or any later reset request, sets a new
password; only whoever made the change (presumed an attacker) loses access.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from relatch.core.errors import LinkRejected
from relatch.core.meta import RequestMeta
from relatch.services import audit, known_clients, mfa_reset, not_me_links, reset_requests
from relatch.services.context import Services
from relatch.storage import accounts as accounts_repo
from relatch.storage import one_time
from relatch.storage.db import transaction
from relatch.storage.models import User
from relatch.storage.models_auth import ApiKey


def check(svc: Services, token: str | None, meta: RequestMeta) -> None:
    """LinkRejected unless the link is live. Uses nothing up (mail scanners fetch links)."""
    with audit.trail(svc, audit.NOT_ME_VIEW, meta) as t, svc.sessions() as s:
        link = not_me_links.find_live(svc, s, token, svc.clock())
        if link is None:
            raise LinkRejected()
        t.account_id = link.user_id


def confirm(svc: Services, token: str | None, meta: RequestMeta) -> None:
    """Revoke everything and mail a fresh reset code, in one transaction; single use."""
    with audit.trail(svc, audit.NOT_ME, meta) as t, transaction(svc.sessions) as s:
        now = svc.clock()
        link = not_me_links.find_live(svc, s, token, now)
        if link is None:
            raise LinkRejected()
        t.account_id = link.user_id
        # Replay: one conditional UPDATE consumes the link; a second confirm finds none.
        if not one_time.NOT_ME_LINKS.consume(s, link.id, now):
            raise LinkRejected()
        user = accounts_repo.by_id(s, link.user_id)
        if user is None:
            raise LinkRejected()
        take_back(svc, s, user, meta, now)
        t.write(s)


def take_back(svc: Services, s: Session, user: User, meta: RequestMeta, now: datetime) -> None:
    """What a proven "this was not me" does, in the caller's transaction (also the undo of a
    changed address, services/email_change.py): every session, token and API key ends, the
    password is disabled, pending address changes die, and a fresh reset code goes to the
    account's address (as it stands in `user`: the caller sets it first)."""
    # Account takeover: the new generation kills every JWT and sign-in cookie; OAuth
    # tokens die through on_password_changed. The password the change set is disabled,
    # so the person who set it cannot sign in again before the owner resets it.
    accounts_repo.set_password(s, user.id, None, now, verified=False)
    for hook in svc.on_password_changed:
        hook(s, user, now)
    # Persistence after takeover: a reset keeps API keys (the owner's deliberate
    # credentials), but here the owner says someone else held the account, and that
    # someone could mint keys with the stolen session. Every live key dies; the owner
    # makes new ones after the reset (issue 3: "revokes every session and token").
    s.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    # Takeover: a change of address the intruder asked for must not land after this (its
    # code went to the intruder's mailbox).
    one_time.EMAIL_CHANGES.revoke_live(s, user.id, now)
    # Takeover: a device or network the intruder signed in from loses its own failure
    # budget; only the client confirming here (the mailbox holder) stays known.
    known_clients.keep_only(svc, s, user, meta, now, add=False)
    # Lost second factor (services/mfa_reset.py): an operator's pending removal of the
    # factor is cancelled. Social engineering: whoever took the account may be the one
    # who asked the operator for it; the owner who did lose the factor asks again.
    mfa_reset.cancel_pending(svc, s, user, now, mfa_reset.NOT_ME, notify=False)
    reset_requests.issue_code(svc, s, user)  # kills older codes, mails a fresh one
