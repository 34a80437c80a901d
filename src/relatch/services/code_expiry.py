"""Expired reset codes pruned (relatch/workers.py, retention), and counted as expired.

A code that expired unused is an event nobody sees happen: no request marks it. It is
counted when the worker prunes its row (a day after its expiry: workers.EXPIRED_GRACE),
from the DELETE's own rows, so each is counted once whichever process prunes it.
"""

from __future__ import annotations

from datetime import datetime

from relatch.infra import metrics
from relatch.services.context import Services
from relatch.storage.models import ResetCode
from relatch.storage.one_time import RESET_CODES, Tries


def prune_reset_codes(svc: Services, cutoff: datetime) -> int:
    """Delete the reset codes that expired before `cutoff`; how many. Those never used,
    revoked nor killed (neither try counter at its limit) count as expired."""
    limit = svc.settings.reset_code_max_attempts
    tries = [Tries(ResetCode.attempts, limit), Tries(ResetCode.known_attempts, limit)]
    deleted, expired = RESET_CODES.prune_expired_unused(svc.sessions, cutoff, tries)
    if expired:
        metrics.RESET_CODES.labels("expired").inc(expired)
    return deleted
