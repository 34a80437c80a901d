"""Load generators of the benchmark: `wrk` (Debian's, driven by a Lua script) where the
request is one fixed request, and an asyncio + httpx client where each request differs
(per-account reset bodies) or where the answer's body must be checked (a login that
answers 200 with `success: false` is an error, which wrk cannot see).

Both run on CPU 1 (the server is on CPU 0) and report the same `Load`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLIENT_CPU = "1"
SERVER_CPU = "0"


@dataclass
class Load:
    """What one load run saw: answered requests, their latencies (ms), statuses."""

    tool: str
    concurrency: int
    elapsed: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # transport errors, and answers that were not what the request wanted
    retry_after: int = 0  # 429s that carried a Retry-After header
    # wrk reports percentiles itself (it keeps no list): these win over `latencies`.
    percentiles: dict[int, float] = field(default_factory=dict)
    count: int = 0
    first_error: str = ""  # the first unexpected answer or transport error, for the log

    @property
    def answered(self) -> int:
        return self.count or len(self.latencies)

    first_429: str = ""
    done_at: list[float] = field(default_factory=list)  # completion times (Python client)

    @property
    def rate(self) -> float:
        """Answers per second in the steady state: between the first and the last answer
        (the time to fill the server's queue at high concurrency is left out)."""
        if len(self.done_at) >= 10 and self.done_at[-1] > self.done_at[0]:
            return (len(self.done_at) - 1) / (self.done_at[-1] - self.done_at[0])
        return self.answered / self.elapsed if self.elapsed else 0.0

    def ok_rate(self) -> float:
        """Successful answers per second (answers less errors, at the steady-state rate)."""
        if not self.answered:
            return 0.0
        return self.rate * (self.answered - self.errors) / self.answered

    def pct(self, p: int) -> float:
        if not self.answered:
            return float("nan")
        if p in self.percentiles:
            return self.percentiles[p]
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]


def pin_self_to_client_cpu() -> None:
    """The harness (and the Python load it makes) runs on CPU 1, away from the server."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})


# --- wrk --------------------------------------------------------------------------

WRK_LUA = """
wrk.method = %(method)s
wrk.body = %(body)s
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "status_errors": %%d, '
    .. '"socket_errors": %%d, "p50": %%d, "p90": %%d, "p99": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def ensure_wrk() -> str | None:
    """wrk from Debian when missing; None and a printed note when it cannot be had."""
    if have_wrk():
        return None
    print("wrk is missing: apt-get install -y wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            break
    if have_wrk():
        return None
    note = (
        "wrk could not be installed (needs root and Debian's apt): every figure uses the "
        "Python load generator, whose own ceiling is the no-op row"
    )
    print("NOTE:", note)
    return note


def wrk(
    url: str,
    *,
    concurrency: int,
    seconds: float,
    method: str = "GET",
    body: str = "",
    headers: dict[str, str] | None = None,
) -> Load:
    """One fixed request, `concurrency` connections from one wrk thread on CPU 1."""
    lines = "\n".join(
        f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in (headers or {}).items()
    )
    script = WRK_LUA % {"method": lua_string(method), "body": lua_string(body), "headers": lines}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        cmd = [
            "taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", f.name, url,
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        Path(f.name).unlink()
    line = next((x for x in done.stderr.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {done.stdout}{done.stderr}")
    got = json.loads(line.removeprefix("WRKJSON "))
    status_errors = int(got["status_errors"])
    return Load(
        tool="wrk",
        concurrency=concurrency,
        elapsed=got["duration_us"] / 1e6,
        count=int(got["requests"]),
        statuses=Counter({0: status_errors}) if status_errors else Counter(),
        errors=status_errors + int(got["socket_errors"]),
        percentiles={p: got[f"p{p}"] / 1000 for p in (50, 90, 99)},
    )


# --- the Python client ---------------------------------------------------------------

# A request: method, path, JSON body (or form data with "form:" key), headers.
Request = tuple[str, str, Any, dict[str, str]]
Check = Callable[[httpx.Response], bool]


def ok_json(resp: httpx.Response) -> bool:
    """Relatch's handled outcome: 200 with success true."""
    if resp.status_code != 200:
        return False
    try:
        return bool(resp.json().get("success"))
    except ValueError:
        return False


def ok_2xx(resp: httpx.Response) -> bool:
    return 200 <= resp.status_code < 300


async def _send(client: httpx.AsyncClient, req: Request) -> httpx.Response:
    method, path, body, headers = req
    if isinstance(body, dict) and "form:" in body:
        return await client.request(method, path, data=body["form:"], headers=headers)
    if body is None:
        return await client.request(method, path, headers=headers)
    return await client.request(method, path, json=body, headers=headers)


async def run_async(
    base_url: str,
    make: Callable[[int], Request],
    *,
    concurrency: int,
    seconds: float | None = None,
    total: int | None = None,
    check: Check = ok_json,
    client: httpx.AsyncClient | None = None,
) -> Load:
    """`concurrency` clients in a closed loop, each sending its next request as soon as
    the last one is answered, for `seconds` or until `total` requests were sent. Request i
    is make(i). A 429 is counted in statuses (and retry_after), not as an error."""
    load = Load(tool="python", concurrency=concurrency, elapsed=0.0)
    counter = iter(range(total if total is not None else 1 << 62))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    own = client is None
    c = client or httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits)
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else float("inf")

    async def worker() -> None:
        while time.perf_counter() < deadline:
            i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                resp = await _send(c, make(i))
            except httpx.HTTPError as exc:
                load.errors += 1
                load.first_error = load.first_error or repr(exc)
                continue
            now = time.perf_counter()
            ms = (now - t0) * 1000
            load.statuses[resp.status_code] += 1
            if resp.status_code == 429:
                load.retry_after += "retry-after" in resp.headers
                load.first_429 = load.first_429 or resp.text[:120]
                continue
            load.latencies.append(ms)
            load.done_at.append(now)
            if not check(resp):
                load.errors += 1
                load.first_error = load.first_error or f"{resp.status_code} {resp.text[:200]}"

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    try:
        # A timed run ends at its deadline: requests still in flight then are dropped
        # (not counted), so a slow server's queue does not stretch the window.
        _, pending = await asyncio.wait(tasks, timeout=seconds)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        load.elapsed = time.perf_counter() - started
        if own:
            await c.aclose()
    return load


def run(
    base_url: str,
    make: Callable[[int], Request],
    **kw: Any,
) -> Load:
    return asyncio.run(run_async(base_url, make, **kw))


async def timed(client: httpx.AsyncClient, req: Request) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    resp = await _send(client, req)
    return (time.perf_counter() - t0) * 1000, resp


async def probe_while(
    client: httpx.AsyncClient,
    req: Request,
    running: Callable[[], bool],
    pause: float = 0.02,
) -> list[float]:
    """One request at a time, a short pause between, while `running()`: latencies (ms)."""
    out: list[float] = []
    while running():
        ms, _ = await timed(client, req)
        out.append(ms)
        await asyncio.sleep(pause)
    return out


Runner = Callable[[], Awaitable[Load]]
