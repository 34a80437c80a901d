"""Security notices to the owner's mailbox, from the outbox, in the caller's transaction.

One way to send every notice of issue 14 (a new device signed in, a second factor switched
on or off, recovery codes regenerated, an API key created, someone guessing...): the
template folder names the event, and each notice may carry the one-time "this was not me"
link (services/not_me.py), which signs every session out and mails a fresh reset code.

Phishing through our own mail: the greeting uses the account's name only once the address
is proven (credentials.greeting_name), and every value is printed on one line
(mail/render.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relatch.services import not_me_links
from relatch.services.context import Services
from relatch.services.credentials import greeting_name
from relatch.storage import outbox
from relatch.storage.models import User


def send(
    svc: Services,
    s: Session,
    user: User,
    template: str,
    now: datetime,
    context: Mapping[str, Any] | None = None,
    *,
    not_me: bool = True,
) -> None:
    """Queue the `template` notice to `user`'s address, inside the caller's transaction.

    The template sees `name`, `email`, `when` and, with `not_me`, `not_me_url` and
    `not_me_days`, beside `context`. Templates include `_notice/footer.txt` and
    `_notice/footer.html` for the "this was not me" paragraph.
    """
    ctx: dict[str, Any] = {
        "name": greeting_name(user),
        "email": user.email,
        "when": now.strftime("%Y-%m-%d %H:%M UTC"),
        **(context or {}),
    }
    if not_me:
        ctx["not_me_url"] = not_me_links.issue(svc, s, user.id, now)
        ctx["not_me_days"] = not_me_links.TTL.days
    outbox.enqueue(s, svc.renderer, template, user.email, ctx, now)
