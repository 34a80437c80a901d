"""Known clients: who has signed in to, or reset, an account before (issue 8, lockout).

Threat: with one failure budget per account, anyone could keep the owner out by spending
it (about 100 wrong passwords a day). After OWASP "Slow Down Online Guessing Attacks with
Device Cookies", a client that authenticated successfully is remembered per account and
keeps its own small budget (services/limits.py), while strangers share the account's one.

A client is seen as
- a device: the signed cookie the pages and the OAuth sign-in set (core/devices.py);
- a network: the /24 (IPv4) or /64 (IPv6) of its address (core/limits.network_subject),
  for API clients; shared by everyone in it, hence a smaller budget.
Each is stored as a keyed digest of (kind, the account's address key, device id or
network): no cookie, IP or network in clear. The digest is keyed on the address, so a reset
request (which never looks the account up, services/reset_requests.py) can find it by digest alone;
the row's account id is checked wherever the account is known.

Takeover: a reset, a password change and "this was not me" forget every known client of
the account but the one that did it (`keep_only`), so a phisher's device loses its budget.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, delete, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from relatch.core import identity, keyed
from relatch.core.limits import network_subject
from relatch.core.meta import RequestMeta
from relatch.services import owner_notices
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.services.limits import DEVICE, NETWORK, Guess, KnownClient
from relatch.storage.db import delete_in_batches, rowcount
from relatch.storage.models import User
from relatch.storage.models_clients import KnownClient as KnownRow

ANY_ACCOUNT = None
NO_ACCOUNT = -1  # an unknown login: the lookup still runs (timing), and matches nothing


@dataclass(frozen=True)
class _Identity:
    kind: str
    subject: str


def _identities(meta: RequestMeta) -> list[_Identity]:
    """The ways this request's client can be known, strongest first."""
    out: list[_Identity] = []
    if meta.device:
        out.append(_Identity(DEVICE, meta.device))
    network = network_subject(meta.client_ip) if meta.client_ip else None
    if network is not None:
        out.append(_Identity(NETWORK, network))
    return out


def _digest(secret: bytes, address_key: str, ident: _Identity) -> str:
    return keyed.digest(secret, keyed.KNOWN_CLIENT, ident.kind, address_key, ident.subject)


def _digests(svc: Services, address_key: str, ident: _Identity) -> list[str]:
    """Under the current and every fallback key (a key rotation forgets no client)."""
    return keyed.candidates(svc.keys, keyed.KNOWN_CLIENT, ident.kind, address_key, ident.subject)


# Built once per number of digests, run as Core on the session's connection: on the
# reset-request path the ORM's select machinery cost more than the indexed lookup itself,
# and an expanding IN list was rendered into a new SQL string on every call (issue 12).
@functools.cache
def _find_statement(digests: int) -> Select[str, int, int]:
    names: list[BindParameter[str]] = [bindparam(f"d{n}") for n in range(digests)]
    return (
        select(KnownRow.digest, KnownRow.user_id, User.credential_generation)
        .join(User, User.id == KnownRow.user_id)
        .where(KnownRow.digest.in_(names), KnownRow.expires_at > bindparam("now"))
    )


def find(
    svc: Services,
    address_key: str,
    meta: RequestMeta,
    account_id: int | None,
    *,
    within: Session | None = None,
) -> KnownClient | None:
    """The client as known to the account of `address_key`, or None for a stranger.

    `account_id`: the account when it was looked up (NO_ACCOUNT for an unknown login),
    ANY_ACCOUNT on the reset-request path, which does not look accounts up.
    `within`: read in the caller's transaction instead of a session of its own.
    Enumeration: one indexed SELECT whether or not the address has an account; only a
    client that already authenticated to it can get a row back.
    """
    idents = _identities(meta)
    if not idents:
        return None
    by_digest = {d: ident for ident in idents for d in _digests(svc, address_key, ident)}
    params: dict[str, Any] = {f"d{n}": d for n, d in enumerate(by_digest)}
    params["now"] = svc.clock()
    statement = _find_statement(len(by_digest))
    if within is not None:
        rows = within.connection().execute(statement, params).all()
    else:
        with svc.sessions() as s:
            rows = s.connection().execute(statement, params).all()
    found = {
        by_digest[r.digest].kind: r.credential_generation
        for r in rows
        if account_id is ANY_ACCOUNT or r.user_id == account_id
    }
    for ident in idents:  # a device is the stronger identity: its budget wins
        if ident.kind in found:
            subject = f"{ident.kind}\x00{address_key}\x00{ident.subject}"
            return KnownClient(ident.kind, subject, found[ident.kind])
    return None


def guess(svc: Services, address_key: str, meta: RequestMeta, account_id: int) -> Guess:
    """Take a failure slot for one password or second-factor check (services/limits.py):
    the client's own budget when it is known to the account, else the shared ones."""
    return guess_as(svc, address_key, meta, account_id, find(svc, address_key, meta, account_id))


def guess_as(
    svc: Services,
    address_key: str,
    meta: RequestMeta,
    account_id: int,
    known: KnownClient | None,
) -> Guess:
    """`guess` for a client the caller already looked up (`find`, in a read of its own)."""
    if known is not None:
        # The failure budget is the client's for the account's current credentials: a
        # reset, password change or not-me bumps the generation, so the client that made
        # it starts afresh (the owner whose network's budget was spent, by its own typos or
        # by carrier NAT neighbours, signs in from it at once after a reset; found by the
        # red-team pass of issue 8). A sign-in renews nothing; only the mailbox or the
        # password can bump it. Reset requests keep one bucket (mail bombing).
        subject = f"{known.subject}\x00{known.generation}"
        known = dataclasses.replace(known, subject=subject)
    # Someone is guessing: once the strangers' budget of a real account is spent (a guess
    # takes its last slot, or is refused by it), its owner hears of it (at most once a
    # day, services/owner_notices.py). An unknown login runs the same lookup, which finds
    # nothing (enumeration by timing).
    return svc.limits.guess(
        address_key,
        meta.client_ip,
        svc.clock(),
        known,
        on_account_spent=lambda: owner_notices.someone_guessing(svc, account_id),
    )


# Built once (per dialect for the upsert), run as Core on the session's connection: a reset
# writes these on every success, and building them cost more than running them (issue 12).
_EXPIRED = delete(KnownRow).where(
    KnownRow.user_id == bindparam("b_user_id"), KnownRow.expires_at <= bindparam("now")
)
_TOUCH = (
    update(KnownRow)
    .where(KnownRow.user_id == bindparam("b_user_id"), KnownRow.digest == bindparam("b_digest"))
    .values(last_seen_at=bindparam("seen"), expires_at=bindparam("expires"))
)


@functools.cache
def _insert_new(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = ("user_id", "kind", "digest", "created_at", "last_seen_at", "expires_at")
    return (
        insert(KnownRow)
        .values({name: bindparam(name) for name in values})
        # RETURNING, not the row count: psycopg reports -1 for an INSERT ... ON CONFLICT.
        .on_conflict_do_nothing(index_elements=["user_id", "digest"])
        .returning(KnownRow.id)
    )


def remember(
    svc: Services,
    s: Session,
    user: Account | User,
    meta: RequestMeta,
    now: datetime,
    *,
    expired_gone: bool = False,
) -> set[str]:
    """Inside the caller's transaction: this client (device and network) is now known to
    the account, for RELATCH_KNOWN_CLIENT_DAYS from now. Returns the kinds that were not
    known before (a row inserted now, not one renewed). `expired_gone`: the caller has
    already deleted the account's expired rows in this transaction (`keep_only`).

    Race: two parallel sign-ins of one new client both insert; the unique constraint
    lets one row in (PostgreSQL makes the second wait for the first to commit, SQLite
    serialises writers), so exactly one of them sees the kind as new.
    """
    address_key = identity.email_key(user.email)
    expires = now + timedelta(days=svc.settings.known_client_days)
    conn = s.connection()
    if not expired_gone:
        # Housekeeping first: an expired row is a stranger already (`find` ignores it), so
        # its client counts as new when it comes back.
        conn.execute(_EXPIRED, {"b_user_id": user.id, "now": now})
    insert_new = _insert_new(conn.dialect.name)
    new: set[str] = set()
    for ident in _identities(meta):
        digest = _digest(svc.settings.secret, address_key, ident)
        row = {
            "user_id": user.id,
            "kind": ident.kind,
            "digest": digest,
            "created_at": now,
            "last_seen_at": now,
            "expires_at": expires,
        }
        if conn.execute(insert_new, row).first() is None:
            touch = {"b_user_id": user.id, "b_digest": digest, "seen": now, "expires": expires}
            conn.execute(_TOUCH, touch)
        elif not _known_under_fallback(svc, s, user.id, address_key, ident, now):
            new.add(ident.kind)
    return new


def _known_under_fallback(
    svc: Services, s: Session, user_id: int, address_key: str, ident: _Identity, now: datetime
) -> bool:
    """Known by a row digested under a fallback key (a key rotation forgets no client)."""
    older = _digests(svc, address_key, ident)[1:]
    if not older:
        return False
    found = s.scalar(
        select(KnownRow.id).where(
            KnownRow.user_id == user_id, KnownRow.digest.in_(older), KnownRow.expires_at > now
        )
    )
    return found is not None


_RENEW = (
    update(KnownRow)
    .where(
        KnownRow.user_id == bindparam("b_user_id"),
        KnownRow.digest.in_(bindparam("digests", expanding=True)),
        KnownRow.expires_at > bindparam("now"),
    )
    .values(last_seen_at=bindparam("seen"), expires_at=bindparam("expires"))
)


def _all_known(
    svc: Services, s: Session, user: Account | User, idents: list[_Identity], now: datetime
) -> bool:
    """Inside the caller's transaction: the client's rows under the current key renewed
    in one UPDATE (issue 12: the usual sign-in, by a known client, writes nothing else
    here); True when every identity had one, else `remember` has the rest to do (a new
    identity, or one known under a fallback key)."""
    address_key = identity.email_key(user.email)
    digests = [_digest(svc.settings.secret, address_key, ident) for ident in idents]
    expires = now + timedelta(days=svc.settings.known_client_days)
    params = {"b_user_id": user.id, "digests": digests, "now": now, "seen": now, "expires": expires}
    return rowcount(s.connection().execute(_RENEW, params)) == len(digests)


def signed_in(svc: Services, s: Session, user: Account | User, meta: RequestMeta) -> None:
    """After a whole sign-in (password and second factor): the client becomes known, and
    the owner is told of a client that was not (services/owner_notices.py), in the same
    transaction (the caller's, `s`: the sign-in's one write): one notice per new client.

    New means the strongest identity the request shows: a browser's device (a fresh
    browser on the owner's known home network is still a new device, as Google and
    GitHub count it), else the network of an API client. A request with neither (no
    address: the CLI) is never announced; nothing would tell it apart the next time.
    """
    idents = _identities(meta)
    now = svc.clock()
    if idents and _all_known(svc, s, user, idents, now):
        return  # the usual sign-in: a client known already, nothing new to tell
    had_known = (
        s.scalar(
            select(KnownRow.id)
            .where(KnownRow.user_id == user.id, KnownRow.expires_at > now)
            .limit(1)
        )
        is not None
    )
    new = remember(svc, s, user, meta, now)
    if not idents or idents[0].kind not in new:
        return
    row = s.get(User, user.id)
    if row is None or owner_notices.quiet_first_sign_in(row, had_known, now):
        return
    # Mail bombing: an address never proven may not be the signer-up's; with a fresh
    # browser per sign-in (a new device each), they could mail it without end. Such an
    # address gets the (limited) activation mail only, until it is proven.
    if not row.email_verified:
        return
    owner_notices.new_client(svc, s, row, meta, now)


_FORGET_OTHERS = delete(KnownRow).where(
    KnownRow.user_id == bindparam("b_user_id"),
    or_(
        not_(KnownRow.digest.in_(bindparam("mine", expanding=True))),
        KnownRow.expires_at <= bindparam("now"),
    ),
)


def keep_only(
    svc: Services, s: Session, user: Account | User, meta: RequestMeta, now: datetime, *, add: bool
) -> None:
    """Inside the caller's transaction: forget every known client of the account but the
    one making this request (a reset, a password change, "this was not me").

    Takeover: a phisher who signed in with a stolen password must not keep a budget of
    its own after the owner took the account back. `add`: also remember this client
    (a reset or change is a successful authentication; the not-me link is not).
    """
    address_key = identity.email_key(user.email)
    mine = [d for ident in _identities(meta) for d in _digests(svc, address_key, ident)]
    # One DELETE for both: the others, and this client's own rows if expired (`remember`'s
    # housekeeping: an expired row is a stranger's). With no identity (the CLI), all go.
    s.connection().execute(_FORGET_OTHERS, {"b_user_id": user.id, "mine": mine, "now": now})
    if add:
        remember(svc, s, user, meta, now, expired_gone=True)


def prune_expired(sessions: sessionmaker[Session], now: datetime) -> int:
    """Delete the known clients past their expiry (strangers again: `find` already ignores
    them), in bounded batches; how many (by the workers)."""
    return delete_in_batches(sessions, KnownRow, KnownRow.expires_at <= now)
