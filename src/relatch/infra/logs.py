"""Log lines: readable text by default, one JSON object per line with RELATCH_LOG_FORMAT=json.

Every line written while a request is handled carries its request id (the X-Request-Id
header), its operation and, once answered, its outcome: the request middleware
(http/middleware.py RequestContext) puts a `RequestLog` in a context variable, which
anyio's worker threads inherit, and `RequestFields` copies it onto each record. uvicorn's
access line is written while the answer starts, inside the request's context: it gets
them too.

`config(fmt)` is the one logging configuration of `relatch serve`, handed to uvicorn,
which applies it in every server process (`--workers N` processes do not inherit the
parent's logging).

Secrets in logs (STYLE rule 12): nothing here adds request data to a line; the operation
is a route's name from the code, never the path. What the lines say is the callers'
concern (tests/e2e/test_log_secrets.py proves no code, password, token or key gets out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# JSON: these keys, in this order, on every line (null outside a request).
JSON_FIELDS = ["levelname", "name", "message", "request_id", "operation", "outcome"]
JSON_RENAMES = {"levelname": "level", "name": "logger"}


@dataclass
class RequestLog:
    """The request being handled, as its log lines name it."""

    request_id: str
    # The ASGI scope: the router adds the matched route to it (the operation).
    scope: MutableMapping[str, Any] = field(repr=False)
    outcome: str | None = None

    @property
    def operation(self) -> str | None:
        return operation_of(self.scope)


CURRENT: ContextVar[RequestLog | None] = ContextVar("relatch_request", default=None)


def operation_of(scope: MutableMapping[str, Any]) -> str | None:
    """The operationId of the route a request matched (the API), else the route's name
    (pages, /healthz...) or its endpoint's; None before routing or for a path no route
    matched."""
    route = scope.get("route")  # FastAPI's routes
    if route is not None:
        name = getattr(route, "operation_id", None) or getattr(route, "name", None)
        return str(name) if name else None
    endpoint = scope.get("endpoint")  # Starlette's: /v1/openapi.json, /static
    if endpoint is None:
        return None
    return str(getattr(endpoint, "__name__", None) or type(endpoint).__name__)


class RequestFields(logging.Filter):
    """Adds request_id, operation and outcome to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = CURRENT.get()
        record.request_id = current.request_id if current else None
        record.operation = current.operation if current else None
        record.outcome = current.outcome if current else None
        return True


# The access log's stream is flushed at most this often (BatchedStreamHandler).
ACCESS_FLUSH_SECONDS = 0.5


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that flushes its stream at most every `interval` seconds instead of
    after every line (issue 12: the access log).

    logging's StreamHandler flushes after each record: one write(2) per request on the
    event loop's thread, which releases the GIL there, and on a busy core the loop then
    waits for it behind the request threads; measured, the access line cost a seventh of
    a cheap request's CPU (bench/PROFILE.md). Here lines go to the stream's buffer (a
    pipe's or a file's is block-buffered) and reach it in batches: when the last flush is
    `interval` old, else from a daemon thread within `interval`, and at exit. A terminal's
    stream is line-buffered and shows each line at once, as before.
    """

    def __init__(self, stream: TextIO | None = None, interval: float = ACCESS_FLUSH_SECONDS):
        super().__init__(stream)
        self.interval = interval
        self._last = time.monotonic()
        self._pending = False
        self._flusher: threading.Thread | None = None

    def flush(self) -> None:
        """After each record (StreamHandler.emit): a real flush only every `interval`."""
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._flush_now(now)
            return
        self._pending = True
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_later, daemon=True)
            self._flusher.start()

    def _flush_now(self, now: float) -> None:
        self._last = now
        self._pending = False
        super().flush()

    def _flush_later(self) -> None:
        """The lines of a burst that ended: out within `interval` of being written."""
        while True:
            time.sleep(self.interval)
            lock = self.lock
            if self._pending and lock is not None:
                with lock:
                    self._flush_now(time.monotonic())

    def close(self) -> None:
        self._flush_now(time.monotonic())  # at exit (logging.shutdown) nothing is left behind
        super().close()


def config(fmt: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig for `relatch serve`: the root logger (Relatch's own
    lines) and uvicorn's, in one format. Text keeps uvicorn's usual look."""
    if fmt == "json":
        json_formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": JSON_RENAMES,
            "timestamp": "time",  # ISO 8601, UTC
        }
        formatters: dict[str, Any] = {"app": json_formatter, "access": json_formatter}
        formatters["uvicorn"] = json_formatter
    else:
        formatters = {
            "app": {"format": TEXT_FORMAT},
            "uvicorn": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            },
        }

    def handler(
        formatter: str, stream: str = "ext://sys.stderr", kind: str = "logging.StreamHandler"
    ) -> dict[str, Any]:
        return {
            "class": kind,
            "formatter": formatter,
            "filters": ["request"],
            "stream": stream,
        }

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestFields}},
        "formatters": formatters,
        "handlers": {
            "app": handler("app"),
            "uvicorn": handler("uvicorn"),
            # As uvicorn has it: the access log on stdout, everything else on stderr.
            # One line per request: flushed in batches (BatchedStreamHandler).
            "access": handler("access", "ext://sys.stdout", f"{__name__}.BatchedStreamHandler"),
        },
        "root": {"handlers": ["app"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["uvicorn"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
        },
    }
