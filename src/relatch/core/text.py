"""Free text from clients: which characters each kind of field may hold.

Two kinds, one check each, used wherever text enters (http/schemas.py for the API,
web/forms.py for the pages, identity.py for look-ups, passwords.py for new passwords):

- a *line* (names, usernames, addresses, titles, codes, tokens) is one line of visible
  text: no C0/C1 control characters (NUL, CR, LF, TAB, ESC...), no Unicode line or
  paragraph separators, no bidirectional embedding/override/isolate controls, no
  surrogate code points;
- a *secret* (passwords) may hold any character a keyboard or password manager can
  produce, except NUL and surrogate code points.

Threats, each a finding of the outside review (issue 8):
- 500s: PostgreSQL refuses NUL in text (psycopg DataError), and a lone surrogate
  (JSON `"\\ud800"`) cannot be encoded as UTF-8 by any database driver, by argon2 or by
  HMAC (UnicodeEncodeError). Refused at the edge, neither reaches a store or a hash.
- Mail content injection: a name with CR/LF wrote arbitrary lines ("Your reset code
  is ...") into the official reset and notice mails.
- Terminal injection: ESC and C1 controls in stored text drive the operator's terminal
  when the CLI prints it.
- Display spoofing: bidi overrides reorder what a mail or terminal shows
  (CVE-2021-42574, "Trojan Source").

The messages never quote the input: it may be a password.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls; U+2028/U+2029 (line/paragraph separators); the bidi
# embeddings, overrides (U+202A-U+202E) and isolates (U+2066-U+2069); every surrogate
# code point (a str holding one is not Unicode text: a lone half of a UTF-16 pair).
_NOT_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NOT_IN_SECRET = re.compile("[\x00\ud800-\udfff]")

LINE_RULE = "text without control characters, line breaks or unpaired surrogates"
SECRET_RULE = "text without NUL characters or unpaired surrogates"  # noqa: S105 (a message)


def is_line(text: str) -> bool:
    """True when `text` may be stored and shown as one line (names, addresses, codes)."""
    return _NOT_IN_LINE.search(text) is None


def is_secret(text: str) -> bool:
    """True when `text` may be a password: anything but NUL and surrogate code points."""
    return _NOT_IN_SECRET.search(text) is None


# What may be printed of stored text: newline and tab stay, every other C0/C1 control
# (ESC starts terminal escape sequences; U+009B is a one-character CSI) goes.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# Everything str.splitlines() breaks at, and tab.
_LINE_BREAKS = re.compile("[\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")


def printable(text: str) -> str:
    """`text` without the characters that act on a terminal (newline and tab kept)."""
    return _UNPRINTABLE.sub("", text)


def inline(text: str) -> str:
    """`text` as one line: line breaks and tabs become one space, other controls go.

    For values written into a line of a mail or a table (defence in depth: names are
    refused with line breaks, but rows stored before that check may hold them).
    """
    return printable(_LINE_BREAKS.sub(" ", text))
