"""The bytes mail/compose.py writes, read back by the standard library's parser (the tests
only: the builder itself never uses the `email` object model, issue 12).

Each case checks that what a reader gets is what the row held: the headers (ASCII and
non-ASCII names and subjects, long ones folded), both bodies, and that nothing a name or
a subject holds can add a header of its own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, Parser

import pytest

from relatch.mail import compose as compose_module
from relatch.mail.compose import Mail, compose

DATE = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
MESSAGE_ID = "<relatch.7.1773500966000000@relatch.example>"
HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version",
           "Content-Type"]  # fmt: skip


def build(
    *,
    mail_from: str = "Relatch <no-reply@relatch.example>",
    recipient: str = "ada@example.com",
    subject: str = "Your reset code",
    body_text: str = "Your code is ABCD-1234.\n",
    body_html: str = "<p>Your code is <b>ABCD-1234</b>.</p>\n",
) -> Mail:
    return compose(
        mail_from=mail_from,
        recipient=recipient,
        subject=subject,
        date=DATE,
        message_id=MESSAGE_ID,
        body_text=body_text,
        body_html=body_html,
    )


def parsed(mail: Mail) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(mail.data)
    assert isinstance(msg, EmailMessage)
    assert msg.defects == []
    for part in msg.walk():
        assert part.defects == []
    return msg


def bodies(msg: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts, with the line ends a reader on this system would use."""
    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.iter_parts()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    return (
        str(plain.get_content()).replace("\r\n", "\n"),  # type: ignore[attr-defined]
        str(html.get_content()).replace("\r\n", "\n"),  # type: ignore[attr-defined]
    )


def header_lines(mail: Mail) -> list[str]:
    head = mail.data.split(b"\r\n\r\n", 1)[0]
    return head.decode("utf-8").split("\r\n")


def test_an_ascii_mail_reads_back_header_by_header_and_part_by_part() -> None:
    mail = build()
    msg = parsed(mail)
    assert list(msg.keys()) == HEADERS
    assert msg["From"] == "Relatch <no-reply@relatch.example>"
    assert msg["To"] == "ada@example.com"
    assert msg["Subject"] == "Your reset code"
    assert msg["Date"].datetime == DATE
    assert msg["Message-ID"] == MESSAGE_ID
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"
    assert bodies(msg) == ("Your code is ABCD-1234.\n", "<p>Your code is <b>ABCD-1234</b>.</p>\n")
    assert (mail.sender, mail.recipient, mail.message_id) == (
        "no-reply@relatch.example",
        "ada@example.com",
        MESSAGE_ID,
    )
    assert not mail.smtputf8
    # Plain ASCII, short lines: sent as they are.
    assert mail.data.count(b"Content-Transfer-Encoding: 7bit") == 2


def test_every_line_ends_in_crlf() -> None:
    mail = build(body_text="one\rtwo\nthree\r\nfour", subject="Sujet é " * 20)
    assert b"\r" not in mail.data.replace(b"\r\n", b"")
    assert b"\n" not in mail.data.replace(b"\r\n", b"")
    assert bodies(parsed(mail))[0] == "one\ntwo\nthree\nfour\n"


@pytest.mark.parametrize(
    "subject",
    [
        "Réinitialisation de votre mot de passe",
        "パスワードのリセットコード",
        "Your key 🔑 is ready",
        "Zoë's " + "sehr langer Betreff mit Umlauten äöü " * 6,
        "=?utf-8?q?looks_encoded?= but is not",  # taken literally, not decoded
        "  spaced   out  ",
    ],
)
def test_a_subject_reads_back_as_it_was(subject: str) -> None:
    msg = parsed(build(subject=subject))
    assert msg["Subject"] == subject.strip()


@pytest.mark.parametrize(
    ("mail_from", "name"),
    [
        ("Relatch <no-reply@relatch.example>", "Relatch"),
        ('"Relatch, Inc." <no-reply@relatch.example>', "Relatch, Inc."),
        ('"Ada \\"the\\" Admin (ops)" <no-reply@relatch.example>', 'Ada "the" Admin (ops)'),
        ("Équipe Relatch <no-reply@relatch.example>", "Équipe Relatch"),
        ('"Zoë Ünal, Relatch" <no-reply@relatch.example>', "Zoë Ünal, Relatch"),
        ("リラッチ <no-reply@relatch.example>", "リラッチ"),
        ("no-reply@relatch.example", ""),
        (
            "The Relatch Account Recovery Service Of A Rather Long Company Name "
            "<no-reply@relatch.example>",
            "The Relatch Account Recovery Service Of A Rather Long Company Name",
        ),
        (
            '"Ünïcödé Recovery Team, Relatch Account Service Of A Long Name" '
            "<no-reply@relatch.example>",
            "Ünïcödé Recovery Team, Relatch Account Service Of A Long Name",
        ),
    ],
)
def test_a_sender_name_reads_back_as_it_was(mail_from: str, name: str) -> None:
    compose_module.sender.cache_clear()
    mail = build(mail_from=mail_from)
    (address,) = parsed(mail)["From"].addresses
    assert address.display_name == name
    assert address.addr_spec == "no-reply@relatch.example" == mail.sender
    assert all(len(line) <= compose_module.LINE for line in header_lines(mail))


@pytest.mark.parametrize("recipient", ["zoë@example.com", "ada@exämple.com", "用户@例子.广告"])
def test_a_non_ascii_address_is_sent_in_utf8(recipient: str) -> None:
    mail = build(recipient=recipient)
    assert mail.smtputf8  # the relay must offer SMTPUTF8 (RFC 6531)
    # A UTF-8 message (RFC 6532) is read as text: the bytes parser would keep the
    # address's bytes as surrogates.
    msg = Parser(policy=policy.default).parsestr(mail.data.decode("utf-8"))
    assert msg.defects == []
    assert msg["To"].addresses[0].addr_spec == recipient
    assert f"To: {recipient}\r\n".encode() in mail.data  # RFC 6532: the address as it is


def test_long_header_lines_are_folded_within_78_characters() -> None:
    subject = " ".join(f"word{n}" for n in range(60))
    mail = build(subject=subject)
    assert parsed(mail)["Subject"] == subject
    lines = header_lines(mail)
    assert all(len(line) <= 78 for line in lines)
    assert sum(line.startswith(" ") for line in lines) >= 4  # folded, not cut


def test_a_word_longer_than_a_line_keeps_its_own_line_within_998() -> None:
    word = "x" * 300
    subject = f"before {word} after"
    mail = build(subject=subject)
    assert parsed(mail)["Subject"] == subject
    assert all(len(line) <= 998 for line in header_lines(mail))
    assert f" {word}" in header_lines(mail)


def test_a_subject_too_long_for_any_line_is_encoded_in_short_words() -> None:
    subject = "y" * 2000
    mail = build(subject=subject)
    assert parsed(mail)["Subject"] == subject
    assert all(len(line) <= 78 for line in header_lines(mail))


# Header injection (issue 8; CWE-93, OWASP "Email header injection"): a name or subject
# that holds a line break (CR, LF, CRLF, or a Unicode one a reader may break at) would
# end its header, and what follows would become a header of the attacker's choosing: a
# Bcc to their own mailbox (a copy of a live reset code), a Reply-To, or a blank line
# and a body of their own. The builder makes such text one line; the message must have
# exactly the headers it always has, and the text stays inside its own header.
INJECTIONS = [
    "Hello\r\nBcc: thief@evil.example",
    "Hello\nBcc: thief@evil.example",
    "Hello\rBcc: thief@evil.example",
    "Hello\r\n\r\nYour reset code is ZZZZ-9999 https://evil.example",
    "Hello\u2028Bcc: thief@evil.example",
    "Hello\x85Bcc: thief@evil.example",
    "Héllo\r\nBcc: thief@evil.example",  # non-ASCII: the encoded-words path
    "Hello\r\n Bcc: thief@evil.example",  # a folded line that would join the header
]


@pytest.mark.parametrize("evil", INJECTIONS)
def test_a_line_break_in_a_subject_never_makes_a_header(evil: str) -> None:
    mail = build(subject=evil)
    msg = parsed(mail)
    assert list(msg.keys()) == HEADERS
    assert "\r" not in msg["Subject"] and "\n" not in msg["Subject"]
    assert "thief@evil.example" in msg["Subject"] or "ZZZZ" in msg["Subject"]
    assert not any(line.lower().startswith("bcc") for line in header_lines(mail))
    assert bodies(msg)[0] == "Your code is ABCD-1234.\n"


@pytest.mark.parametrize("evil", INJECTIONS)
def test_a_line_break_in_the_sender_name_never_makes_a_header(evil: str) -> None:
    compose_module.sender.cache_clear()
    name = evil.replace('"', "")
    mail = build(mail_from=f'"{name}" <no-reply@relatch.example>')
    msg = parsed(mail)
    assert list(msg.keys()) == HEADERS
    (address,) = msg["From"].addresses
    assert address.addr_spec == "no-reply@relatch.example"
    assert not any(line.lower().startswith("bcc") for line in header_lines(mail))


@pytest.mark.parametrize(
    "recipient",
    [
        "victim@example.com\r\nBcc: thief@evil.example",
        "victim@example.com\nBcc: thief@evil.example",
        "victim@example.com, thief@evil.example",
        "Victim <victim@example.com>",
        "victim@example.com thief@evil.example",
        "victim",
        "",
    ],
)
def test_a_recipient_that_is_not_one_plain_address_is_refused(recipient: str) -> None:
    # An address cannot be repaired (a mangled one is someone else's mailbox): the build
    # raises, and the worker counts a failed try (tests/api/test_poison_items.py).
    with pytest.raises(ValueError, match="not one plain e-mail address"):
        build(recipient=recipient)


def test_a_message_id_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        compose(
            mail_from="no-reply@relatch.example",
            recipient="ada@example.com",
            subject="s",
            date=DATE,
            message_id="<a@b>\r\nBcc: thief@evil.example",
            body_text="",
            body_html="",
        )


@pytest.mark.parametrize(
    "body",
    [
        "Bonjour Zoë,\nvotre code est ABCD-1234 – merci.\n",  # non-ASCII: quoted-printable
        "trailing spaces stay   \nand tabs\t\n",
        "a line of " + "x" * 1200 + "\nthen a short one\n",  # longer than SMTP allows
        ".a line that starts with a dot\n.\nFrom the start of a line\n",
        "no final line break",
        "",
        "=3D is not an escape here, = neither\n",
    ],
)
def test_a_body_reads_back_as_it_was(body: str) -> None:
    mail = build(body_text=body, body_html=f"<pre>{body}</pre>")
    text, html = bodies(parsed(mail))
    expected = body if body.endswith("\n") or not body else body + "\n"  # as set_content
    assert text == expected
    assert html == f"<pre>{body}</pre>\n"
    assert all(len(line) <= 998 for line in mail.data.split(b"\r\n"))


def test_a_body_holding_the_boundary_gets_another_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # A body is partly the user's text: were the boundary in it, the part would end there.
    hexes = iter(["a" * 24, "a" * 24, "b" * 24])
    monkeypatch.setattr(compose_module.secrets, "token_hex", lambda _n: next(hexes))
    body = f"--=_relatch_{'a' * 24}\nstill the body\n"
    mail = build(body_text=body)
    assert re.search(rb'boundary="=_relatch_b{24}"', mail.data)
    assert bodies(parsed(mail))[0] == body


def test_every_build_of_a_row_carries_its_one_message_id() -> None:
    assert parsed(build())["Message-ID"] == parsed(build())["Message-ID"] == MESSAGE_ID


def test_a_built_mail_never_shows_its_bytes_in_a_repr() -> None:
    # The body holds a live reset code; a Mail in a log line or a traceback must not.
    assert "ABCD-1234" not in repr(build())


@pytest.mark.parametrize("right", ["relatch.example", "::1", "127.0.0.1", "exämple.com"])
def test_a_message_id_on_any_public_host_is_written(right: str) -> None:
    # The right side is RELATCH_PUBLIC_URL's host: an IPv6 literal must not stop all mail.
    message_id = f"<relatch.7.1773500966000000@{right}>"
    mail = compose(
        mail_from="no-reply@relatch.example",
        recipient="ada@example.com",
        subject="s",
        date=DATE,
        message_id=message_id,
        body_text="",
        body_html="",
    )
    assert f"Message-ID: {message_id}\r\n".encode() in mail.data
