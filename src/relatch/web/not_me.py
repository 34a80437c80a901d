"""The "this was not me" pages: `GET /not-me?token=...` shows, `POST /not-me` confirms
(web/link_pages.py: the GET changes nothing, the POST needs the CSRF field)."""

from __future__ import annotations

from relatch.services import not_me
from relatch.web.link_pages import link_pages

router = link_pages("/not-me", "not_me", not_me.check, not_me.confirm)
