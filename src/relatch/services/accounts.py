"""Accounts: create, sign in, and resolve a session token to its account."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from anyio.to_thread import run_sync
from sqlalchemy.exc import IntegrityError

from relatch.core import identity, passwords, tokens
from relatch.core.errors import (
    AccountExists,
    AccountSuspended,
    LoginFailed,
    NotAuthenticated,
    RateLimited,
)
from relatch.core.meta import RequestMeta
from relatch.infra import metrics
from relatch.services import (
    activation,
    audit,
    email_change,
    known_clients,
    mfa,
    sign_in_sessions,
)
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.services.limits import Guess
from relatch.storage import accounts as repo
from relatch.storage.db import transaction
from relatch.storage.models import User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewAccount:
    email: str
    username: str
    name: str
    password: str | None
    job_title: str | None = None
    company_name: str | None = None


async def create_user(
    svc: Services, new: NewAccount, meta: RequestMeta, *, activated: bool = False
) -> int:
    """The new account's id. Database steps in worker threads, the hash awaited between
    them (infra/hashing_pool.py: no thread is held while it runs).

    Not `activated` (createUser): the account is `activated: false` and an activation code
    is mailed in the transaction that creates it (services/activation.py). `activated`:
    an operator vouches for the address (`relatch user create`); no code, no mail.
    """
    async with audit.trail(svc, audit.SIGNUP, meta, login=new.email) as t:
        email, username, normalised = await run_sync(_admit_signup, svc, new, meta)
        password_hash = await svc.pool.hash(normalised) if normalised is not None else None
        t.account_id = await run_sync(
            _insert_user, svc, new, email, username, password_hash, activated
        )
        return t.account_id


def _admit_signup(svc: Services, new: NewAccount, meta: RequestMeta) -> tuple[str, str, str | None]:
    email = identity.checked_email(new.email)
    username = identity.checked_username(new.username)
    normalised = None
    if new.password is not None:
        ctx = passwords.PasswordContext(username=username, email=email)
        normalised = passwords.check(new.password, ctx, svc.password_rules)
    # Mass sign-up: counted after the cheap checks, before hashing (services/limits.py).
    svc.limits.signup(meta.client_ip, svc.clock())
    return email, username, normalised


def _insert_user(
    svc: Services,
    new: NewAccount,
    email: str,
    username: str,
    password_hash: str | None,
    activated: bool,
) -> int:
    now = svc.clock()
    try:
        with transaction(svc.sessions) as s:
            # Takeover: an address another account may still take back (its undo link,
            # services/email_change.py) is taken; the answer is the taken address's.
            if email_change.reserved(s, identity.email_key(email), now, account_id=0):
                raise AccountExists()
            account_id = repo.add(
                s,
                email=email,
                username=username,
                name=new.name.strip()[:256] or username,
                password_hash=password_hash,
                now=now,
                job_title=new.job_title,
                company_name=new.company_name,
                email_verified=activated,
            )
            user = repo.by_id(s, account_id)
            if user is not None and not activated:
                activation.issue_code(svc, s, user)
            return account_id
    except IntegrityError as exc:
        raise AccountExists() from exc


def find_by_login(svc: Services, login: str) -> User | None:
    with svc.sessions() as s:
        return repo.by_login(s, login)


def by_id(svc: Services, account_id: int) -> Account | None:
    """The account with this id, as the layers above see it."""
    with svc.sessions() as s:
        user = repo.by_id(s, account_id)
        return Account.of(user) if user is not None else None


@dataclass(frozen=True)
class PasswordMatched:
    """A password that matched: its account, and the failure slot its check took, which
    the sign-in gives back in its own write (`finish_sign_in`), not in one of its own."""

    user: User
    guess: Guess


@dataclass(frozen=True)
class SignedIn:
    user: User
    session_id: str | None  # the session record written with the sign-in, if one was asked

    @property
    def account(self) -> Account:
        return Account.of(self.user)


async def sign_in(
    svc: Services,
    login: str,
    password: str,
    totp_token: str | None,
    meta: RequestMeta,
    *,
    new_session: bool = False,
) -> SignedIn:
    """Every sign-in (login and the sign-in form; the OAuth password grant in two halves,
    oauth/grants.py): the password, then the second factor. LoginFailed, TotpRequired or
    TotpRejected, else the account; `new_session`: with a session record (its id), written
    in the sign-in's transaction (`issue_session(session_id=...)` then signs the JWT)."""
    checked = await checked_password(svc, login, password, meta)
    return await run_sync(
        functools.partial(
            finish_sign_in, svc, login, checked, totp_token, meta, new_session=new_session
        )
    )


async def checked_password(
    svc: Services, login: str, password: str, meta: RequestMeta
) -> PasswordMatched | Exception:
    """`check_password` as a value: the match, or the exception `finish_sign_in` raises
    (and audits); nothing is decided until then."""
    try:
        return await check_password(svc, login, password, meta)
    except Exception as exc:
        return exc


def finish_sign_in(
    svc: Services,
    login: str,
    checked: PasswordMatched | Exception,
    totp_token: str | None,
    meta: RequestMeta,
    *,
    new_session: bool = False,
) -> SignedIn:
    """The second half of a sign-in, in a worker thread, after `checked_password`.

    Audited as one event with the outcome the caller got (issue 8): "ok" only once the
    second factor passed, so the trail never shows a sign-in that was refused at TOTP as
    a success, and a guessed TOTP token shows as `totp_rejected`. A failure names the
    account the login belongs to, if any (looked up when the row is written).

    Without a second factor, a success is one write transaction (issue 12: each write of
    its own cost a sign-in more CPU than the rest of it): the factor's absence read under
    it, the password's failure slot given back, the client known, the "ok" row, the
    session record. With one, the factor is checked first (services/mfa.py).
    """
    with audit.trail(svc, audit.LOGIN, meta, login=login) as t:
        if isinstance(checked, Exception):
            raise checked
        try:
            return _complete(svc, t, checked, meta, new_session, factor_passed=False)
        except _SecondFactorFirst:
            pass
        # The second factor's tries spend the same failure budget (brute force of the
        # token): the password's slot, no failure, goes back before they are counted.
        checked.guess.succeeded()
        # Second factor only after the password matched (else the usual one message).
        mfa.check_second_factor(svc, Account.of(checked.user), totp_token, meta)
        return _complete(svc, t, checked, meta, new_session, factor_passed=True)


class _SecondFactorFirst(Exception):
    """Rolls the sign-in's write back before it wrote anything: a factor to check first."""


def _complete(
    svc: Services,
    t: audit.Trail,
    checked: PasswordMatched,
    meta: RequestMeta,
    new_session: bool,
    *,
    factor_passed: bool,
) -> SignedIn:
    user = checked.user
    try:
        with transaction(svc.sessions) as s:
            # Bypass of the second factor: its absence is read in the transaction that
            # signs in, so a factor turned on meanwhile is still asked for.
            if not factor_passed and mfa.configured_in(s, user.id):
                raise _SecondFactorFirst()
            # Suspended (issue 11): said only now, after the password and second factor
            # (enumeration: nobody without them learns that the account exists, or is
            # suspended). The client does not become known.
            if user.suspended_at is not None:
                raise AccountSuspended()
            checked.guess.succeeded(within=s)
            # Lockout (OWASP device cookies): after the whole sign-in, not the password
            # alone (a password must not buy a budget of its own for guessing the token),
            # the client is known to the account and keeps its own budget
            # (services/known_clients.py).
            known_clients.signed_in(svc, s, user, meta)
            session_id = None
            if new_session:
                now = int(svc.clock().timestamp())
                session_id = sign_in_sessions.record(svc, user, meta, now, within=s)
            t.account_id = user.id
            t.write(s)
    except AccountSuspended:
        checked.guess.succeeded()  # the password was right: its slot was no failure
        raise
    metrics.SIGN_INS.labels("password").inc()
    return SignedIn(user, session_id)


async def check_password(
    svc: Services, login: str, password: str, meta: RequestMeta
) -> PasswordMatched:
    """The account whose password this is, with the failure slot its check took (given
    back by `finish_sign_in`), or LoginFailed.

    Enumeration by timing: an unknown login still runs one argon2 verify (dummy hash).
    Credential stuffing: a failure slot is taken before the verify (RateLimited):
    the client's own when it is known to the account, else the shared ones
    (services/known_clients.py). The client becomes known only after the whole sign-in,
    second factor included (`finish_sign_in`).
    """
    # Overload: a hashing pool already full refuses now, before any database work and
    # before a failure slot is taken (a refused attempt guessed nothing).
    svc.pool.refuse_if_full()
    user, guess = await run_sync(_take_guess, svc, login, meta)
    normalised = passwords.normalise(password)
    if len(normalised) > passwords.MAX_LENGTH:
        normalised = normalised[: passwords.MAX_LENGTH + 1]  # bounded work; cannot match
    stored = user.password_hash if user else None
    # An imported hash (bcrypt, Django's) was made by a system that hashed the password as
    # typed, not NFKC-normalised: checked as typed, or a full-width or decomposed password
    # could never sign in again. The rehash below stores Relatch's normalised form.
    candidate = normalised
    if stored is not None and not stored.startswith("$argon2"):
        candidate = password[: passwords.MAX_LENGTH + 1]
    try:
        ok = await svc.pool.verify(stored, candidate)
    except RateLimited:
        await run_sync(guess.succeeded)  # the hashing pool was full: nothing was guessed
        raise
    if user is None or not ok:
        raise LoginFailed()
    if user.password_hash and svc.pool.needs_rehash(user.password_hash):
        await _rehash(svc, user.id, user.password_hash, normalised)
    return PasswordMatched(user, guess)


def _take_guess(svc: Services, login: str, meta: RequestMeta) -> tuple[User | None, Guess]:
    with svc.sessions() as s:  # one read session for both look-ups
        user = repo.by_login(s, login)
        # Limit evasion (NIST 800-63B 5.2.2 counts failures per subscriber account): a
        # known account is keyed on its address, whether named by username or address, the
        # key its TOTP tries and password changes use too; an unknown login on what was
        # typed. Trade-off: once an account's budget is spent, both its names are refused,
        # which tells a prober that a username and an address belong together (weaker than
        # the "already exists" of createUser, and it costs the prober the whole budget).
        subject = user.email if user is not None else login
        account_id = user.id if user is not None else known_clients.NO_ACCOUNT
        key = identity.email_key(subject)
        known = known_clients.find(svc, key, meta, account_id, within=s)
    return user, known_clients.guess_as(svc, key, meta, account_id, known)


async def _rehash(svc: Services, account_id: int, old_hash: str, password: str) -> None:
    # Parameters were raised since this hash was made: upgrade it on a successful login.
    new_hash = await svc.pool.hash(password, follow_up=True)  # after the sign-in's verify
    await run_sync(_store_rehash, svc, account_id, old_hash, new_hash)


def _store_rehash(svc: Services, account_id: int, old_hash: str, new_hash: str) -> None:
    with transaction(svc.sessions) as s:
        repo.replace_hash(s, account_id, old_hash, new_hash)


def issue_session(
    svc: Services,
    user: Account,
    *,
    meta: RequestMeta | None = None,
    signed_in_at: int | None = None,
    session_id: str | None = None,
) -> str:
    """A session JWT; `signed_in_at` renews the session of that sign-in (core/tokens.py).

    `session_id`: the record this JWT belongs to (a renewal keeps its session); None
    records a new session (services/sign_in_sessions.py) for the client in `meta`.
    """
    now = int(svc.clock().timestamp())
    if session_id is None:
        started = now if signed_in_at is None else min(signed_in_at, now)
        session_id = sign_in_sessions.record(svc, user, meta, started)
    return tokens.issue(
        svc.settings.secret,
        svc.settings.issuer,
        user.id,
        user.credential_generation,
        now,
        svc.settings.jwt_ttl,
        auth_time=signed_in_at,
        session_id=session_id,
    )


def session_from_token(svc: Services, token: str) -> tuple[Account, tokens.SessionClaims]:
    """The account of a session JWT and its claims, or NotAuthenticated (bad, expired or
    revoked). The claims tell when the sign-in happened (auth/dependencies.py, sudo mode)."""
    claims = tokens.decode(token, svc.keys, svc.settings.issuer, int(svc.clock().timestamp()))
    if claims is None:
        raise NotAuthenticated()
    with svc.sessions() as s:
        user = repo.by_id(s, claims.account_id)
        # Revocation: a reset or password change bumps the generation; older tokens die.
        # Suspension (issue 11) bumps it too, and a suspended account uses no credential.
        if user is None or user.credential_generation != claims.generation or user.suspended_at:
            raise NotAuthenticated()
        # Revocation of one session (issue 14): a signed-out or ended session's JWT dies.
        due = sign_in_sessions.check(svc, s, user, claims)
    if due is not None:
        sign_in_sessions.touch(svc, due)
    return Account.of(user), claims
