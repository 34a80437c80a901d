"""`relatch user import`: accounts with their existing password hashes, in batches.

Imports store, they do not hash: a row's hash is kept as it is and replaced by argon2id
at the account's first successful sign-in, reset or password change (core/hashing.py).

Whole or nothing, per row: each batch is one transaction, so an interrupted import
leaves whole accounts behind, never half of one. Resumable: a row whose address already
has an account is skipped as "already there" (never overwritten: an existing account,
imported or signed up, keeps its password), so running the same file again imports only
what the last run did not reach. A row whose username belongs to another account is
skipped with that reason, and so is one whose address another account may still take
back (its undo link, services/email_change.py). Within the file, the first row of an
address or username wins; later ones are reported as duplicates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from relatch.core.import_rows import ImportRow, Parsed
from relatch.services import email_change
from relatch.services.context import Services
from relatch.storage import account_import as repo
from relatch.storage.db import transaction

BATCH = 1000
# A batch that lost a race with a sign-up (IntegrityError) is tried again with fresh
# look-ups; the second try finds the new account and skips its row.
TRIES = 3
USERNAME_TAKEN = "username already taken by another account"
ADDRESS_RESERVED = "address reserved: the account that moved off it may take it back"


@dataclass
class ImportSummary:
    imported: int = 0
    already_there: int = 0
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.imported + self.already_there + len(self.duplicates) + len(self.skipped)


def import_accounts(
    svc: Services,
    parsed: Iterable[Parsed],
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import every checked row of `parsed`; `progress(n)` after each batch of n rows."""
    summary = ImportSummary()
    first_email: dict[str, int] = {}
    first_username: dict[str, int] = {}
    pending: list[tuple[int, ImportRow]] = []
    seen = 0
    for line, row in parsed:
        seen += 1
        if isinstance(row, str):
            summary.skipped.append((line, row))
        elif row.email_key in first_email:
            summary.duplicates.append((line, f"same address as line {first_email[row.email_key]}"))
        elif row.username_key in first_username:
            earlier = first_username[row.username_key]
            summary.duplicates.append((line, f"same username as line {earlier}"))
        else:
            first_email[row.email_key] = line
            first_username[row.username_key] = line
            pending.append((line, row))
        if len(pending) >= batch:
            _write(svc, pending, summary)
            pending = []
            if progress:
                progress(seen)
                seen = 0
    _write(svc, pending, summary)
    if progress:
        progress(seen)
    summary.duplicates.sort()
    summary.skipped.sort()
    return summary


def _write(svc: Services, pending: list[tuple[int, ImportRow]], summary: ImportSummary) -> None:
    for attempt in range(TRIES):
        try:
            _write_once(svc, pending, summary)
            return
        except IntegrityError:
            if attempt == TRIES - 1:
                raise


def _write_once(
    svc: Services, pending: list[tuple[int, ImportRow]], summary: ImportSummary
) -> None:
    if not pending:
        return
    imported = already = 0
    taken_lines: list[tuple[int, str]] = []
    with transaction(svc.sessions) as s:
        keys = [r.email_key for _, r in pending]
        emails, usernames = repo.taken(s, keys, [r.username_key for _, r in pending])
        # Takeover: an address another account moved off stays that account's while its
        # owner's undo link lives (services/email_change.py); an imported account holding
        # it would block the undo, as a sign-up would (createUser refuses it too).
        reserved = email_change.reserved_keys(s, keys, svc.clock())
        fresh = []
        for line, r in pending:
            if r.email_key in emails:
                already += 1
            elif r.email_key in reserved:
                taken_lines.append((line, ADDRESS_RESERVED))
            elif r.username_key in usernames:
                taken_lines.append((line, USERNAME_TAKEN))
            else:
                fresh.append(
                    {
                        "email": r.email,
                        "email_key": r.email_key,
                        "username": r.username,
                        "username_key": r.username_key,
                        "name": r.name,
                        "password_hash": r.password_hash,
                        "email_verified": r.activated,
                    }
                )
        repo.add_many(s, fresh, svc.clock())
        imported = len(fresh)
    # Counted only once the batch committed (a retried batch is not counted twice).
    summary.imported += imported
    summary.already_there += already
    summary.skipped.extend(taken_lines)
