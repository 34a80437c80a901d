"""The measurements behind each row of bench/RESULTS.md (issue 12's table), one function
per row and side. Each returns a `Fig` (a value per repetition) or a few of them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from bench import load, servers
from bench.load import Load, Request, ok_2xx, ok_json
from relatch.core import codes

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 1 if QUICK else 3
SECONDS = 2.0 if QUICK else 6.0
PATH_VERIFY = "/v1/api-user-verify-reset-password-code"
TIMING_SAMPLES = 100 if QUICK else 300
BACKLOG = 1000

ROOT = servers.ROOT
V1 = "/v1"


@dataclass
class Fig:
    """One figure, a value per repetition: shown as median [min-max]."""

    values: list[float] = field(default_factory=list)
    unit: str = ""
    digits: int = 0

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def measured(self) -> list[float]:
        """The repetitions that gave a figure (a NaN is one that did not)."""
        return [v for v in self.values if not math.isnan(v)]

    @property
    def median(self) -> float:
        got = self.measured
        return statistics.median(got) if got else float("nan")

    def __str__(self) -> str:
        got = self.measured
        if not got:
            return "n/a"
        f = f"{{:,.{self.digits}f}}"
        text = f.format(self.median) + self.unit
        if len(got) > 1:
            text += f" [{f.format(min(got))}-{f.format(max(got))}]"
        if len(got) < len(self.values):
            text += f" ({len(self.values) - len(got)} of {len(self.values)} n/a)"
        return text


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def figs(n: int, unit: str = "", digits: int = 0) -> list[Fig]:
    return [Fig(unit=unit, digits=digits) for _ in range(n)]


# --- the bound -------------------------------------------------------------------------


def bound(m: int, t: int, p: int) -> tuple[Fig, Fig]:
    """argon2id hashes/s and verifies/s, one core (CPU 0, where the servers run)."""
    h, v = Fig(unit="/s", digits=1), Fig(unit="/s", digits=1)
    for _ in range(REPS):
        done = subprocess.run(
            ["taskset", "-c", load.SERVER_CPU, sys.executable, "-m", "bench.bound",  # noqa: S607
             str(m), str(t), str(p), str(SECONDS / 2)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        got = json.loads(done.stdout)
        h.add(got["hash"])
        v.add(got["verify"])
    return h, v


# --- the two servers' requests -----------------------------------------------------------


@dataclass
class Api:
    """The same operations on Relatch and on the peer."""

    kind: str  # "relatch" or "peer"

    @property
    def check(self) -> Callable[[httpx.Response], bool]:
        return ok_json if self.kind == "relatch" else ok_2xx

    def request_reset(self, email: str) -> Request:
        if self.kind == "relatch":
            return ("POST", f"{V1}/api-user-request-reset-password", {"email": email}, {})
        return ("POST", "/auth/forgot-password", {"email": email}, {})

    def login(self, email: str) -> Request:
        if self.kind == "relatch":
            body = {"username": email, "password": servers.PASSWORD}
            return ("POST", f"{V1}/api-login", body, {})
        form = {"form:": {"username": email, "password": servers.PASSWORD}}
        return ("POST", "/auth/jwt/login", form, {})

    def token(self, base: str, email: str) -> str:
        _, path, body, _ = self.login(email)
        with httpx.Client(base_url=base, timeout=60) as c:
            if "form:" in body:
                resp = c.post(path, data=body["form:"])
                return str(resp.json()["access_token"])
            resp = c.post(path, json=body)
            return str(resp.json()["token"])

    def me(self, token: str) -> Request:
        if self.kind == "relatch":
            return ("GET", f"{V1}/api/user", None, {"x-jwt-token": token})
        return ("GET", "/users/me", None, {"Authorization": f"Bearer {token}"})

    def reset(self, email: str, code: str, new: str) -> Request:
        if self.kind == "relatch":
            body = {"email": email, "code": code, "newPassword": new}
            return ("POST", f"{V1}/api-user-reset-password", body, {})
        return ("POST", "/auth/reset-password", {"token": code, "password": new}, {})


def api_of(server: servers.Server) -> Api:
    return Api(server.name)


def hashes_in_flight(c: httpx.Client) -> float:
    """Relatch's hashing pool, running + waiting, from its /metrics (0 when not there)."""
    total = 0.0
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(("relatch_hashing_pool_busy", "relatch_hashing_pool_waiting")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def settle(server: servers.Server, timeout: float = 120) -> None:
    """Wait until the server has worked off what the last load left (requests cut at the
    end of a window still run: a server does not stop a handler whose client left), so
    that one row does not pay for the last: Relatch's hashing pool empty, then a no-op
    request answered quickly twice. The peer hashes on its event loop, one request after
    the other: rather than wait minutes for its queue, it is restarted (same database)."""
    deadline = time.monotonic() + timeout
    fast = 0
    if server.name == "peer":
        try:
            httpx.get(f"{server.base}/healthz", timeout=0.5)
        except httpx.TimeoutException:
            server.restart()
    with httpx.Client(base_url=server.base, timeout=timeout) as c:
        if server.name == "relatch":
            while time.monotonic() < deadline and hashes_in_flight(c) > 0:
                time.sleep(0.1)
            # The background work the last load queued (reset decisions, their mail) runs
            # at normal priority and the hash threads at a lower one (RELATCH_HASH_NICE):
            # left running, it would be measured as the next row's hashing rate.
            engine = servers.engine_of(server)
            try:
                while time.monotonic() < deadline and servers.work_waiting(engine):
                    time.sleep(0.2)
            finally:
                engine.dispose()
        while time.monotonic() < deadline and fast < 2:
            t0 = time.perf_counter()
            c.get("/healthz")
            fast = fast + 1 if time.perf_counter() - t0 < 0.05 else 0
            time.sleep(0.05)


def py_load(server: servers.Server, make: Callable[[int], Request], c: int, **kw: Any) -> Load:
    out = load.run(server.base, make, concurrency=c, check=api_of(server).check, **kw)
    if out.first_error or set(out.statuses) - {200}:
        seen = f"{out.errors} errors, statuses {dict(out.statuses)}"
        print(f"    {server.name} c={c}: {seen} {out.first_error} {out.first_429}")
    settle(server)
    return out


def _send_sync(client: httpx.Client, req: Request) -> httpx.Response:
    method, path, body, headers = req
    if isinstance(body, dict) and "form:" in body:
        return client.request(method, path, data=body["form:"], headers=headers)
    return client.request(method, path, json=body, headers=headers)


def _same(req: Request, _i: int) -> Request:
    return req


def signer(i: int) -> str:
    """The account request i signs in to: spread over the 1,000 seeded accounts, as many
    people sign in at once (one account signed in to by 64 clients at once would meet the
    per-account limit, which counts a sign-in in flight until it succeeds)."""
    return f"u{i % 1000}@example.com"


def window(c: int, rate: float) -> float:
    """A load's length: SECONDS, and long enough that c clients see a few answers each at
    `rate` answers/s (their latency is c / rate once the queue is full), at most 4 x
    SECONDS (the peer at c=64 would need minutes: its latencies then lean low)."""
    return min(max(SECONDS, 2.5 * c / max(rate, 1.0) + 1.0), 4 * SECONDS)


# --- rows ------------------------------------------------------------------------------


def noop(server: servers.Server, use_wrk: bool) -> tuple[Fig, Fig]:
    """GET /healthz at c=32: the ceiling of each load generator against this server."""
    w, p = Fig(unit="/s"), Fig(unit="/s")
    for _ in range(REPS):
        if use_wrk:
            w.add(load.wrk(f"{server.base}/healthz", concurrency=32, seconds=SECONDS).rate)
        got = load.run(
            server.base,
            lambda _i: ("GET", "/healthz", None, {}),
            concurrency=32,
            seconds=SECONDS,
            check=ok_2xx,
        )
        p.add(got.rate)
    return w, p


def request_reset(server: servers.Server, email: str, use_wrk: bool) -> tuple[Fig, Fig, Fig]:
    """requestResetPassword c=32 for one address: throughput, p99, errors."""
    rate, p99, errors = Fig(unit="/s"), Fig(unit=" ms", digits=1), Fig()
    method, path, body, _ = api_of(server).request_reset(email)
    for _ in range(REPS):
        if use_wrk:
            got = load.wrk(
                server.base + path,
                concurrency=32,
                seconds=SECONDS,
                method=method,
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        else:
            req: Request = (method, path, body, {})
            got = load.run(
                server.base,
                functools.partial(_same, req),
                concurrency=32,
                seconds=SECONDS,
                check=api_of(server).check,
            )
        settle(server)
        rate.add(got.rate)
        p99.add(got.pct(99))
        errors.add(got.errors)
    return rate, p99, errors


@dataclass
class Curve:
    """Latencies against concurrency for the PNG (medians over the repetitions)."""

    p50: dict[int, list[float]] = field(default_factory=dict)
    p90: dict[int, list[float]] = field(default_factory=dict)

    def add(self, c: int, got: Load) -> None:
        self.p50.setdefault(c, []).append(got.pct(50))
        self.p90.setdefault(c, []).append(got.pct(90))


def logins(
    server: servers.Server, levels: list[int], curve: Curve, rate: float
) -> tuple[dict[int, Fig], dict[int, Fig]]:
    """Successful logins per second (one verify each) at each concurrency; errors."""
    rates = {c: Fig(unit="/s", digits=1) for c in levels}
    errs = {c: Fig() for c in levels}
    api = api_of(server)
    for _ in range(REPS):
        for c in levels:
            got = py_load(server, lambda i: api.login(signer(i)), c, seconds=window(c, rate))
            rates[c].add(got.ok_rate())
            errs[c].add(got.errors + sum(n for s, n in got.statuses.items() if s != 200))
            curve.add(c, got)
    return rates, errs


def resets(
    server: servers.Server,
    levels: list[int],
    per_second: float,
    curve: Curve,
    prepare: Callable[[int], list[tuple[str, str]]],
) -> tuple[dict[int, Fig], dict[int, Fig]]:
    """Successful resets per second (1 verify + 1 hash each) with a fresh valid code each;
    `prepare(n)` makes n (address, code) pairs."""
    rates = {c: Fig(unit="/s", digits=1) for c in levels}
    errs = {c: Fig() for c in levels}
    api = api_of(server)
    # Warm-up: the first reset loads what it needs (the password policy's list, the mail
    # templates); not part of the figure.
    [(email, code)] = prepare(1)
    with httpx.Client(base_url=server.base, timeout=120) as client:
        _send_sync(client, api.reset(email, code, "violet meadow ladder warm"))
    for _ in range(REPS):
        for c in levels:
            # Codes for 3x what the bound allows in the window: never one used twice.
            pairs = prepare(int(per_second * window(c, per_second) * 3) + c + 10)

            def make(i: int, pairs: list[tuple[str, str]] = pairs) -> Request:
                email, code = pairs[i % len(pairs)]
                return api.reset(email, code, f"violet meadow ladder {i}")

            got = py_load(server, make, c, seconds=window(c, per_second))
            rates[c].add(got.ok_rate())
            errs[c].add(got.errors + sum(n for s, n in got.statuses.items() if s != 200))
            curve.add(c, got)
    return rates, errs


def cheap_under_load(server: servers.Server, probe_email: str) -> tuple[Fig, Fig, Fig]:
    """p90 of requestResetPassword and getCurrentUser, one at a time, while 64 clients
    keep logging in (hashing saturated); and the login rate meanwhile."""
    api = api_of(server)
    token = api.token(server.base, probe_email)
    rr, me, rate = Fig(unit=" ms", digits=1), Fig(unit=" ms", digits=1), Fig(unit="/s", digits=1)

    async def once() -> tuple[list[float], list[float], Load]:
        stop = time.perf_counter() + 1.0 + SECONDS
        running = lambda: time.perf_counter() < stop  # noqa: E731
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as c:
            background = asyncio.create_task(
                load.run_async(
                    server.base,
                    lambda i: api.login(signer(i)),
                    concurrency=64,
                    seconds=SECONDS + 1.5,
                    check=api.check,
                )
            )
            await asyncio.sleep(1.0)  # let the hashing saturate
            a, b = await asyncio.gather(
                load.probe_while(c, api.request_reset(probe_email), running),
                load.probe_while(c, api.me(token), running),
            )
            return a, b, await background

    for _ in range(REPS):
        a, b, bg = asyncio.run(once())
        settle(server)
        rr.add(p90(a))
        me.add(p90(b))
        rate.add(bg.rate)
    return rr, me, rate


def overload(server: servers.Server, rate: float) -> tuple[Fig, Fig, Fig, Fig, Fig]:
    """Logins at c=128: how many 429 (with Retry-After), admitted ones' p50 / p99, 200s."""
    api = api_of(server)
    n429, with_ra = Fig(), Fig()
    p50, p99, ok = Fig(unit=" ms"), Fig(unit=" ms"), Fig()
    for _ in range(REPS):
        got = py_load(server, lambda i: api.login(signer(i)), 128, seconds=window(128, rate))
        n429.add(got.statuses.get(429, 0))
        with_ra.add(got.retry_after)
        p50.add(got.pct(50))
        p99.add(got.pct(99))
        ok.add(got.statuses.get(200, 0))
    return n429, with_ra, p50, p99, ok


def verify_timing(
    server: servers.Server, prepare: Callable[[int], list[tuple[str, str]]]
) -> tuple[Fig, list[float]]:
    """A wrong code for an address with a live code vs an unknown address, interleaved, one
    at a time: difference of medians (ms, existing - unknown) and the KS test's p."""
    from scipy.stats import ks_2samp

    diff = Fig(unit=" ms", digits=3)
    pvalues: list[float] = []
    tries = 4  # under the code's 5 tries: every sample meets a live code
    for rep in range(REPS):
        pairs = prepare(TIMING_SAMPLES // tries + 1)
        existing: list[float] = []
        unknown: list[float] = []
        with httpx.Client(base_url=server.base, timeout=30) as c:

            def one(email: str, code: str, c: httpx.Client = c) -> float:
                t0 = time.perf_counter()
                c.post(PATH_VERIFY, json={"email": email, "code": code})
                return (time.perf_counter() - t0) * 1000

            for i in range(20):  # warm up both paths
                one(f"nobody-warm{rep}-{i}@example.com", codes.generate())
            for i in range(TIMING_SAMPLES):
                email, real = pairs[i // tries]
                wrong = codes.generate()
                while wrong == real:
                    wrong = codes.generate()
                ghost = f"nobody{rep}-{i}@example.com"
                if i % 2:
                    existing.append(one(email, wrong))
                    unknown.append(one(ghost, wrong))
                else:
                    unknown.append(one(ghost, wrong))
                    existing.append(one(email, wrong))
        diff.add(statistics.median(existing) - statistics.median(unknown))
        pvalues.append(float(ks_2samp(existing, unknown).pvalue))
    return diff, pvalues


class Inbox:
    """A local SMTP server (aiosmtpd) that counts what it is given."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.port = servers.free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.count += 1
        return "250 OK"

    def __enter__(self) -> Inbox:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


def _since(count: Callable[[], int], start: int) -> int:
    return count() - start


def _wait(count: Callable[[], int], target: int, timeout: float) -> float:
    t0 = time.perf_counter()
    while count() < target:
        if time.perf_counter() - t0 > timeout:
            return float("nan")
        time.sleep(0.02)
    return time.perf_counter() - t0


def mail_to_smtp(workdir: Path, database_url: str | None = None) -> Fig:
    """Mails/s: a backlog of 1,000 queued at once, until the relay has them all."""
    rate = Fig(unit="/s")
    with (
        Inbox() as inbox,
        servers.relatch(
            workdir, database_url, RELATCH_SMTP_URL=f"smtp://127.0.0.1:{inbox.port}"
        ) as server,
    ):
        engine = servers.engine_of(server)
        for _ in range(REPS):
            start = inbox.count
            servers.add_outbox(engine, BACKLOG)
            took = _wait(functools.partial(_since, lambda: inbox.count, start), BACKLOG, 120)
            rate.add(BACKLOG / took)
        engine.dispose()
    return rate


def mail_to_outbox(server: servers.Server) -> Fig:
    rate = Fig(unit="/s")
    folder = server.workdir / "mail"
    engine = servers.engine_of(server)
    servers.clear_work(engine)

    def files() -> int:
        return sum(1 for _ in folder.glob("*.eml")) if folder.is_dir() else 0

    for _ in range(REPS):
        start = files()
        servers.add_outbox(engine, BACKLOG)
        took = _wait(functools.partial(_since, files, start), BACKLOG, 120)
        rate.add(BACKLOG / took)
    engine.dispose()
    return rate


def worker_decisions(server: servers.Server, existing: list[str]) -> tuple[Fig, Fig]:
    """Recorded reset requests turned into decisions per second (half of them for
    accounts, half for unknown addresses), from a backlog of 1,000 queued at once: the
    drain rate, from the first decisions seen to the last; and the pickup, the time until
    the first were seen (the worker is not woken by a request, by design: it polls every
    RELATCH_WORKER_POLL_SECONDS, so that a known address's work never lands right behind
    its request, services/reset_requests.py)."""
    rate, pickup = Fig(unit="/s"), Fig(unit=" ms")
    engine = servers.engine_of(server)
    for rep in range(REPS):
        servers.clear_work(engine)
        half = BACKLOG // 2
        emails = existing[:half] + [f"ghost{rep}-{n}@example.com" for n in range(half)]
        servers.add_requests(engine, emails)

        t0 = time.perf_counter()
        seen = _decisions_seen(engine, t0 + 180)
        first_t, first_n = next((t, n) for t, n in seen if n > 0)
        last_t, last_n = seen[-1]
        pickup.add((first_t - t0) * 1000)
        if last_n < BACKLOG:
            rate.add(float("nan"))  # not drained within the deadline: shown as n/a
        elif first_n < BACKLOG:
            rate.add((BACKLOG - first_n) / (last_t - first_t))
        else:  # all of it between two looks: the pickup counted in, the lower figure
            rate.add(BACKLOG / (last_t - t0))
    servers.clear_work(engine)
    engine.dispose()
    return rate, pickup


def _decisions_seen(engine: Any, deadline: float) -> list[tuple[float, int]]:
    """(time, requests decided) every 5 ms until the backlog is gone or `deadline`."""
    seen: list[tuple[float, int]] = []
    while True:
        n = BACKLOG - servers.requests_left(engine)
        now = time.perf_counter()
        seen.append((now, n))
        if n >= BACKLOG or now > deadline:
            return seen
        time.sleep(0.005)


def peak_rss(
    server: servers.Server, pairs: list[tuple[str, str]], window: float | None = None
) -> tuple[float, float, Load]:
    """Peak memory (MB: the largest process's RSS, the whole tree's PSS) while len(pairs)
    resets arrive at once."""
    api = api_of(server)

    def make(i: int) -> Request:
        email, code = pairs[i]
        return api.reset(email, code, f"violet meadow ladder {i}")

    with servers.RssSampler(server) as sampler:
        got = load.run(
            server.base,
            make,
            concurrency=len(pairs),
            total=len(pairs),
            seconds=window,
            check=api.check,
        )
    return sampler.peak / 1e6, sampler.peak_tree / 1e6, got


def latencies_at_scale(server: servers.Server, login_email: str, probe_email: str) -> list[Fig]:
    """c=1 medians: login, getCurrentUser, requestResetPassword, verify (wrong code)."""
    api = api_of(server)
    token = api.token(server.base, probe_email)
    out = figs(4, " ms", 2)
    n = 20 if QUICK else 60
    verify = f"{V1}/api-user-verify-reset-password-code"
    makes: list[Callable[[int], Request]] = [
        lambda _i: api.login(login_email),
        lambda _i: api.me(token),
        lambda _i: api.request_reset(probe_email),
        # An unknown address each time: no account's try counter in play.
        lambda i: ("POST", verify, {"email": f"nobody{i}@example.com", "code": "0000-0000"}, {}),
    ]
    for _ in range(REPS):
        for fig, make in zip(out, makes, strict=True):
            got = load.run(server.base, make, concurrency=1, total=n, check=lambda _r: True)
            fig.add(got.pct(50))
    return out
