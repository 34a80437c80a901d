"""A mail's bytes, written directly: RFC 5322 headers, RFC 2047 words, MIME text and HTML.

Issue 12: the standard library's object model (EmailMessage, its header registry and
policy, then the generator that flattens it) cost 1.2 ms of the 2.3 ms of CPU a mail
took in the worker, about half. Our mails have one fixed shape, so their bytes are
written here in a few string operations; the tests parse them back with the standard
library's parser (tests/unit/mail/test_compose.py).

The shape: From, To, Subject, Date, Message-ID, Auto-Submitted, then a
multipart/alternative of a text/plain and a text/html part, both UTF-8. Lines end in
CRLF (RFC 5322 2.1) and no header line is longer than 78 characters unless one word of
a subject is (never past 998). A body is 7bit when it is ASCII in short lines, and
quoted-printable otherwise (readable for mostly-ASCII text, 7-bit clean on any relay).

Header injection (issue 8; OWASP "Email header injection", CWE-93): a CR or LF in a
header's text ends the header, and what follows becomes a header of the attacker's
choosing (`Bcc: thief@example.com`, or a blank line and a body of their own). Every
text that goes into a header therefore goes through `text.inline` first (line breaks
become a space, other controls go), and is then either plain printable ASCII or
RFC 2047 encoded words (base64, which holds no CR or LF). An address cannot be
repaired that way: one that is not a single plain address (spaces, controls, `<>`,
`,`, ...) makes the build raise, and the worker counts that as a failed try (a poison
row ends `abandoned`, tests/api/test_poison_items.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime, parseaddr

from relatch.core import text

# RFC 5322 2.1.1: lines SHOULD stay within 78 characters, MUST within 998.
LINE = 78
HARD_LINE = 998


@dataclass(frozen=True, slots=True)
class Mail:
    """A built message and its envelope: what a transport sends or writes."""

    sender: str  # the envelope's MAIL FROM (the From header's address)
    recipient: str  # the envelope's one RCPT TO (the To header's address)
    message_id: str  # the Message-ID header, the same on every try of one row
    # The whole message, CRLF line ends. Never in a repr: the body may hold a live code.
    data: bytes = field(repr=False)

    @property
    def smtputf8(self) -> bool:
        """An address holds non-ASCII characters: the relay must offer SMTPUTF8 (RFC 6531),
        and the To header carries the address in UTF-8 (RFC 6532)."""
        return not (self.sender.isascii() and self.recipient.isascii())


# One plain addr-spec, as `core.identity.checked_email` stores them (no quoted local
# part, no comments): no whitespace, no controls, none of the characters that would
# start a display name, a group, a list or a second address.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"\\@]+@[^\s<>()\[\],;:\"\\@]+")


def address(value: str) -> str:
    """`value` if it is one plain address, else ValueError (it is never repaired: a
    mangled recipient is someone else's mailbox)."""
    if not (text.is_line(value) and _ADDRESS.fullmatch(value)):
        # The address is not quoted: the error lands in the row's last_error and the log.
        raise ValueError("not one plain e-mail address")
    return value


# RFC 5322 3.2.3 `atext`: a word of a display name made of these is written as it is.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")


def _encoded_words(value: str, first: int) -> list[str]:
    """`value` as RFC 2047 base64 encoded words (UTF-8), each small enough that a line of
    one, after `first` characters (the header's name) or a folding space, stays within
    LINE. A character is never cut across two words (RFC 2047 5(3))."""
    words: list[str] = []
    chunk = bytearray()
    room = (LINE - max(first, 1) - len("=?utf-8?b??=")) // 4 * 3
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > room:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = bytearray()
        chunk += encoded
    if chunk or not words:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


def _plain(value: str) -> bool:
    """Text a header may carry as it is: printable ASCII that a reader would not take for
    an encoded word."""
    return value.isascii() and value.isprintable() and "=?" not in value


def _folded(name: str, value: str) -> str:
    """The header `name: value`, folded at spaces within LINE (a longer word keeps its
    own line), or as encoded words when `value` is not plain ASCII."""
    head = f"{name}:"
    if _plain(value) and len(head) + 1 + len(value) <= LINE:
        return f"{head} {value}\r\n"
    if not _plain(value) or max(map(len, value.split(" "))) > HARD_LINE - LINE:
        return head + " " + "\r\n ".join(_encoded_words(value, len(head) + 1)) + "\r\n"
    return _joined(head, value.split(" ")) + "\r\n"


def unstructured(name: str, value: str) -> str:
    """An unstructured header (Subject): one line of text, folded or encoded."""
    return _folded(name, text.inline(value).strip())


def _joined(head: str, tokens: list[str]) -> str:
    """`head` and `tokens` separated by spaces, each space a fold (CRLF + space) where
    the line would pass LINE (RFC 5322 3.2.2: unfolding removes the CRLF alone)."""
    lines: list[str] = []
    line = head
    for token in tokens:
        if token and len(line) + 1 + len(token) > LINE and line.strip(" ") != head:
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return "\r\n".join(lines)


def _phrase(display: str, first: int) -> list[str]:
    """A display name as the words of an RFC 5322 phrase: plain ASCII as atoms, or one
    quoted string when it holds specials; otherwise the atoms as they are and each run of
    other words as encoded words (so a reader shows `Rélatch Team` with its space: RFC
    2047 6.2 drops the white space between two encoded words, never around an atom)."""
    words = display.split(" ")
    if _plain(display):
        if all(_ATOM.fullmatch(w) for w in words):
            return words
        quoted = display.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}"'.split(" ")  # folded at its spaces, inside the quotes
    tokens: list[str] = []
    run: list[str] = []
    for word in words:
        if _ATOM.fullmatch(word) and "=?" not in word:
            if run:
                tokens += _encoded_words(" ".join(run), first)
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens += _encoded_words(" ".join(run), first)
    return tokens


def mailbox(header: str, display_name: str, addr: str) -> str:
    """An address header, `Display Name <addr>`, or the bare address without a name."""
    addr = address(addr)
    display = re.sub(" +", " ", text.inline(display_name)).strip()
    if not display:
        return f"{header}: {addr}\r\n"
    tokens = [*_phrase(display, len(header) + 2), f"<{addr}>"]
    return _joined(f"{header}:", tokens) + "\r\n"


@functools.lru_cache(maxsize=8)
def sender(mail_from: str) -> tuple[str, str]:
    """RELATCH_MAIL_FROM as (envelope address, From header), made once a process."""
    # One line first: parseaddr reads a quoted name holding a line break as the end of
    # the name, and the address after it as the sender's (`"x\r\nBcc: a@b" <c@d>`).
    name, addr = parseaddr(text.inline(mail_from))
    return addr, mailbox("From", name, addr)


def _body(content: str) -> tuple[str, bytes]:
    """A text part's Content-Transfer-Encoding and bytes, CRLF line ends, a final one."""
    data = content.encode("utf-8")
    lines = data.splitlines()  # bytes: at CR, LF and CRLF only, as the reader will
    if data.isascii() and all(len(line) <= HARD_LINE for line in lines):
        return "7bit", b"".join(line + b"\r\n" for line in lines)
    # quoted-printable: soft breaks within 76 characters, trailing spaces encoded.
    encoded = binascii.b2a_qp(b"".join(line + b"\n" for line in lines), istext=True)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


def _part(kind: str, content: str) -> tuple[bytes, bytes]:
    cte, body = _body(content)
    head = f'Content-Type: text/{kind}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
    return head.encode("ascii"), body


def compose(
    *,
    mail_from: str,
    recipient: str,
    subject: str,
    date: datetime,
    message_id: str,
    body_text: str,
    body_html: str,
) -> Mail:
    """The message with both bodies as multipart/alternative (text first: RFC 2046 5.1.4,
    the reader shows the last part it can)."""
    envelope_from, from_line = sender(mail_from)
    to = address(recipient)
    parts = [_part("plain", body_text), _part("html", body_html)]
    boundary = f"=_relatch_{secrets.token_hex(12)}"
    # "=_" never occurs in quoted-printable; a 7bit body holding the boundary by chance
    # (or by design: a body's text is partly the user's) gets another one.
    while any(boundary.encode("ascii") in body for _, body in parts):
        boundary = f"=_relatch_{secrets.token_hex(12)}"
    head = (
        from_line
        + f"To: {to}\r\n"
        + unstructured("Subject", subject)
        + f"Date: {format_datetime(date)}\r\n"
        + f"Message-ID: {address_id(message_id)}\r\n"
        + "Auto-Submitted: auto-generated\r\n"
        + "MIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
        + "\r\n"
    )
    delimiter = b"--" + boundary.encode("ascii")
    out = [head.encode("utf-8")]
    for part_head, body in parts:
        out += [delimiter, b"\r\n", part_head, b"\r\n", body, b"\r\n"]
    out += [delimiter, b"--\r\n"]
    return Mail(envelope_from, to, message_id, b"".join(out))


def address_id(message_id: str) -> str:
    """A Message-ID as it is, once checked to be one `<...@...>` token: it is ours
    (mail/worker.message_id), but a header must never hold a line break. Looser than an
    address: the right side is RELATCH_PUBLIC_URL's host, which may be an IPv6 literal."""
    if not (text.is_line(message_id) and _MESSAGE_ID.fullmatch(message_id)):
        raise ValueError("a Message-ID is one <left@right> token")
    return message_id


_MESSAGE_ID = re.compile(r"<[^\s<>]+@[^\s<>]+>")
