"""Profile purposes as numbers: the windows, recovery, held load, drift, series rate and growth."""

from __future__ import annotations

import math

import pytest

from loadkit import registry
from loadkit.core.baselines import BaselineError, parse_baseline
from loadkit.core.histogram import LatencyHistogram
from loadkit.core.profiles import scale
from loadkit.core.purposes import (
    PurposeFigures,
    held_load,
    level_criteria,
    purpose_windows,
    recovery,
    spike_windows,
)
from loadkit.core.series import growth_per_h, growth_window, rate_per_s
from loadkit.core.verdict import GaugeSummary, evaluate
from loadkit.measure.collector import Collector
from loadkit.measure.timeline import Tally, Timeline

SPIKE = registry.PROFILES["spike"].stages


def tally(*latencies_ms: float, failures: int = 0, seconds: int = 1) -> Tally:
    hist = LatencyHistogram()
    for value in latencies_ms:
        hist.record(value)
    return Tally(hist, len(latencies_ms), failures, seconds)


def baseline(criteria: str, scenario: str = "health") -> object:
    return parse_baseline(f'scenario = "{scenario}"\n{criteria}', scenario)


# -- windows ------------------------------------------------------------------------------------


def test_spike_windows_follow_the_played_stages() -> None:
    assert spike_windows(SPIKE) == {
        "before": (0.0, 30.0),
        "surge": (30.0, 90.0),
        "recovery": (90.0, 120.0),
    }
    assert "recovery" not in spike_windows(registry.PROFILES["spike"].played_stages(0))
    scaled = spike_windows(scale(SPIKE, time_scale=0.1))
    assert scaled["recovery"] == pytest.approx((9.0, 12.0))
    assert spike_windows(registry.PROFILES["soak"].stages) == {}  # no rise above the start


def test_soak_drift_windows_are_the_first_and_last_sixth() -> None:
    windows = purpose_windows("soak", registry.PROFILES["soak"].stages)
    assert windows == {"first": (0.0, 600.0), "last": (3000.0, 3600.0)}
    assert purpose_windows("spike", SPIKE)["first"] == (90.0, 95.0)  # the hold is its plateau


# -- recovery -----------------------------------------------------------------------------------


def test_recovery_counts_from_the_hold_until_p95_stays_back() -> None:
    before = tally(*[10.0] * 100)  # pre-spike P95 10 ms: limit max(12, 11) = 12 ms
    quick = recovery(before, {90.0: 11.0, 91.0: 12.0, 92.0: 9.0}, 90.0, 0.2)
    assert not isinstance(quick, str)
    assert (quick.reference_ms, quick.limit_ms, quick.recovery_s) == (10.0, 12.0, 0.0)
    slow = recovery(before, {90.0: 40.0, 91.0: 11.0, 92.0: 30.0, 93.0: 12.0, 94.0: 9}, 90.0, 0.2)
    assert not isinstance(slow, str) and slow.recovery_s == 3.0  # 92 s relapsed: 93 s counts
    never = recovery(before, {90.0: 11.0, 91.0: 50.0}, 90.0, 0.2)
    assert not isinstance(never, str) and math.isinf(never.recovery_s)
    assert never.last_p95_ms == 50.0
    assert "no requests before the spike" in str(recovery(None, {90.0: 1.0}, 90.0, 0.2))
    tiny = recovery(tally(0.5), {90.0: 1.4}, 90.0, 0.2)  # 0.5 ms: the 1 ms slack applies
    assert not isinstance(tiny, str) and tiny.limit_ms == 1.5 and tiny.recovery_s == 0.0


def test_figures_judge_recovery_surge_errors_and_drift() -> None:
    b = baseline(
        """
[[criteria]]
request = "total"
metric = "recovery"
op = "<="
value = "5s"

[[criteria]]
request = "GET /health"
during = "surge"
metric = "error_rate"
op = "<"
value = "1%"

[[criteria]]
request = "total"
metric = "p95_drift"
op = "<"
value = "5ms"
"""
    )
    windows = {**spike_windows(SPIKE), "first": (0.0, 10.0), "last": (110.0, 120.0)}
    by_window = {
        "before": {"Aggregated": tally(*[10.0] * 50)},
        "surge": {"GET /health": tally(*[30.0] * 98, 30.0, 30.0, failures=2)},
        "first": {"Aggregated": tally(*[10.0] * 20)},
        "last": {"Aggregated": tally(*[18.0] * 20)},
    }
    hold = {90.0 + k: {"Aggregated": 40.0 if k < 8 else 11.0} for k in range(30)}
    figures = PurposeFigures(windows, by_window, hold, stopped_at_s=120.0)
    verdict = evaluate({}, b, profile="spike", figures=figures)  # type: ignore[arg-type]
    recovered, surge, drift = verdict.results
    assert (recovered.status, recovered.measured) == ("failed", 8.0)
    assert "pre-spike P95 10 ms, limit 12 ms; back within it after 8 s" in recovered.reason
    assert (surge.status, surge.measured) == ("failed", 0.02)
    assert (drift.status, drift.measured) == ("failed", 8.0)
    assert "P95 10 ms in the first window, 18 ms in the last" in drift.reason
    assert surge.criterion.subject == "GET /health during surge"
    cut = evaluate(  # a run that stopped before its hold ended has no recovery
        {}, b, profile="spike", figures=PurposeFigures(windows, by_window, hold, 100.0)
    )  # type: ignore[arg-type]
    assert cut.results[0].status == "no data"
    assert "before the end of its recovery hold" in cut.results[0].reason


# -- held load ----------------------------------------------------------------------------------


def test_held_load_is_the_last_level_before_the_first_failure() -> None:
    b = baseline(
        """
[[criteria]]
request = "total"
metric = "p95"
op = "<"
value = "50ms"

[[criteria]]
request = "total"
metric = "error_rate"
op = "<"
value = "1%"

[[criteria]]
request = "total"
metric = "rps"
op = ">="
value = "1000/s"
"""
    )
    criteria = level_criteria(b, "stress")  # type: ignore[arg-type]
    assert [c.metric for c in criteria] == ["p95", "error_rate"]  # rps is not per level
    levels = {
        10: {"Aggregated": tally(*[20.0] * 100, seconds=2)},
        20: {"Aggregated": tally(*[40.0] * 100, seconds=4)},
        30: {"Aggregated": tally(*[60.0] * 100)},
        40: {"Aggregated": tally(*[20.0] * 100)},  # never reached: 30 failed first
    }
    held = held_load(levels, criteria)
    assert held is not None and (held.users, held.rps, held.first_failed) == (20, 25.0, 30)
    assert held.describe() == (
        "held up to 20 users (25 rps); first failed at 30 users: total p95 60 ms, needs < 50 ms"
    )
    errors = {5: {"Aggregated": tally(*[1.0] * 99, 1.0, failures=5)}}
    none_held = held_load(errors, criteria)
    assert none_held is not None and none_held.users is None and none_held.first_failed == 5
    assert held_load({}, criteria) is None


# -- series -------------------------------------------------------------------------------------


def test_rate_survives_a_counter_reset_and_growth_is_a_slope_per_hour() -> None:
    cpu = [(0.0, 10.0), (1.0, 10.5), (2.0, 11.0), (3.0, 0.4), (4.0, 0.9)]  # restarted at 3 s
    assert rate_per_s(cpu) == pytest.approx((0.5 + 0.5 + 0.4 + 0.5) / 4)
    assert rate_per_s(cpu, (1.0, 2.0)) == pytest.approx(0.5)
    assert rate_per_s(cpu[:1]) is None
    memory = [(float(t), 1e8 + 1000.0 * t + (50.0 if t % 2 else -50.0)) for t in range(60)]
    assert growth_per_h(memory) == pytest.approx(3.6e6, rel=0.01)  # 1 kB/s, noise cancels
    assert growth_window((0.0, 60.0)) == (10.0, 60.0)  # the first sixth is warm-up
    assert growth_per_h([(1.0, 5.0), (1.0, 6.0)]) is None


def test_platform_criteria_read_their_series_from_the_gauges() -> None:
    b = baseline(
        """
[[criteria]]
platform = "process_cpu_seconds_total"
metric = "rate"
op = "<"
value = "80%"

[[criteria]]
platform = "http_request_duration_seconds_bucket"
labels = { le = "0.1", route = "/health" }
metric = "final"
op = ">="
value = 10

[[criteria]]
platform = "process_resident_memory_bytes"
metric = "growth"
op = "<"
value = "50MiB/h"
"""
    )
    cpu, bucket, memory = b.criteria  # type: ignore[attr-defined]
    assert (
        bucket.gauge_key
        == 'platform http_request_duration_seconds_bucket{le="0.1",route="/health"}'
    )
    assert memory.threshold == 50 * 1024**2 and memory.format(memory.threshold) == "50 MiB/h"
    assert cpu.threshold == 0.8 and cpu.format(0.915) == "91.5%"

    def summary(**values: float | None) -> GaugeSummary:
        return GaugeSummary(5, 0.0, 1.0, 0.5, 1.0, 1.0, **values)  # type: ignore[arg-type]

    gauges = {
        "platform process_cpu_seconds_total": summary(rate=0.915),
        "platform process_resident_memory_bytes": summary(growth=None, why_missing="too short"),
    }
    results = evaluate({}, b, profile="soak", gauges=gauges).results  # type: ignore[arg-type]
    assert [r.status for r in results] == ["failed", "no data", "no data"]
    assert results[0].reason == "91.5%, needs < 80%"
    assert "was not sampled" in results[1].reason
    assert results[2].reason == (
        "no growth of platform metric 'process_resident_memory_bytes': too short"
    )


@pytest.mark.parametrize(
    ("criterion", "problem"),
    [
        (
            'request = "total"\nlabels = { a = "b" }\nmetric = "p95"\nop = "<"\nvalue = "1ms"',
            "labels",
        ),
        (
            'request = "total"\nmetric = "recovery"\nduring = "surge"\nop = "<"\nvalue = "1s"',
            "during",
        ),
        (
            'request = "total"\nmetric = "p95"\ntolerance = "5%"\nop = "<"\nvalue = "1ms"',
            "tolerance",
        ),
        ('platform = "m"\nmetric = "growth"\nop = "<"\nvalue = "5MiB/s"', "value"),
        ('platform = "m"\nmetric = "rate"\nop = "<"\nvalue = "5 parsecs"', "value"),
        ('request = "total"\nmetric = "recovery"\nop = "<"\nvalue = "5"', "value"),
        ('gauge = "queue_depth"\nmetric = "rate"\nop = "<"\nvalue = 5', "metric"),
    ],
)
def test_purpose_keys_are_checked_at_the_start(criterion: str, problem: str) -> None:
    with pytest.raises(BaselineError) as caught:
        baseline(f"[[criteria]]\n{criterion}\n")
    assert caught.value.key_path == f"criteria[0].{problem}"


# -- the timeline on a real collector -----------------------------------------------------------


def test_timeline_keeps_phases_levels_and_recovery_seconds_from_the_collector() -> None:
    collector = Collector()
    timeline = Timeline()
    collector.observers.append(timeline)
    collector.start(run_id="r", start_epoch_s=1000.0, start_mono_s=0.0)
    windows = {"before": (0.0, 2.0), "surge": (2.0, 4.0), "recovery": (4.0, 6.0)}
    timeline.start(collector.start_epoch_s, windows)
    latency = {0: 1.0, 1: 1.0, 2: 9.0, 3: 9.0, 4: 5.0, 5: 1.0}
    users = {0: 1, 1: 1, 2: 10, 3: 10, 4: 1, 5: 1}
    for second, ms in latency.items():
        collector.sample_users(users[second], 1000 + second)
        for k in range(10):
            collector.record("GET", "/health", ms, k == 0 and second == 3, second + 0.5)
    collector.pop_records(1006)
    assert timeline.by_window["before"]["GET /health"].requests == 20
    surge = timeline.by_window["surge"]["Aggregated"]
    assert (surge.requests, surge.failures, surge.hist.percentile_ms(95)) == (20, 1, 9.0)
    assert timeline.recovery_p95_ms == {
        4.0: {"GET /health": 5.0, "Aggregated": 5.0},
        5.0: {"GET /health": 1.0, "Aggregated": 1.0},
    }
    assert {u: t["Aggregated"].requests for u, t in timeline.by_level.items()} == {1: 40, 10: 20}
    assert timeline.by_level[10]["Aggregated"].seconds == 2
