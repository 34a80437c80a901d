"""The outbox: a mail is a row written in the transaction that decided to send it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from relatch.storage.models import OutboxMessage


class MailRenderer(Protocol):
    def render(self, template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, text body, html body) of one message."""
        ...


def enqueue(
    s: Session,
    renderer: MailRenderer,
    template: str,
    recipient: str,
    context: Mapping[str, Any],
    now: datetime,
) -> OutboxMessage:
    subject, text, html = renderer.render(template, context)
    msg = OutboxMessage(
        template=template,
        recipient=recipient,
        subject=subject,
        body_text=text,
        body_html=html,
        status="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )
    s.add(msg)
    return msg
