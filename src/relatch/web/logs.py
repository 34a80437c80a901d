"""Keep the query strings of mailed links (an address, a code, a token) out of the access log.

Secrets in logs (OWASP Logging CS; STYLE rule 12): uvicorn logs every request line with its
query string; the link in the reset mail carries the address and the code, and the link in
the "password changed" notice carries the 7-day "this was not me" token (web/not_me.py),
and the "address changed" notice the 7-day undo token (web/email_undo.py), which puts the
old address back and mails it a reset code: whoever reads the log could take the account.
"""

from __future__ import annotations

import logging

REDACTED_PREFIXES = ("/reset-password", "/not-me", "/change-email/undo")


class RedactPageQueries(logging.Filter):
    """Rewrites uvicorn.access records: `/reset-password?email=..` becomes `/reset-password?…`,
    `/not-me?token=..` becomes `/not-me?…`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, sep, _query = args[2].partition("?")
            if sep and path.startswith(REDACTED_PREFIXES):
                record.args = (*args[:2], f"{path}?[redacted]", *args[3:])
        return True


def install() -> None:
    """Idempotent: adds the filter to uvicorn's access logger once per process."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactPageQueries) for f in logger.filters):
        logger.addFilter(RedactPageQueries())
