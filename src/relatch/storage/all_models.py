"""Every model module, imported so that `metadata` knows every table (Alembic, tests)."""

from __future__ import annotations

from relatch.storage import models
from relatch.storage.models import Base

metadata = Base.metadata

__all__ = ["metadata", "models"]
