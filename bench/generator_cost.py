"""CPU a Locust worker spends per request, by scenario: the per-core figures of `loadkit plan`.

A benchmark, not a test. For each scenario it runs ``loadkit run SCENARIO --workers 1`` against
the kit's reference platform on loopback, as a user would, with enough users to keep the worker
busy, and measures over a window after the ramp-up:

* the worker process's CPU seconds (``/proc`` through psutil), and
* the requests the platform received (its own counters, not Locust's),

so ``cpu_ms_per_request`` = worker CPU / requests: what one more request costs the generator with
the scenario's own checks, payloads and waits. A core at 100 % would then drive
``1000 / cpu_ms_per_request`` requests/s; `loadkit plan` plans for less (see its assumption).

The worker is pinned to the first core, the platform and the master to the last (taskset-like,
through psutil). Scenarios are interleaved across repeats (a different order each round) because
the machine is shared: the figures file keeps the median, min and max.

Run: ``.venv/bin/python bench/generator_cost.py`` (about 10 minutes; ``--help`` for knobs).
Writes the ``generator`` section of src/loadkit/capacity_figures.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from bench_util import LoadkitRun, cores, cpu_s, kit_env, machine, pin, spread, update_figures

from loadkit.platform.launcher import RunningPlatform, start_platform

#: Load per scenario: as much as the platform (one Python process) takes without drowning in
#: errors. Where the platform is the limit, the worker idles part of the time and its fixed costs
#: (stats reports, heartbeats) are spread over fewer requests: those figures err on the dear side.
LOAD_ARGS: dict[str, list[str]] = {
    "health": ["-u", "32"],
    "analytics": ["-u", "120"],
    "scheduling": ["--rate", "600"],
    "full_system": ["-u", "1000"],
    "bulk_import": ["-u", "40"],
}


@dataclass(frozen=True)
class Measurement:
    cpu_ms_per_request: float
    requests_per_s: float
    worker_cpu_share: float
    worker_rss_mb: float


def measure(
    scenario: str, platform: RunningPlatform, key: str, args: argparse.Namespace, work: Path
) -> Measurement:
    first_core, last_core = cores()[0], cores()[-1]
    run_time_s = args.warmup_s + args.window_s + 3
    run = LoadkitRun.start(
        [
            "run",
            scenario,
            *LOAD_ARGS[scenario],
            "-t",
            f"{run_time_s:g}s",
            "--workers",
            "1",
            "--no-baseline",
            "--skip-preflight",
            "--results",
            str(work),
        ],
        kit_env(platform.url, key),
        work / f"{scenario}.log",
    )
    (master,) = run.locust_processes("master", 1)
    (worker,) = run.locust_processes("worker", 1)
    pin(worker, first_core)
    pin(master, last_core)
    time.sleep(args.warmup_s)
    cpu_before, served_before, at_before = cpu_s(worker), platform_total(platform), time.monotonic()
    time.sleep(args.window_s)
    cpu_after, served_after, at_after = cpu_s(worker), platform_total(platform), time.monotonic()
    rss_mb = worker.memory_info().rss / 2**20
    code = run.wait(timeout_s=run_time_s + 60)
    if code not in (0, 1):
        raise RuntimeError(f"{scenario}: loadkit exited {code}; see {run.log_path}")
    served = served_after - served_before
    if served <= 0:
        raise RuntimeError(f"{scenario}: the platform served nothing in the window")
    wall_s = at_after - at_before
    return Measurement(
        cpu_ms_per_request=(cpu_after - cpu_before) * 1000 / served,
        requests_per_s=served / wall_s,
        worker_cpu_share=(cpu_after - cpu_before) / wall_s,
        worker_rss_mb=rss_mb,
    )


def platform_total(platform: RunningPlatform) -> int:
    return int(platform.counters()["total"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup-s", type=float, default=8.0)
    parser.add_argument("--window-s", type=float, default=15.0)
    parser.add_argument("scenarios", nargs="*", default=list(LOAD_ARGS))
    args = parser.parse_args()
    key = secrets.token_urlsafe(24)
    results: dict[str, list[Measurement]] = {name: [] for name in args.scenarios}
    with (
        tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp,
        start_platform(api_key=key) as platform,
    ):
        pin(psutil.Process(platform.process.pid), cores()[-1])
        for round_index in range(args.repeats):
            # Rotate the order each round: a slow minute on the shared machine hits different
            # scenarios in different rounds instead of always the same one.
            shift = round_index % len(args.scenarios)
            order = args.scenarios[shift:] + args.scenarios[:shift]
            for scenario in order:
                platform.reset_counters()
                m = measure(scenario, platform, key, args, Path(tmp))
                results[scenario].append(m)
                print(
                    f"round {round_index + 1} {scenario:<12} {m.cpu_ms_per_request:7.3f} ms CPU/req"
                    f"  {m.requests_per_s:7.1f} req/s  worker CPU {m.worker_cpu_share:5.0%}"
                    f"  RSS {m.worker_rss_mb:5.0f} MB",
                    flush=True,
                )
    section = {
        "measured_on": dt.date.today().isoformat(),
        "machine": machine(),
        "command": "python bench/generator_cost.py",
        "method": "loadkit run SCENARIO --workers 1 against the reference platform on loopback; "
        "worker CPU seconds / requests the platform counted, over a window after ramp-up",
        "scenarios": {
            name: {
                "load": " ".join(LOAD_ARGS[name]),
                "cpu_ms_per_request": spread([m.cpu_ms_per_request for m in runs]),
                "requests_per_s": spread([m.requests_per_s for m in runs]),
                "worker_cpu_share": spread([m.worker_cpu_share for m in runs]),
                "worker_rss_mb": spread([m.worker_rss_mb for m in runs]),
            }
            for name, runs in results.items()
        },
    }
    update_figures("generator", section)
    print(f"wrote the generator section of {Path('src/loadkit/capacity_figures.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
