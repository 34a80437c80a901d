"""What the layers above the services see of an account: a plain, frozen view.

Routes, pages and auth schemes get this, never the ORM row (no password hash, no session
to lazy-load from, nothing to write back by accident).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from relatch.storage.models import User


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    username: str
    name: str
    created_at: datetime
    email_verified: bool
    password_configured: bool
    # Bumped by every reset and password change (sessions and sign-in cookies carry it).
    credential_generation: int
    job_title: str | None = None
    company_name: str | None = None
    timezone: str | None = None
    projects_sort_order: str | None = None
    is_staff: bool = False
    # Suspended accounts never reach the layers above through a credential
    # (auth/dependencies.py); staff see these two in getUser.
    suspended: bool = False
    suspension_reason: str | None = None

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            name=user.name,
            created_at=user.created_at,
            email_verified=bool(user.email_verified),
            password_configured=user.password_hash is not None,
            credential_generation=user.credential_generation,
            job_title=user.job_title,
            company_name=user.company_name,
            timezone=user.timezone,
            projects_sort_order=user.projects_sort_order,
            is_staff=bool(user.is_staff),
            suspended=user.suspended_at is not None,
            suspension_reason=user.suspension_reason,
        )
