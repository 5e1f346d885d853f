"""Requests per core: the kit against bare Locust and wrk, counted by nginx (not a test).

Every generator does ``GET /health`` with N keep-alive connections against Debian's nginx on
loopback for the same time; runs are interleaved (each repeat runs every generator once, in a
rotating order) so drift on a shared machine hits them alike. Pinning (with ``taskset``): the
generator on CPU 0, nginx on CPU 1.

Per run it measures:

* **rps**: nginx's access-log count in the steady window (from ``--warmup-s`` after the first
  request nginx logged to 1 s before the last), divided by the window;
* **CPU µs/request (steady)**: CPU of the generator's whole process tree in that window (parent,
  Locust child, everything) divided by nginx's count in it;
* **CPU µs/request (whole run)**: the tree's total CPU from the kernel (``wait4``: imports,
  start-up and end-of-run work included) divided by everything nginx logged for the run;
* peak RSS of the tree, exit code.

Generators: ``wrk`` (the limit: C, event loop), ``bare`` (Locust FastHttpUser, one task,
``constant(0)``, no body check: what the kit is built on), ``bare-checked`` (the same plus
what the kit's scenario does on every request, written as a Locust user would: the API key
header and a ``catch_response`` body check; the kit's own overhead is its cost over this),
``kit`` (``loadkit run health`` with its default outputs and verdict), ``lean`` (the kit's lean
client, ``loadkit.leanclient``, on a bare Locust file). The table shows medians and (min-max)
over the repeats, and ratios to bare Locust and to wrk.

Run (about 3 minutes with the defaults)::

    .venv/bin/python bench/per_core.py                      # 3 repeats x 15 s, 10 connections
    .venv/bin/python bench/per_core.py --repeats 6 --generators bare,kit

Needs nginx and wrk (``apt-get install -y nginx-light wrk``). With 2 cores the generator and
nginx each have one; other work on the machine shows as spread, so read medians and ranges.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nginx_target import NginxTarget, nginx_target, pinned
from process_tree import TreeRun, run_tree

REPO = Path(__file__).resolve().parents[1]
GENERATOR_CPU = 0
SERVER_CPU = 1

BARE_LOCUSTFILE = '''"""Bare Locust: FastHttpUser, one task, no wait, no body check."""
from locust import FastHttpUser, constant, task


class BareHealthUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def health(self):
        self.client.get("/health")
'''

BARE_POST_LOCUSTFILE = '''"""Bare Locust POST: FastHttpUser, a fixed JSON body, no check."""
from locust import FastHttpUser, constant, task

PAYLOAD = {
    "phone_number": "+14155550100",
    "scheduled_at": "2030-01-01T00:00:00.000+00:00",
    "campaign_id": "lk-bench-c0",
    "metadata": {"source": "loadkit", "request_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                 "language": "en-US"},
}


class BarePostUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def schedule(self):
        self.client.post("/api/calls", json=PAYLOAD)
'''

BARE_CHECKED_LOCUSTFILE = '''"""Bare Locust doing the kit's health request: key header, body check.

What a Locust user writes for the same work as ``loadkit run health``: the key in the client's
default headers, ``catch_response`` and the body parsed and compared. The kit's overhead proper
(its plugin, outputs, parent process) is the kit's cost over this one.
"""
import json
import os

from locust import FastHttpUser, constant, task


class CheckedHealthUser(FastHttpUser):
    wait_time = constant(0)
    default_headers = {"X-API-Key": os.environ["API_KEY"]}

    @task
    def health(self):
        with self.client.get("/health", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif json.loads(response.content).get("status") != "ok":
                response.failure("status is not ok")
            else:
                response.success()
'''

LEAN_LOCUSTFILE = '''"""The lean client on bare Locust: one task, no wait, no body check."""
from locust import constant, task

from loadkit.leanclient import LeanHttpUser


class LeanHealthUser(LeanHttpUser):
    wait_time = constant(0)

    @task
    def health(self):
        self.client.get("/health")
'''


def _kit_lean_env(_work: Path) -> dict[str, str]:
    """``loadkit run health`` with ``PlatformUser`` on the lean client (``--http-client lean``)."""
    return {"LOADKIT_HTTP_CLIENT": "lean"}


@dataclass(frozen=True)
class Generator:
    name: str
    label: str
    #: (url, connections, duration_s, work folder, api key) -> command line
    command: Callable[[str, int, float, Path, str], list[str]]
    #: Extra environment variables (given the work folder).
    env: Callable[[Path], dict[str, str]] | None = None


def _python() -> str:
    return sys.executable


LOCUSTFILES = {
    "bare": BARE_LOCUSTFILE,
    "bare_checked": BARE_CHECKED_LOCUSTFILE,
    "bare_post": BARE_POST_LOCUSTFILE,
    "lean": LEAN_LOCUSTFILE,
}


def _locust(locustfile: str, *extra: str) -> Callable[[str, int, float, Path, str], list[str]]:
    def command(url: str, users: int, duration_s: float, work: Path, key: str) -> list[str]:
        path = REPO / locustfile
        if locustfile in LOCUSTFILES:
            path = work / f"{locustfile}.py"
            path.write_text(LOCUSTFILES[locustfile])
        return [
            _python(),
            "-m",
            "locust",
            "-f",
            str(path),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{duration_s:g}s",
            "--host",
            url,
            *extra,
        ]

    return command


def _kit(url: str, users: int, duration_s: float, work: Path, key: str) -> list[str]:
    return [
        _python(),
        "-m",
        "loadkit.cli",
        "run",
        "health",
        "-u",
        str(users),
        "-t",
        f"{duration_s:g}s",
        "--api-url",
        url,
        "--results",
        str(work / "results"),
    ]


def _wrk(url: str, connections: int, duration_s: float, work: Path, key: str) -> list[str]:
    return ["wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", f"{url}/health"]


GENERATORS = {
    g.name: g
    for g in (
        Generator("wrk", "wrk (1 thread)", _wrk),
        Generator("bare", "bare Locust FastHttpUser", _locust("bare")),
        Generator(
            "bare-checked", "bare Locust, key header and body check", _locust("bare_checked")
        ),
        Generator("kit", "loadkit run health", _kit),
        Generator("lean", "bare Locust on loadkit's LeanHttpUser", _locust("lean")),
        Generator("kit-lean", "loadkit run health on LeanHttpUser", _kit, _kit_lean_env),
        Generator("bare-post", "bare Locust FastHttpUser, POST /api/calls", _locust("bare_post")),
        Generator(
            "kit-post",
            "kit's closed-loop scheduling (checked POST)",
            _locust("tests/locustfiles/closed_scheduling.py", "--no-baseline"),
        ),
    )
}


def generator_env(key: str) -> dict[str, str]:
    """The caller's environment minus anything that would aim the kit elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("API_URL", "API_KEY", "REDIS_URL")
        and not k.startswith(("LOADKIT_", "LOCUST_"))
    }
    env["API_KEY"] = key
    return env


def cpu_jiffies(cpu: int | None) -> tuple[int, int]:
    """(steal, total) jiffies of one CPU (or all) from ``/proc/stat``; (0, 0) where unreadable.

    Steal is time the hypervisor gave this virtual CPU's slot to another guest: the one sign of
    a neighbour a guest can read. It is not the whole story (docs/performance.md: runs here
    spread by up to 60% with steal under 2%: shared caches and memory bandwidth do not show).
    """
    label = "cpu" if cpu is None else f"cpu{cpu}"
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                fields = line.split()
                if fields and fields[0] == label:
                    values = [int(v) for v in fields[1:]]
                    # user nice system idle iowait irq softirq steal (guest time is in user)
                    return (values[7] if len(values) > 7 else 0), sum(values[:8])
    except OSError:
        pass
    return 0, 0


@dataclass(frozen=True)
class Measured:
    """One run of one generator."""

    rps: float
    steady_us_per_request: float
    whole_us_per_request: float
    steady_cpu_share: float
    requests: int
    peak_rss_mb: float
    exit_code: int
    server_us_per_request: float
    steal_share: float = 0.0
    """Share of the generator CPU's time stolen by the hypervisor during the run."""


def measure(
    run: TreeRun, target: NginxTarget, offset: int, warmup_s: float, server_cpu_s: float
) -> Measured:
    """Set a finished run against nginx's log lines for it."""
    target.flush()
    lines = target.lines_since(offset)
    if not lines:
        raise RuntimeError("nginx logged no request for this run")
    first_s, last_s = lines[0].at_s, lines[-1].at_s
    start_s, end_s = first_s + warmup_s, last_s - 1.0
    if end_s <= start_s:
        raise RuntimeError(f"run too short for a {warmup_s:g} s warm-up")
    in_window = sum(1 for line in lines if start_s <= line.at_s < end_s)
    window_cpu_s = run.cpu_between(start_s, end_s)
    return Measured(
        rps=in_window / (end_s - start_s),
        steady_us_per_request=window_cpu_s / in_window * 1e6,
        whole_us_per_request=run.total_cpu_s / len(lines) * 1e6,
        steady_cpu_share=window_cpu_s / (end_s - start_s),
        requests=len(lines),
        peak_rss_mb=run.peak_rss_bytes() / 2**20,
        exit_code=run.exit_code,
        server_us_per_request=server_cpu_s / len(lines) * 1e6,
    )


def run_one(
    generator: Generator, target: NginxTarget, args: argparse.Namespace, work: Path, key: str
) -> Measured:
    offset = target.log_offset()
    server_before_s = target.cpu_s()
    cpu = GENERATOR_CPU if args.pin else None
    steal_before, total_before = cpu_jiffies(cpu)
    command = generator.command(target.url, args.connections, args.duration_s, work, key)
    log = work / f"{generator.name}-{time.time():.0f}.log"
    env = generator_env(key)
    if generator.env is not None:
        env.update(generator.env(work))
    run = run_tree(
        pinned(command, GENERATOR_CPU if args.pin else None),
        env=env,
        cwd=str(work),
        stdout_path=str(log),
        timeout_s=args.duration_s + 120,
    )
    result = measure(run, target, offset, args.warmup_s, target.cpu_s() - server_before_s)
    steal_after, total_after = cpu_jiffies(cpu)
    if total_after > total_before:
        result = replace(
            result, steal_share=(steal_after - steal_before) / (total_after - total_before)
        )
    if run.exit_code != 0:
        print(f"  note: {generator.name} exited {run.exit_code} (output: {log})", flush=True)
    return result


def _fmt(values: Sequence[float], spec: str) -> str:
    """``median (min-max)``."""
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, spec)
    return f"{med:{spec}} ({min(values):{spec}}-{max(values):{spec}})"


def print_table(runs: dict[str, list[Measured]], args: argparse.Namespace) -> None:
    pin = "generator on CPU 0, nginx on CPU 1" if args.pin else "not pinned"
    print(
        f"\nGET /health, {args.connections} connections, {args.duration_s:g} s per run, "
        f"{args.repeats} interleaved repeat(s), {pin}; steady window = {args.warmup_s:g} s after "
        f"nginx's first request to 1 s before its last; median (min-max). Load average "
        f"{args.load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
        f"({os.cpu_count()} cores, shared).\n"
    )

    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(m, attr) for m in runs[name])

    header = (
        "| generator | rps (nginx count, steady) | CPU µs/req (steady) | CPU µs/req (whole run) "
        "| generator CPU | steal | peak RSS MB | rps ÷ bare | CPU/req ÷ bare | CPU/req ÷ wrk |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))

    def ratio(name: str, base: str, attr: str) -> str:
        if base not in runs or base == name:
            return ""
        return f"{med(name, attr) / med(base, attr):.2f}×"

    for name, measured in runs.items():
        ratios = [
            ratio(name, "bare", "rps"),
            ratio(name, "bare", "steady_us_per_request"),
            ratio(name, "wrk", "steady_us_per_request"),
        ]
        codes = sorted({m.exit_code for m in measured})
        print(
            f"| {GENERATORS[name].label} "
            f"| {_fmt([m.rps for m in measured], ',.0f')} "
            f"| {_fmt([m.steady_us_per_request for m in measured], '.1f')} "
            f"| {_fmt([m.whole_us_per_request for m in measured], '.1f')} "
            f"| {med(name, 'steady_cpu_share'):.0%} "
            f"| {_fmt([m.steal_share * 100 for m in measured], '.1f')}% "
            f"| {med(name, 'peak_rss_mb'):.0f} "
            f"| {' | '.join(ratios)} |" + ("" if codes == [0] else f" exit {codes}")
        )
    print_paired_ratios(runs)
    server = [m.server_us_per_request for ms in runs.values() for m in ms]
    print(f"\nnginx's own CPU: {statistics.median(server):.1f} µs/request (median over all runs)")


def print_paired_ratios(runs: dict[str, list[Measured]]) -> None:
    """Each kit run against the base run of the same repeat, then the median of those ratios.

    Runs of one repeat are seconds apart, so drift on a shared machine (another job starting)
    hits both; the median of paired ratios is steadier than the ratio of two medians.
    """
    bases = [base for base in ("bare", "bare-checked") if base in runs]
    lines = []
    for name, measured in runs.items():
        for base in bases:
            if name == base or name == "wrk" or (base == "bare-checked" and name == "bare"):
                continue
            pairs = list(zip(measured, runs[base], strict=True))
            rps = [m.rps / b.rps for m, b in pairs]
            cpu = [m.steady_us_per_request / b.steady_us_per_request for m, b in pairs]
            lines.append(
                f"| {name} ÷ {base} | {statistics.median(rps):.3f} "
                f"| {' '.join(f'{r:.2f}' for r in rps)} | {statistics.median(cpu):.3f} "
                f"| {' '.join(f'{c:.2f}' for c in cpu)} |"
            )
    if lines:
        print("\nPaired by repeat (each run against the base's run of the same repeat):\n")
        print("| ratio | rps, median | rps, per repeat | CPU/req, median | CPU/req, per repeat |")
        print("|---|---|---|---|---|")
        print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--generators", default="wrk,bare,kit", help=f"comma separated: {', '.join(GENERATORS)}"
    )
    parser.add_argument("--connections", type=int, default=10, help="users / connections")
    parser.add_argument("--duration-s", type=float, default=15.0, help="each run's length")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="unmeasured start of a run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per generator")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="don't use taskset")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.generators.split(",") if n.strip()]
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        parser.error(f"unknown generator(s) {unknown}; known: {', '.join(GENERATORS)}")
    if "wrk" in names and shutil.which("wrk") is None:
        parser.error("wrk not found: apt-get install -y wrk (or leave it out of --generators)")
    args.load_before = os.getloadavg()[0]
    key = secrets.token_urlsafe(24)
    runs: dict[str, list[Measured]] = {name: [] for name in names}
    with (
        tempfile.TemporaryDirectory(prefix="loadkit-per-core-") as tmp,
        nginx_target(SERVER_CPU if args.pin else None) as target,
    ):
        work = Path(tmp)
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                result = run_one(GENERATORS[name], target, args, work, key)
                runs[name].append(result)
                print(
                    f"run {repeat + 1}/{args.repeats} {name:>12}: {result.rps:>8,.0f} rps, "
                    f"{result.steady_us_per_request:6.1f} µs/req steady, "
                    f"{result.whole_us_per_request:6.1f} whole run, "
                    f"steal {result.steal_share:.1%}, exit {result.exit_code}",
                    flush=True,
                )
    print_table(runs, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
