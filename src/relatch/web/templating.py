"""The Jinja2 environment of the server-rendered pages (reset page, sign-in and consent)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from relatch.web import i18n

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
i18n.install(templates.env)  # {% trans %} in every page, in the context's `lang`
STATIC_DIR = HERE / "static"
