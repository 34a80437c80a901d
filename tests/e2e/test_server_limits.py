"""Oversized and stalled requests against a real `relatch serve`, over raw loopback sockets.

Issue 8: a 50 MB header was read whole, 4 connections holding 40 MB of unfinished headers
grew the server by 160 MB, a half-sent request stayed open for good, and any number of them
could be held open. Each test keeps its own loops bounded and its sockets closed.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from relatch.settings import Settings
from tests.e2e.servers import Server, relatch_server

pytestmark = pytest.mark.e2e

TIMEOUT = 1  # RELATCH_REQUEST_TIMEOUT_SECONDS of the `quick` server, so tests wait ~1 s
PER_CLIENT = 20  # RELATCH_MAX_CONNECTIONS_PER_CLIENT of the `capped` server
TOTAL = 100  # RELATCH_MAX_CONNECTIONS of the `capped` server
PARTIAL = b"GET /v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: "


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir: Path = tmp_path_factory.mktemp("relatch-quick")
    with relatch_server(workdir, RELATCH_REQUEST_TIMEOUT_SECONDS=str(TIMEOUT)) as srv:
        yield srv


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default request timeout (30 s): stalled connections outlive each test here."""
    workdir: Path = tmp_path_factory.mktemp("relatch-capped")
    with relatch_server(
        workdir,
        RELATCH_MAX_CONNECTIONS_PER_CLIENT=str(PER_CLIENT),
        RELATCH_MAX_CONNECTIONS=str(TOTAL),
    ) as srv:
        yield srv


def connect(server: Server, source: str = "127.0.0.1", timeout: float = 5) -> socket.socket:
    """A TCP connection from `source` (any 127.0.0.0/8 address: a distinct client)."""
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    return socket.create_connection(
        (parts.hostname, parts.port), timeout=timeout, source_address=(source, 0)
    )


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and the seconds that took.

    Fails if the connection is still open after `limit` seconds.
    """
    start = time.monotonic()
    data = b""
    while True:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            raise AssertionError(f"still open after {limit} s; received {data[:80]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


def still_open(sock: socket.socket) -> bool:
    """Nothing received and no close: the server still holds the connection."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@contextmanager
def stalled(server: Server, count: int, source: str) -> Iterator[list[socket.socket]]:
    """`count` connections from `source`, each with half a request sent."""
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(connect(server, source))
            with suppress(OSError):  # refused at once: the caller counts these
                sock.sendall(PARTIAL)
            socks.append(sock)
        yield socks


def normal_request(server: Server) -> httpx.Response:
    return httpx.get(f"{server.url}/v1/openapi.json", timeout=10)


# -- header size ---------------------------------------------------------------------------


def test_oversized_header_is_431(quick: Server) -> None:
    with connect(quick) as sock:
        # 20 KiB: over the 16 KiB cap, small enough for the server to read it all before it
        # answers (so its close is a FIN, not a reset that could eat the answer).
        sock.sendall(PARTIAL + b"a" * 20 * 1024)
        data, _ = read_until_closed(sock, limit=10)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]
    assert b'"success":false' in data.replace(b" ", b"")


WHOLE_HEADS = {
    "one long header": b"X-Big: " + b"a" * 20 * 1024 + b"\r\n",
    "many headers": b"".join(b"X-%d: %s\r\n" % (i, b"b" * 1000) for i in range(20)),
    "long target": b"",
}


@pytest.mark.parametrize("shape", list(WHOLE_HEADS))
def test_whole_oversized_head_in_one_write_is_431(quick: Server, shape: str) -> None:
    """h11 caps only an *incomplete* head: a 20 KiB head that arrived whole in one socket
    read was parsed and served, so the real cap was one read (up to ~256 KiB), not 16 KiB."""
    target = b"/v1/openapi.json" + (b"?" + b"q" * 20 * 1024 if shape == "long target" else b"")
    head = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + WHOLE_HEADS[shape]
    with connect(quick) as sock:
        sock.sendall(head + b"Connection: close\r\n\r\n")
        data, _ = read_until_closed(sock, limit=10)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]
    assert b'"success":false' in data.replace(b" ", b"")


def test_a_head_under_the_cap_is_served(quick: Server) -> None:
    """The owner's side: a big but allowed head (cookies, long user agents) still works."""
    head = b"GET /v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 12 * 1024
    with connect(quick) as sock:
        sock.sendall(head + b"\r\nConnection: close\r\n\r\n")
        data, _ = read_until_closed(sock, limit=10)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]


def test_unfinished_huge_headers_do_not_grow_the_server(quick: Server) -> None:
    """4 connections try to send 10 MiB of header each and never finish it."""
    before = rss_kib(quick.process.pid)
    chunk = b"a" * 256 * 1024
    with ExitStack() as stack:
        for _ in range(4):
            sock = stack.enter_context(connect(quick, timeout=2))
            try:
                sock.sendall(PARTIAL)
                for _ in range(40):
                    sock.sendall(chunk)
            except OSError:
                pass  # the server stopped reading and closed: what we want
        time.sleep(0.5)  # let the server take in whatever it accepted
        grown = rss_kib(quick.process.pid) - before
    # 40 MiB were offered; the server may keep at most a header's worth per connection.
    assert grown < 8 * 1024, f"server grew by {grown} KiB"
    assert normal_request(quick).status_code == 200


# -- request timeout -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        PARTIAL,  # headers never finished
        b"POST /v1/api-login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username":',  # body never finished
    ],
    ids=["headers", "body"],
)
def test_half_sent_request_is_closed_after_the_timeout(quick: Server, sent: bytes) -> None:
    with connect(quick) as sock:
        sock.sendall(sent)
        data, took = read_until_closed(sock, limit=TIMEOUT + 10)
    assert took >= TIMEOUT * 0.5  # closed by the timeout, not refused at once
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:200]


def test_trickled_request_is_closed_at_the_deadline(quick: Server) -> None:
    """One byte every 0.2 s: each byte would reset an idle timer, not the request deadline."""
    with connect(quick) as sock:
        sock.sendall(PARTIAL)
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < TIMEOUT + 10 and not closed:
            try:
                sock.sendall(b"a")
            except OSError:
                closed = True
                break
            time.sleep(0.2)
            closed = not still_open(sock)
    assert closed, "a trickling client kept its connection past the deadline"


def test_silent_connection_is_closed_after_the_timeout(quick: Server) -> None:
    with connect(quick) as sock:
        data, _ = read_until_closed(sock, limit=TIMEOUT + 10)
    assert data == b""


def test_slow_but_whole_request_and_keep_alive_still_work(quick: Server) -> None:
    with connect(quick) as sock:
        for _ in range(2):  # two requests on one connection, each sent in two parts
            sock.sendall(b"GET /v1/openapi.json HTTP/1.1\r\n")
            time.sleep(TIMEOUT * 0.3)
            sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
            sock.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk, f"closed after {data!r}"
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200 "), head[:200]
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += sock.recv(65536)
            time.sleep(TIMEOUT * 0.3)


def test_request_timeout_defaults_to_30_seconds() -> None:
    assert Settings(_env_file=None).request_timeout_seconds == 30  # type: ignore[call-arg]


# -- concurrent connections ----------------------------------------------------------------


def test_fifty_stalled_connections_do_not_delay_a_normal_request(capped: Server) -> None:
    # 5 clients x 10 stalled connections, each client under its own cap.
    with ExitStack() as stack:
        socks = [
            sock
            for n in range(2, 7)
            for sock in stack.enter_context(stalled(capped, 10, f"127.0.0.{n}"))
        ]
        assert all(still_open(s) for s in socks)
        assert normal_request(capped).status_code == 200
        assert all(still_open(s) for s in socks)  # they really were held during the request


def closed_ones(socks: list[socket.socket], at_least: int, limit: float = 5) -> int:
    """How many of `socks` the server closed, once at least `at_least` are (or `limit` s)."""
    deadline = time.monotonic() + limit
    while sum(not still_open(s) for s in socks) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # any further refusal would show by now
    return sum(not still_open(s) for s in socks)


def test_one_client_cannot_hold_more_than_its_share(capped: Server) -> None:
    with stalled(capped, PER_CLIENT + 10, "127.0.0.20") as socks:
        assert closed_ones(socks, at_least=10) == 10
        answers = [read_until_closed(s, limit=5)[0] for s in socks if not still_open(s)]
        # A 429, unless our half request reached the closed socket first and reset it.
        assert all(a == b"" or a.startswith(b"HTTP/1.1 429 ") for a in answers), answers[:1]
        assert all(a == b"" or b"retry-after: " in a for a in answers), answers[:1]
        assert normal_request(capped).status_code == 200  # another client is served


def test_total_connections_are_bounded(capped: Server) -> None:
    clients = TOTAL // PER_CLIENT + 1
    with ExitStack() as stack:
        socks = [
            sock
            for n in range(clients)
            for sock in stack.enter_context(stalled(capped, PER_CLIENT, f"127.0.1.{n + 1}"))
        ]
        closed = closed_ones(socks, at_least=len(socks) - TOTAL)
        answers = [read_until_closed(s, limit=5)[0] for s in socks if not still_open(s)]
    assert len(socks) - closed <= TOTAL
    assert all(a == b"" or a.startswith(b"HTTP/1.1 429 ") for a in answers), answers[:1]
    assert normal_request(capped).status_code == 200  # and served again once they are gone


# -- Host header (the rest: tests/api/test_host_header.py) ---------------------------------


def test_other_host_is_refused_by_the_real_server(quick: Server) -> None:
    with connect(quick) as sock:
        sock.sendall(b"GET /reset-password/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        sock.settimeout(10)
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 400 "), head[:200]
    assert b"evil.example" not in head
