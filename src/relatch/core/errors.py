"""One exception per outcome. `http/errors.py` alone turns them into responses."""

from __future__ import annotations


class RelatchError(Exception):
    """A handled outcome that is not a success (HTTP 200, success=false)."""

    public_message = "The request could not be completed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.public_message)
        self.message = message or self.public_message


class InvalidInput(RelatchError):
    """The body is not JSON, lacks a field, or has a wrong type (HTTP 400)."""


class PasswordRejected(RelatchError):
    """The new password breaks a rule; the message says which and what to change."""


class CodeRejected(RelatchError):
    """Unknown address, wrong, expired, used, revoked or exhausted code: one answer for all.

    Enumeration: callers never learn which of these it was (OWASP Forgot Password CS).
    """

    public_message = "Invalid or expired reset code"


class LoginFailed(RelatchError):
    """Unknown user and wrong password share one message (enumeration)."""

    public_message = "Invalid username or password"


class AccountExists(RelatchError):
    public_message = "An account with this username or e-mail address already exists"


class NotAuthenticated(RelatchError):
    """Missing, bad, expired or revoked credentials (HTTP 401)."""

    public_message = "Not authenticated"


class RateLimited(RelatchError):
    """Too many attempts (HTTP 429); carries the seconds to wait."""

    public_message = "Too many attempts, try again later"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
