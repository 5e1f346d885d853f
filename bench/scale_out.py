"""Scale-out on this machine: `loadkit run health --workers N` for N = 1, 2 against nginx.

A benchmark, not a test. nginx (Debian's, started as our own process with our own config on a
free loopback port, pinned to the last core) answers ``GET /health`` with the kit's expected
body, far faster than one Locust worker can ask, so the generator is the limit. Each run is
``loadkit run health --workers N`` with 32 users per worker, as a user would type it; worker i is
pinned to core i, the master to the first core. Over a window after the ramp-up it measures:

* requests/s, counted by nginx in its access log ($msec stamps inside the window);
* each worker's CPU share and the generator CPU per request (all workers' CPU / requests);
* the master's own CPU per worker report: master CPU / (N x window / 3 s), heartbeats and its
  other duties included, which is the real cost behind bench/master_cost.py's replay.

N = 1 and N = 2 alternate (1, 2 then 2, 1 ...) over the repeats, because the machine's 2 cores
are shared: medians and ranges are reported. With 2 cores, N = 2 puts the second worker on
nginx's core: the scale-out factor measured here is a floor, not the ceiling.

Run: ``.venv/bin/python bench/scale_out.py`` (about 3 minutes; ``--help`` for knobs). Needs
nginx (``apt-get install -y nginx-light``). Writes the ``scale_out`` section of
src/loadkit/capacity_figures.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_util import (
    LoadkitRun,
    Nginx,
    cores,
    cpu_s,
    kit_env,
    machine,
    nginx,
    pin,
    spread,
    update_figures,
)

USERS_PER_WORKER = 32
REPORT_INTERVAL_S = 3.0


@dataclass(frozen=True)
class Run:
    workers: int
    requests_per_s: float
    cpu_ms_per_request: float
    worker_cpu_shares: tuple[float, ...]
    master_cpu_share: float
    master_cpu_ms_per_report: float
    worker_rss_mb: float
    master_rss_mb: float


def run_once(n: int, server: Nginx, key: str, args: argparse.Namespace, work: Path) -> Run:
    run_time_s = args.warmup_s + args.window_s + 3
    run = LoadkitRun.start(
        [
            "run",
            "health",
            "-u",
            str(USERS_PER_WORKER * n),
            "-r",
            str(USERS_PER_WORKER * n),
            "-t",
            f"{run_time_s:g}s",
            "--workers",
            str(n),
            "--no-baseline",
            "--skip-preflight",
            "--results",
            str(work),
        ],
        kit_env(server.url, key),
        work / f"workers-{n}-{time.monotonic_ns()}.log",
    )
    (master,) = run.locust_processes("master", 1)
    workers = run.locust_processes("worker", n)
    available = cores()
    pin(master, available[0])
    for i, worker in enumerate(workers):
        pin(worker, available[i % len(available)])
    time.sleep(args.warmup_s)
    start_epoch, start_mono = time.time(), time.monotonic()
    workers_before = [cpu_s(w) for w in workers]
    master_before = cpu_s(master)
    time.sleep(args.window_s)
    end_epoch, wall_s = time.time(), time.monotonic() - start_mono
    workers_cpu = [cpu_s(w) - before for w, before in zip(workers, workers_before, strict=True)]
    master_cpu = cpu_s(master) - master_before
    worker_rss_mb = max(w.memory_info().rss for w in workers) / 2**20
    master_rss_mb = master.memory_info().rss / 2**20
    code = run.wait(timeout_s=run_time_s + 60)
    if code not in (0, 1):
        raise RuntimeError(f"--workers {n}: loadkit exited {code}; see {run.log_path}")
    time.sleep(1.5)  # nginx flushes its access log buffer every second
    served = server.requests_between(start_epoch, end_epoch)
    if served <= 0:
        raise RuntimeError(f"--workers {n}: nginx logged nothing in the window")
    reports = n * args.window_s / REPORT_INTERVAL_S
    return Run(
        workers=n,
        requests_per_s=served / wall_s,
        cpu_ms_per_request=sum(workers_cpu) * 1000 / served,
        worker_cpu_shares=tuple(c / wall_s for c in workers_cpu),
        master_cpu_share=master_cpu / wall_s,
        master_cpu_ms_per_report=master_cpu * 1000 / reports,
        worker_rss_mb=worker_rss_mb,
        master_rss_mb=master_rss_mb,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--warmup-s", type=float, default=6.0)
    parser.add_argument("--window-s", type=float, default=15.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    key = secrets.token_urlsafe(24)
    runs: dict[int, list[Run]] = {n: [] for n in args.workers}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, nginx(core=cores()[-1]) as srv:
        for round_index in range(args.repeats):
            order = args.workers if round_index % 2 == 0 else list(reversed(args.workers))
            for n in order:
                r = run_once(n, srv, key, args, Path(tmp))
                runs[n].append(r)
                shares = " ".join(f"{s:.0%}" for s in r.worker_cpu_shares)
                print(
                    f"round {round_index + 1} --workers {n}: {r.requests_per_s:7.0f} req/s  "
                    f"{r.cpu_ms_per_request:.3f} ms CPU/req  workers CPU {shares}  "
                    f"master CPU {r.master_cpu_share:.1%} = {r.master_cpu_ms_per_report:.2f} "
                    f"ms/report  RSS worker {r.worker_rss_mb:.0f} MB master "
                    f"{r.master_rss_mb:.0f} MB",
                    flush=True,
                )
    section: dict = {
        "measured_on": dt.date.today().isoformat(),
        "machine": machine(),
        "command": "python bench/scale_out.py",
        "method": "loadkit run health --workers N (32 users per worker) against nginx on "
        "loopback, requests counted in nginx's access log over a window after ramp-up; "
        "worker i pinned to core i, nginx to the last core; N interleaved over repeats",
        "by_workers": {},
    }
    for n, measured in runs.items():
        section["by_workers"][str(n)] = {
            "requests_per_s": spread([r.requests_per_s for r in measured]),
            "cpu_ms_per_request": spread([r.cpu_ms_per_request for r in measured]),
            "worker_cpu_share": spread([s for r in measured for s in r.worker_cpu_shares]),
            "master_cpu_share": spread([r.master_cpu_share for r in measured]),
            "master_cpu_ms_per_report": spread([r.master_cpu_ms_per_report for r in measured]),
            "worker_rss_mb": spread([r.worker_rss_mb for r in measured]),
            "master_rss_mb": spread([r.master_rss_mb for r in measured]),
        }
    if 1 in runs and 2 in runs:
        one = section["by_workers"]["1"]["requests_per_s"]["median"]
        two = section["by_workers"]["2"]["requests_per_s"]["median"]
        section["speedup_2_over_1"] = round(two / one, 2)
        print(f"2 workers / 1 worker: {two / one:.2f}x (medians)")
    update_figures("scale_out", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
