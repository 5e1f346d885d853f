"""What each layer of the kit adds per request inside the Locust process (not a test).

One process, one nginx (``nginx_target``), short interleaved runs of a closed-loop ``GET /health``
user (10 users, no wait) in variants that each add one layer of the kit:

* ``bare``    -- FastHttpUser, ``self.client.get("/health")``, Locust's own stats only;
* ``check``   -- + ``catch_response`` and the kit's ``expect_json`` body check;
* ``user``    -- + ``PlatformUser``'s settings: API key header, timeouts (the kit's user class);
* ``plugin``  -- + the kit's whole plugin, initialised the way ``locust -f`` does it (recorder,
  per-second collector with a results folder, arrival tracker, verdict hook, queue sampler,
  Locust's stats kept free of the kit's rows).

Each round runs every variant once for ``--run-s`` (after a short warm-up) and reads
``time.process_time()`` against the requests Locust counted; the table shows the median and
range over ``--rounds`` rounds, and each layer's step. Interleaving puts the machine's drift on
every variant alike. In-process numbers leave out what runs outside the Locust process (the
``loadkit run`` parent) and the start-up and end-of-run work: ``per_core.py`` measures those.

Run: ``taskset -c 0 .venv/bin/python bench/kit_overhead.py --rounds 5``
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import gevent  # noqa: E402
import locust  # noqa: E402
from locust import FastHttpUser, constant, task  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402
from nginx_target import nginx_target  # noqa: E402

USERS = 10
KEY = "bench-key-not-secret"


class BareUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    @task
    def health(self) -> None:
        self.client.get("/health")


class CatchUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    @task
    def health(self) -> None:
        with self.client.get("/health", catch_response=True) as response:
            response.success()


class CheckUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    @task
    def health(self) -> None:
        from loadkit.workload.checks import expect_json

        with self.client.get("/health", catch_response=True) as response:
            expect_json(response, 200, equals={"status": "ok"})


class NaiveCheckUser(FastHttpUser):
    """What a Locust user writes for the kit's health request: key header, plain body check."""

    abstract = True
    wait_time = constant(0)
    default_headers = {"X-API-Key": KEY}  # noqa: RUF012  (Locust reads it from the class)

    @task
    def health(self) -> None:
        with self.client.get("/health", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
            elif json.loads(response.content).get("status") != "ok":
                response.failure("status is not ok")
            else:
                response.success()


def _kit_user(wait_s: float = 0.0) -> type:
    from loadkit.plugin.user import PlatformUser
    from loadkit.workload.checks import expect_json

    class KitHealthUser(PlatformUser):
        abstract = True
        wait_time = constant(wait_s)

        @task
        def health(self) -> None:
            with self.client.get("/health", catch_response=True) as response:
                expect_json(response, 200, equals={"status": "ok"})

    return KitHealthUser


def _lean_user(kit: bool) -> type:
    """GET /health on the lean client: bare (no check), or the kit's health user on it."""
    from loadkit.leanclient import LeanHttpUser
    from loadkit.workload.checks import expect_json

    if not kit:

        class LeanBareUser(LeanHttpUser):
            abstract = True
            wait_time = constant(0)

            @task
            def health(self) -> None:
                self.client.get("/health")

        return LeanBareUser
    from loadkit.plugin import setup as locust_plugin

    class LeanKitUser(LeanHttpUser):
        """``PlatformUser``'s settings and the health scenario's check, on the lean client."""

        abstract = True
        wait_time = constant(0)

        def __init__(self, environment: Environment) -> None:
            settings = locust_plugin.settings_of(environment)
            self.network_timeout = settings.request_timeout_s
            self.connection_timeout = settings.connect_timeout_s
            self.insecure = not settings.verify_tls
            self.default_headers = settings.auth_headers()
            super().__init__(environment)

        @task
        def health(self) -> None:
            with self.client.get("/health", catch_response=True) as response:
                expect_json(response, 200, equals={"status": "ok"})

    return LeanKitUser


def bare_environment(user_class: type, host: str) -> Environment:
    """A Locust environment with fresh events: none of the kit's listeners."""
    user_class.abstract = False
    environment = Environment(user_classes=[user_class], events=Events(), host=host)
    environment.create_local_runner()
    return environment


def kit_environment(user_class: type, host: str, results_dir: str) -> Environment:
    """The environment ``locust -f`` builds, with the kit's plugin initialised on it."""
    from locust.argument_parser import parse_options

    import loadkit.plugin.setup  # noqa: F401  (registers its listeners on locust.events)

    options = parse_options(
        ["-f", "x.py", "--headless", "--host", host, "--no-baseline", "--results-dir", results_dir]
    )
    user_class.abstract = False
    environment = Environment(
        user_classes=[user_class], events=locust.events, host=host, parsed_options=options
    )
    runner = environment.create_local_runner()
    locust.events.init.fire(environment=environment, runner=runner, web_ui=None)
    return environment


def measure(environment: Environment, warmup_s: float, run_s: float) -> float:
    """CPU µs per request of one short run."""
    runner = environment.runner
    runner.start(USERS, spawn_rate=USERS)
    gevent.sleep(warmup_s)
    requests_before = environment.stats.total.num_requests
    cpu_before_s = time.process_time()
    gevent.sleep(run_s)
    cpu_s = time.process_time() - cpu_before_s
    requests = environment.stats.total.num_requests - requests_before
    runner.stop()
    gevent.sleep(0.2)
    return cpu_s / max(requests, 1) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--run-s", type=float, default=3.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    args = parser.parse_args()
    os.environ["API_KEY"] = KEY
    for name in [n for n in os.environ if n.startswith(("LOADKIT_", "LOCUST_")) or n == "API_URL"]:
        del os.environ[name]
    with nginx_target(cpu=1) as target, tempfile.TemporaryDirectory() as results_dir:
        builders: dict[str, Callable[[], Environment]] = {
            "bare": lambda: bare_environment(BareUser, target.url),
            "check": lambda: bare_environment(CheckUser, target.url),
            "user": lambda: bare_environment(_kit_user(), target.url),
            "plugin": lambda: kit_environment(_kit_user(), target.url, results_dir),
        }
        environments = {name: build() for name, build in builders.items()}
        results: dict[str, list[float]] = {name: [] for name in builders}
        for round_index in range(args.rounds):
            for name, environment in environments.items():
                results[name].append(measure(environment, args.warmup_s, args.run_s))
            line = ", ".join(f"{n} {r[-1]:.1f}" for n, r in results.items())
            print(f"round {round_index + 1}: {line} µs/request", file=sys.stderr, flush=True)
    print(
        f"\nGET /health, {USERS} users, in one Locust process; median (min-max) of {args.rounds} "
        f"interleaved {args.run_s:g} s runs; load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| variant | CPU µs/request | step | vs bare |")
    print("|---|---|---|---|")
    previous = None
    bare = statistics.median(results["bare"])
    for name, values in results.items():
        median = statistics.median(values)
        step = "" if previous is None else f"{median - previous:+.1f}"
        print(
            f"| {name} | {median:.1f} ({min(values):.1f}-{max(values):.1f}) | {step} "
            f"| {median / bare:.2f}× |"
        )
        previous = median
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
