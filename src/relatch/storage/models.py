"""Tables. Secrets are stored only as hashes or keyed digests, never in clear."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from relatch.storage.types import UTCDateTime

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    # Ids are never handed out twice (a deleted account's sessions and audit rows name its
    # id): SQLite would reuse the largest one after a delete without AUTOINCREMENT.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320))
    # NFKC + casefold of the address: the key for lookups and uniqueness.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    password_hash: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # Bumped by every reset and password change: older sessions and tokens die (revocation).
    credential_generation: Mapped[int] = mapped_column(Integer, default=0)
    # The address is proven (shown as `activated`): by the activation mail's code, a
    # successful reset, or an operator (`relatch user create`). Until then the account
    # cannot make credentials (services/activation.py: account pre-hijacking).
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    job_title: Mapped[str | None] = mapped_column(String(256), nullable=True)
    company_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Profile (updateCurrentUser): an IANA zone name; the projects list's sort order (NULL:
    # the Edge Impulse default, created-desc).
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    projects_sort_order: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Staff may act on other accounts by id (services/staff.py); set by `relatch user staff`.
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Suspended (`relatch user suspend`): no sign-in, no credential works, no reset code.
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    suspension_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # Session JWTs from before sessions were recorded (no `sid`, migration 0015) are
    # refused once the owner signed one out or ended the others (services/sign_in_sessions).
    sessionless_ended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the last "someone is guessing" notice went out (services/owner_notices.py): at
    # most one a day, across processes, however many strangers spend the failure budget.
    guessing_notice_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ResetRequest(Base):
    """A recorded reset request; a worker decides, off the request path, what it leads to.

    Enumeration: the HTTP handler writes this row for every well-formed address and
    nothing else, so known and unknown addresses cost the same.
    """

    __tablename__ = "reset_requests"
    __table_args__ = (Index("ix_reset_requests_due", "failed_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Poison items (issue 8): tries that raised, when the next one is due (NULL: now),
    # and the dead letter: set aside once its tries are spent (`relatch mail requests
    # --failed`). last_error holds an exception class and code location, never its text.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(256), nullable=True)


class MailedCode:
    """The columns of a code sent by mail and typed back (a reset code, an activation
    code): whose it is, its keyed digest bound to the account (never the code itself), its
    lifetime, the tries counted against it, and how it ended (consumed or revoked).

    `sort_order` keeps each table's columns in the order the migrations created them (a
    mixin's columns would otherwise come first)."""

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True, sort_order=-9)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), sort_order=-8)
    # HMAC-SHA256 under the secret key, bound to the account (core/keyed.py).
    digest: Mapped[str] = mapped_column(String(64), sort_order=-7)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), sort_order=-6)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), sort_order=-5)
    attempts: Mapped[int] = mapped_column(Integer, default=0, sort_order=-4)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, sort_order=1)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, sort_order=2)


class ResetCode(MailedCode, Base):
    __tablename__ = "reset_codes"
    __table_args__ = (
        Index("ix_reset_codes_user_live", "user_id", "consumed_at", "revoked_at"),
        # The retention prune (relatch/workers.py).
        Index("ix_reset_codes_expires", "expires_at"),
    )

    # Tries by clients known to the account (services/known_clients.py), counted apart:
    # strangers who use up `attempts` cannot kill the code for the owner's own device.
    known_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The mailed link's secret (core/codes.link_token), as a keyed digest bound to the
    # account: 256 bits, so it needs no try counter and strangers cannot use it up.
    link_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ActivationCode(MailedCode, Base):
    """A mailed activation code (services/activation.py): one live code per account, 24
    hours, 5 tries (core/keyed.py ACTIVATION_CODE)."""

    __tablename__ = "activation_codes"
    __table_args__ = (
        Index("ix_activation_codes_user_live", "user_id", "consumed_at", "revoked_at"),
        # The retention prune (relatch/workers.py).
        Index("ix_activation_codes_expires", "expires_at"),
    )


class OutboxMessage(Base):
    """A mail to deliver, written in the transaction that decided to send it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # The retention prune of delivered mails (relatch/workers.py).
        Index("ix_outbox_sent", "status", "sent_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    template: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(256))
    # Rendered bodies. They may carry a code, so they are blanked once the mail is
    # delivered or abandoned (a database dump must not hold live codes for long).
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The claim's fencing token while `sending` (storage/outbox_claims.py): only its holder
    # may renew or end the claim.
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
