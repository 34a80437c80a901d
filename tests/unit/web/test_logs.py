"""The access log never carries the reset page's query string (an address, maybe a code)."""

from __future__ import annotations

import logging

from relatch.web.logs import RedactPageQueries


def record(path: str) -> logging.LogRecord:
    args = ("127.0.0.1:5000", "GET", path, "1.1", 303)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', args, None
    )


def test_reset_page_queries_are_redacted() -> None:
    rec = record("/reset-password?email=ada%40example.com&code=ABCD-1234")
    assert RedactPageQueries().filter(rec)
    line = rec.getMessage()
    assert "ABCD" not in line and "ada" not in line
    assert "/reset-password?[redacted]" in line


def test_other_paths_are_left_alone() -> None:
    rec = record("/v1/openapi.json?x=1")
    assert RedactPageQueries().filter(rec)
    assert "/v1/openapi.json?x=1" in rec.getMessage()


def test_not_me_link_token_is_redacted() -> None:
    # The "this was not me" link is a 7-day bearer secret: whoever reads the access log
    # could otherwise sign the owner out everywhere and disable the password.
    rec = record("/not-me?token=42.s3cretS3cretS3cret")
    assert RedactPageQueries().filter(rec)
    line = rec.getMessage()
    assert "s3cret" not in line
    assert "/not-me?[redacted]" in line


def test_undo_link_token_is_redacted() -> None:
    # The undo link of a changed address is a 7-day bearer secret too: it moves the account
    # back to the old address and mails a reset code there.
    rec = record("/change-email/undo?token=42.s3cretS3cretS3cret")
    assert RedactPageQueries().filter(rec)
    line = rec.getMessage()
    assert "s3cret" not in line
    assert "/change-email/undo?[redacted]" in line
