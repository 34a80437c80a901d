"""A changed address (issue 14): the mailed code that proves the new address, and the
undo link sent to the old one (services/email_change.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base, IdType, MailedCode
from relatch.storage.types import UTCDateTime


class EmailChange(MailedCode, Base):
    """An asked-for change of address: the code mailed to the new address (one live change
    per account, 5 tries, the reset code's life). Only the code's keyed digest is stored,
    bound to the account; the new address is kept until the change is used or pruned."""

    __tablename__ = "email_changes"
    __table_args__ = (
        Index("ix_email_changes_user_live", "user_id", "consumed_at", "revoked_at"),
        # The retention prune (relatch/workers.py).
        Index("ix_email_changes_expires", "expires_at"),
    )

    # The address asked for, kept until the change is used or pruned (the other columns:
    # MailedCode, as a reset code's).
    new_email: Mapped[str] = mapped_column(String(320))


class EmailUndoLink(Base):
    """The one-time link of the "your address was changed" notice, sent to the old address:
    it puts that address back (services/email_change.py). Stored as a keyed digest only
    (core/keyed.py EMAIL_UNDO_LINK), like a "this was not me" link. While it lives, the old
    address stays reserved for this account (`old_email_key`): nobody else may take it and
    so block the undo."""

    __tablename__ = "email_undo_links"
    __table_args__ = (
        Index("ix_email_undo_links_user", "user_id"),
        Index("ix_email_undo_links_old_key", "old_email_key"),
        # The retention prune (relatch/workers.py).
        Index("ix_email_undo_links_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    # The address to put back, as it was stored, and its lookup key (identity.email_key).
    old_email: Mapped[str] = mapped_column(String(320))
    old_email_key: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
