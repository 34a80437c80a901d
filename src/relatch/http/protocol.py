"""uvicorn's h11 protocol with the request deadline and connection caps uvicorn lacks.

Slow and oversized requests (issue 8; slowloris, CVE-2007-6750): a client that sends a
request slowly, or never finishes it, holds a connection and its buffered bytes for as long
as it likes. What uvicorn offers, and what `relatch serve` configures:

- `h11_max_incomplete_event_size`: the request line and headers are capped
  (`RELATCH_MAX_HEADER_BYTES`). Only the h11 implementation has it: httptools, uvicorn's
  default when installed, buffered a 50 MB header whole. So `serve` runs h11 (this class).
- `limit_concurrency`: a complete request beyond that many connections or tasks gets a
  plain-text 503 (a 5xx the contract forbids for what a client sends). A stalled request is
  never complete, so it is never refused nor closed. Not used: the cap below replaces it.
- `timeout_keep_alive`: idle time *between* requests only; every byte received cancels it
  and it is not armed before the first request.

uvicorn has no timeout for receiving a request (its issue #157, "--timeout-request-start",
is still open), nor a cap on open connections. This subclass adds the smallest sound
version of both, and nothing else:

- a deadline per request, `RELATCH_REQUEST_TIMEOUT_SECONDS` from the moment the server
  waits for it (connection made, or previous response sent) until its last body byte. It is
  absolute: trickling a byte at a time does not extend it. It is off while the application
  answers, so slow work and long responses are not cut. On expiry a started request gets
  408 and the connection is closed; an idle connection is just closed.
- connection caps checked when a connection is made: beyond `RELATCH_MAX_CONNECTIONS` in
  this process, or `RELATCH_MAX_CONNECTIONS_PER_CLIENT` from one client (IPv4 address or
  IPv6 /64, as the rate limits key them), the connection gets a 429 (the contract's answer
  for "too busy to take the request now"), with Retry-After, and is closed at once, so one
  client cannot hold every slot. Peers in `RELATCH_TRUSTED_PROXIES` have no per-client cap:
  all clients arrive through them, and the proxy must limit them itself.
- 431 Request Header Fields Too Large, in the contract's error shape, where uvicorn
  answers every parse error with a plain 400.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from relatch.core import forwarding
from relatch.core.limits import ip_subject
from relatch.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    request_timeout: float
    max_connections: int
    per_client: int
    exempt: tuple[forwarding.Network, ...]


@cache
def connection_limits() -> ConnectionLimits:
    """Read once per server process (uvicorn makes a protocol object per connection)."""
    settings = get_settings()
    return ConnectionLimits(
        request_timeout=settings.request_timeout_seconds,
        max_connections=settings.max_connections,
        per_client=settings.max_connections_per_client,
        exempt=forwarding.parse_networks(settings.trusted_proxies),
    )


class _Connection(h11.Connection):
    """Remembers the status h11 suggests for the last parse error (431 for a long header),
    and caps a head that arrived whole as well as one still arriving.

    h11's `max_incomplete_event_size` applies only while the head is *incomplete*: a head
    that arrives whole in one socket read (up to ~256 KiB) was parsed and served, so the
    real cap was the read size, not RELATCH_MAX_HEADER_BYTES (found by the red-team pass of
    issue 8). The request line and header lines are counted as they were sent.
    """

    error_status_hint = 400

    def __init__(self, our_role: Any, max_incomplete_event_size: int) -> None:
        super().__init__(our_role, max_incomplete_event_size=max_incomplete_event_size)
        self.max_head_bytes = max_incomplete_event_size

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request) and _head_size(event) > self.max_head_bytes:
                raise h11.RemoteProtocolError("Request head too long", error_status_hint=431)
            return event
        except h11.RemoteProtocolError as exc:
            self.error_status_hint = exc.error_status_hint
            raise


def _head_size(request: h11.Request) -> int:
    """Bytes of the request line and header lines (`name: value` and CRLF each)."""
    line = len(request.method) + len(request.target) + len(b" HTTP/1.1\r\n") + 1
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers.raw_items())


class RelatchH11Protocol(H11Protocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.conn: _Connection = _Connection(
            h11.SERVER, config.h11_max_incomplete_event_size or 16384
        )
        self.limits = connection_limits()
        self.client_subject: str | None = None
        self.deadline: asyncio.TimerHandle | None = None

    # -- connection caps -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.client is not None:
            self.client_subject = ip_subject(self.client[0])
        refusal = self._over_capacity()
        if refusal is not None:
            log.warning("refused a connection from %s: %s", self.client_subject, refusal.phrase)
            # Slots free up within the request timeout at the latest.
            retry = str(math.ceil(self.limits.request_timeout)).encode()
            self._answer_and_close(refusal, "Too many connections", [(b"retry-after", retry)])
            return
        self._follow_request()

    def _over_capacity(self) -> HTTPStatus | None:
        """429 when this process is full (RELATCH_MAX_CONNECTIONS) or this client holds its
        share (RELATCH_MAX_CONNECTIONS_PER_CLIENT), else None."""
        if len(self.connections) > self.limits.max_connections:
            return HTTPStatus.TOO_MANY_REQUESTS
        if self.client_subject is None or self._exempt():
            return None
        mine = sum(
            1
            for other in self.connections
            if getattr(other, "client_subject", None) == self.client_subject
        )
        if mine > self.limits.per_client:
            return HTTPStatus.TOO_MANY_REQUESTS
        return None

    def _exempt(self) -> bool:
        addr = forwarding.parse_address(self.client[0]) if self.client else None
        return addr is not None and any(addr in net for net in self.limits.exempt)

    # -- request deadline ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        """Armed while a request is awaited or arriving (client IDLE or SEND_BODY), else off."""
        if self.transport.is_closing():
            self._disarm()
        elif self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            if self.deadline is None:  # absolute: later bytes do not push it back
                self.deadline = self.loop.call_later(
                    self.limits.request_timeout, self._request_timed_out
                )
        else:
            self._disarm()

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _request_timed_out(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        started = self.conn.their_state is h11.SEND_BODY or bool(self.conn.trailing_data[0])
        if not started or self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.close()  # idle between requests, or a response already under way
            return
        log.info("closed a connection from %s: request incomplete in time", self.client_subject)
        if self.cycle is not None and not self.cycle.response_complete:
            # The application may be waiting for the rest of the body: it gets a disconnect,
            # and anything it sends afterwards is dropped instead of clashing with the 408.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._answer_and_close(HTTPStatus.REQUEST_TIMEOUT, "The request did not arrive in time")

    # -- answers uvicorn would give as a plain 400 -----------------------------------------

    def send_400_response(self, msg: str) -> None:
        if self.conn.error_status_hint == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE:
            self._answer_and_close(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers are too large"
            )
            return
        super().send_400_response(msg)

    def _answer_and_close(
        self, status: HTTPStatus, error: str, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """A JSON error in the contract shape, then close (h11 allows it before a request)."""
        body = json.dumps({"success": False, "error": error}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *(extra or []),
        ]
        events = (
            h11.Response(status_code=status.value, headers=headers, reason=status.phrase),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )
        for event in events:
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()
