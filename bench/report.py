"""bench/RESULTS.md and bench/latency.png from the measured rows."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Row:
    figure: str
    relatch: str
    postgres: str
    peer: str
    bound: str
    goal: str
    verdict: str  # "met", "missed (...)", or "-" where there is no goal
    command: str


def verdict(ok: bool | None, why: str = "") -> str:
    if ok is None:
        return "-"
    return "met" if ok else f"**missed**{f' ({why})' if why else ''}"


def write_results(
    rows: list[Row],
    machine: dict[str, str],
    notes: list[str],
    quick: bool,
    took: float,
    path: Path = HERE / "RESULTS.md",
) -> None:
    out: list[str] = ["# Benchmark results", ""]
    if quick:
        out += [
            "**`BENCH_QUICK=1` run**: one repetition, short loads, concurrency 32 only, "
            "SQLite only, no c=128 and no 1 M accounts. "
            "Figures are indicative only; `make bench` gives medians of 3.",
            "",
        ]
    out += [
        "Written by `make bench` (bench/run.py). Each server runs alone on CPU 0 "
        "(`taskset -c 0`), the load generators on CPU 1, production defaults (limits on, "
        "ceilings raised only where they would refuse the bench's own traffic from one "
        "address; metrics and access log as shipped). Figures: median of the repetitions "
        "[min-max]. Relatch runs on SQLite unless the PostgreSQL column says otherwise; "
        "the peer is fastapi-users 15 on SQLite (bench/peer/app.py), with its default "
        "argon2 parameters (pwdlib: argon2-cffi defaults), so its shares are of its own "
        "bound.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in machine.items()),
        f"| run time | {took / 60:.1f} min |",
        "",
        "![latency against concurrency](latency.png)",
        "",
        "| figure | Relatch | Relatch, PostgreSQL | peer | bound | goal | goal met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [r.figure, r.relatch, r.postgres, r.peer, r.bound, r.goal, r.verdict]
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    out += ["", "## Notes", ""]
    out += [f"- {n}" for n in notes]
    out += ["", "## The command behind each figure", ""]
    for r in rows:
        out.append(f"- **{r.figure}**: {r.command}")
    out.append("")
    path.write_text("\n".join(out))


def plot(
    curves: dict[str, dict[int, list[float]]],
    path: Path = HERE / "latency.png",
) -> None:
    """Latency (ms, log scale) against concurrency, one line per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in curves.items():
        kept = {x: [v for v in vs if not math.isnan(v)] for x, vs in points.items()}
        xs = sorted(x for x, vs in kept.items() if vs)
        if not xs:
            continue
        ys = [statistics.median(kept[x]) for x in xs]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 32, 64, 128], ["1", "32", "64", "128"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Latency against concurrency (one server core)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
