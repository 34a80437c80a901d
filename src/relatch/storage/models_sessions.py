"""Sign-in sessions (issue 14): the server-side record a session JWT names by its `sid`.

Revocation per session: ending one deletes its row, and a JWT whose `sid` names no row is
refused (services/accounts.session_from_token). The per-account credential generation
stays for "end everything" (a reset, a password change, a suspension): a row remembers
the generation it was made under, and one of an older generation is dead and not listed.

Privacy: the network is the /24 or /64 of the client, never its address; the user agent
is cut to 256 characters. Both are shown to the account's owner only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base, IdType
from relatch.storage.types import UTCDateTime


class SignInSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        # "My sessions" and "end all but this one", and the prune at each sign-in.
        Index("ix_sessions_user", "user_id", "expires_at"),
        # The retention prune (relatch/workers.py).
        Index("ix_sessions_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    # Random and unguessable (the `sid` claim, and the id the owner sees and ends it by).
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Written at most once a minute (services/sign_in_sessions.py: a GET stays a read).
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The JWT's own expiry (sign-in + RELATCH_JWT_TTL): past it the row is dead.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_agent: Mapped[str | None] = mapped_column(String(256), nullable=True)
    network: Mapped[str | None] = mapped_column(String(64), nullable=True)
