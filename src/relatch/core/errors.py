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


class LinkRejected(RelatchError):
    """A "this was not me" link that is unknown, forged, expired or already used: one answer."""

    public_message = "This link is invalid, has expired or was already used"


class LoginFailed(RelatchError):
    """Unknown user and wrong password share one message (enumeration)."""

    public_message = "Invalid username or password"


class TotpRequired(RelatchError):
    """The password was right and the account has a second factor, but no token was sent.

    Only said after the password matched, so it reveals nothing to someone without it.
    Not a LoginFailed: asking for the token is a normal step, not a failed attempt.
    The prefix is the Edge Impulse contract (GetJWTRequest.totpToken).
    """

    public_message = "ERR_TOTP_TOKEN IS REQUIRED: this account has two-factor authentication"


class TotpRejected(LoginFailed):
    """Wrong, expired or already used TOTP token or recovery code (one answer for all).

    A LoginFailed, so failure limits count it: 6 digits must not be open to brute force.
    """

    public_message = "Invalid or already used TOTP token"


class AccountSuspended(LoginFailed):
    """The password (and second factor) were right, but the account is suspended.

    Enumeration: said only after the whole sign-in passed, so it tells nothing to someone
    without the password. A LoginFailed, so every sign-in front end refuses it alike.
    """

    public_message = "This account is suspended; contact the service's operators"


class MfaState(RelatchError):
    """create-key with MFA already set, set-key without a pending key, clear without MFA."""


class ApiKeyNotFound(RelatchError):
    """Unknown, revoked, or another account's key: one answer (no probing of key ids)."""

    public_message = "API key not found"


class ActivationRequired(RelatchError):
    """A credential-making operation (API key, TOTP, OAuth consent or token) on an account
    whose address is not proven yet (account pre-hijacking: whoever signed up with someone
    else's address must not plant credentials that outlive the owner's reset)."""

    public_message = (
        "Activate your account first: enter the code from the activation mail "
        "(or ask for a new one)"
    )


class ActivationCodeRejected(RelatchError):
    """Wrong, expired, used, revoked or exhausted activation code: one answer for all."""

    public_message = "Invalid or expired activation code"


class AlreadyActivated(RelatchError):
    """activate or request-activation on an account whose address is already proven."""

    public_message = "This account is already activated"


class EmailChangeRejected(RelatchError):
    """A change of address not made: a wrong, expired, used, revoked or exhausted code, or
    a new address that another account holds. One answer for all (enumeration)."""

    public_message = "Invalid or expired address-change code"


class SameEmail(RelatchError):
    """A change of address to the account's own address (the caller knows it already)."""

    public_message = "This is already your e-mail address"


class AddressTaken(RelatchError):
    """The undo of a changed address cannot put the old address back: another account holds
    it now (an operator created or imported it). Nothing was changed."""

    public_message = (
        "Another account uses that address now, so it cannot be put back; "
        "contact the service's operators"
    )


class UserNotFound(RelatchError):
    """An operation by id on an account the caller may not see, or that does not exist: one
    answer for both (no enumeration of account ids by anyone but staff)."""

    public_message = "User not found"


class StaffMfaRequired(RelatchError):
    """A staff operation on another account from a staff account without TOTP, or from a
    session signed in before TOTP was turned on (no second factor behind it)."""

    public_message = (
        "Staff operations on other accounts need two-factor authentication: turn TOTP on "
        "for this account, then sign in again"
    )


class NotYourPassword(RelatchError):
    """changePasswordUser on another account's id: nobody, staff included, sets another
    person's password (ASVS 5.0 6.4.6); an operator sends a reset code instead."""

    public_message = (
        "Nobody can set another person's password; an operator can send a reset code "
        "(relatch user reset)"
    )


class SessionNotFound(RelatchError):
    """No session of the caller's account has this id: another account's session gets the
    same answer as an unknown id (enumeration, issue 14)."""

    public_message = "Session not found"


class OAuthAppNotFound(RelatchError):
    """The client holds no grant or token for the caller's account (or does not exist)."""

    public_message = "No grant for this app"


class AccountExists(RelatchError):
    public_message = "An account with this username or e-mail address already exists"


class NotAuthenticated(RelatchError):
    """Missing, bad, expired or revoked credentials (HTTP 401)."""

    public_message = "Not authenticated"


class ReauthRequired(NotAuthenticated):
    """Credential management without a recent sign-in (HTTP 401): an API key, an OAuth
    bearer token, or a session JWT older than RELATCH_REAUTH_SECONDS (ASVS 5.0 7.5.1)."""

    public_message = "Sign in again (with your password) to change your sign-in methods"


class FactorReauthRequired(ReauthRequired):
    """New recovery codes without a recent sign-in that passed the second factor (HTTP 401):
    a session JWT older than RELATCH_REAUTH_SECONDS, an API key, an OAuth bearer token, or
    a session signed in before TOTP was turned on (issue 14)."""

    public_message = "Sign in again with your password and second factor to get new recovery codes"


class SessionRequired(NotAuthenticated):
    """The sessions operations (issue 14) take a session JWT only (auth/dependencies.py)."""

    public_message = (
        "This operation needs a session JWT (x-jwt-token header or jwt cookie); "
        "an API key or OAuth token is refused"
    )


class StaffReauthRequired(ReauthRequired):
    """A staff operation on another account without a recent sign-in (HTTP 401): an API
    key, an OAuth bearer token, or a session JWT older than RELATCH_REAUTH_SECONDS."""

    public_message = (
        "Staff operations on other accounts need a session JWT from a sign-in within "
        "RELATCH_REAUTH_SECONDS; sign in again"
    )


class RateLimited(RelatchError):
    """Too many attempts (HTTP 429); carries the seconds to wait."""

    public_message = "Too many attempts, try again later"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class ServerBusy(RateLimited):
    """The hashing pool is full (infra/hashing_pool.py): HTTP 429 like any refusal, but an
    overload, not an attempt on anything (no secret was checked, no budget spent)."""

    public_message = "The server is busy, try again in a moment"
