"""The audit trail: who tried what, from where, with what outcome (issue 3, ASVS 5.0 V16).

A row holds the time, the event, its outcome, the account when known, a keyed digest of
the address or login when no account matched, the client IP, user agent and request id.
Never a code, a password or a token: callers pass none, and nothing here accepts one.

One mechanism, `trail` (a `Trail`, entered with `with` or `async with`). Success rows are
written in the transaction that made the change (`Trail.write`), so a rolled-back change
leaves no "ok" row; failures are written in their own transaction after the exception,
because the failing transaction has been rolled back.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from relatch.core import identity, keyed
from relatch.core.errors import RelatchError, ServerBusy
from relatch.core.meta import RequestMeta
from relatch.services.context import Services
from relatch.storage import accounts, outage
from relatch.storage.db import rowcount, transaction
from relatch.storage.models_audit import AuditEvent

log = logging.getLogger(__name__)

PURPOSE = keyed.AUDIT_TARGET  # purpose salt: an audit digest is useless as a code digest
PRUNE_EVERY = timedelta(minutes=10)

# Event names, as printed by `relatch audit`.
SIGNUP = "signup"
LOGIN = "login"
RESET_REQUEST = "reset_request"  # recorded on the request path, no lookup (enumeration)
RESET_MAIL = "reset_mail"  # the worker's decision: code_sent or no_account
CODE_CHECK = "code_check"
RESET = "reset"
PASSWORD_CHANGE = "password_change"  # noqa: S105 (an event name, not a password)
NOT_ME_VIEW = "not_me_view"
NOT_ME = "not_me"
# Changes to how an account signs in, with the account as actor (issue 8).
APIKEY_CREATE = "apikey_create"
APIKEY_REVOKE = "apikey_revoke"
TOTP_SET = "totp_set"
TOTP_CLEAR = "totp_clear"
# Activation (issue 11): a code asked for, a code tried; and what the first proof of an
# address by a reset removed (account pre-hijacking: services/unproven.py).
ACTIVATION_REQUEST = "activation_request"
ACTIVATE = "activate"
UNPROVEN_PURGE = "unproven_purge"
# The account's life (issue 11). Acting on one's own account: the account is the actor.
# A staff member or an operator acting on another: the actor is `account_id` (the staff
# account; none for the command line) and the account acted on is `subject_id`.
PROFILE_UPDATE = "profile_update"
ACCOUNT_DELETE = "account_delete"  # the row keeps a keyed digest of the address, not it
STAFF_ACCESS = "staff_access"  # an operation by id on another account: a read, a refusal
STAFF_GRANT = "staff_grant"
STAFF_REVOKE = "staff_revoke"
OPERATOR_RESET = "operator_reset"
SUSPEND = "suspend"
UNSUSPEND = "unsuspend"
# Sessions and apps (issue 14), the account as actor: what the owner ended, and when.
SIGN_OUT = "sign_out"
SESSION_END = "session_end"
SESSIONS_END_OTHERS = "sessions_end_others"
OAUTH_APP_REVOKE = "oauth_app_revoke"
# A lost second factor (issue 14): new recovery codes (the account as actor); an
# operator's delayed TOTP removal asked, cancelled and carried out (the operator as actor,
# their OS user name in the user agent column; the account as subject).
RECOVERY_CODES_NEW = "recovery_codes_new"
MFA_RESET_REQUEST = "mfa_reset_request"
MFA_RESET_CANCEL = "mfa_reset_cancel"
MFA_RESET = "mfa_reset"
# A changed address (issue 14): the request (a code to the new address), its confirmation,
# and the old address's undo link shown and used.
EMAIL_CHANGE_REQUEST = "email_change_request"
EMAIL_CHANGE = "email_change"
EMAIL_UNDO_VIEW = "email_undo_view"
EMAIL_UNDO = "email_undo"

OK = "ok"

_outages = outage.OutageLog(
    log, "database unavailable (%s): %s audit row(s) not written since the last such line"
)


def outcome_of(exc: BaseException) -> str:
    """The exception's outcome name: CodeRejected -> "code_rejected" (errors.py names them)."""
    if isinstance(exc, RelatchError):
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()[:32]
    return "error"


def target_digest(secret: bytes, login: str) -> str:
    """Keyed digest of an address or username as looked up (NFKC, case-folded).

    Privacy: the trail of an unknown address is findable by whoever knows the address
    and the key, but a database dump does not list the addresses people typed.
    """
    return keyed.digest(secret, PURPOSE, identity.email_key(login))


def target_digests(svc: Services, login: str) -> list[str]:
    """The digest under the current key and every fallback key (key rotation)."""
    return keyed.candidates(svc.keys, PURPOSE, identity.email_key(login))


_INSERT = insert(AuditEvent)


def add(
    s: Session,
    svc: Services,
    event: str,
    outcome: str,
    meta: RequestMeta,
    *,
    account_id: int | None = None,
    login: str | None = None,
    at: datetime | None = None,
    subject_id: int | None = None,
    keep_digest: bool = False,
) -> None:
    """Add one row to the caller's transaction. `keep_digest`: the login's digest even
    though the account is known (a deletion: the account row, and its address, are gone)."""
    # A Core INSERT on the transaction's connection, now: the ORM's unit of work at commit
    # cost more than the row itself on the cheap paths (issue 12). The table has no foreign
    # key (rows outlive their accounts), so no pending ORM row has to be flushed first.
    s.connection().execute(
        _INSERT,
        row(
            svc,
            event,
            outcome,
            meta,
            account_id=account_id,
            login=login,
            at=at,
            subject_id=subject_id,
            keep_digest=keep_digest,
        ),
    )


def add_rows(s: Session, rows: list[dict[str, Any]]) -> None:
    """Add many rows (each from `row`) to the caller's transaction in one INSERT (the
    reset-request worker's batch, issue 12)."""
    if rows:
        s.connection().execute(_INSERT, rows)


def row(
    svc: Services,
    event: str,
    outcome: str,
    meta: RequestMeta,
    *,
    account_id: int | None = None,
    login: str | None = None,
    at: datetime | None = None,
    subject_id: int | None = None,
    keep_digest: bool = False,
) -> dict[str, Any]:
    """The values of one row, as `add` writes it."""
    digest = None
    if (account_id is None or keep_digest) and login:
        digest = target_digest(svc.settings.secret, login)
    return {
        "at": at or svc.clock(),
        "event": event,
        "outcome": outcome[:32],
        "account_id": account_id,
        "target_digest": digest,
        "subject_id": subject_id,
        "client_ip": (meta.client_ip or None) and meta.client_ip[:64],
        "user_agent": (meta.user_agent or None) and meta.user_agent[:256],
        "request_id": (meta.request_id or None) and meta.request_id[:64],
    }


def _account_of(s: Session, login: str) -> int | None:
    return accounts.id_by_login(s, login)


@dataclass
class Trail:
    """The row of one service call, as a context manager: `with` for a sync use case,
    `async with` for one that awaits a hash (infra/hashing_pool.py). Both faces write
    the same rows through `_finish`: the success, or the exception that ended the call.

    `write` puts the success row in the caller's transaction (a rolled-back change leaves
    no "ok" row); without it, the row is written alone when the block ends.
    """

    svc: Services
    event: str
    meta: RequestMeta
    login: str | None = None
    account_id: int | None = None
    resolve: bool = True  # look the login up to name the account (off where lookups leak)
    subject_id: int | None = None  # the account acted on, when the actor is someone else
    keep_digest: bool = False  # the login's digest even with the account known (deletion)
    written: bool = False

    def write(self, s: Session, outcome: str = OK) -> None:
        add(
            s, self.svc, self.event, outcome, self.meta, account_id=self.account_id,
            login=self.login, subject_id=self.subject_id, keep_digest=self.keep_digest,
        )  # fmt: skip
        self.written = True

    def __enter__(self) -> Trail:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        outcome = self._outcome(exc)
        if outcome is not None:
            self._write_alone(outcome)

    async def __aenter__(self) -> Trail:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        outcome = self._outcome(exc)
        if outcome is not None:
            # The same row, written in a worker thread, off the event loop.
            await anyio.to_thread.run_sync(self._write_alone, outcome)

    def _outcome(self, exc: BaseException | None) -> str | None:
        """The row still to write when the block ends, if any."""
        if exc is None:
            return None if self.written else OK
        if outage.unavailable(exc):
            # The database failed the call: a second wait for it (another pool checkout
            # or connect) would only push the 503 past its bound (issue 10). Counted lost.
            _outages.note(exc)
            return None
        if isinstance(exc, ServerBusy):
            # Overload, not an attempt: nothing was checked. Under a flood, a row per
            # refusal would be a write per refusal, taking the core from the hashes and
            # the cheap requests (issue 12); the refusals are counted in the metrics.
            return None
        if isinstance(exc, Exception):
            # Written even if `write` ran: the failed transaction took that row with it.
            return outcome_of(exc)
        return None  # cancellation, exit: no outcome to record

    def _write_alone(self, outcome: str) -> None:
        try:
            with transaction(self.svc.sessions) as s:
                if self.account_id is None and self.login and self.resolve:
                    self.account_id = _account_of(s, self.login)
                self.write(s, outcome)
        except Exception as exc:
            # Availability: a trail that cannot be written must not turn the answer into a
            # 500 or hide the real exception. Logged by type only (no request data); in a
            # database outage, which the request itself answers with a 503, with the
            # others lost in it (one warning now and then, not one per request).
            if outage.unavailable(exc):
                _outages.note(exc)
            else:
                log.error(
                    "audit row %s/%s not written: %s", self.event, outcome, type(exc).__name__
                )


def trail(
    svc: Services,
    event: str,
    meta: RequestMeta,
    *,
    login: str | None = None,
    account_id: int | None = None,
    resolve: bool = True,
    subject_id: int | None = None,
) -> Trail:
    """Audit one service call: `with audit.trail(...) as t:` or `async with ...`."""
    return Trail(
        svc, event, meta, login=login, account_id=account_id, resolve=resolve,
        subject_id=subject_id,
    )  # fmt: skip


def prune(svc: Services) -> int:
    """Delete rows older than RELATCH_AUDIT_RETENTION_DAYS (the workers call it at most
    every PRUNE_EVERY: relatch/workers.py)."""
    cutoff = svc.clock() - timedelta(days=svc.settings.audit_retention_days)
    with transaction(svc.sessions) as s:
        deleted = rowcount(s.execute(delete(AuditEvent).where(AuditEvent.at < cutoff)))
    return int(deleted or 0)
