"""Enumeration by timing, as the contract states it: medians of 200 requests each.

1. requestResetPassword for an existing and an unknown address, interleaved, medians
   compared (the contract: within 1 ms of each other). The same for a change of address to
   a taken and a free address (issue 14: no enumeration).
2. login refused: a wrong password and an unknown user (one argon2 verify each).

Throughput and the other rows of issue 12 are bench/run.py's; this runs beside it in
`make bench`, limits off (they would rightly stop 200 requests for one address).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

if __package__ in (None, ""):  # `python bench/enumeration.py`: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import servers

N = int(os.environ.get("BENCH_REQUESTS", "200"))
# The limits would (rightly) stop 200 requests for one address: off for timing. The
# bench's client signs in, so it becomes known: its own budgets too, or its later refusals
# are 429s in a fraction of the time (not what is compared here).
LIMITS_OFF = {
    f"RELATCH_LIMIT_{name}": "off"
    for name in (
        "RESET_PER_ADDRESS",
        "RESET_PER_IP",
        "FAILURES_PER_ACCOUNT",
        "FAILURES_PER_IP",
        "SIGNUP_PER_IP",
        "FAILURES_PER_KNOWN_DEVICE",
        "FAILURES_PER_KNOWN_NETWORK",
        "RESET_PER_KNOWN_CLIENT",
    )
}


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
            assert resp.status_code == 200 and resp.json()["success"] is False, resp.text
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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, servers.relatch(Path(tmp), **LIMITS_OFF) as server:
        url = f"{server.base}/v1"
        bench_request_reset(url)
        bench_change_email(url)
        bench_login(url)


if __name__ == "__main__":
    main()
