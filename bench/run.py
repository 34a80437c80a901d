"""`make bench`: Relatch against the bound (argon2id on one core) and a peer
(fastapi-users 15), side by side, in one run; writes bench/RESULTS.md and
bench/latency.png (issue 12's table). BENCH_QUICK=1: a ~3-minute subset (one
repetition, short loads, concurrency 32 only; no PostgreSQL column, no c=128, no no-op
ceiling, no --workers 2 or peer RSS, no 1 M accounts).

Run from the bench environment (.venv-bench, Makefile `bench`), which holds the peer,
matplotlib, scipy and psutil; Relatch itself runs from the project's .venv as shipped.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, report, rows, servers
from bench.report import Row, verdict
from bench.rows import Fig

QUICK = rows.QUICK
LEVELS = [1, 32, 64]
PEER_PARAMS = (65536, 3, 4)  # argon2-cffi's defaults, which pwdlib's Argon2Hasher uses
ONE_MILLION = int(os.environ.get("BENCH_ACCOUNTS", "1000000"))


@dataclass
class Side:
    """What one server measured (None: not measured on that side)."""

    noop_wrk: Fig | None = None
    noop_py: Fig | None = None
    rr_unknown: tuple[Fig, Fig, Fig] | None = None
    rr_existing: tuple[Fig, Fig, Fig] | None = None
    login: tuple[dict[int, Fig], dict[int, Fig]] | None = None
    reset: tuple[dict[int, Fig], dict[int, Fig]] | None = None
    cheap: tuple[Fig, Fig, Fig] | None = None
    overload: tuple[Fig, Fig, Fig, Fig, Fig] | None = None
    timing: tuple[Fig, list[float]] | None = None
    mail_outbox: Fig | None = None
    worker: tuple[Fig, Fig] | None = None  # drain rate, pickup
    login_curve: rows.Curve = field(default_factory=rows.Curve)
    reset_curve: rows.Curve = field(default_factory=rows.Curve)


Prepare = Callable[[int], list[tuple[str, str]]]


def relatch_prepare(server: servers.Server) -> Prepare:
    engine = servers.engine_of(server)
    batch = itertools.count()

    def prepare(n: int) -> list[tuple[str, str]]:
        emails = servers.add_accounts(engine, f"r{next(batch)}x", n)
        made = servers.add_codes(engine, emails)
        return [(e, made[e]) for e in emails]

    return prepare


def peer_prepare(server: servers.Server, hashed: str) -> Prepare:
    batch = itertools.count()

    def prepare(n: int) -> list[tuple[str, str]]:
        made = servers.peer_accounts(server, f"r{next(batch)}x", n, hashed)
        tokens = servers.peer_tokens([uid for uid, _ in made], hashed)
        return [(email, tok) for (_, email), tok in zip(made, tokens, strict=True)]

    return prepare


def measure(
    server: servers.Server,
    prepare: Prepare,
    use_wrk: bool,
    reset_bound: float,
    verify_bound: float,
    *,
    full: bool,
) -> Side:
    side = Side()
    probe_email, existing = "u1001@example.com", "u1002@example.com"

    def step(what: str) -> None:
        print(f"  [{server.name}] {what}", flush=True)

    if full:
        step("no-op ceiling")
        side.noop_wrk, side.noop_py = rows.noop(server, use_wrk)
        if not use_wrk:
            side.noop_wrk = None
    step("requestResetPassword c=32")
    side.rr_unknown = rows.request_reset(server, "nobody-here@example.com", use_wrk)
    side.rr_existing = rows.request_reset(server, existing, use_wrk)
    levels = LEVELS if full else [32]
    step(f"login c={levels}")
    side.login = rows.logins(server, levels, side.login_curve, verify_bound)
    step(f"resetPassword c={levels}")
    side.reset = rows.resets(server, levels, reset_bound, side.reset_curve, prepare)
    step("cheap requests while logins saturate hashing")
    side.cheap = rows.cheap_under_load(server, probe_email)
    if full:
        step("logins at c=128")
        side.overload = rows.overload(server, verify_bound)
        for value in side.overload[2].values:
            side.login_curve.p50.setdefault(128, []).append(value)
    if server.name == "relatch":
        step("verify timing")
        side.timing = rows.verify_timing(server, prepare)
        step("mail to the dev outbox")
        side.mail_outbox = rows.mail_to_outbox(server)
        step("reset-request worker")
        engine = servers.engine_of(server)
        workers_accounts = servers.add_accounts(engine, "wk", rows.BACKLOG)
        engine.dispose()
        side.worker = rows.worker_decisions(server, workers_accounts)
    return side


def share(rates: dict[int, Fig], bound: float) -> dict[int, Fig]:
    return {c: Fig([100 * v / bound for v in f.values], " %") for c, f in rates.items()}


def joined(parts: list[str]) -> str:
    return " / ".join(parts)


def _stop_on_sigterm(_sig: int, _frame: object) -> None:
    raise SystemExit(143)  # unwinds the `with` blocks: the servers started are stopped


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.perf_counter()
    machine = servers.machine()  # the load average before the bench adds any
    load.pin_self_to_client_cpu()
    notes: list[str] = []
    wrk_note = load.ensure_wrk()
    use_wrk = wrk_note is None
    if wrk_note:
        notes.append(wrk_note)
    tmp = Path(tempfile.mkdtemp(prefix="relatch-bench-"))
    print(f"bench ({'quick' if QUICK else 'full'}), work folder {tmp}", flush=True)
    try:
        params = servers.relatch_params()
        print("argon2id bound, one core", flush=True)
        r_hash, r_verify = rows.bound(params.memory_kib, params.time_cost, params.parallelism)
        p_hash, p_verify = rows.bound(*PEER_PARAMS)
        r_reset_bound = 1 / (1 / r_hash.median + 1 / r_verify.median)
        p_reset_bound = 1 / (1 / p_hash.median + 1 / p_verify.median)

        print("Relatch, SQLite", flush=True)
        with servers.relatch(tmp / "sqlite") as server:
            engine = servers.engine_of(server)
            servers.add_accounts(engine, "u", 1003)
            engine.dispose()
            rl = measure(
                server,
                relatch_prepare(server),
                use_wrk,
                r_reset_bound,
                r_verify.median,
                full=not QUICK,
            )

        print("peer (fastapi-users), SQLite", flush=True)
        with servers.peer(tmp / "peer") as server:
            hashed = servers.peer_hash()
            servers.peer_accounts(server, "u", 1003, hashed)
            pr = measure(
                server,
                peer_prepare(server, hashed),
                use_wrk,
                p_reset_bound,
                p_verify.median,
                full=not QUICK,
            )

        print("Relatch, PostgreSQL", flush=True)
        pg: Side | None = None
        pg_mail: Fig | None = None
        with servers.postgres_database() as pg_url:
            if QUICK:
                notes.append("BENCH_QUICK=1: the PostgreSQL column is not measured")
            elif pg_url is None:
                notes.append(f"PostgreSQL was not reachable at {servers.PG_ADMIN}: no PG column")
            else:
                with servers.relatch(tmp / "pg", pg_url) as server:
                    engine = servers.engine_of(server)
                    servers.add_accounts(engine, "u", 1003)
                    engine.dispose()
                    prep = relatch_prepare(server)
                    pg = measure(server, prep, use_wrk, r_reset_bound, r_verify.median, full=False)
                    pg_mail = pg.mail_outbox

        print("mail to a local SMTP server", flush=True)
        smtp = rows.mail_to_smtp(tmp / "smtp")

        print("peak RSS, 1,000 concurrent resets", flush=True)
        rss: dict[str, tuple[float, float, load.Load]] = {}
        for workers in (1,) if QUICK else (1, 2):
            with servers.relatch(tmp / f"rss{workers}", workers=workers) as server:
                pairs = relatch_prepare(server)(1000)
                rss[f"relatch{workers}"] = rows.peak_rss(server, pairs)
        if not QUICK:
            with servers.peer(tmp / "peer-rss") as server:
                hashed = servers.peer_hash()
                pairs = peer_prepare(server, hashed)(1000)
                rss["peer"] = rows.peak_rss(server, pairs, window=4 * rows.SECONDS)

        scale: tuple[list[Fig], list[Fig]] | None = None
        if not QUICK:
            print(f"latency at 1 k and {ONE_MILLION:,} accounts", flush=True)
            with servers.relatch(tmp / "scale") as server:
                engine = servers.engine_of(server)
                servers.add_accounts(engine, "u", 1003)
                small = rows.latencies_at_scale(server, "u0@example.com", "u1@example.com")
                t0 = time.perf_counter()
                servers.add_accounts(engine, "m", ONE_MILLION - 1000)
                servers.analyze(engine)
                engine.dispose()
                print(f"  inserted in {time.perf_counter() - t0:.0f} s", flush=True)
                large = rows.latencies_at_scale(server, "u0@example.com", "u1@example.com")
                scale = (small, large)

        # --- rows ------------------------------------------------------------------
        table: list[Row] = []
        serve = "`taskset -c 0 .venv/bin/relatch serve` (peer: `taskset -c 0 uvicorn app:app`)"
        gen = "wrk -t1 -c32" if use_wrk else "Python client (httpx, asyncio), 32 clients"
        if rl.noop_py is not None and pr.noop_py is not None:
            table.append(
                Row(
                    "no-op ceiling (GET /healthz, c=32): wrk / Python client",
                    joined([str(rl.noop_wrk or "n/a"), str(rl.noop_py)]),
                    "",
                    joined([str(pr.noop_wrk or "n/a"), str(pr.noop_py)]),
                    "",
                    "(the load generators' own ceiling)",
                    "-",
                    f"`taskset -c 1 wrk -t1 -c32 -d{rows.SECONDS:.0f}s URL/healthz`; the Python "
                    "client: bench/load.py run_async, 32 clients",
                )
            )
        table.append(
            Row(
                "argon2id, one core: hash / verify",
                f"m={params.memory_kib} KiB t={params.time_cost} p={params.parallelism}",
                "",
                f"m={PEER_PARAMS[0]} KiB t={PEER_PARAMS[1]} p={PEER_PARAMS[2]}: "
                f"{p_hash} / {p_verify}",
                f"{r_hash} / {r_verify}",
                "the bound",
                "-",
                "`taskset -c 0 python -m bench.bound M T P SECONDS` (argon2-cffi, one thread)",
            )
        )

        def rr_text(side: Side | None) -> tuple[str, bool | None]:
            if side is None or side.rr_unknown is None or side.rr_existing is None:
                return "n/a", None
            parts, ok = [], True
            for label, (rate, p99, errs) in (
                ("unknown", side.rr_unknown),
                ("existing", side.rr_existing),
            ):
                parts.append(f"{label} {rate}, p99 {p99}, errors {errs}")
                ok = ok and rate.median >= 1000 and p99.median <= 50 and errs.median == 0
            return "; ".join(parts), ok

        rr_r, rr_ok = rr_text(rl)
        rr_pg, rr_pg_ok = rr_text(pg)
        rr_p, _ = rr_text(pr)
        table.append(
            Row(
                "requestResetPassword c=32, unknown / existing address",
                rr_r,
                rr_pg,
                rr_p,
                "",
                ">= 1,000/s each, p99 <= 50 ms",
                verdict(rr_ok and rr_pg_ok is not False, "throughput and p99: see figures"),
                f"{gen} -d{rows.SECONDS:.0f}s, POST /v1/api-user-request-reset-password "
                '{"email": ...} (peer: POST /auth/forgot-password); server ' + serve,
            )
        )

        def shares(
            got: tuple[dict[int, Fig], dict[int, Fig]] | None, bound: float
        ) -> tuple[str, bool | None]:
            if got is None:
                return "n/a", None
            rates, errs = got
            sh = share(rates, bound)
            text = joined([f"c={c}: {sh[c]}" for c in sorted(sh)])
            text += f"; errors {joined([str(errs[c]) for c in sorted(errs)])}"
            ok = all(f.median >= 95 for f in sh.values()) and all(
                e.median == 0 for e in errs.values()
            )
            return text, ok

        lg_r, lg_ok = shares(rl.login, r_verify.median)
        lg_pg, lg_pg_ok = shares(pg.login if pg else None, r_verify.median)
        lg_p, _ = shares(pr.login, p_verify.median)
        table.append(
            Row(
                "login c=1 / 32 / 64, share of the verify bound",
                lg_r,
                lg_pg,
                lg_p + " (of its own bound)",
                f"{r_verify} (peer {p_verify})",
                ">= 95 % at every concurrency, 0 errors",
                verdict(lg_ok and lg_pg_ok is not False),
                f"Python client, c clients in a closed loop for {rows.SECONDS:.0f}s, POST "
                "/v1/api-login (peer: POST /auth/jwt/login, form); successful sign-ins/s "
                "divided by the verify bound",
            )
        )
        rs_r, rs_ok = shares(rl.reset, r_reset_bound)
        rs_pg, rs_pg_ok = shares(pg.reset if pg else None, r_reset_bound)
        rs_p, _ = shares(pr.reset, p_reset_bound)
        table.append(
            Row(
                "resetPassword c=1 / 32 / 64, share of 1 verify + 1 hash",
                rs_r,
                rs_pg,
                rs_p + " (of its own bound)",
                f"{r_reset_bound:.1f}/s (peer {p_reset_bound:.1f}/s)",
                ">= 95 %, 0 errors",
                verdict(rs_ok and rs_pg_ok is not False),
                "Python client, each request a fresh account with a live code written into "
                "the database with the server's key (peer: a reset token made as its "
                "forgot_password makes it), POST /v1/api-user-reset-password (peer: POST "
                "/auth/reset-password)",
            )
        )

        def cheap_text(side: Side | None) -> tuple[str, bool | None]:
            if side is None or side.cheap is None:
                return "n/a", None
            rr, me, rate = side.cheap
            ok = rr.median <= 20 and me.median <= 20
            return f"requestResetPassword p90 {rr}; getCurrentUser p90 {me} (logins {rate})", ok

        ch_r, ch_ok = cheap_text(rl)
        ch_pg, ch_pg_ok = cheap_text(pg)
        ch_p, _ = cheap_text(pr)
        table.append(
            Row(
                "a cheap request's latency while logins saturate hashing (c=64)",
                ch_r,
                ch_pg,
                ch_p,
                "",
                "p90 <= 20 ms",
                verdict(ch_ok and ch_pg_ok is not False),
                "64 Python clients logging in for the whole window; meanwhile one "
                "requestResetPassword and one getCurrentUser (x-jwt-token; peer: GET "
                "/users/me, Bearer) at a time, 20 ms apart, each timed",
            )
        )

        def overload_text(side: Side) -> tuple[str, bool | None]:
            if side.overload is None:
                return "n/a", None
            n429, ra, p50, p99, ok200 = side.overload
            return (
                f"{ok200} answered 200; {n429} refused with 429 ({ra} with Retry-After); "
                f"admitted p50 {p50}, p99 {p99}",
                n429.median > 0
                and ra.median == n429.median
                and p99.median <= 2 * 1000 / r_verify.median,
            )

        ov_r, ov_ok = overload_text(rl)
        ov_p, _ = overload_text(pr)
        table.append(
            Row(
                "logins at c=128",
                ov_r,
                "",
                ov_p,
                f"one verify {1000 / r_verify.median:.0f} ms",
                "excess refused at once with 429 + Retry-After; admitted ones within 2x "
                "their hash time (p99)",
                verdict(ov_ok),
                f"Python client, 128 clients logging in for {rows.SECONDS:.0f}s",
            )
        )

        def timing_text(side: Side | None) -> tuple[str, bool | None]:
            if side is None or side.timing is None:
                return "n/a", None
            diff, ps = side.timing
            ok = abs(diff.median) <= 0.2 and all(p > 0.05 for p in ps)
            pt = ", ".join(f"{p:.3g}" for p in ps)
            return f"{'+' if diff.median >= 0 else ''}{diff}, KS p {pt}", ok

        tm_r, tm_ok = timing_text(rl)
        tm_pg, tm_pg_ok = timing_text(pg)
        table.append(
            Row(
                "verify with a wrong code, existing address (live code) vs unknown: "
                "difference of medians, KS p per run",
                tm_r,
                tm_pg,
                "n/a (no code to verify)",
                "",
                "<= 0.2 ms and KS p > 0.05",
                verdict(tm_ok and tm_pg_ok is not False),
                f"{rows.TIMING_SAMPLES} wrong codes each, interleaved, one at a time, POST "
                "/v1/api-user-verify-reset-password-code; scipy.stats.ks_2samp",
            )
        )
        outbox = rl.mail_outbox or Fig()
        mail_ok = smtp.median >= 300 and outbox.median >= 300
        table.append(
            Row(
                "mail delivery of a 1,000-mail backlog: local SMTP server / dev outbox",
                f"{smtp} / {outbox}",
                f"outbox {pg_mail or 'n/a'}",
                "n/a (sends no mail itself)",
                "",
                ">= 300 mails/s to each",
                verdict(mail_ok and (pg_mail is None or pg_mail.median >= 300)),
                "1,000 outbox rows inserted in one transaction while the server runs; "
                "time until the aiosmtpd server (RELATCH_SMTP_URL) has them all / until "
                "1,000 new .eml files are in RELATCH_MAIL_DIR",
            )
        )
        wk, wk_pickup = rl.worker or (Fig(), Fig())
        wk_pg = pg.worker if pg else None

        def drained(rate: Fig, picked: Fig) -> str:
            return f"{rate} (first decisions seen after {picked}: the poll)"

        table.append(
            Row(
                "reset-request worker: decisions/s draining a backlog",
                drained(wk, wk_pickup),
                drained(*wk_pg) if wk_pg else "n/a",
                "n/a (no queue)",
                "",
                ">= 1,000/s",
                verdict(wk.median >= 1000 and (wk_pg is None or wk_pg[0].median >= 1000)),
                "1,000 recorded reset requests (500 for accounts, 500 unknown) inserted at "
                "once while the server runs; the decisions after the first ones seen, over "
                "the time from then until none is left (the worker polls every 0.5 s and is "
                "not woken by a request: the pickup is shown apart)",
            )
        )

        def rss_text(key: str) -> str:
            if key not in rss:
                return "n/a (BENCH_QUICK=1)"
            mb, tree, got = rss[key]
            st = ", ".join(f"{n} x {s}" for s, n in sorted(got.statuses.items()))
            return f"{mb:.0f} MB (all processes: PSS {tree:.0f} MB; {st or 'no answer'})"

        rss_ok = all(rss[k][0] <= 256 for k in ("relatch1", "relatch2") if k in rss)
        table.append(
            Row(
                "peak RSS, 1,000 concurrent resets: one process / --workers 2",
                f"{rss_text('relatch1')} / {rss_text('relatch2')}",
                "",
                f"{rss_text('peer')}, over {4 * rows.SECONDS:.0f} s",
                "",
                "<= 256 MB, also with --workers 2",
                verdict(rss_ok),
                "1,000 resets with valid codes sent at once (1,000 connections); the "
                "largest RSS of one server process, and the PSS summed over the process "
                "tree (psutil, /proc/PID/smaps_rollup), sampled every 20 ms",
            )
        )
        if scale is not None:
            small, large = scale
            names = ["login", "getCurrentUser", "requestResetPassword", "verify (unknown)"]
            parts, ok = [], True
            for name, a, b in zip(names, small, large, strict=True):
                parts.append(f"{name} {a} -> {b}")
                ok = ok and b.median <= 1.1 * a.median
            table.append(
                Row(
                    f"c=1 median latency, 1 k accounts -> {ONE_MILLION:,}",
                    "; ".join(parts),
                    "",
                    "",
                    "",
                    "within 10 %",
                    verdict(ok),
                    f"the same server, before and after {ONE_MILLION - 1000:,} accounts "
                    "inserted in bulk (one precomputed hash) and ANALYZE; 60 requests of "
                    "each, one at a time",
                )
            )
        elif QUICK:
            notes.append("BENCH_QUICK=1: the 1 M accounts row is not measured")
        notes.append(
            "The machine is shared (other work runs on it): the load average at start is "
            "in the machine table, and figures may be noisy."
        )
        notes.append(
            "The peer's reset and RSS rows use tokens the bench signs itself exactly as "
            "its forgot_password does (one fingerprint hash serves all accounts, since they "
            "share one stored hash); its forgot-password rows measure that hash per request."
        )

        report.write_results(table, machine, notes, QUICK, time.perf_counter() - started)
        curves = {
            "Relatch login p50": rl.login_curve.p50,
            "Relatch login p90": rl.login_curve.p90,
            "peer login p50": pr.login_curve.p50,
            "peer login p90": pr.login_curve.p90,
            "Relatch resetPassword p50": rl.reset_curve.p50,
            "peer resetPassword p50": pr.reset_curve.p50,
        }
        report.plot(curves)
        print((report.HERE / "RESULTS.md").read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
