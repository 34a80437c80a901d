"""Known clients: a device or network that signed in to, or reset, an account successfully.

Privacy: no IP, network or cookie in clear; `digest` is a keyed HMAC of (kind, the
account's address key, the device id or network), made by services/known_clients.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base, IdType
from relatch.storage.types import UTCDateTime


class KnownClient(Base):
    __tablename__ = "known_clients"
    __table_args__ = (
        # Upsert target, and "forget every known client of this account" by its prefix.
        UniqueConstraint("user_id", "digest", name="uq_known_clients_user_digest"),
        # The lookup before each guess or reset request: by digest alone (a reset request
        # does not look the account up, services/reset_requests.py request_reset).
        Index("ix_known_clients_digest", "digest", "expires_at"),
        # The retention prune (relatch/workers.py).
        Index("ix_known_clients_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # "device" (signed cookie of the pages) or "network" (/24 or /64 of an API client).
    kind: Mapped[str] = mapped_column(String(8))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # last_seen_at + RELATCH_KNOWN_CLIENT_DAYS: past it the client is a stranger again.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
