"""FastHttpUser or HttpUser, and what the kit adds per request: a benchmark, not a test.

The kit's users are ``FastHttpUser`` (``loadkit.plugin.user.PlatformUser``) because a load
generator's CPU per request sets how much load one core can drive. This measures that figure with
real Locust against the real reference platform on loopback, for three locustfiles doing the same
checked ``GET /health`` (X-API-Key header, connect/read timeouts, status and JSON body checked):

* ``kit``      -- the kit's ``locustfiles/health.py``: FastHttpUser plus the kit's plugin
  (settings, recorder, response checks, verdict), run the way ``loadkit run`` runs it;
* ``fasthttp`` -- a plain ``FastHttpUser`` file without the kit;
* ``http``     -- a plain ``HttpUser`` (requests) file without the kit;
* ``lean``     -- the same check on the kit's experimental lean client (``loadkit.leanclient``).

Each run is one Locust process (headless, fixed users, no wait time) for a bounded time. CPU comes
from ``/proc/<pid>/stat`` and requests from the platform's own counters, both sampled over a
window that starts after start-up and spawning and ends before shutdown, so imports and teardown
are not charged to requests. The machine has 2 cores and the platform takes one, so the request
rate is often the platform's limit: the generator's CPU per request is the figure that compares
the clients. Latency percentiles are Locust's, over the whole run.

Run: ``/work/venv/bin/python bench/client_choice.py`` (about a minute; ``--help`` for knobs)
"""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadkit.endpoints import HEALTH
from loadkit.platform.launcher import RunningPlatform, start_platform

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
HEALTH_KEY = f"GET {HEALTH}"
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0

# The same check as loadkit.workload.checks.expect_json(response, 200, equals={"status": "ok"}).
_CHECK = """
def check(response):
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}")
        return
    try:
        body = json.loads(response.text or "")
    except ValueError:
        response.failure("body is not JSON")
        return
    if not isinstance(body, dict) or body.get("status") != "ok":
        response.failure("unexpected body")
        return
    response.success()
"""

PLAIN_FASTHTTP = f'''"""Plain FastHttpUser: the kit's health check without the kit."""
import json
import os

from locust import FastHttpUser, constant, task


class PlainFastHealthUser(FastHttpUser):
    wait_time = constant(0)
    network_timeout = {REQUEST_TIMEOUT_S}
    connection_timeout = {CONNECT_TIMEOUT_S}

    def __init__(self, environment):
        self.default_headers = {{"X-API-Key": os.environ["API_KEY"]}}
        super().__init__(environment)

    @task
    def health(self):
        with self.client.get("{HEALTH}", catch_response=True) as response:
            check(response)
{_CHECK}'''

PLAIN_LEAN = f'''"""Plain LeanHttpUser (loadkit.leanclient): the kit's health check, lean."""
import json
import os

from locust import constant, task

from loadkit.leanclient import LeanHttpUser


class PlainLeanHealthUser(LeanHttpUser):
    wait_time = constant(0)
    network_timeout = {REQUEST_TIMEOUT_S}
    connection_timeout = {CONNECT_TIMEOUT_S}

    def __init__(self, environment):
        self.default_headers = {{"X-API-Key": os.environ["API_KEY"]}}
        super().__init__(environment)

    @task
    def health(self):
        with self.client.get("{HEALTH}", catch_response=True) as response:
            check(response)
{_CHECK}'''

PLAIN_HTTP = f'''"""Plain HttpUser (requests): the kit's health check without the kit."""
import json
import os

from locust import HttpUser, constant, task


class PlainHttpHealthUser(HttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.client.headers["X-API-Key"] = os.environ["API_KEY"]

    @task
    def health(self):
        with self.client.get(
            "{HEALTH}",
            timeout=({CONNECT_TIMEOUT_S}, {REQUEST_TIMEOUT_S}),
            catch_response=True,
        ) as response:
            check(response)
{_CHECK}'''


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    locustfile: Path
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    """Cumulative counters at one instant."""

    at_s: float
    generator_cpu_s: float
    platform_cpu_s: float
    served: int


@dataclass(frozen=True)
class Result:
    rps: float
    generator_us_per_request: float
    generator_cpu_share: float
    platform_us_per_request: float
    p50_ms: float
    p95_ms: float
    requests: int
    failures: int


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def sample(generator_pid: int, platform: RunningPlatform) -> Sample:
    served = int(platform.counters()["requests"].get(HEALTH_KEY, 0))
    return Sample(time.monotonic(), cpu_s(generator_pid), cpu_s(platform.process.pid), served)


def aggregated_row(csv_prefix: Path) -> dict[str, str]:
    with open(f"{csv_prefix}_stats.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    return rows[-1]


def child_env(platform: RunningPlatform, key: str, results_dir: Path) -> dict[str, str]:
    """The caller's environment minus anything that would aim the kit elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADKIT_") and k != "API_URL"}
    env.update(API_URL=platform.url, API_KEY=key, LOADKIT_RUN_DIR=str(results_dir))
    return env


def run_once(
    variant: Variant, platform: RunningPlatform, key: str, args: argparse.Namespace, work: Path
) -> Result:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{variant.name}-", dir=work))
    run_time_s = args.warmup_s + args.duration_s + 2
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(variant.locustfile),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.users),
        "--run-time",
        f"{run_time_s:g}s",
        "--host",
        platform.url,
        "--csv",
        str(run_dir / "stats"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *variant.extra_args,
    ]
    process = subprocess.Popen(
        command,
        env=child_env(platform, key, run_dir),
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(run_dir / "locust.err", "w"),  # noqa: SIM115 - closed with the process
    )
    try:
        time.sleep(args.warmup_s)
        first = sample(process.pid, platform)
        time.sleep(args.duration_s)
        last = sample(process.pid, platform)
        process.wait(timeout=run_time_s + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    row = aggregated_row(run_dir / "stats")
    served = last.served - first.served
    if served <= 0:
        raise RuntimeError(f"{variant.name}: no request served; see {run_dir / 'locust.err'}")
    wall_s = last.at_s - first.at_s
    generator_s = last.generator_cpu_s - first.generator_cpu_s
    return Result(
        rps=served / wall_s,
        generator_us_per_request=generator_s / served * 1e6,
        generator_cpu_share=generator_s / wall_s,
        platform_us_per_request=(last.platform_cpu_s - first.platform_cpu_s) / served * 1e6,
        p50_ms=float(row["50%"]),
        p95_ms=float(row["95%"]),
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
    )


def median_result(results: list[Result]) -> Result:
    """Field-wise median over repeats (counts summed)."""

    def med(field: str) -> float:
        return statistics.median(getattr(r, field) for r in results)

    return Result(
        rps=med("rps"),
        generator_us_per_request=med("generator_us_per_request"),
        generator_cpu_share=med("generator_cpu_share"),
        platform_us_per_request=med("platform_us_per_request"),
        p50_ms=med("p50_ms"),
        p95_ms=med("p95_ms"),
        requests=sum(r.requests for r in results),
        failures=sum(r.failures for r in results),
    )


def variants(work: Path) -> list[Variant]:
    (work / "plain_fasthttp.py").write_text(PLAIN_FASTHTTP)
    (work / "plain_http.py").write_text(PLAIN_HTTP)
    (work / "plain_lean.py").write_text(PLAIN_LEAN)
    return [
        Variant("kit", "kit health.py (FastHttpUser)", REPO / "locustfiles" / "health.py"),
        Variant("fasthttp", "plain FastHttpUser", work / "plain_fasthttp.py"),
        Variant("http", "plain HttpUser", work / "plain_http.py"),
        Variant("lean", "plain LeanHttpUser", work / "plain_lean.py"),
    ]


def print_table(
    chosen: list[Variant], runs: dict[str, list[Result]], args: argparse.Namespace
) -> None:
    print(
        f"\n{args.users} users, no wait time, {args.duration_s:g} s measured after "
        f"{args.warmup_s:g} s warm-up, median of {args.repeats} run(s); "
        f"{os.cpu_count()} cores, the platform on its own process; load average "
        f"{args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after (other work on the "
        "machine slows the rates; CPU per request is the steadier figure)\n"
    )
    header = (
        f"{'locustfile':<30} {'req/s':>7} {'gen CPU µs/req':>15} {'(min-max)':>10} "
        f"{'gen CPU':>8} {'platform µs/req':>16} {'p50 ms':>7} {'p95 ms':>7} {'failures':>9}"
    )
    print(header)
    print("-" * len(header))
    medians = {v.name: median_result(runs[v.name]) for v in chosen}
    for variant in chosen:
        r = medians[variant.name]
        per_request = [run.generator_us_per_request for run in runs[variant.name]]
        spread = f"{min(per_request):.0f}-{max(per_request):.0f}"
        print(
            f"{variant.label:<30} {r.rps:>7.0f} {r.generator_us_per_request:>15.0f} "
            f"{spread:>10} {r.generator_cpu_share:>8.0%} {r.platform_us_per_request:>16.0f} "
            f"{r.p50_ms:>7g} {r.p95_ms:>7g} {r.failures:>9}"
        )
    kit, fast, http = (
        medians[name].generator_us_per_request for name in ("kit", "fasthttp", "http")
    )
    print(
        f"\nHttpUser spends {http / fast:.1f}x the generator CPU per request of FastHttpUser "
        f"({http:.0f} vs {fast:.0f} µs)."
    )
    print(
        f"The kit adds {kit - fast:+.0f} µs per request over a plain FastHttpUser "
        f"({(kit - fast) / fast:+.0%})."
    )
    lean = medians["lean"].generator_us_per_request
    print(
        f"The lean client spends {lean / fast:.2f}x FastHttpUser's generator CPU per request "
        f"({lean:.0f} vs {fast:.0f} µs)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup-s", type=float, default=4.0, help="start-up + spawn, unmeasured")
    parser.add_argument("--repeats", type=int, default=1, help="runs per locustfile (median)")
    args = parser.parse_args(argv)
    args.load_before = os.getloadavg()[0]
    key = secrets.token_urlsafe(24)
    runs: dict[str, list[Result]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="loadkit-bench-") as tmp,
        start_platform(api_key=key) as platform,
    ):
        work = Path(tmp)
        chosen = variants(work)
        for repeat in range(args.repeats):
            for variant in chosen:  # interleaved, so drift hits every variant alike
                print(f"run {repeat + 1}/{args.repeats}: {variant.label} ...", flush=True)
                runs.setdefault(variant.name, []).append(
                    run_once(variant, platform, key, args, work)
                )
    print_table(chosen, runs, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
