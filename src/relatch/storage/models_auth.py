"""API keys and the TOTP second factor. Keys and codes only as keyed digests; the TOTP key
sealed (AES-GCM under a key derived from the secret key, see core/sealing.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base, IdType
from relatch.storage.types import UTCDateTime


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # `ei_` (earlier `rl_`) + 8 characters: the lookup index, shown in lists and logs. Not secret.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    # HMAC-SHA256 of the whole key under a purpose-derived key; never the key itself.
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class TotpFactor(Base):
    """One row per account that started or finished setting up TOTP."""

    __tablename__ = "totp_factors"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # The enabled key, sealed; NULL while only a pending key exists.
    sealed_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The key handed out by create-key, until set-key proves a device holds it.
    pending_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    pending_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Replay: the newest TOTP step accepted; a token of this step or older is refused.
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
    # When the "2 or fewer recovery codes left" notice went out for the current set of
    # codes (issue 14); NULL again when a new set is made. One conditional UPDATE sets it,
    # so two parallel uses of the last codes send one mail, not two.
    codes_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RecoveryCode(Base):
    __tablename__ = "totp_recovery_codes"
    __table_args__ = (Index("ix_totp_recovery_codes_user", "user_id", "used_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MfaReset(Base):
    """An operator's request to remove an account's TOTP after a wait (issue 14;
    services/mfa_reset.py). Pending while `ended_at` is NULL; the row is kept when it
    ends (removed, cancelled...) as the record of who asked and why."""

    __tablename__ = "mfa_resets"
    __table_args__ = (
        Index("ix_mfa_resets_user", "user_id", "ended_at"),
        Index("ix_mfa_resets_due", "ended_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Not before this: the owner's time to object ("this was not me", or signing in).
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The operator's OS user name, and the reason they gave (one line each).
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # The factor asked about (its enabled_at): a factor set up later is never removed by it.
    factor_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # removed, cancelled (operator), not_me, signed_in, cleared (owner), stale
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
