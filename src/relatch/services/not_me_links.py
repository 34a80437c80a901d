"""The one-time "this was not me" link of a password-changed notice: issue and look up.

Stored like a reset code: a keyed, purpose-salted digest bound to the account, never the
token itself (a database dump yields no working link). The token is `<row id>.<secret>`:
the id finds the row, the 256-bit secret proves the link.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy.orm import Session

from relatch.core import keyed
from relatch.services.context import Services
from relatch.storage import one_time
from relatch.storage.models_audit import NotMeLink

PURPOSE = keyed.NOT_ME_LINK
TTL = timedelta(days=7)
MAX_TOKEN = 128
ROW_ID = re.compile(r"[0-9]{1,18}")


def issue(svc: Services, s: Session, user_id: int, now: datetime) -> str:
    """A new link for this account, in the caller's transaction; returns its URL."""
    secret = secrets.token_urlsafe(32)
    link = NotMeLink(
        user_id=user_id,
        digest=keyed.digest(svc.keys, PURPOSE, user_id, secret),
        created_at=now,
        expires_at=now + TTL,
    )
    s.add(link)
    s.flush()  # the id is part of the token
    token = f"{link.id}.{secret}"
    return f"{svc.settings.public_url.rstrip('/')}/not-me?token={quote(token)}"


@dataclass(frozen=True)
class LiveLink:
    id: int
    user_id: int


def find_live(svc: Services, s: Session, token: str | None, now: datetime) -> LiveLink | None:
    """The unused, unexpired link this token proves, or None (one answer for every failure)."""
    if not token or len(token) > MAX_TOKEN or "." not in token:
        return None
    raw_id, secret = token.split(".", 1)
    # ASCII digits only: str.isdigit() is also true for "²" or "٣", which int() refuses
    # (a 500 from any stranger's link).
    if not ROW_ID.fullmatch(raw_id) or not secret:
        return None
    found, live = one_time.NOT_ME_LINKS.find(s, int(raw_id), now)
    link: NotMeLink | None = found
    if link is None or not live:
        return None
    # Forgery: constant-time match against the current and fallback keys.
    if not keyed.matches(svc.keys, PURPOSE, link.user_id, secret, stored=link.digest):
        return None
    return LiveLink(link.id, link.user_id)
