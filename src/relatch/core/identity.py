"""Addresses and usernames: validation and the keys they are looked up by."""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from relatch.core import text
from relatch.core.errors import InvalidInput

# Edge Impulse's username rule, verbatim from CreateUserRequest.
USERNAME_RE = re.compile(r"^(?=.{4,30}$)(?![_.])(?!.*[_.]{2})[a-zA-Z0-9._-]+(?<![_.])$")
MAX_EMAIL = 320
MAX_USERNAME = 64  # the column; the rule above allows 30
# The key of text no stored address or username can hold (control characters, NUL, lone
# surrogates): a look-up by it finds nobody. Sending such text to the database instead
# failed (PostgreSQL refuses NUL in text: a 500 from the OAuth sign-in form; no driver
# encodes a lone surrogate). No account has it: checked_email refuses empty addresses and
# the username rule needs 4 characters.
NO_ACCOUNT_KEY = ""


def email_key(address: str) -> str:
    """The lookup key of an address: NFKC, trimmed, case-folded (or NO_ACCOUNT_KEY)."""
    folded = unicodedata.normalize("NFKC", address).strip().casefold()
    return folded if text.is_line(folded) else NO_ACCOUNT_KEY


def checked_email(address: str) -> str:
    """The address as stored, or InvalidInput. Syntax only: no DNS on the request path."""
    normalised = unicodedata.normalize("NFKC", address).strip()
    if not normalised or len(normalised) > MAX_EMAIL or not text.is_line(normalised):
        raise InvalidInput("Invalid e-mail address")
    try:
        result = validate_email(normalised, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput("Invalid e-mail address") from exc
    return result.normalized


def checked_username(username: str) -> str:
    # fullmatch: `$` also matches before a final newline, so match() let "abcd\n" in.
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            "Invalid username: use 4 to 30 letters, digits, '.', '_' or '-', not starting or "
            "ending with '.' or '_', and no two of those in a row"
        )
    return username


def username_key(username: str) -> str:
    """The lookup key of a username (or NO_ACCOUNT_KEY)."""
    folded = username.casefold()
    return folded if text.is_line(folded) else NO_ACCOUNT_KEY
