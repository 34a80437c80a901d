"""The owner's notices of issue 14 that are not about a second factor or an address:
a sign-in from a new client, an API key created, someone guessing the password.

Each is queued through services/notices.py in the caller's transaction (or its own), with
the one-time "this was not me" link. Values that a stranger chooses (the user agent) are
printed on one line (mail/render.py) and cut short here: a sign-in notice must not become
a way to write a paragraph of one's own into the owner's mail (mail content injection).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from relatch.core.limits import network_subject
from relatch.core.meta import RequestMeta
from relatch.services import notices
from relatch.services.context import Services
from relatch.storage.db import rowcount, transaction
from relatch.storage.models import User

log = logging.getLogger(__name__)

NEW_CLIENT = "new_sign_in"
API_KEY_CREATED = "api_key_created"
GUESSING = "someone_guessing"

# A fresh account's first sign-in is not announced: the person who just chose the
# password signs in with it (the official clients sign in right after createUser), and a
# "new sign-in" mail minutes after the activation mail is noise that teaches people to
# ignore these notices (Google and GitHub do not send one either). Only the very first
# sign-in (no client known to the account yet) and only within this long of the sign-up:
# an account that has not been used for RELATCH_KNOWN_CLIENT_DAYS is old, not fresh.
FRESH_ACCOUNT = timedelta(days=1)
# "Someone is guessing" goes out at most this often per account, whatever the number of
# processes (the time it was sent is in users.guessing_notice_at).
GUESSING_EVERY = timedelta(days=1)
USER_AGENT_SHOWN = 120  # characters of the user agent a notice prints


def _client(meta: RequestMeta) -> dict[str, str]:
    agent = (meta.user_agent or "").strip()
    if len(agent) > USER_AGENT_SHOWN:
        agent = agent[: USER_AGENT_SHOWN - 1] + "…"
    network = network_subject(meta.client_ip) if meta.client_ip else None
    return {"user_agent": agent or "unknown", "network": network or "unknown"}


def quiet_first_sign_in(user: User, had_known_client: bool, now: datetime) -> bool:
    """True for the one sign-in that is not announced (see FRESH_ACCOUNT)."""
    return not had_known_client and now - user.created_at < FRESH_ACCOUNT


def new_client(svc: Services, s: Session, user: User, meta: RequestMeta, now: datetime) -> None:
    """A whole sign-in from a client not known to the account (services/known_clients.py),
    in the transaction that makes it known: exactly one notice per new client."""
    notices.send(svc, s, user, NEW_CLIENT, now, _client(meta))


def api_key_created(
    svc: Services, s: Session, user: User, name: str, prefix: str, now: datetime
) -> None:
    """A new API key, in the transaction that creates it. Persistence after takeover:
    a key outlives the session (and the password) that minted it, so the owner hears of it."""
    notices.send(svc, s, user, API_KEY_CREATED, now, {"key_name": name, "prefix": prefix})


def someone_guessing(svc: Services, account_id: int) -> None:
    """The strangers' failure budget of this account is spent (services/limits.py: an
    attempt took a window's last slot, or was refused by it): one mail a day at most,
    saying so and what to do. The last slot is taken before the password is checked, so
    a stranger whose 10th try is the right password also sends it: nine failures from
    strangers, then a sign-in from a new place, is worth the owner's attention anyway.

    Mail bombing of the owner: strangers decide when this runs, so
    - one conditional UPDATE of users.guessing_notice_at decides who sends, across
      processes and concurrent refusals (row count 1 wins), and at most once a day;
    - every refusal before that costs one primary-key read and no write (a flood of
      refused guesses must not become a flood of writes, least of all on SQLite);
    - an unknown login (NO_ACCOUNT) runs the same read, which matches nothing: the 429
      answer costs the same whether or not the account exists (enumeration), but for the
      one write a day.
    A failure here is logged and swallowed: the caller answers 429 as it would without it.
    """
    now = svc.clock()
    due = or_(User.guessing_notice_at.is_(None), User.guessing_notice_at <= now - GUESSING_EVERY)
    try:
        with svc.sessions() as s:
            if s.scalar(select(User.id).where(User.id == account_id, due)) is None:
                return
        with transaction(svc.sessions) as s:
            won = s.execute(
                update(User).where(User.id == account_id, due).values(guessing_notice_at=now)
            )
            if rowcount(won) != 1:
                return  # another request or process sent it
            user = s.get(User, account_id)
            if user is not None:
                notices.send(svc, s, user, GUESSING, now)
    except Exception as exc:  # the refusal stands, whatever happens here
        log.error("guessing notice not queued: %s", type(exc).__name__)
