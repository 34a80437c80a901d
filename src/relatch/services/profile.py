"""updateCurrentUser / updateUser: the profile fields a person (or staff) may change.

Name, job title, company, time zone and the projects list's sort order. Only the fields
sent change (the Edge Impulse schema: "Only fields set in this object will be updated").
Each string arrives bounded and free of control characters (http/schemas.py, core/text.py:
mail and terminal injection, 500s on NUL); here the rules that need more than the type:
a name is never blank, a time zone is one of the IANA zones zoneinfo knows.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import update

from relatch.core.errors import InvalidInput, NotAuthenticated, UserNotFound
from relatch.core.meta import RequestMeta
from relatch.services import audit
from relatch.services.account import Account
from relatch.services.context import Services
from relatch.storage.db import rowcount, transaction
from relatch.storage.models import User

TIMEZONE_MAX = 64  # the longest IANA name is 32 characters; the column holds 64


@dataclass(frozen=True)
class ProfileChanges:
    """The fields to change; None leaves a field as it is. An empty job title, company or
    time zone clears it."""

    name: str | None = None
    job_title: str | None = None
    company_name: str | None = None
    timezone: str | None = None
    projects_sort_order: str | None = None


@functools.cache
def _zones() -> frozenset[str]:
    # The system's zone files and the tzdata package (a dependency: some systems ship
    # none). Looked up by membership only, never opened by name: a name like
    # "../../etc/passwd" never reaches the file system.
    return frozenset(zoneinfo.available_timezones())


def checked_timezone(value: str) -> str | None:
    """The IANA zone name, None for "" (cleared), or InvalidInput saying what is wrong."""
    zone = value.strip()
    if not zone:
        return None
    if len(zone) > TIMEZONE_MAX or zone not in _zones():
        raise InvalidInput(
            "Unknown time zone: use an IANA time zone name such as Europe/Amsterdam or UTC"
        )
    return zone


def _values(changes: ProfileChanges) -> dict[str, object]:
    values: dict[str, object] = {}
    if changes.name is not None:
        name = changes.name.strip()
        if not name:
            raise InvalidInput("The name must not be empty")
        values["name"] = name
    if changes.job_title is not None:
        values["job_title"] = changes.job_title.strip() or None
    if changes.company_name is not None:
        values["company_name"] = changes.company_name.strip() or None
    if changes.timezone is not None:
        values["timezone"] = checked_timezone(changes.timezone)
    if changes.projects_sort_order is not None:
        values["projects_sort_order"] = changes.projects_sort_order
    return values


def update_profile(
    svc: Services,
    target: Account,
    changes: ProfileChanges,
    meta: RequestMeta,
    *,
    actor: Account | None = None,
) -> None:
    """Apply `changes` to `target`; audited with `actor` (staff) as actor when given, else
    the account itself. InvalidInput (a handled answer) names the field that is wrong."""
    by_staff = actor is not None and actor.id != target.id
    with audit.trail(
        svc,
        audit.PROFILE_UPDATE,
        meta,
        account_id=actor.id if by_staff and actor else target.id,
        subject_id=target.id if by_staff else None,
    ) as t:
        values = _values(changes)
        with transaction(svc.sessions) as s:
            if values:
                done = s.execute(update(User).where(User.id == target.id).values(**values))
                if rowcount(done) != 1:  # deleted since the caller was authenticated
                    raise UserNotFound() if by_staff else NotAuthenticated()
            t.write(s)
