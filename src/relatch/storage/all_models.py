"""Every model module, imported so that `metadata` knows every table (Alembic, tests)."""

from __future__ import annotations

import relatch.storage.models_auth  # noqa: F401 (API keys, TOTP tables)
from relatch.storage import (
    models,
    models_audit,  # noqa: F401 (audit trail, not-me links)
)
from relatch.storage.models import Base

metadata = Base.metadata

__all__ = ["metadata", "models"]
