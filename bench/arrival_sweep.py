"""Arrival rate against one generator core: what is delivered, dropped and lost (not a test).

For each target rate R, ``loadkit run scheduling --rate R --no-baseline -t D`` runs against
Debian's nginx on loopback (nginx answers ``POST /api/calls`` with the 201 the scenario
checks), the generator pinned to CPU 0 and nginx to CPU 1 with ``taskset``. Per run:

* **delivered**: nginx's count of ``POST /api/calls`` in the steady window (``--warmup-s`` after
  the first to 1 s before the last), per second, and how far that is from R;
* **started / dropped**: the kit's own summary line (``N iterations started, M dropped``);
* **never sent**: iterations counted as started minus the POSTs nginx logged over the whole run
  (an iteration is either sent or dropped; anything else is lost);
* **P50 / P95** of the ``INTENDED`` row (latency from each iteration's intended start, so the
  generator's own lateness shows) from Locust's stats CSV;
* generator CPU (whole process tree, steady window), peak RSS of the tree, wall time, exit code.

Rates are run in interleaved repeats (each repeat sweeps every rate once), medians shown.

Run (about 2 minutes with the defaults)::

    .venv/bin/python bench/arrival_sweep.py
    .venv/bin/python bench/arrival_sweep.py --rates 3500,7000 --repeats 3 --duration-s 20
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import secrets
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nginx_target import nginx_target, pinned
from per_core import GENERATOR_CPU, SERVER_CPU, generator_env
from process_tree import run_tree

SUMMARY_RE = re.compile(r"(\d+) iterations started, (\d+) dropped")


@dataclass(frozen=True)
class SweepRun:
    target_per_s: float
    delivered_per_s: float
    started: int
    dropped: int
    sent: int
    p50_ms: float
    p95_ms: float
    cpu_share: float
    peak_rss_mb: float
    wall_s: float
    exit_code: int

    @property
    def cpu_us_per_iteration(self) -> float:
        """Generator CPU per delivered iteration in the steady window."""
        return self.cpu_share / self.delivered_per_s * 1e6 if self.delivered_per_s else math.nan

    @property
    def never_sent(self) -> int:
        return self.started - self.sent


def intended_percentiles(results: Path) -> tuple[float, float]:
    """(P50, P95) ms of the INTENDED row of the run's ``stats_stats.csv`` (nan if missing)."""
    for path in results.glob("*/stats_stats.csv"):
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["Type"] == "INTENDED":
                    return float(row["50%"]), float(row["95%"])
    return float("nan"), float("nan")


def run_rate(rate: float, args: argparse.Namespace, target, work: Path, key: str) -> SweepRun:
    offset = target.log_offset()
    results = Path(tempfile.mkdtemp(prefix=f"rate-{rate:g}-", dir=work))
    command = [
        sys.executable,
        "-m",
        "loadkit.cli",
        "run",
        "scheduling",
        "--rate",
        f"{rate:g}",
        "--no-baseline",
        "-t",
        f"{args.duration_s:g}s",
        "--api-url",
        target.url,
        "--results",
        str(results),
        *args.extra,
    ]
    log = results / "console.log"
    run = run_tree(
        pinned(command, GENERATOR_CPU if args.pin else None),
        env=generator_env(key),
        cwd=str(work),
        stdout_path=str(log),
        timeout_s=args.duration_s + 180,
    )
    target.flush()
    posts = [line for line in target.lines_since(offset) if line.method == "POST"]
    match = SUMMARY_RE.search(log.read_text(errors="replace"))
    started, dropped = (int(match[1]), int(match[2])) if match else (-1, -1)
    if not posts:
        # The folder is deleted on the way out, so say what loadkit said (e.g. a safety limit:
        # rates above 10,000/s per process need `-- --exceed-limits`).
        last = (log.read_text(errors="replace").strip().splitlines() or ["<no output>"])[-1]
        raise RuntimeError(
            f"nginx logged no POST for rate {rate:g} (loadkit exited {run.exit_code}: {last})"
        )
    start_s, end_s = posts[0].at_s + args.warmup_s, posts[-1].at_s - 1.0
    in_window = sum(1 for line in posts if start_s <= line.at_s < end_s)
    window_s = max(end_s - start_s, 1e-9)
    p50_ms, p95_ms = intended_percentiles(results)
    return SweepRun(
        target_per_s=rate,
        delivered_per_s=in_window / window_s,
        started=started,
        dropped=dropped,
        sent=len(posts),
        p50_ms=p50_ms,
        p95_ms=p95_ms,
        cpu_share=run.cpu_between(start_s, end_s) / window_s,
        peak_rss_mb=run.peak_rss_bytes() / 2**20,
        wall_s=run.wall_s,
        exit_code=run.exit_code,
    )


def print_table(runs: dict[float, list[SweepRun]], args: argparse.Namespace) -> None:
    pin = "generator on CPU 0, nginx on CPU 1" if args.pin else "not pinned"
    print(
        f"\nloadkit run scheduling --rate R --no-baseline -t {args.duration_s:g}s against nginx, "
        f"{pin}; {args.repeats} interleaved repeat(s), medians; delivered = nginx's count in "
        f"the steady window. Load average {args.load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after ({os.cpu_count()} cores, shared).\n"
    )
    print(
        "| target | delivered (nginx) | vs target | started | dropped | never sent "
        "| INTENDED P50 / P95 | generator CPU | CPU µs/iteration | peak RSS MB | wall s | exit |"
    )
    print("|---" * 12 + "|")
    for rate, sweep in runs.items():

        def med(attr: str, sweep: list[SweepRun] = sweep) -> float:
            return statistics.median(getattr(r, attr) for r in sweep)

        delivered = [r.delivered_per_s for r in sweep]
        spread = f" ({min(delivered):,.0f}-{max(delivered):,.0f})" if len(sweep) > 1 else ""
        print(
            f"| {rate:,.0f}/s | {med('delivered_per_s'):,.0f}/s{spread} "
            f"| {med('delivered_per_s') / rate - 1:+.1%} | {med('started'):,.0f} "
            f"| {med('dropped'):,.0f} | {med('never_sent'):,.0f} "
            f"| {med('p50_ms'):g} / {med('p95_ms'):g} ms | {med('cpu_share'):.0%} "
            f"| {med('cpu_us_per_iteration'):.0f} "
            f"| {med('peak_rss_mb'):,.0f} | {med('wall_s'):.1f} "
            f"| {','.join(sorted({str(r.exit_code) for r in sweep}))} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="50,500,2000,3500,5000,7000", help="per second, comma separated"
    )
    parser.add_argument("--duration-s", type=float, default=20.0, help="each run's --run-time")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="unmeasured start of a run")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved sweeps")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="don't use taskset")
    parser.add_argument("extra", nargs="*", help="more `loadkit run` arguments (after --)")
    args = parser.parse_args(argv)
    rates = [float(text) for text in args.rates.split(",") if text.strip()]
    args.load_before = os.getloadavg()[0]
    key = secrets.token_urlsafe(24)
    runs: dict[float, list[SweepRun]] = {rate: [] for rate in rates}
    with (
        tempfile.TemporaryDirectory(prefix="loadkit-arrival-") as tmp,
        nginx_target(SERVER_CPU if args.pin else None) as target,
    ):
        for repeat in range(args.repeats):
            for rate in rates:
                result = run_rate(rate, args, target, Path(tmp), key)
                runs[rate].append(result)
                print(
                    f"sweep {repeat + 1}/{args.repeats} {rate:>7,.0f}/s: delivered "
                    f"{result.delivered_per_s:,.0f}/s, started {result.started}, dropped "
                    f"{result.dropped}, never sent {result.never_sent}, CPU "
                    f"{result.cpu_share:.0%}, RSS {result.peak_rss_mb:.0f} MB, wall "
                    f"{result.wall_s:.1f} s, exit {result.exit_code}",
                    flush=True,
                )
    print_table(runs, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
