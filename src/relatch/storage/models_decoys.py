"""Decoy try counters: the row a wrong reset code writes when no live code is there to count
the try (storage/one_time.py `count_try`, issue 12).

Timing (enumeration, CWE-208): a check of a code for an address with a live code writes
one row (its try counter) and commits it, and a commit that wrote a row costs more than
one that wrote none (a WAL write, and on PostgreSQL a flush). Without a decoy, an unknown
address, or an account without a live code, wrote nothing, and that difference was
measurable. Its decoy slot is picked from the address, as its code row would be.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from relatch.storage.models import Base

# Rows in the table (migration 0015): spread so that parallel checks of different
# addresses rarely wait on one row lock (PostgreSQL), as they would not for real codes.
DECOY_SLOTS = 256


class TryDecoy(Base):
    __tablename__ = "code_try_decoys"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # Counts the tries it stood in for: never read, only written like a real counter.
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
