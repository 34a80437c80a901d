"""A submitted page form: its values, per-field errors and a form-level error."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.requests import Request

from relatch.core import text
from relatch.web import csrf

MAX_FIELD_CHARS = 2048  # above the password maximum (1024): longer input is cut, then refused
REFUSED = "This field holds characters it cannot contain (control characters or line breaks)"


def is_secret_field(name: str) -> bool:
    """Password fields take any printable text; every other field is one line."""
    return "password" in name.lower()


def acceptable(name: str, value: str) -> bool:
    """The API's guard (core/text.py) for a page field: NUL, lone surrogates and (outside
    passwords) control characters and line breaks never reach a service or the database."""
    return text.is_secret(value) if is_secret_field(name) else text.is_line(value)


@dataclass
class FormState:
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # field name -> message, field order
    form_error: str | None = None
    csrf: str | None = None

    def value(self, name: str) -> str:
        return self.values.get(name, "")


async def read_form(request: Request, names: tuple[str, ...]) -> FormState:
    """The named fields as strings ('' when missing or not text): a page never answers 400
    JSON for a short or odd form, it shows the fields again with what to fix."""
    values = dict.fromkeys(names, "")
    try:
        # No page takes a file: max_files=0 refuses a file part before Starlette spools it
        # (a truncated file part was spooled, never listed in the form, and never closed).
        # `async with` still closes the form (resource exhaustion by many open parts).
        async with request.form(max_files=0) as data:
            for name in names:
                raw = data.get(name)
                values[name] = raw[:MAX_FIELD_CHARS] if isinstance(raw, str) else ""
            token = data.get(csrf.FIELD)
    except HTTPException:
        # Not a form at all (a file part, multipart without its boundary, too many fields):
        # the page again, with no values and no CSRF token, so the form-level error shows.
        return FormState(values)
    errors: dict[str, str] = {}
    for name in names:
        if not acceptable(name, values[name]):
            # Cleared, never echoed: the page asks for the field again (PostgreSQL refuses
            # NUL, a lone surrogate cannot be encoded, a name's CR/LF would reach a mail).
            values[name] = ""
            errors[name] = REFUSED
    return FormState(values, errors, csrf=token if isinstance(token, str) else None)
