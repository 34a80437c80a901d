"""The Jinja2 environment of the server-rendered pages (reset page, sign-in and consent)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"
