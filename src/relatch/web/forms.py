"""A submitted page form: its values, per-field errors and a form-level error."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.requests import Request

from relatch.web import csrf

MAX_FIELD_CHARS = 2048  # above the password maximum (1024): longer input is cut, then refused


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
    return FormState(values, csrf=token if isinstance(token, str) else None)
