"""Every model module, imported so that `metadata` knows every table (Alembic, tests)."""

from __future__ import annotations

import relatch.storage.models_auth  # registers the API key and TOTP tables
import relatch.storage.models_clients  # known clients (their own failure budgets)
import relatch.storage.models_decoys  # decoy try counters (equal work for wrong codes)
import relatch.storage.models_email  # a changed address: its code and undo link
import relatch.storage.models_limits  # rate-limit counters
import relatch.storage.models_oauth  # OAuth2 / OpenID Connect tables
import relatch.storage.models_sessions  # noqa: F401 (sign-in sessions)
from relatch.storage import (
    models,
    models_audit,  # noqa: F401 (audit trail, not-me links)
)
from relatch.storage.models import Base

metadata = Base.metadata

__all__ = ["metadata", "models"]
