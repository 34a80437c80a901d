"""Where mail goes: an SMTP server (aiosmtplib) or, in development, `.eml` files in a folder.

A transport is given a built `Mail` (mail/compose.py): its bytes and its envelope. Over
SMTP they go out as they are (`sendmail`; aiosmtplib's `send_message` would flatten an
EmailMessage again, and parse its headers for the envelope, on every send: issue 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import anyio
import anyio.to_thread

from relatch.mail.compose import Mail


class Transport(Protocol):
    async def send(self, message: Mail) -> None:
        """Deliver or raise; the worker retries on any exception."""
        ...


@contextlib.asynccontextmanager
async def kept(transport: Transport) -> AsyncIterator[Transport]:
    """`transport` for one pass of many sends: over SMTP, one connection kept for them all
    (SMTPConnection) and closed when the pass ends; any other transport as it is."""
    if isinstance(transport, SMTPTransport):
        async with transport.connection() as conn:
            yield conn
    else:
        yield transport


class TLSRequired(Exception):
    """The relay offered no STARTTLS while credentials are configured: AUTH was not sent."""


class SMTPTransport:
    """SMTP through aiosmtplib; with credentials, TLS is required and its certificate verified.

    Threat (issue 8, SMTP downgrade): STARTTLS is announced in clear, so an attacker on
    the path can strip it from the EHLO answer; a client that upgrades only when offered
    then sends AUTH (the relay password) and every mail (live reset codes) in clear.
    With credentials in the URL the upgrade is therefore mandatory (`smtps://` or
    STARTTLS), a relay without it gets no AUTH and no mail (the send fails, the worker
    retries it with backoff, the mail stays queued), and the certificate is always
    verified (system CAs, plus `ca_file` for a private CA). Without credentials there is
    no password to protect: STARTTLS is used, and verified, when offered, and the mail
    goes in clear otherwise (README "Configuration": configure credentials, or a relay on
    a trusted network, to keep codes off the wire).
    """

    def __init__(self, url: str, timeout: float = 30.0, ca_file: Path | None = None) -> None:
        """`timeout`: the longest a whole send may take, connection to hang-up (the mail
        worker's claim lease is sized on it: mail/worker.py transport_for)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("RELATCH_SMTP_URL must start with smtp:// or smtps://")
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self._implicit_tls = parts.scheme == "smtps"
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self._ca_file = str(ca_file) if ca_file is not None else None

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def requires_tls(self) -> bool:
        return self._user is not None or self._password is not None

    def __repr__(self) -> str:  # never the password
        return f"SMTPTransport({self._host}:{self._port}, tls_required={self.requires_tls})"

    @property
    def host(self) -> str:
        return f"{self._host}:{self._port}"

    def connection(self) -> SMTPConnection:
        """One connection for many messages: `async with transport.connection() as c:`,
        then `await c.send(m)` for each (a pass of the mail worker, mail/worker.py)."""
        return SMTPConnection(self)

    async def send(self, message: Mail) -> None:
        """One message on a connection of its own, closed before this returns."""
        async with self.connection() as conn:
            await conn.send(message)

    async def open(self, sockets: list[_Connection]) -> aiosmtplib.SMTP:
        """A connection ready for mail: connected, upgraded to TLS (or refused without it
        where credentials are set), authenticated. Its sockets are added to `sockets`, for
        the caller to close (`_closed`), also when this raises."""
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            use_tls=self._implicit_tls,
            start_tls=False,  # decided below, where the downgrade is checked
            validate_certs=True,
            cert_bundle=self._ca_file,
            timeout=self._timeout,
        )
        try:
            await client.connect()
            sockets += _connection(client)
            if not self._implicit_tls:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()  # an old relay without ESMTP: no STARTTLS either
                if client.supports_extension("starttls"):
                    await client.starttls()  # verifies the certificate and the host name
                    sockets += _connection(client)
                elif self.requires_tls:
                    # Downgrade: never send the password (nor a code) over a clear channel.
                    raise TLSRequired(
                        f"{self.host} offers no STARTTLS; credentials are "
                        "configured, so TLS is required: AUTH not sent, mail kept queued"
                    )
            if self._user is not None:
                await client.login(self._user, self._password or "")
        except BaseException:
            client.close()
            raise
        return client


def _stale(error: BaseException) -> bool:
    """The relay hung up on a connection we kept open (its idle timeout, its cap on
    messages per connection, a restart): 421 "closing the channel", or the connection
    found gone."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return error.code == 421
    return isinstance(error, aiosmtplib.SMTPServerDisconnected | ConnectionError)


class SMTPConnection:
    """A connection to the relay kept across sends: a pass of the mail worker pays for one
    connection, EHLO, STARTTLS and AUTH, not one per mail.

    Opened by the first send; a send that fails for any reason drops it, so the next send
    opens a new one (reconnect on error: a relay that hung up, refused a mail or went
    quiet never leaves the next mail on a connection in an unknown state). Every
    connection opened goes through `SMTPTransport.open`: TLS required with credentials,
    the certificate verified.

    Deadline: one `timeout` bounds each send, the connection included when one is opened
    for it. A kept connection the relay closed meanwhile fails the send that finds it
    dead; that send opens a fresh one and tries once more, within the same deadline (a
    retry at the next try would send the same bytes again: no new duplicate case).
    """

    def __init__(self, transport: SMTPTransport) -> None:
        self._t = transport
        self._client: aiosmtplib.SMTP | None = None
        self._sockets: list[_Connection] = []

    async def __aenter__(self) -> SMTPConnection:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def send(self, message: Mail) -> None:
        """Send within `timeout` seconds in all, or raise (TimeoutError past it).

        aiosmtplib's timeout bounds each answer; a relay answering every command slowly
        would still stretch one send over many of them, past the claim lease, and another
        worker would take the mail over and send it too. So the whole send, up to the
        relay's answer to the mail, has one deadline.
        """
        t = self._t
        deadline = anyio.current_time() + t.timeout
        try:
            try:
                with anyio.fail_after(t.timeout):
                    reused = self._client is not None
                    try:
                        await self._send(message)
                    except Exception as exc:
                        if not (reused and _stale(exc)):
                            raise
                        await self._drop(deadline)
                        await self._send(message)  # once more, on a fresh connection
            except TimeoutError as exc:
                if isinstance(exc, aiosmtplib.SMTPException):
                    raise  # one answer's timeout: aiosmtplib's message says which
                # The operator reads this in `relatch mail list --failed` and the log.
                raise TimeoutError(f"{t.host}: send not done within {t.timeout:g}s") from None
        except BaseException:
            await self._drop(deadline)  # the next send starts on a new connection
            raise

    async def _send(self, message: Mail) -> None:
        if self._client is None:
            self._client = await self._t.open(self._sockets)
        # SMTPUTF8 (RFC 6531) only for an address that needs it: a relay without the
        # extension refuses it (aiosmtplib raises SMTPNotSupported), a failed try.
        options = ["SMTPUTF8"] if message.smtputf8 else None
        await self._client.sendmail(
            message.sender, [message.recipient], message.data, mail_options=options
        )

    async def _drop(self, deadline: float) -> None:
        client, self._client = self._client, None
        sockets, self._sockets = self._sockets, []
        if client is not None:
            client.close()
        await _closed(sockets, deadline)

    async def aclose(self) -> None:
        """Say goodbye and close. Every mail sent was accepted by then: a relay slow to
        answer the QUIT is cut off (within CLOSE_GRACE_SECONDS), never a failed send."""
        if self._client is None:
            await self._drop(anyio.current_time())
            return
        deadline = anyio.current_time() + min(self._t.timeout, CLOSE_GRACE_SECONDS)
        try:
            with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    await self._client.quit()
        finally:
            await self._drop(deadline)


# How long a relay gets to answer our TLS close (close_notify) before the socket is cut.
CLOSE_GRACE_SECONDS = 2.0


_Connection = tuple[asyncio.Transport, asyncio.BaseProtocol]


def _connection(client: aiosmtplib.SMTP) -> list[_Connection]:
    if not isinstance(client.transport, asyncio.Transport) or client.protocol is None:
        return []
    return [(client.transport, client.protocol)]


async def _closed(connections: list[_Connection], deadline: float) -> None:
    """Return only once the relay's socket is really closed (no fd outlives a send).

    aiosmtplib's close() only starts closing: over TLS the socket is released after the
    relay answers our close_notify, on the event loop, later. A caller whose loop ends
    right after the send (a one-shot run, shutdown) would leave that socket open for
    good, and a relay slow to answer would hold it. So wait a little for the orderly
    close (CLOSE_GRACE_SECONDS, within the send's deadline), then abort; shielded, so a
    cancelled send (a hanging relay) is cleaned too.
    """
    with anyio.CancelScope(shield=True):
        for transport, protocol in reversed(connections):
            grace = min(CLOSE_GRACE_SECONDS, max(deadline - anyio.current_time(), 0))
            with anyio.move_on_after(grace):
                while not _lost(protocol):
                    await anyio.sleep(0.01)
            if not _lost(protocol):
                transport.abort()
                await anyio.sleep(0)  # the loop closes the socket on its next turn


def _lost(protocol: asyncio.BaseProtocol) -> bool:
    # aiosmtplib's protocol drops its transport in connection_lost(), once the socket is closed.
    return getattr(protocol, "transport", None) is None


class MailDirTransport:
    """The dev outbox: one RFC 5322 file per message, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def send(self, message: Mail) -> None:
        # Off the event loop, which serves requests: file writes block.
        await anyio.to_thread.run_sync(self.write, message)

    def write(self, message: Mail) -> None:
        """`send`, blocking (the mail worker writes a batch in one worker thread)."""
        # 0700 folder, 0600 files: the messages hold live reset codes (issue 8).
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{secrets.token_hex(3)}.eml"
        tmp = self.folder / f".{name}.tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            # Unix line ends in the file, as a mail client's "save as" writes them.
            f.write(message.data.replace(b"\r\n", b"\n"))
        os.replace(tmp, self.folder / name)


def list_messages(folder: Path) -> list[Path]:
    """The dev outbox's messages, newest first."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.eml"), key=lambda p: p.name, reverse=True)
