"""What a repository needs from the process: sessions, clock and secret keys.

A Protocol, so that storage/ stays below services/: `services.context.Services`
satisfies it, and the repositories never import the service layer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from relatch.core.keyed import KeyRing
from relatch.settings import Settings


class StoreContext(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def keys(self) -> KeyRing:
        """Current secret first, then fallbacks (rotation)."""
        ...
