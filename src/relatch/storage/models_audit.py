"""The audit trail and the "this was not me" links (issue 3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base, IdType
from relatch.storage.types import UTCDateTime


class AuditEvent(Base):
    """One security-relevant event. Never a code, a password or a token (ASVS 5.0 16.2.5).

    `account_id` is a plain column, not a foreign key: the trail outlives the account.
    `target_digest` is a keyed digest of the address or login when no account matched,
    so the trail of an unknown address can be found without storing the address itself
    (and of a deleted account's address: the row of its deletion, issue 11).
    `subject_id` is the account a staff member or an operator acted on; the actor (the
    staff account, or none for the command line) is `account_id`.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_account", "account_id", "at"),
        Index("ix_audit_events_target", "target_digest", "at"),
        Index("ix_audit_events_subject", "subject_id", "at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    target_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class NotMeLink(Base):
    """The one-time link of a "password changed" notice; stored as a keyed digest only."""

    __tablename__ = "not_me_links"
    __table_args__ = (
        Index("ix_not_me_links_user", "user_id"),
        # The retention prune (relatch/workers.py).
        Index("ix_not_me_links_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
