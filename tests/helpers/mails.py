"""A hand-made EmailMessage as the `Mail` a transport takes (mail/compose.py), for tests
that give a transport a message of their own (one the builder would not write, such as
a subject holding terminal escapes for the CLI to neutralise)."""

from __future__ import annotations

from email.message import EmailMessage

from relatch.mail.compose import Mail


def as_mail(message: EmailMessage) -> Mail:
    sender = str(message["From"] or "relatch@example.com")
    return Mail(
        sender, str(message["To"]), str(message["Message-ID"] or "<test@relatch>"), bytes(message)
    )
