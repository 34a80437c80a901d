"""The access log's handler: every line kept, the stream flushed in batches (issue 12)."""

from __future__ import annotations

import io
import logging
import time

from relatch.infra import logs
from relatch.infra.logs import BatchedStreamHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def logger_to(handler: logging.Handler, name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def test_a_burst_of_lines_is_flushed_in_batches_and_none_is_lost() -> None:
    """Cheap: 200 lines, not 200 flushes (a write(2) each on the event loop's thread)."""
    stream = CountingStream()
    handler = BatchedStreamHandler(stream, interval=60)
    log = logger_to(handler, "test.batched.burst")
    for n in range(200):
        log.info("line %d", n)
    assert stream.flushes <= 1
    handler.close()  # at exit: flushed, nothing left behind
    assert stream.flushes >= 1
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(200)]


def test_the_last_line_of_a_burst_is_flushed_soon_without_more_traffic() -> None:
    """The owner's side: the log stays live; a line waits at most about `interval`."""
    stream = CountingStream()
    handler = BatchedStreamHandler(stream, interval=0.05)
    log = logger_to(handler, "test.batched.tail")
    log.info("first")  # flushed at once: the last flush is old
    log.info("second")  # buffered: the flusher thread takes it
    before = stream.flushes
    deadline = time.monotonic() + 10
    while stream.flushes == before:
        assert time.monotonic() < deadline, "the buffered line was never flushed"
        time.sleep(0.01)
    assert stream.getvalue().splitlines() == ["first", "second"]
    handler.close()


def test_serve_writes_the_access_log_through_the_batched_handler() -> None:
    for fmt in ("text", "json"):
        access = logs.config(fmt)["handlers"]["access"]
        assert access["class"] == "relatch.infra.logs.BatchedStreamHandler"
        assert access["stream"] == "ext://sys.stdout"
