"""Where requestResetPassword's milliseconds go, in a real `relatch serve` (bench/PROFILE.md).

    .venv/bin/pip install py-spy pyinstrument   # profilers: into the venv, not dependencies
    .venv/bin/python bench/profile_request_reset.py [--address unknown|existing] [--seconds 10]

Starts `relatch serve` on SQLite pinned to CPU 0 (limits on, ceilings raised so the
benchmark's own traffic is not refused; the access log as shipped), loads it at c=32 from
CPU 1 (`wrk` when installed, else an httpx asyncio client), and meanwhile samples every
thread of the server with py-spy, counting only the thread that holds the GIL (`--gil`):
on one pinned core that is where its CPU goes (argon2 and SQLite's own C code release the
GIL; SQLite's share shows as the Python frames that called it). The samples are then
sorted into the categories below, first match wins, and printed as a flame summary.

pyinstrument profiles one thread only, and a request here crosses two (the event loop and
an anyio worker thread), so the process-wide view is py-spy's; `--pyinstrument` adds
pyinstrument's tree of the service function alone, called in a loop on the same database
(where inside the use case the time goes, without the HTTP stack).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent
PATH = "/v1/api-user-request-reset-password"
EXISTING = "exist@example.com"
UNKNOWN = "nobody@example.com"
HIGH = "1000000000/1h"  # a ceiling the benchmark's own traffic never reaches

# (category, pattern searched in the whole stack), first match wins: the use case's parts
# before the generic layers they run in.
CATEGORIES: list[tuple[str, str]] = [
    ("hashing (argon2 threads)", r"thread \(\d+\): argon2"),
    ("background: reset-request worker", r"process_requests \(relatch/services/reset\.py"),
    ("background: mail worker", r"deliver_due \(relatch/mail/worker\.py"),
    ("background: other upkeep", r"relatch/workers\.py"),
    ("access log (uvicorn.access)", r"h11_impl\.py[^;]*;.*logging/"),
    ("other log lines", r"logging/__init__\.py"),
    ("use case: rate limits (own write transaction)", r"SqlLimitStore\.acquire"),
    ("use case: known-client read", r"find \(relatch/services/known_clients\.py"),
    ("use case: BEGIN IMMEDIATE + turn", r"_on_begin|_turn \(relatch/storage/sqlite_writes"),
    ("use case: COMMIT", r"SessionTransaction\.commit|Connection\.commit"),
    ("use case: audit row (build + flush)", r"(add|Trail\.write) \(relatch/services/audit\.py"),
    ("use case: ORM flush (INSERT)", r"Session\.flush|Session\._autoflush"),
    ("use case: other (session, identity, keyed digests)", r"request_reset \(relatch/services"),
    ("thread hop (anyio to_thread, both sides)", r"anyio/(to_thread|_backends/_asyncio)\.py"),
    ("request body: pydantic + JSON", r"pydantic|_get_body|json/"),
    ("middleware + routing (Starlette/FastAPI)", r"starlette/|fastapi/|relatch/http/"),
    ("HTTP protocol (h11, uvicorn)", r"h11|uvicorn/protocols"),
    ("event loop (asyncio, selectors)", r"asyncio/|selectors"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(workdir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELATCH_")}
    env.update(
        RELATCH_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        RELATCH_SECRET_KEY="bench-" + "k" * 40,
        RELATCH_MAIL_DIR=str(workdir / "mail"),
        RELATCH_LIMIT_RESET_PER_ADDRESS=HIGH,
        RELATCH_LIMIT_RESET_PER_IP=HIGH,
        RELATCH_LIMIT_RESET_PER_KNOWN_CLIENT=HIGH,
        RELATCH_LIMIT_SIGNUP_PER_IP=HIGH,
    )
    env.update(extra)
    return env


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") else argv


def start(
    workdir: Path, extra: dict[str, str], relatch: Path = VENV_BIN / "relatch"
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        pinned(0, [str(relatch), "serve", "--port", str(port)]),
        env=server_env(workdir, extra),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def make_account(base: str) -> None:
    made = httpx.post(
        f"{base}/v1/api-user-create",
        json={
            "name": "Bench",
            "username": "exist",
            "email": EXISTING,
            "privacyPolicy": True,
            "password": "quiet harbour lantern",
        },
    )
    assert made.json()["success"], made.text


def load(
    base: str,
    address: str,
    seconds: float,
    connections: int = 32,
    *,
    latency: bool = False,
    path: str = PATH,
) -> subprocess.Popen[bytes]:
    """c=`connections` on CPU 1 for `seconds`: wrk if installed, else httpx (slower client).
    `path` other than the reset request: a GET of it (the no-op ceiling, /healthz)."""
    if path != PATH:
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", base + path]
        return subprocess.Popen(pinned(1, argv), stdout=subprocess.PIPE)
    if shutil.which("wrk"):
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.body = \'{{"email":"{address}"}}\'\n'
        )
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), base + PATH]
        if latency:
            argv.insert(1, "--latency")
    else:
        argv = [sys.executable, __file__, "--client", base, address, str(seconds)]
    return subprocess.Popen(pinned(1, argv), stdout=subprocess.PIPE)


async def httpx_client(base: str, address: str, seconds: float, connections: int = 32) -> None:
    done = 0
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base) as client:

        async def one() -> None:
            nonlocal done
            while time.monotonic() < end:
                await client.post(PATH, json={"email": address})
                done += 1

        await asyncio.gather(*(one() for _ in range(connections)))
    print(f"Requests/sec: {done / seconds:.1f}")


def summarise(raw: Path) -> list[tuple[str, float]]:
    """py-spy's collapsed stacks -> share of samples per category, largest first."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for name, pattern in CATEGORIES:
            if re.search(pattern, stack):
                counts[name] += int(n)
                break
        else:
            counts["other"] += int(n)
    return [(name, 100 * n / max(total, 1)) for name, n in counts.most_common()]


def profile_service(workdir: Path, address: str, n: int) -> None:
    """pyinstrument's tree of services.reset_requests.request_reset alone, on the server's
    database."""
    from pyinstrument import Profiler

    from relatch.app import build
    from relatch.core.meta import RequestMeta
    from relatch.services import reset_requests
    from relatch.settings import Settings

    os.environ.update(server_env(workdir, {}))
    svc = build(Settings(_env_file=None))  # type: ignore[call-arg]
    meta = RequestMeta(client_ip="127.0.0.1", request_id="profile")
    for _ in range(50):
        reset_requests.request_reset(svc, address, meta)
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(n):
        reset_requests.request_reset(svc, address, meta)
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


def service_cpu(workdir: Path, address: str, calls: int = 500, runs: int = 7) -> None:
    """CPU per call of services.reset_requests.request_reset alone, no server and no profiler:
    the best of `runs` runs of `calls` calls, on a fresh migrated database."""
    from relatch.app import build
    from relatch.core.meta import RequestMeta
    from relatch.services import reset_requests
    from relatch.settings import Settings
    from relatch.storage import migrate
    from relatch.storage.db import make_engine

    os.environ.update(server_env(workdir, {}))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    svc = build(settings)
    meta = RequestMeta(client_ip="127.0.0.1", user_agent="wrk", request_id="0123456789abcdef")
    for _ in range(300):
        reset_requests.request_reset(svc, address, meta)
    best = float("inf")
    for _ in range(runs):
        began = time.process_time()
        for _ in range(calls):
            reset_requests.request_reset(svc, address, meta)
        best = min(best, (time.process_time() - began) / calls)
    print(f"request_reset alone: {best * 1e6:.0f} us of CPU per call (best of {runs} x {calls})")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (/proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_figures(out: str) -> dict[str, float]:
    """Requests/s and the p50/p99 (ms) of wrk's `--latency` output."""

    def ms(text: str) -> float:
        value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    found = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": ms(re.search(r"50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": ms(re.search(r"99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "errors": float(sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))),
    }
    return found


def throughput(
    builds: list[Path],
    runs: int,
    seconds: float,
    path: str = PATH,
    extra: dict[str, str] | None = None,
) -> None:
    """Interleaved runs (build A, build B, A, B...), each a fresh server: 3 s of warm-up,
    then `seconds` of wrk -t1 -c32 --latency from CPU 1; the server's CPU per request from
    /proc/PID/stat. Prints each run and the medians per build and address."""
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    addresses = ["unknown", "existing"] if path == PATH else ["-"]
    for run in range(runs):
        for build in builds:
            for name in addresses:
                address = EXISTING if name == "existing" else UNKNOWN
                with tempfile.TemporaryDirectory() as tmp:
                    proc, base = start(Path(tmp), extra or {}, build)
                    try:
                        make_account(base)
                        load(base, address, 3, path=path).communicate()
                        before = cpu_seconds(proc.pid)
                        out = load(base, address, seconds, latency=True, path=path)
                        text = out.communicate()[0].decode()
                        used = cpu_seconds(proc.pid) - before
                    finally:
                        proc.terminate()
                        proc.wait(timeout=15)
                fig = wrk_figures(text)
                fig["cpu_ms"] = 1e3 * used / max(fig["requests"], 1)
                results.setdefault((str(build), name), []).append(fig)
                print(
                    f"run {run + 1} {build} {name}: {fig['rps']:.0f}/s p50 {fig['p50']:.1f} ms "
                    f"p99 {fig['p99']:.1f} ms cpu {fig['cpu_ms']:.3f} ms/req "
                    f"non-2xx {fig['errors']:.0f}",
                    flush=True,
                )
    print("medians [min-max]:")
    for (build, name), figs in results.items():

        def cell(key: str, figs: list[dict[str, float]] = figs) -> str:
            xs = sorted(f[key] for f in figs)
            return f"{xs[len(xs) // 2]:.3g} [{xs[0]:.3g}-{xs[-1]:.3g}]"

        print(
            f"  {build} {name}: {cell('rps')} requests/s, p99 {cell('p99')} ms, "
            f"CPU {cell('cpu_ms')} ms/request"
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        asyncio.run(httpx_client(sys.argv[2], sys.argv[3], float(sys.argv[4])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", choices=["unknown", "existing"], default="unknown")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--pyinstrument", type=int, default=0, help="also N service calls")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    ap.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks in this file")
    ap.add_argument("--relatch", type=Path, default=VENV_BIN / "relatch", help="another build")
    ap.add_argument(
        "--throughput",
        type=int,
        default=0,
        metavar="RUNS",
        help="no profile: RUNS interleaved wrk runs of each --compare build, both addresses",
    )
    ap.add_argument(
        "--compare", type=Path, action="append", default=[], help="a build for --throughput"
    )
    ap.add_argument("--healthz", action="store_true", help="--throughput of GET /healthz")
    ap.add_argument("--service-cpu", action="store_true", help="only the use case's CPU/call")
    args = ap.parse_args()
    address = EXISTING if args.address == "existing" else UNKNOWN
    extra = dict(e.split("=", 1) for e in args.env)
    if args.throughput:
        builds = [b.absolute() for b in args.compare or [args.relatch]]
        path = "/healthz" if args.healthz else PATH
        throughput(builds, args.throughput, args.seconds, path, extra)
        return
    if args.service_cpu:
        with tempfile.TemporaryDirectory() as tmp:
            service_cpu(Path(tmp), address)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, base = start(workdir, extra, args.relatch)
        try:
            make_account(base)
            warm = load(base, address, 2)
            warm.communicate()
            client = load(base, address, args.seconds + 2)
            time.sleep(1)
            raw = workdir / "profile.txt"
            spy = [str(VENV_BIN / "py-spy"), "record", "--pid", str(proc.pid), "--gil"]
            spy += ["--rate", str(args.rate), "--duration", str(int(args.seconds))]
            spy += ["--format", "raw", "--output", str(raw), "--nonblocking"]
            subprocess.run(pinned(1, spy), check=True, capture_output=True)
            out, _ = client.communicate()
            print(out.decode())
            print(f"py-spy --gil, {args.seconds:g} s at c=32, {args.address} address:")
            for name, share in summarise(raw):
                print(f"  {share:5.1f} %  {name}")
            if args.raw:
                shutil.copy(raw, args.raw)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        if args.pyinstrument:
            profile_service(workdir, address, args.pyinstrument)


if __name__ == "__main__":
    main()
