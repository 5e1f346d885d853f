from __future__ import annotations

import random

from loadkit.workload.recent_calls import RecentCalls


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_calls_expire_and_are_retried_at_most_max_retries_times() -> None:
    clock = FakeClock()
    calls = RecentCalls(max_age_s=45, max_retries=3, clock=clock, rng=random.Random(1))
    assert calls.pick() is None
    calls.add("a")
    assert [calls.pick() for _ in range(4)] == ["a", "a", "a", None]
    calls.add("b")
    clock.now = 46
    assert calls.pick() is None
    assert len(calls) == 0
