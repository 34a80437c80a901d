"""The translation catalogues are complete, and the language is negotiated as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages import pofile
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg

from relatch.web import i18n

ROOT = Path(__file__).resolve().parents[3]
WEB = ROOT / "src" / "relatch" / "web"


def extracted() -> set[str]:
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    out: set[str] = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(WEB), method_map, options_map
    ):
        out.add(message if isinstance(message, str) else message[0])
    return out


@pytest.mark.parametrize("lang", [code for code in i18n.LANGUAGES if code != i18n.DEFAULT])
def test_every_text_of_the_pages_is_translated(lang: str) -> None:
    path = WEB / "locale" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = pofile.read_po(fh, locale=lang)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = extracted() - translated
    assert not missing, f"untranslated in {lang}: {sorted(missing)}"
    # The placeholders survive translation.
    for m in catalog:
        if m.id and isinstance(m.id, str):
            for name in ("%(email)s", "%(min)s", "%(max)s", "%(n)s", "%(minutes)s", "%(total)s"):
                assert (name in m.id) == (name in m.string), (m.id, m.string)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("fr-CH, fr;q=0.9, en;q=0.8", "fr"),
        ("de, en;q=0.5, fr;q=0.7", "fr"),
        ("de", None),
        ("fr;q=0", None),
        ("fr;q=oops, en", "en"),
        ("", None),
    ],
)
def test_accept_language(header: str, expected: str | None) -> None:
    assert i18n._from_header(header) == expected
