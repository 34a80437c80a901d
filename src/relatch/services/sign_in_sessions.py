"""Sign-in sessions (issue 14): sign out, list my sessions, end one, end all but this one.

A session JWT names its server-side record by the `sid` claim (core/tokens.py); ending a
session deletes the record and `check` refuses every JWT naming a missing one, on every
endpoint (the one place session JWTs are accepted: services/accounts.session_from_token).
The per-account credential generation stays for "end everything" (reset, password change,
suspension): a record of an older generation is dead, not listed, pruned when its account
reaches MAX_SESSIONS records or when it expires (the workers' prune).

JWTs issued before migration 0015 carry no `sid`. Decision: they keep working until they
expire (RELATCH_JWT_TTL after their sign-in, 7 days by default) or the generation bumps,
so that upgrading signs nobody out. They are not listed (nothing recorded them). Signing
one of them out, or ending the others from any session, sets `users.sessionless_ended`
and refuses them all from then on: "sign out" and "end the others" must never leave a
stolen pre-upgrade token alive (session hijacking, ASVS 5.0 7.4.1 and 7.5.2).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from relatch.core import tokens
from relatch.core.errors import NotAuthenticated, SessionNotFound
from relatch.core.limits import network_subject
from relatch.core.meta import RequestMeta
from relatch.services import audit
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage import sign_in_sessions as repo
from relatch.storage.db import delete_in_batches, transaction
from relatch.storage.models import User
from relatch.storage.models_sessions import SignInSession

# "Last seen" is written at most once per session per interval: an authenticated GET
# stays a read (no write per request, no write lock on SQLite per request).
LAST_SEEN_EVERY = timedelta(seconds=60)
# Storage exhaustion: whoever holds the password could sign in without end, a row each.
# Past this many live sessions the oldest sign-ins end (as browsers forget old cookies).
MAX_SESSIONS = 100


@dataclass(frozen=True)
class SessionView:
    id: str
    created: datetime
    last_seen: datetime
    user_agent: str | None
    network: str | None
    current: bool


def record(
    svc: Services,
    user: Account | User,
    meta: RequestMeta | None,
    signed_in_at: int,
    *,
    within: Session | None = None,
) -> str:
    """A new session record for a sign-in at `signed_in_at`; its public id (the `sid`).

    Its own transaction, or the caller's (`within`: a sign-in writes everything in one).
    Past MAX_SESSIONS records, the account's dead ones (expired, older generation) go,
    then the oldest live ones; below it, dead records wait for the workers' prune.
    """
    if within is not None:
        return _record(svc, within, user, meta, signed_in_at)
    with transaction(svc.sessions) as s:
        return _record(svc, s, user, meta, signed_in_at)


def _record(
    svc: Services, s: Session, user: Account | User, meta: RequestMeta | None, signed_in_at: int
) -> str:
    now = svc.clock()
    created = datetime.fromtimestamp(signed_in_at, UTC)
    public_id = secrets.token_urlsafe(16)  # 128 bits: ids are not guessable
    ip = meta.client_ip if meta else None
    repo.add(
        s,
        public_id=public_id,
        user_id=user.id,
        generation=user.credential_generation,
        created_at=created,
        last_seen_at=now,
        expires_at=created + timedelta(seconds=svc.settings.jwt_ttl),
        user_agent=meta.user_agent if meta else None,
        network=network_subject(ip) if ip else None,
    )
    # Counted first: the DELETEs (and their row locks) run only on the rare sign-in past
    # the cap, never on every one (issue 12); dead rows go first, then the oldest live.
    if repo.count(s, user.id) > MAX_SESSIONS:
        repo.prune(s, user.id, user.credential_generation, now)
        repo.keep_newest(s, user.id, MAX_SESSIONS)
    return public_id


def renew(s: Session, user: User, session_id: str | None) -> bool:
    """Inside a password change's transaction, after the generation bump: the caller's
    session survives it (every other one dies with the old generation). False if the
    caller had no record (a pre-upgrade JWT, or a session ended meanwhile)."""
    if session_id is None:
        return False
    return repo.renew(s, user.id, session_id, user.credential_generation) == 1


def check(svc: Services, s: Session, user: User, claims: tokens.SessionClaims) -> int | None:
    """NotAuthenticated unless the JWT's session is alive; else the record's row id when
    its "last seen" is due (`touch` it once the read session `s` is closed), or None."""
    if claims.session_id is None:
        if user.sessionless_ended:
            raise NotAuthenticated()
        return None
    row = repo.find(s, user.id, claims.session_id)
    now = svc.clock()
    if row is None or row.generation != user.credential_generation or row.expires_at <= now:
        raise NotAuthenticated()
    return row.id if now - row.last_seen_at >= LAST_SEEN_EVERY else None


def touch(svc: Services, row_id: int) -> None:
    """Last seen = now (conditional: concurrent requests of one session write once)."""
    with transaction(svc.sessions) as s:
        repo.touch(s, row_id, svc.clock(), LAST_SEEN_EVERY)


def listed(svc: Services, user: Account, claims: tokens.SessionClaims) -> list[SessionView]:
    with svc.sessions() as s:
        rows = repo.live(s, user.id, user.credential_generation, svc.clock())
    return [
        SessionView(
            id=r.public_id,
            created=r.created_at,
            last_seen=r.last_seen_at,
            user_agent=r.user_agent,
            network=r.network,
            current=r.public_id == claims.session_id,
        )
        for r in rows
    ]


def sign_out(svc: Services, user: Account, claims: tokens.SessionClaims, meta: RequestMeta) -> None:
    """End the caller's own session at once (audited)."""
    with (
        audit.trail(svc, audit.SIGN_OUT, meta, account_id=user.id) as t,
        transaction(svc.sessions) as s,
    ):
        if claims.session_id is None:
            repo.end_sessionless(s, user.id)
        else:
            repo.end(s, user.id, claims.session_id)
        t.write(s)


def end_one(
    svc: Services,
    user: Account,
    claims: tokens.SessionClaims,
    session_id: str,
    meta: RequestMeta,
) -> bool:
    """End one of the caller's sessions; True if it was the caller's own. Audited, the
    refusal too (on the caller's account only).

    SessionNotFound for an id that is unknown or another account's: one answer, so that
    nobody learns whether someone else's session id exists (the query names the account).
    """
    with (
        audit.trail(svc, audit.SESSION_END, meta, account_id=user.id) as t,
        transaction(svc.sessions) as s,
    ):
        if not repo.end(s, user.id, session_id[:64]):
            raise SessionNotFound()
        t.write(s)
    return session_id == claims.session_id


def end_others(
    svc: Services, user: Account, claims: tokens.SessionClaims, meta: RequestMeta
) -> int:
    """End every session of the account but the caller's; how many records went (audited).
    Pre-upgrade JWTs (no `sid`) all go too, the caller's included if it is one."""
    with (
        audit.trail(svc, audit.SESSIONS_END_OTHERS, meta, account_id=user.id) as t,
        transaction(svc.sessions) as s,
    ):
        ended = repo.end_all_but(s, user.id, claims.session_id)
        repo.end_sessionless(s, user.id)
        t.write(s)
    return ended


def prune_expired(svc: Services) -> int:
    """Delete the sessions past their JWT's expiry, in bounded batches (by the workers;
    dead rows of an older generation go then too, or once their account reaches
    MAX_SESSIONS records)."""
    return delete_in_batches(svc.sessions, SignInSession, SignInSession.expires_at <= svc.clock())
