"""Applying a new password, the same for a reset, a change and "this was not me".

Inside the caller's transaction: store the hash, bump the credential generation (every
session and token of the old one dies), kill live reset codes, run the hooks wired in
relatch/app.py (OAuth tokens), and mail the owner a notice with a "not me" link. A reset
that proves the address for the first time also removes every credential made before it
(services/unproven.py: account pre-hijacking).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from relatch.services import api_keys, not_me_links
from relatch.services.context import Services
from relatch.services.unproven import Forgotten, forget_unproven
from relatch.storage import accounts, one_time, outbox
from relatch.storage.models import User


def greeting_name(user: User) -> str:
    """The name a mail greets the account by: only once its address is proven.

    Phishing through our own mail: whoever signs up with an address they do not own picks
    the name, and a reset or notice then carries that text ("Hello <a URL and
    instructions>,") to the real owner's mailbox in a genuine Relatch mail. Until the
    mailbox owner has proven the address (a reset or, later, activation), the name is
    someone else's words and the mail says just "Hello,". `user` is read before this
    transaction's changes, so the reset that proves the address does not yet vouch for
    a name the squatter chose.
    """
    return user.name if user.email_verified else ""


def apply_new_password(
    svc: Services, s: Session, user: User, new_hash: str, *, verified: bool = False
) -> Forgotten | None:
    """Inside the caller's transaction: store the hash, revoke sessions and codes, notify.

    `verified`: a mailed code proved the address. If it is the address's first proof,
    what was made before it is removed and returned (services/unproven.py), else None.
    """
    now = svc.clock()
    # Account pre-hijacking: the one conditional UPDATE tells whether this reset is the
    # first proof of the address (a squatter's credentials, if any, all date from before).
    first_proof = verified and accounts.mark_proven(s, user.id)
    # Session revocation: the generation bump in the same UPDATE refuses every token
    # carrying the old one.
    accounts.set_password(s, user.id, new_hash, now, verified=verified)
    one_time.RESET_CODES.revoke_live(s, user.id, now)  # a code mailed before dies
    for hook in svc.on_password_changed:
        hook(s, user, now)
    forgotten = forget_unproven(s, user, now) if first_proof else None
    outbox.enqueue(
        s,
        svc.renderer,
        "password_changed",
        user.email,
        {
            "name": greeting_name(user),
            "email": user.email,
            "when": now.strftime("%Y-%m-%d %H:%M UTC"),
            # "This was not me": a one-time link, valid 7 days (services/not_me.py).
            "not_me_url": not_me_links.issue(svc, s, user.id, now),
            "not_me_days": not_me_links.TTL.days,
            # API keys survive a reset (deliberate credentials), but for the address's
            # first proof (above): the notice says how many still work.
            "api_keys": api_keys.active_count(s, user.id),
        },
        now,
    )
    return forgotten
