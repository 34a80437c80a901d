"""Translations of the pages: gettext catalogues (Babel) read from the `.po` files at startup.

The `.po` files under web/locale/ are the source of truth and are compiled in memory when
first used, so a clean clone or an installed wheel can never miss a stale or absent `.mo`.
Catalogue upkeep (extract, update) is described in babel.cfg at the repository root.

The language is `?lang=` when given (a person's explicit choice), else the best match of
Accept-Language, else English.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages import mofile, pofile
from babel.support import NullTranslations, Translations
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from starlette.requests import Request

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
DEFAULT = "en"
# English is the source language of the templates; every other language has a catalogue.
LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français"}


@cache
def translations(lang: str) -> NullTranslations:
    """The catalogue of `lang` (English: the identity)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT or not path.is_file():
        return NullTranslations()
    with path.open("rb") as fh:
        catalog = pofile.read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    mofile.write_mo(buf, catalog, use_fuzzy=False)  # fuzzy entries are not translations yet
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def _from_header(header: str) -> str | None:
    """The best supported language in an Accept-Language header (RFC 9110 12.5.4)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):  # bounded work for odd headers
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else None


def explicit_language(request: Request) -> str | None:
    """`?lang=` when it names a supported language (then kept in links and form actions)."""
    asked = (request.query_params.get("lang") or "").lower()
    return asked if asked in LANGUAGES else None


def negotiate(request: Request) -> str:
    return (
        explicit_language(request)
        or _from_header(request.headers.get("accept-language", ""))
        or DEFAULT
    )


@pass_context
def _gettext(context: Context, message: str) -> str:
    return translations(str(context.get("lang") or DEFAULT)).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return translations(str(context.get("lang") or DEFAULT)).ngettext(singular, plural, n)


def install(env: Environment) -> None:
    """Jinja2's i18n extension, translating into the `lang` of each template context."""
    env.add_extension("jinja2.ext.i18n")
    gettext: Any = _gettext
    ngettext: Any = _ngettext
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
