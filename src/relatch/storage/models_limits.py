"""Rate-limit counters shared by every process (the database backend of the limiter)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base


class LimitCounter(Base):
    """One fixed window of one limit key: (key digest, window length, window start).

    Times are epoch seconds: they are bucket coordinates computed by core/limits.py, the
    same in every process. The key is a keyed digest, never an address or IP in clear.
    """

    __tablename__ = "limit_counters"
    __table_args__ = (Index("ix_limit_counters_ends", "ends_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_seconds: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    # window_start + window_seconds: rows past it are pruned by the worker.
    ends_at: Mapped[int] = mapped_column(BigInteger)
