"""Mail bodies from Jinja2 templates: one folder per message (subject.txt, body.txt, body.html)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


class TemplateRenderer:
    def __init__(self, public_url: str) -> None:
        self._public_url = public_url.rstrip("/")
        self._env = Environment(
            loader=PackageLoader("relatch.mail", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        ctx = {"public_url": self._public_url, **context}
        subject = self._env.get_template(f"{template}/subject.txt").render(ctx).strip()
        text = self._env.get_template(f"{template}/body.txt").render(ctx)
        html = self._env.get_template(f"{template}/body.html").render(ctx)
        return subject, text, html
