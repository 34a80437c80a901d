"""One-time links mailed to an owner: issue and look up. Two kinds (`LinkKind`):

- "this was not me" (`NOT_ME`, the default) of a security notice (services/not_me.py);
- the undo link of a changed address (`EMAIL_UNDO`), sent to the old address
  (services/email_change.py).

Stored like a reset code: a keyed, purpose-salted digest bound to the account, never the
token itself (a database dump yields no working link). The token is `<row id>.<secret>`
(core/codes.link_token): the id finds the row, the 256-bit secret proves the link, so no
try counter is needed. Each kind has its own table, digest purpose and page: a link of one
kind never works as the other (a "not me" token is no undo token).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from relatch.core import codes, keyed
from relatch.services.context import Services
from relatch.storage import one_time


@dataclass(frozen=True)
class LinkKind:
    purpose: keyed.Purpose  # the digest's purpose salt
    store: one_time.OneTimeStore  # its table
    path: str  # the web page the link opens
    ttl: timedelta


NOT_ME = LinkKind(keyed.NOT_ME_LINK, one_time.NOT_ME_LINKS, "/not-me", timedelta(days=7))
# The issue's 7 days: as long as a "not me" link, the owner's time to notice and act.
EMAIL_UNDO = LinkKind(
    keyed.EMAIL_UNDO_LINK, one_time.EMAIL_UNDO_LINKS, "/change-email/undo", timedelta(days=7)
)

PURPOSE = NOT_ME.purpose
TTL = NOT_ME.ttl


def issue(
    svc: Services,
    s: Session,
    user_id: int,
    now: datetime,
    kind: LinkKind = NOT_ME,
    **columns: Any,
) -> str:
    """A new link for this account, in the caller's transaction; returns its URL.
    `columns`: what else the kind's row holds (the undo link's old address)."""
    secret = codes.link_secret()
    link = kind.store.model(
        user_id=user_id,
        digest=keyed.digest(svc.keys, kind.purpose, user_id, secret),
        created_at=now,
        expires_at=now + kind.ttl,
        **columns,
    )
    s.add(link)
    s.flush()  # the id is part of the token
    token = codes.link_token(link.id, secret)
    return f"{svc.settings.public_url.rstrip('/')}{kind.path}?token={quote(token)}"


@dataclass(frozen=True)
class LiveLink:
    id: int
    user_id: int
    row: Any  # the kind's row (EmailUndoLink holds the address to put back)


def find_live(
    svc: Services, s: Session, token: str | None, now: datetime, kind: LinkKind = NOT_ME
) -> LiveLink | None:
    """The unused, unexpired link this token proves, or None (one answer for every failure)."""
    # Bounded, ASCII digits only (codes.split_link_token): str.isdigit() is also true for
    # "²" or "٣", which int() refuses (a 500 from any stranger's link).
    parsed = codes.split_link_token(token) if token else None
    if parsed is None:
        return None
    row_id, secret = parsed
    link, live = kind.store.find(s, row_id, now)
    if link is None or not live:
        return None
    # Forgery: constant-time match against the current and fallback keys.
    if not keyed.matches(svc.keys, kind.purpose, link.user_id, secret, stored=link.digest):
        return None
    return LiveLink(link.id, link.user_id, link)
