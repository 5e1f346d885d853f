"""The arrival-rate executor's own cost per iteration, in-process, without HTTP (not a test).

Runs ``loadkit.plugin.arrival``'s executor in a local Locust runner for ``--duration-s`` at each
rate, with a task that only fires a request event (what an HTTP client does once per request) and,
with ``--work-us``, burns that much CPU (a stand-in for the client's work, to saturate the core).
Prints CPU µs per started iteration (``time.process_time``), iterations started / dropped /
run, how late they started, and the process's peak RSS growth. Pin it (``taskset -c 0``).

Run::

    taskset -c 0 .venv/bin/python bench/arrival_overhead.py --rates 2000,5000
    taskset -c 0 .venv/bin/python bench/arrival_overhead.py --rates 20000 --work-us 200
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from locust import User, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from loadkit.plugin.arrival import ArrivalRateUser, install, tracker_of  # noqa: E402

WORK_S = 0.0
RAN = [0]
LATE_MS: list[float] = []


class BenchUser(ArrivalRateUser, User):
    host = "http://127.0.0.1:9"  # never contacted

    @task
    def call(self) -> None:
        RAN[0] += 1
        if WORK_S:
            end = time.perf_counter() + WORK_S
            while time.perf_counter() < end:
                pass
        self.environment.events.request.fire(
            request_type="GET",
            name="/x",
            response_time=1.0,
            response_length=0,
            exception=None,
            context={},
        )


def run(rate: float, duration_s: float) -> None:
    parsed = argparse.Namespace(
        rate=rate,
        rate_stage=None,
        max_in_flight=None,
        time_scale=1.0,
        headless=True,
        run_time=None,
    )
    environment = Environment(user_classes=[BenchUser], parsed_options=parsed)
    environment.create_local_runner()
    install(environment)
    RAN[0] = 0
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    environment.runner.start(1, spawn_rate=100)
    gevent.sleep(0.2)
    cpu0, wall0, ran0 = time.process_time(), time.perf_counter(), RAN[0]
    gevent.sleep(duration_s)
    cpu_s, wall_s, ran = time.process_time() - cpu0, time.perf_counter() - wall0, RAN[0] - ran0
    environment.runner.quit()
    started, dropped = tracker_of(environment).totals()
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kb) / 1024
    intended = environment.stats.get("GET /x", "INTENDED")
    print(
        f"{rate:>8,.0f}/s: ran {ran / wall_s:>8,.0f}/s, {cpu_s / max(ran, 1) * 1e6:6.1f} µs CPU "
        f"per iteration, CPU {cpu_s / wall_s:4.0%}; started {started}, dropped {dropped}, "
        f"ran {RAN[0]}; INTENDED median {intended.median_response_time} ms, max "
        f"{intended.max_response_time:.0f} ms; peak RSS +{growth_mb:.0f} MB",
        flush=True,
    )


def main() -> int:
    global WORK_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,5000,10000")
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--work-us", type=float, default=0.0, help="CPU burnt per iteration")
    args = parser.parse_args()
    WORK_S = args.work_us / 1e6
    for text in args.rates.split(","):
        run(float(text), args.duration_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
