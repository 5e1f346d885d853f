"""How much the kit's recorder adds to every request in the load generator (not a test).

``RunRecorder.record`` runs once per request inside the load generator, whose CPU budget sets
the achievable request rate (FastHttpUser spends ≈ 95 µs of CPU per request on our machine).
This prints µs per call for the bare ``record()`` and for a Locust ``request`` event fired with
and without the recorder attached, so the recorder's share of that budget is visible.

Run: ``/work/venv/bin/python bench/recorder_overhead.py``
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from loadkit.measure.recorder import RunRecorder

CALLS = 200_000
REPEATS = 5


def _best_us_per_call(run: Callable[[], None]) -> float:
    """Best of ``REPEATS`` timings of ``run`` (which makes ``CALLS`` calls), in µs per call."""
    best_s = float("inf")
    for _ in range(REPEATS):
        started_s = time.perf_counter()
        run()
        best_s = min(best_s, time.perf_counter() - started_s)
    return best_s / CALLS * 1e6


def _latencies_ms() -> list[float]:
    """Realistic spread: mostly 1-50 ms, some sub-ms and some slow outliers."""
    rng = random.Random(7)
    return [rng.lognormvariate(2.0, 1.0) for _ in range(CALLS)]


def bench_record() -> float:
    """Bare ``record()`` calls over a few endpoints, one in ten failing."""
    latencies_ms = _latencies_ms()
    names = [("GET", "/api/calls"), ("POST", "/api/calls"), ("GET", "/health")]
    recorder = RunRecorder()
    monotonic = time.monotonic

    def run() -> None:
        record = recorder.record
        for i, latency_ms in enumerate(latencies_ms):
            request_type, name = names[i % 3]
            record(request_type, name, latency_ms, i % 10 == 0, monotonic())

    return _best_us_per_call(run)


def bench_loop_overhead() -> float:
    """The same loop without the ``record()`` call, to subtract the harness's own cost."""
    latencies_ms = _latencies_ms()
    names = [("GET", "/api/calls"), ("POST", "/api/calls"), ("GET", "/health")]
    monotonic = time.monotonic

    def record(*_args: object) -> None:
        return None

    def run() -> None:
        for i, latency_ms in enumerate(latencies_ms):
            request_type, name = names[i % 3]
            record(request_type, name, latency_ms, i % 10 == 0, monotonic())

    return _best_us_per_call(run)


def bench_locust_event(with_recorder: bool) -> float:
    """A Locust ``request`` event (with Locust's own stats listener) per call."""
    from loadkit.measure.recorder import attach
    from locust import User
    from locust.env import Environment
    from locust.event import Events

    class _Idle(User):
        abstract = True

    environment = Environment(user_classes=[_Idle], events=Events())  # fresh listeners
    environment.create_local_runner()
    if with_recorder:
        attach(environment)
    latencies_ms = _latencies_ms()
    fire = environment.events.request.fire

    def run() -> None:
        for i, latency_ms in enumerate(latencies_ms):
            fire(
                request_type="GET",
                name="/api/calls",
                response_time=latency_ms,
                response_length=0,
                exception=None if i % 10 else RuntimeError("boom"),
                context={},
            )

    try:
        return _best_us_per_call(run)
    finally:
        environment.runner.quit()


def main() -> None:
    harness_us = bench_loop_overhead()
    record_us = bench_record()
    print(f"record(): {record_us - harness_us:.2f} µs per call (harness {harness_us:.2f} µs)")
    without_us = bench_locust_event(with_recorder=False)
    with_us = bench_locust_event(with_recorder=True)
    print(
        f"Locust request event: {without_us:.2f} µs without the recorder, "
        f"{with_us:.2f} µs with it (+{with_us - without_us:.2f} µs per request)"
    )


if __name__ == "__main__":
    main()
