"""Addresses and usernames: validation and the keys they are looked up by."""

from __future__ import annotations

import re
import unicodedata

from email_validator import EmailNotValidError, validate_email

from relatch.core.errors import InvalidInput

# Edge Impulse's username rule, verbatim from CreateUserRequest.
USERNAME_RE = re.compile(r"^(?=.{4,30}$)(?![_.])(?!.*[_.]{2})[a-zA-Z0-9._-]+(?<![_.])$")
MAX_EMAIL = 320


def email_key(address: str) -> str:
    """The lookup key of an address: NFKC, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", address).strip().casefold()


def checked_email(address: str) -> str:
    """The address as stored, or InvalidInput. Syntax only: no DNS on the request path."""
    text = unicodedata.normalize("NFKC", address).strip()
    if not text or len(text) > MAX_EMAIL:
        raise InvalidInput("Invalid e-mail address")
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput("Invalid e-mail address") from exc
    return result.normalized


def checked_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            "Invalid username: use 4 to 30 letters, digits, '.', '_' or '-', not starting or "
            "ending with '.' or '_', and no two of those in a row"
        )
    return username


def username_key(username: str) -> str:
    return username.casefold()
