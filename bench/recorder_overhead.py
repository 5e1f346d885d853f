"""What measuring costs per request in the load generator: the one collector against the pair it
replaced (a benchmark, not a test).

Every request passes through the kit's ``request`` listener inside the load generator, whose CPU
budget sets the achievable rate (FastHttpUser spends about 95 µs of CPU per request here). Since
issue 9 the kit counts each request once, in ``loadkit.measure.collector.Collector``; before, it
counted it twice: ``RunRecorder`` for the verdict and ``PerSecondSeries`` for the time series,
each with its own listener. This prints µs per request for both, old and new:

* ``record()`` alone (the old pair: both ``record`` calls, as each of its listeners made one);
* a Locust ``request`` event with the listeners attached, less the cost of the event with
  Locust's own statistics only.

The old pair is taken from git (commit ``d33957e``) into a temporary directory when this runs;
nothing old lives in ``src``. It shares today's ``core.histogram`` (unchanged since).

Run from the repository: ``.venv/bin/python bench/recorder_overhead.py``
"""

from __future__ import annotations

import importlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from loadkit.measure.collector import Collector

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The last commit with ``RunRecorder`` and ``PerSecondSeries`` (both in ``src/loadkit/measure``).
OLD_COMMIT = "d33957e"
OLD_MODULES = ("run_clock", "recorder", "per_second", "series_listener")
OLD_PACKAGE = "loadkit_before_issue_9"
CALLS = 200_000
REPEATS = 5
NAMES = (("GET", "/api/calls"), ("POST", "/api/calls"), ("GET", "/health"))
RESPONSE_BYTES = 128
#: CPU per request of FastHttpUser against a fast loopback server, measured here; for scale.
FASTHTTP_CPU_US = 95.0


def load_old_modules(directory: Path) -> dict[str, ModuleType]:
    """The old measurement modules from git, importable as ``loadkit_before_issue_9.*``."""
    package = directory / OLD_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text(f'"""loadkit.measure as of {OLD_COMMIT}."""\n')
    for module in OLD_MODULES:
        source = subprocess.run(
            ["git", "show", f"{OLD_COMMIT}:src/loadkit/measure/{module}.py"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (package / f"{module}.py").write_text(source.replace("loadkit.measure.", f"{OLD_PACKAGE}."))
    sys.path.insert(0, str(directory))
    return {m: importlib.import_module(f"{OLD_PACKAGE}.{m}") for m in OLD_MODULES}


def best_us_per_call(runs: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Each run's best of ``REPEATS`` (each makes ``CALLS`` calls), in µs of CPU per call.

    CPU time of this process, not wall time, and the runs taken in turn: the machine is shared,
    and what other processes do then weighs on old and new alike, and less.
    """
    best_s = dict.fromkeys(runs, float("inf"))
    for _ in range(REPEATS):
        for name, run in runs.items():
            started_s = time.process_time()
            run()
            best_s[name] = min(best_s[name], time.process_time() - started_s)
    return {name: seconds / CALLS * 1e6 for name, seconds in best_s.items()}


def latencies_ms() -> list[float]:
    """Realistic spread: mostly 1-50 ms, some sub-ms and some slow outliers."""
    rng = random.Random(7)
    return [rng.lognormvariate(2.0, 1.0) for _ in range(CALLS)]


def started_collector() -> Collector:
    collector = Collector()
    collector.start(run_id="bench", start_epoch_s=time.time(), start_mono_s=time.monotonic())
    return collector


# -- record() alone -------------------------------------------------------------------------------


def bench_harness() -> Callable[[], None]:
    """The loop with a no-op in place of ``record()``: subtracted from the others."""
    values = latencies_ms()
    monotonic = time.monotonic

    def record(*_args: object) -> None:
        return None

    def run() -> None:
        for i, latency_ms in enumerate(values):
            request_type, name = NAMES[i % 3]
            record(request_type, name, latency_ms, i % 10 == 0, monotonic(), RESPONSE_BYTES)

    return run


def bench_record_new() -> Callable[[], None]:
    values = latencies_ms()
    monotonic = time.monotonic
    record = started_collector().record

    def run() -> None:
        for i, latency_ms in enumerate(values):
            request_type, name = NAMES[i % 3]
            record(request_type, name, latency_ms, i % 10 == 0, monotonic(), RESPONSE_BYTES)

    return run


def bench_record_old(old: dict[str, ModuleType]) -> Callable[[], None]:
    values = latencies_ms()
    monotonic = time.monotonic
    record_run = old["recorder"].RunRecorder().record
    record_second = old["per_second"].PerSecondSeries().record

    def run() -> None:
        for i, latency_ms in enumerate(values):
            request_type, name = NAMES[i % 3]
            failed = i % 10 == 0
            now = monotonic()
            record_run(request_type, name, latency_ms, failed, now)
            record_second(request_type, name, latency_ms, failed, now)

    return run


# -- a Locust request event -----------------------------------------------------------------------


def bench_event(attach: Callable[[Any], None] | None) -> tuple[Callable[[], None], Any]:
    """A Locust ``request`` event per call, Locust's own statistics included; ``attach`` adds
    the listeners under test to a fresh environment. Returns the run and its environment."""
    from locust import User
    from locust.env import Environment
    from locust.event import Events

    class _Idle(User):
        abstract = True

    environment = Environment(user_classes=[_Idle], events=Events())
    environment.create_local_runner()
    if attach is not None:
        attach(environment)
    values = latencies_ms()
    fire = environment.events.request.fire
    boom = RuntimeError("boom")

    def run() -> None:
        for i, latency_ms in enumerate(values):
            request_type, name = NAMES[i % 3]
            fire(
                request_type=request_type,
                name=name,
                response_time=latency_ms,
                response_length=RESPONSE_BYTES,
                exception=boom if i % 10 == 0 else None,
                context={},
            )

    return run, environment


def attach_new(environment: Any) -> None:
    """The kit's listener (``plugin.measurement``), recording as during a run."""
    from loadkit.plugin.measurement import Measurement

    measurement = Measurement(environment)
    measurement.collector.start(
        run_id="bench", start_epoch_s=time.time(), start_mono_s=time.monotonic()
    )
    measurement.active = True


def attach_old(old: dict[str, ModuleType]) -> Callable[[Any], None]:
    def attach(environment: Any) -> None:
        old["recorder"].attach(environment)
        series = old["series_listener"].Collector(environment)
        series.active = True

    return attach


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        old = load_old_modules(Path(directory))
        events = {
            "locust": bench_event(None),
            "old event": bench_event(attach_old(old)),
            "new event": bench_event(attach_new),
        }
        us = best_us_per_call(
            {
                "loop": bench_harness(),
                "old record": bench_record_old(old),
                "new record": bench_record_new(),
                **{name: run for name, (run, _) in events.items()},
            }
        )
        for _, environment in events.values():
            environment.runner.quit()
    old_us, new_us = us["old record"] - us["loop"], us["new record"] - us["loop"]
    old_event_us = us["old event"] - us["locust"]
    new_event_us = us["new event"] - us["locust"]
    print(f"µs of CPU per request ({CALLS:,} calls, best of {REPEATS})")
    print(
        f"  record() alone:       old {old_us:5.2f}   new {new_us:5.2f}   (loop {us['loop']:.2f})"
    )
    print(
        f"  Locust request event: old +{old_event_us:5.2f}  new +{new_event_us:5.2f}  "
        f"(Locust's own statistics: {us['locust']:.2f})"
    )
    print(
        f"  share of FastHttpUser's ~{FASTHTTP_CPU_US:g} µs per request: "
        f"old {old_event_us / FASTHTTP_CPU_US:.1%}, new {new_event_us / FASTHTTP_CPU_US:.1%}"
    )


if __name__ == "__main__":
    main()
