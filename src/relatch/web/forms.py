"""A submitted page form: its values, per-field errors and a form-level error."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    values: dict[str, str] = {}
    # `async with` closes every uploaded part, also repeated names (the old loop over
    # .values() saw only the last part of each name and left the others open).
    async with request.form() as data:
        for name in names:
            raw = data.get(name)
            values[name] = raw[:MAX_FIELD_CHARS] if isinstance(raw, str) else ""
        token = data.get(csrf.FIELD)
    return FormState(values, csrf=token if isinstance(token, str) else None)
