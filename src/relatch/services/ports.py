"""What the services need from the outside, as Protocols (clock, mail rendering)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class MailRenderer(Protocol):
    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, text body, html body) of one message."""
        ...
