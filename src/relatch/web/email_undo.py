"""The undo of a changed address: `GET /change-email/undo?token=...` shows, `POST` puts the
old address back (services/email_change.py; web/link_pages.py: the GET changes nothing,
the POST needs the CSRF field)."""

from __future__ import annotations

from relatch.core.errors import AddressTaken, LinkRejected
from relatch.services import email_change
from relatch.web.link_pages import link_pages

router = link_pages(
    email_change.UNDO.path,
    "email_undo",
    email_change.check_undo,
    email_change.undo,
    refused=(LinkRejected, AddressTaken),
)
