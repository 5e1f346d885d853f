"""The Locust master's CPU per worker report, at 100 and 500 workers: recorded, then replayed.

A benchmark, not a test. For each scenario it starts a real cluster against the kit's reference
platform on loopback (a Locust master and two workers, the kit loaded as in every run) with
bench/master_cost_plugin.py loaded into the master beside the scenario. The plugin records what
the two workers send for ``--record-s`` seconds (Locust's ``worker_report`` data and the
messages registered with ``runner.register_message``, as Locust's wire bytes), then replays the
recording through the master's own message handler as if from 100 and 500 workers, timing the
CPU each batch takes. Nothing here knows the payloads' format, so the command stays valid when
the kit's worker message changes: re-run it and the figures follow.

Two workers carry the whole load here, so each recorded report holds more distinct response
times than one of 500 workers sharing the same load would: the replay is an upper bound.
Heartbeats (one per worker per second) are not replayed: Locust answers them only for workers it
knows; bench/scale_out.py measures a real master's whole cost per report, heartbeats included.

Run: ``.venv/bin/python bench/master_cost.py`` (about 2 minutes; ``--help`` for knobs).
Writes the ``master`` section of src/loadkit/capacity_figures.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_util import REPO, free_port, kit_env, machine, spread, update_figures

from loadkit.platform.launcher import start_platform

PLUGIN = Path(__file__).with_name("master_cost_plugin.py")
USERS = {"health": 32, "full_system": 300, "scheduling": 10}
REAL_WORKERS = 2


def run_cluster(scenario: str, url: str, key: str, args: argparse.Namespace, work: Path) -> dict:
    out = work / f"{scenario}-replay.json"
    port = free_port()
    files = f"{REPO / 'locustfiles' / scenario}.py,{PLUGIN}"
    run_time_s = args.record_s + args.replay_budget_s
    env = kit_env(
        url,
        key,
        LOADKIT_RUN_DIR=str(work / scenario),
        LOADKIT_SCENARIO=scenario,
        LOADKIT_BENCH_OUT=str(out),
        LOADKIT_BENCH_RECORD_S=f"{args.record_s:g}",
        LOADKIT_BENCH_WORKERS=",".join(map(str, args.workers)),
        LOADKIT_BENCH_ROUNDS=str(args.rounds),
        LOADKIT_BENCH_REPEATS=str(args.repeats),
    )
    (work / scenario).mkdir()
    locust = [sys.executable, "-m", "locust", "-f", files]
    master = subprocess.Popen(
        [
            *locust,
            "--master",
            "--headless",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(REAL_WORKERS),
            "--expect-workers-max-wait",
            "30",
            "--host",
            url,
            "-u",
            str(USERS[scenario]),
            "-r",
            str(USERS[scenario]),
            "-t",
            f"{run_time_s:g}s",
            "--no-baseline",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=(work / f"{scenario}-master.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(REAL_WORKERS)
    ]
    try:
        master.wait(timeout=run_time_s + 90)
    finally:
        for process in [master, *workers]:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)
    if not out.exists():
        raise RuntimeError(f"{scenario}: no replay results; see {work}/{scenario}-master.log")
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record-s", type=float, default=30.0)
    parser.add_argument("--replay-budget-s", type=float, default=60.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--rounds", type=int, default=5, help="report intervals per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("scenarios", nargs="*", default=["health", "full_system"])
    args = parser.parse_args()
    key = secrets.token_urlsafe(24)
    by_scenario: dict[str, dict] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-master-") as tmp,
        start_platform(api_key=key) as platform,
    ):
        for scenario in args.scenarios:
            result = run_cluster(scenario, platform.url, key, args, Path(tmp))
            by_scenario[scenario] = result
            print(
                f"{scenario}: recorded {result['recorded_reports']} reports "
                f"({result['recorded_bytes_per_report']:,.0f} bytes each, message types "
                f"{', '.join(result['message_types'])})",
                flush=True,
            )
            for batch in result["batches"]:
                print(
                    f"  {batch['workers']:>4} workers: {batch['reports']} reports in "
                    f"{batch['cpu_s']:.3f} s CPU = {batch['cpu_ms_per_report']:.3f} ms/report",
                    flush=True,
                )
    replay: dict[str, dict] = {}
    for workers in args.workers:
        # The dearest scenario's median sets the figure: the plan must hold for any of them.
        per_scenario = {
            scenario: spread(
                [b["cpu_ms_per_report"] for b in result["batches"] if b["workers"] == workers]
            )
            for scenario, result in by_scenario.items()
        }
        dearest = max(per_scenario, key=lambda s: per_scenario[s]["median"])
        replay[str(workers)] = {
            "cpu_ms_per_report": per_scenario[dearest],
            "scenario": dearest,
            "by_scenario": per_scenario,
            "reports_per_s": round(workers / 3.0, 1),
            "master_core_share": round(workers / 3.0 * per_scenario[dearest]["median"] / 1000, 3),
        }
        print(
            f"{workers} workers: {workers / 3.0:.0f} reports/s x "
            f"{per_scenario[dearest]['median']:.3f} ms = "
            f"{replay[str(workers)]['master_core_share']:.0%} of the master's core ({dearest})"
        )
    update_figures(
        "master",
        {
            "measured_on": dt.date.today().isoformat(),
            "machine": machine(),
            "command": "python bench/master_cost.py",
            "method": "real worker messages recorded in a 2-worker run, replayed through "
            "MasterRunner.handle_message as N made-up workers; CPU per report, custom "
            "messages included at their recorded ratio; heartbeats not included",
            "recorded_bytes_per_report": {
                s: round(r["recorded_bytes_per_report"]) for s, r in by_scenario.items()
            },
            "replay": replay,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
