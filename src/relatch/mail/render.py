"""Mail bodies from Jinja2 templates: one folder per message (subject.txt, body.txt, body.html)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

from relatch.core import text


def _inline(value: Any) -> Any:
    """Every value a template prints, as one line without control characters.

    Mail content injection (issue 8): a name holding CR/LF wrote lines of its own ("Your
    reset code is ... https://...") into the official mails. Names with line breaks are
    refused on the way in (http/schemas.py); this also covers rows stored before that
    check, and any later value, since Jinja2 runs it on every `{{ ... }}` output.
    """
    # (A Markup value would come back a plain str, escaped again: safe, never raw.)
    return text.inline(value) if isinstance(value, str) else value


class TemplateRenderer:
    def __init__(self, public_url: str) -> None:
        self._public_url = public_url.rstrip("/")
        self._env = Environment(
            loader=PackageLoader("relatch.mail", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            finalize=_inline,
            # The templates ship with the package: no stat of their files on each render.
            auto_reload=False,
        )
        # Each message's three templates, loaded once (a worker's batch renders many).
        self._parts: dict[str, tuple[Template, Template, Template]] = {}

    def _templates(self, template: str) -> tuple[Template, Template, Template]:
        parts = self._parts.get(template)
        if parts is None:
            parts = self._parts[template] = (
                self._env.get_template(f"{template}/subject.txt"),
                self._env.get_template(f"{template}/body.txt"),
                self._env.get_template(f"{template}/body.html"),
            )
        return parts

    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        ctx = {"public_url": self._public_url, **context}
        subject, text_body, html = self._templates(template)
        return subject.render(ctx).strip(), text_body.render(ctx), html.render(ctx)
