"""What counting bytes sent adds to every request in the load generator (not a test).

Locust's ``request`` event has no "bytes sent"; the kit reads it off the response
(``plugin.locust_adapter.request_bytes_sent``) in its one request listener. This prints µs per
call of that read on a real ``FastResponse`` (a GET, and a POST with a JSON body), and of the
collector's ``record`` with and without a byte count, next to FastHttpUser's own ≈ 95 µs of CPU
per request on this machine (LOCUST_NOTES.md).

Run: ``.venv/bin/python bench/bytes_sent_cost.py``
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from locust.contrib.fasthttp import FastHttpSession  # noqa: E402
from locust.env import Environment  # noqa: E402

from loadkit.endpoints import CALLS, HEALTH  # noqa: E402
from loadkit.measure.collector import Collector  # noqa: E402
from loadkit.platform.launcher import start_platform  # noqa: E402
from loadkit.plugin.locust_adapter import request_bytes_sent  # noqa: E402

CALLS_PER_RUN = 200_000
REPEATS = 5
KEY = "bench-key-0123456789abcdef"


def best_us_per_call(run: Callable[[], None]) -> float:
    best_s = float("inf")
    for _ in range(REPEATS):
        started_s = time.perf_counter()
        run()
        best_s = min(best_s, time.perf_counter() - started_s)
    return best_s / CALLS_PER_RUN * 1e6


def main() -> None:
    with start_platform(KEY) as platform:
        session = FastHttpSession(platform.url, Environment().events.request, user=None)
        get = session.get(HEALTH)
        post = session.post(
            CALLS,
            json={"phone_number": "+14155550100", "scheduled_at": "2030-01-01T00:00:00Z"},
            headers={"X-API-Key": KEY},
        )
    loop = best_us_per_call(lambda: [None for _ in range(CALLS_PER_RUN)])
    for what, response in (("GET /health", get), ("POST /api/calls (JSON)", post)):
        cost = best_us_per_call(
            lambda r=response: [request_bytes_sent(r) for _ in range(CALLS_PER_RUN)]
        )
        print(
            f"request_bytes_sent, {what}: {cost - loop:.3f} µs/request "
            f"({request_bytes_sent(response)} bytes)"
        )
    collector = Collector()
    collector.start(run_id="b", start_epoch_s=time.time(), start_mono_s=time.monotonic())
    now = time.monotonic()
    without = best_us_per_call(
        lambda: [
            collector.record("GET", "/health", 1.5, False, now, 17) for _ in range(CALLS_PER_RUN)
        ]
    )
    with_sent = best_us_per_call(
        lambda: [
            collector.record("GET", "/health", 1.5, False, now, 17, 160)
            for _ in range(CALLS_PER_RUN)
        ]
    )
    print(f"collector.record: {without - loop:.3f} µs, with bytes sent {with_sent - loop:.3f} µs")


if __name__ == "__main__":
    main()
