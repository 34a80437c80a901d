"""Where mail goes: an SMTP server (aiosmtplib) or, in development, `.eml` files in a folder."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver or raise; the worker retries on any exception."""
        ...


class SMTPTransport:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("RELATCH_SMTP_URL must start with smtp:// or smtps://")
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self._tls = parts.scheme == "smtps"
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self._host,
            port=self._port,
            use_tls=self._tls,
            username=self._user,
            password=self._password,
            timeout=self._timeout,
        )


class MailDirTransport:
    """The dev outbox: one RFC 5322 file per message, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: EmailMessage) -> None:
        # 0700 folder, 0600 files: the messages hold live reset codes (issue 8).
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{secrets.token_hex(3)}.eml"
        tmp = self.folder / f".{name}.tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(bytes(message))
        os.replace(tmp, self.folder / name)


def list_messages(folder: Path) -> list[Path]:
    """The dev outbox's messages, newest first."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.eml"), key=lambda p: p.name, reverse=True)
