"""`make bench`: timing and throughput of a real `relatch serve` process.

1. requestResetPassword for an existing and an unknown address: 200 requests each,
   interleaved, medians compared (the contract: within 1 ms of each other). The same for
   a change of address to a taken and a free address (issue 14: no enumeration).
2. argon2id cost at the configured parameters, and resetPassword throughput against
   what password hashing allows on this machine.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from relatch.core.hashing import Argon2Params, Hasher
from relatch.settings import Settings

N = int(os.environ.get("BENCH_REQUESTS", "200"))
RELATCH = Path(sys.executable).parent / "relatch"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATCH_")}
    env.update(
        RELATCH_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        RELATCH_SECRET_KEY="bench-" + "k" * 40,
        RELATCH_MAIL_DIR=str(workdir / "mail"),
        # The limits would (rightly) stop 200 requests for one address: off for timing.
        RELATCH_LIMIT_RESET_PER_ADDRESS="off",
        RELATCH_LIMIT_RESET_PER_IP="off",
        RELATCH_LIMIT_FAILURES_PER_ACCOUNT="off",
        RELATCH_LIMIT_FAILURES_PER_IP="off",
        RELATCH_LIMIT_SIGNUP_PER_IP="off",
    )
    proc = subprocess.Popen(
        [str(RELATCH), "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def timed_post(client: httpx.Client, path: str, body: dict[str, str]) -> float:
    t0 = time.perf_counter()
    resp = client.post(path, json=body)
    elapsed = time.perf_counter() - t0
    assert resp.status_code == 200 and resp.json() == {"success": True}, resp.text
    return elapsed * 1000


def bench_request_reset(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        made = client.post(
            "/api-user-create",
            json={
                "name": "Bench",
                "username": "bench-user",
                "email": "bench@example.com",
                "privacyPolicy": True,
                "password": "quiet harbour lantern",
            },
        )
        assert made.json()["success"], made.text
        for _ in range(20):  # warm up both paths
            timed_post(client, "/api-user-request-reset-password", {"email": "bench@example.com"})
            timed_post(client, "/api-user-request-reset-password", {"email": "nobody@example.com"})
        known: list[float] = []
        unknown: list[float] = []
        for i in range(N):
            order = [("bench@example.com", known), ("nobody@example.com", unknown)]
            for email, sink in order if i % 2 else reversed(order):
                sink.append(
                    timed_post(client, "/api-user-request-reset-password", {"email": email})
                )
    mk, mu = statistics.median(known), statistics.median(unknown)
    pk, pu = statistics.quantiles(known, n=10)[-1], statistics.quantiles(unknown, n=10)[-1]
    print(f"requestResetPassword, {N} requests each (keep-alive, one client):")
    print(f"  existing address: median {mk:.3f} ms  p90 {pk:.3f} ms")
    print(f"  unknown address:  median {mu:.3f} ms  p90 {pu:.3f} ms")
    verdict = "within" if abs(mk - mu) <= 1.0 else "NOT within"
    print(f"  difference of medians: {abs(mk - mu):.3f} ms ({verdict} the contract's 1 ms)")


def bench_change_email(url: str) -> None:
    """Enumeration by timing: asking to move to a taken and to a free address (issue 14)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        made = client.post(
            "/api-user-create",
            json={
                "name": "Other",
                "username": "bench-other",
                "email": "other@example.com",
                "privacyPolicy": True,
                "password": "quiet harbour lantern",
            },
        )
        assert made.json()["success"], made.text
        login = {"username": "bench-user", "password": "quiet harbour lantern"}
        client.headers["x-jwt-token"] = client.post("/api-login", json=login).json()["token"]
        client.cookies.clear()
        path = "/api/user/change-email"
        for _ in range(20):  # warm up both paths
            timed_post(client, path, {"newEmail": "other@example.com"})
            timed_post(client, path, {"newEmail": "free@example.com"})
        taken: list[float] = []
        free: list[float] = []
        for i in range(N):
            order = [("other@example.com", taken), ("free@example.com", free)]
            for email, sink in order if i % 2 else reversed(order):
                sink.append(timed_post(client, path, {"newEmail": email}))
    mt, mf = statistics.median(taken), statistics.median(free)
    print(f"change-email, {N} requests each (keep-alive, one client):")
    print(f"  taken address: median {mt:.3f} ms")
    print(f"  free address:  median {mf:.3f} ms")
    verdict = "within" if abs(mt - mf) <= 1.0 else "NOT within"
    print(f"  difference of medians: {abs(mt - mf):.3f} ms ({verdict} 1 ms)")


def bench_login(url: str, n: int = 50) -> None:
    """Enumeration by timing: a wrong password and an unknown user cost one argon2 verify."""
    wrong: list[float] = []
    unknown: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:

        def attempt(username: str) -> float:
            t0 = time.perf_counter()
            resp = client.post("/api-login", json={"username": username, "password": "nope nope"})
            assert resp.json()["success"] is False, resp.text
            return (time.perf_counter() - t0) * 1000

        for _ in range(5):
            attempt("bench-user")
            attempt("nobody-here")
        for _ in range(n):
            wrong.append(attempt("bench-user"))
            unknown.append(attempt("nobody-here"))
    mw, mu = statistics.median(wrong), statistics.median(unknown)
    print(f"login refused, {n} requests each:")
    print(f"  existing user, wrong password: median {mw:.2f} ms")
    print(f"  unknown user:                  median {mu:.2f} ms (difference {abs(mw - mu):.2f} ms)")


def bench_login_throughput(url: str, hash_rate: float, n: int = 120, clients: int = 8) -> None:
    """Successful sign-ins per second (one argon2 verify each) against raw hashing speed."""

    def sign_in_many(count: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(count):
                resp = client.post(
                    "/api-login",
                    json={"username": "bench-user", "password": "quiet harbour lantern"},
                )
                assert resp.json()["success"] is True, resp.text

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(sign_in_many, [n // clients] * clients))
    rate = (n // clients * clients) / (time.perf_counter() - t0)
    print(
        f"login throughput, {n} sign-ins from {clients} clients: {rate:.1f}/s "
        f"({100 * rate / hash_rate:.0f}% of the raw argon2 rate)"
    )


def bench_hashing() -> float:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    params = Argon2Params(s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism)
    hasher = Hasher(params)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        hasher.hash("a bench password")
        times.append((time.perf_counter() - t0) * 1000)
    one = statistics.median(times)
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(hasher.hash, ["a bench password"] * 40))
    rate = 40 / (time.perf_counter() - t0)
    print(
        f"argon2id m={params.memory_kib} KiB t={params.time_cost} p={params.parallelism}: "
        f"one hash median {one:.1f} ms; {rate:.1f} hashes/s on {workers} threads"
    )
    return rate


def main() -> None:
    hash_rate = bench_hashing()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(Path(tmp))
        try:
            bench_request_reset(url)
            bench_change_email(url)
            bench_login(url)
            bench_login_throughput(url, hash_rate)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
