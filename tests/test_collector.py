"""The one collector with a fake clock: rates over windows (pro-rata edges, no rate under 1 s),
the HTTP total, bytes, distributed deltas, the run's first request, Reset; and the window the
verdict measures rates over. No Locust runs here: every clock reading is passed in."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loadkit.core.baselines import Baseline, parse_baseline
from loadkit.core.lifecycle import Lifecycle
from loadkit.core.metrics import EndpointMetrics
from loadkit.core.plan import RunPlan
from loadkit.core.profiles import Stage
from loadkit.endpoints import INTENDED_REQUEST_TYPE, JOB_REQUEST_TYPE
from loadkit.measure.collector import Collector
from loadkit.plugin.verdict import judge, measured_window
from loadkit.results.verdict_files import render_console, verdict_to_dict

#: The fake clock's start: a quarter into a wall-clock second, at an arbitrary monotonic reading.
START_EPOCH_S = 1_700_000_000.25
START_MONO_S = 500.0
T0 = 1_700_000_000


def fake_collector(run_id: str | None = None) -> Collector:
    collector = Collector()
    collector.start(run_id=run_id, start_epoch_s=START_EPOCH_S, start_mono_s=START_MONO_S)
    return collector


def at(run_s: float) -> float:
    """The monotonic reading ``run_s`` seconds after the fake start."""
    return START_MONO_S + run_s


def run_s_of_epoch(epoch_s: float) -> float:
    return epoch_s - START_EPOCH_S


def fill_seconds(collector: Collector, counts: dict[int, int], key: str = "GET /a") -> None:
    """``counts[k]`` requests spread evenly over epoch second ``T0 + k``."""
    method, name = key.split(" ", 1)
    for k, n in counts.items():
        for i in range(n):
            epoch_s = T0 + k + (i + 0.5) / n
            collector.record(method, name, 5.0, False, at(run_s_of_epoch(epoch_s)))


def wire(payload: dict[str, Any]) -> dict[str, Any]:
    """What the master receives: Locust ships messages with msgpack."""
    return msgpack.loads(msgpack.dumps(payload), raw=False, strict_map_key=False)


# -- rates over windows ---------------------------------------------------------------------------


def test_a_window_on_whole_seconds_counts_exactly_those_seconds() -> None:
    collector = fake_collector()
    fill_seconds(collector, {1: 10, 2: 20, 3: 30, 4: 40})
    # run time 0.75 s is epoch T0+1.0: the window covers seconds 1, 2 and 3 exactly
    row = collector.snapshot((0.75, 3.75))["GET /a"]
    assert row.window_s == 3.0
    assert row.rps == pytest.approx(60 / 3)
    assert row.count == 100  # counts and latencies cover the whole run, not the window


def record_between(collector: Collector, n: int, first_epoch_s: float, last_epoch_s: float) -> None:
    """``n`` requests of ``GET /a`` completing evenly from ``first_epoch_s`` to ``last_epoch_s``."""
    for i in range(n):
        epoch_s = first_epoch_s + (last_epoch_s - first_epoch_s) * i / (n - 1)
        collector.record("GET", "/a", 5.0, False, at(run_s_of_epoch(epoch_s)))


def test_an_edge_second_counts_pro_rata_over_the_span_its_requests_occupy() -> None:
    collector = fake_collector()
    record_between(collector, 10, T0 + 1.2, T0 + 1.8)
    record_between(collector, 20, T0 + 2.0, T0 + 2.9)
    record_between(collector, 30, T0 + 3.0, T0 + 3.5)
    # epoch T0+1.5 .. T0+3.25: half of second 1's span, all of second 2, half of second 3's span
    window = (run_s_of_epoch(T0 + 1.5), run_s_of_epoch(T0 + 3.25))
    row = collector.snapshot(window)["GET /a"]
    assert row.window_s == pytest.approx(1.75)
    assert row.rps == pytest.approx((10 * 0.5 + 20 + 30 * 0.5) / 1.75)
    assert collector.snapshot(window)["Aggregated"].rps == pytest.approx(row.rps)


def test_the_seconds_where_the_load_starts_and_stops_are_not_thinned_out() -> None:
    """10/s from T0+0.6 to T0+3.4: the first and the last second are loaded only in part. Spread
    over whole seconds they would read 1.6 requests each instead of 4 (8.3/s, not 10/s)."""
    collector = fake_collector()
    record_between(collector, 28, T0 + 0.65, T0 + 3.35)
    row = collector.snapshot((run_s_of_epoch(T0 + 0.6), run_s_of_epoch(T0 + 3.4)))["GET /a"]
    assert (row.count, row.window_s) == (28, pytest.approx(2.8))
    assert row.rps == pytest.approx(10.0)


def test_quiet_seconds_inside_the_window_count_as_zero() -> None:
    collector = fake_collector()
    fill_seconds(collector, {1: 8, 5: 8})
    row = collector.snapshot((0.75, 8.75))["GET /a"]  # seconds 1..8
    assert (row.window_s, row.rps) == (8.0, pytest.approx(16 / 8))


def test_a_window_under_one_second_has_no_rate_never_zero() -> None:
    collector = fake_collector()
    fill_seconds(collector, {1: 100, 2: 100})
    short = collector.snapshot((1.0, 1.9))
    for key in ("GET /a", "Aggregated"):
        assert short[key].rps is None
        assert short[key].window_s == pytest.approx(0.9)
        assert short[key].count == 200
    assert collector.snapshot((1.0, 2.0))["GET /a"].rps == pytest.approx(100.0)
    assert collector.snapshot(None)["GET /a"].rps is None  # no window, no rate


def test_a_short_window_reads_no_data_with_its_reason_in_the_verdict() -> None:
    collector = fake_collector()
    collector.record("GET", "/health", 2.0, False, at(0.3))
    collector.record("GET", "/health", 2.0, False, at(1.1))
    plan = RunPlan(scenario="health", profile="custom", stages=(), baseline=rps_floor())
    lifecycle = Lifecycle(planned_s=None)
    lifecycle.stopped(1.2, by="stopped")  # 0.9 s after the first request
    verdict = judge(plan, collector, lifecycle, 1.2, gauges={}, counters={})
    (result,) = verdict.results
    assert result.status == "no data"
    assert result.reason == "window 0.9 s is shorter than 1 s: no rate"
    assert verdict.totals.requests == 2 and verdict.totals.rps is None
    assert verdict_to_dict(verdict)["totals"]["rps"] is None
    console = render_console(verdict)
    assert "2 requests, 0 failed (0%), no rate (window under 1 s)" in console
    assert "0/s" not in console
    assert verdict.exit_code == 1  # a criterion with no data fails the run


def rps_floor() -> Baseline:
    text = '[[criteria]]\nrequest = "total"\nmetric = "rps"\nop = ">="\nvalue = "1/s"\n'
    return parse_baseline(f'scenario = "health"\n{text}', "health", source="health.toml")


@settings(max_examples=200, deadline=None)
@given(
    times_s=st.lists(st.floats(0.0, 20.0, allow_nan=False), min_size=1, max_size=300),
    start_s=st.floats(0.0, 18.0),
    length_s=st.floats(1.0, 20.0),
)
def test_pro_rata_rate_is_the_exact_rate_within_what_the_edge_seconds_hold(
    times_s: list[float], start_s: float, length_s: float
) -> None:
    """Whatever the request times, the rate over a window >= 1 s differs from the exact count in
    the window divided by its length only by what the two edge seconds can hold: each adds its
    count times the share of its requests' span inside the window, where the exact count takes
    anything from none to all of them."""
    collector = fake_collector()
    epochs = []
    for t in times_s:
        collector.record("GET", "/a", 1.0, False, at(t))
        epochs.append(collector.epoch_s(at(t)))
    end_s = start_s + length_s
    assume(end_s - start_s >= 1.0)  # float rounding can make a 1 s window 0.9999999 s
    rate = collector.snapshot((start_s, end_s))["Aggregated"].rps
    assert rate is not None
    a, b = START_EPOCH_S + start_s, START_EPOCH_S + end_s
    exact = sum(1 for e in epochs if a <= e < b)
    slack = 0.0
    for second in {math.floor(a), math.floor(b)}:
        inside = [e for e in epochs if math.floor(e) == second]
        if not inside:
            continue
        first, last = min(inside), max(inside)
        if last > first:
            share = max(0.0, min(last, b) - max(first, a)) / (last - first)
        else:
            share = 1.0 if a <= first <= b else 0.0
        slack += len(inside) * max(share, 1 - share)
    assert abs(rate * (b - a) - exact) <= slack + 1e-6


# -- rows and totals ------------------------------------------------------------------------------


def test_job_and_intended_rows_stay_out_of_the_http_total() -> None:
    collector = fake_collector()
    # run time 0.8 s is epoch T0+1.05: everything completes in second 1
    collector.record("POST", "/api/contacts/import", 30.0, False, at(0.8), 120)
    collector.record("GET", "/api/imports/[id]", 2.0, True, at(0.85), 80)
    collector.record(JOB_REQUEST_TYPE, "bulk import: upload to completed", 4000.0, False, at(0.9))
    collector.record(INTENDED_REQUEST_TYPE, "POST /api/calls", 900.0, True, at(0.95), 7)
    snapshot = collector.snapshot((0.75, 1.75))
    assert list(snapshot) == [
        "GET /api/imports/[id]",
        "INTENDED POST /api/calls",
        "JOB bulk import: upload to completed",
        "POST /api/contacts/import",
        "Aggregated",
    ]
    total = snapshot["Aggregated"]
    assert (total.method, total.name) == ("", "Aggregated")
    assert (total.count, total.failures, total.bytes_received) == (2, 1, 200)
    assert total.max_ms == 30.0  # not the JOB's 4000 ms nor the INTENDED 900 ms
    assert total.rps == pytest.approx(2.0)  # the two requests in second 1, over 1 s
    assert snapshot["JOB bulk import: upload to completed"].p95_ms == 4000.0
    assert collector.per_second("Aggregated") == {T0 + 1: (2, 1)}


def test_bytes_received_per_row_and_in_total() -> None:
    collector = fake_collector()
    for i in range(10):
        collector.record("GET", "/a", 1.0, False, at(0.1 * i), 1000 + i)
    collector.record("GET", "/b", 1.0, True, at(1.0), 0)
    collector.record("GET", "/b", None, True, at(1.1), 55)  # counted without a timing
    snapshot = collector.snapshot()
    assert snapshot["GET /a"].bytes_received == 10_045
    assert snapshot["GET /b"].bytes_received == 55
    assert snapshot["GET /b"].count == 2
    assert snapshot["Aggregated"].bytes_received == 10_100


def test_latencies_come_from_the_histogram() -> None:
    collector = fake_collector()
    for i in range(1, 101):
        collector.record("GET", "/a", float(i), False, at(0.5))
    row = collector.snapshot()["GET /a"]
    assert (row.min_ms, row.max_ms, row.avg_ms) == (1.0, 100.0, 50.5)
    assert (row.p50_ms, row.p90_ms, row.p95_ms, row.p99_ms) == (50.0, 90.0, 95.0, 99.0)


def test_writing_the_seconds_out_changes_no_number() -> None:
    """Folding final seconds into the whole-run rows (the ticker) leaves every figure as it was."""
    collector = fake_collector()
    fill_seconds(collector, {0: 3, 1: 10, 2: 20, 3: 30})
    window = (0.5, 3.4)
    before = collector.snapshot(window)
    collector.pop_records(T0 + 2)
    assert collector.snapshot(window) == before
    collector.pop_all()
    assert collector.snapshot(window) == before


def test_empty_snapshot_has_a_zero_total() -> None:
    snapshot = fake_collector().snapshot((0.0, 5.0))
    assert list(snapshot) == ["Aggregated"]
    assert (snapshot["Aggregated"].count, snapshot["Aggregated"].rps) == (0, 0.0)


# -- distributed ----------------------------------------------------------------------------------


def test_worker_deltas_merge_to_the_same_numbers_as_one_collector() -> None:
    """Two workers with their own monotonic clocks, told of the run's start late, send deltas
    over msgpack; the master's numbers equal those of one collector that saw every request."""
    single = fake_collector()
    master = fake_collector(run_id="run-1")
    clocks = {"w1": (0.4, 7.0), "w2": (0.1, 90_000.0)}  # lag behind the master, monotonic start
    workers = {name: Collector() for name in clocks}
    for name, (lag_s, mono_s) in clocks.items():
        workers[name].start(
            run_id="run-1",
            start_epoch_s=START_EPOCH_S,
            start_mono_s=mono_s,
            now_epoch_s=START_EPOCH_S + lag_s,
        )
    for step in range(900):
        name = "w1" if step % 3 else "w2"
        lag_s, mono_s = clocks[name]
        latency_ms = 1.0 + (step * 37) % 200 / 3
        failed = step % 11 == 0
        length = step % 17
        key = ("GET", "/x") if step % 4 else ("POST", "/y")
        single.record(*key, latency_ms, failed, at(lag_s + step * 0.01), length)
        workers[name].record(*key, latency_ms, failed, mono_s + step * 0.01, length)
        if step % 5 == 0:
            single.count("iterations_started")
            workers[name].count("iterations_started")
        if step % 100 == 99:  # periodic deltas; the master writes out what became final
            master.merge_delta(name, wire(workers[name].export_delta(mono_s + step * 0.01)))
            master.pop_records(T0 + int(step * 0.01) - 1)
    for name, worker in workers.items():
        assert master.merge_delta(name, wire(worker.export_delta(clocks[name][1] + 10, final=True)))
        assert worker.export_delta(clocks[name][1] + 10, final=True)["cells"] == []  # sent once

    assert master.pending_sources() == set()
    assert master.counters == single.counters == {"iterations_started": 180}
    assert master.first_request_s == pytest.approx(single.first_request_s)
    for window in [(0.3, 9.3), (1.0, 1.5), (2.25, 7.0)]:
        merged, expected = master.snapshot(window), single.snapshot(window)
        assert merged.keys() == expected.keys() == {"GET /x", "POST /y", "Aggregated"}
        for key, row in merged.items():
            assert row.avg_ms == pytest.approx(expected[key].avg_ms, rel=1e-12)  # sum order
            if window[1] - window[0] < 1:
                assert row.rps is expected[key].rps is None
            else:
                # the spans' float sums differ in the last digits (each clock adds its offset)
                assert row.rps == pytest.approx(expected[key].rps, rel=1e-6)
                for rate in ("received_per_s", "sent_per_s"):
                    got, wanted = getattr(row, rate), getattr(expected[key], rate)
                    assert got == pytest.approx(wanted, rel=1e-6)
            assert _without_float_sums(row) == _without_float_sums(expected[key])
    assert master.per_second("Aggregated") == single.per_second("Aggregated")


def _without_float_sums(row: EndpointMetrics) -> EndpointMetrics:
    return replace(row, avg_ms=0.0, rps=None, received_per_s=None, sent_per_s=None)


def test_deltas_of_another_run_are_dropped() -> None:
    master = fake_collector(run_id="run-2")
    old = fake_collector(run_id="run-1")
    old.record("GET", "/x", 1.0, False, at(1.0))
    old.count("iterations_started", 5)
    assert not master.merge_delta("w1", wire(old.export_delta(at(2.0), final=True)))
    assert (master.stale_reports, master.reports_merged) == (1, 0)
    assert master.snapshot()["Aggregated"].count == 0
    assert master.counters == {}
    assert master.first_request_s is None
    assert master.pending_sources() == set()  # a stale final does not count as this run's


def test_pending_sources_until_each_final_delta() -> None:
    master = fake_collector(run_id="r")
    worker = fake_collector(run_id="r")
    master.expect_sources(["w1", "w2"])
    assert master.pending_sources() == {"w1", "w2"}
    master.merge_delta("w1", wire(worker.export_delta(at(1.0))))
    master.merge_delta("w2", wire(worker.export_delta(at(1.0), final=True)))
    assert master.pending_sources() == {"w1"}
    master.merge_delta("w1", wire(worker.export_delta(at(2.0), final=True)))
    master.expect_sources(["w1"])  # already final: stays final
    assert master.pending_sources() == set()
    assert master.reports_merged == 3
    master.start(run_id="next", start_epoch_s=START_EPOCH_S + 60, start_mono_s=at(60))
    assert (master.pending_sources(), master.reports_merged) == (set(), 0)


# -- the run's first request and Reset -------------------------------------------------------------


def test_first_request_is_in_seconds_since_the_run_started() -> None:
    collector = fake_collector()
    assert collector.first_request_s is None
    collector.record("GET", "/a", 1.0, False, at(2.4))
    collector.record("GET", "/a", 1.0, False, at(1.9))  # completes earlier, recorded later
    collector.record("GET", "/a", 1.0, False, at(3.0))
    assert collector.first_request_s == pytest.approx(2.4)  # the first one recorded


def test_the_earliest_first_request_of_any_worker_is_the_runs() -> None:
    master = fake_collector(run_id="r")
    late, early = fake_collector(run_id="r"), fake_collector(run_id="r")
    late.record("GET", "/a", 1.0, False, at(3.0))
    early.record("GET", "/a", 1.0, False, at(1.25))
    master.merge_delta("w1", wire(late.export_delta(at(3.5))))
    assert master.first_request_s == pytest.approx(3.0)
    master.merge_delta("w2", wire(early.export_delta(at(3.5))))
    assert master.first_request_s == pytest.approx(1.25)


def test_reset_starts_a_new_measurement_of_the_same_run() -> None:
    collector = fake_collector(run_id="r")
    fill_seconds(collector, {1: 10, 2: 10})
    collector.count("iterations_started", 20)
    collector.pop_records(T0 + 2)  # part of it already written out
    collector.reset()
    assert collector.snapshot()["Aggregated"].count == 0
    assert collector.counters == {}
    assert collector.first_request_s is None
    assert (collector.run_id, collector.start_epoch_s) == ("r", START_EPOCH_S)  # same run, clock
    fill_seconds(collector, {4: 7})
    assert collector.first_request_s == pytest.approx(run_s_of_epoch(T0 + 4 + 0.5 / 7))
    row = collector.snapshot((3.75, 4.75))["Aggregated"]
    assert (row.count, row.rps) == (7, pytest.approx(7.0))
    worker = fake_collector(run_id="r")  # a worker's delta of the same run still merges
    worker.record("GET", "/a", 1.0, False, at(4.6))
    assert collector.merge_delta("w1", wire(worker.export_delta(at(5.0))))
    assert collector.snapshot()["Aggregated"].count == 8


# -- the window the verdict measures rates over ----------------------------------------------------


def plan_with(stages: tuple[Stage, ...], profile: str = "custom") -> RunPlan:
    return RunPlan(scenario="health", profile=profile, stages=stages)


def test_window_is_the_profiles_plateau_cut_at_the_stop_and_at_a_reset() -> None:
    plan = plan_with((Stage(2.0, 4), Stage(10.0, 4), Stage(2.0, 0)))  # plateau 2..12 s
    collector = fake_collector()
    collector.record("GET", "/a", 1.0, False, at(0.2))
    window, what = measured_window(plan, collector, stopped_at_s=14.0)
    assert window == (2.0, 12.0)
    assert what == "steady part of the custom profile"
    assert measured_window(plan, collector, stopped_at_s=7.5)[0] == (2.0, 7.5)
    window, what = measured_window(plan, collector, stopped_at_s=14.0, measure_from_s=5.0)
    assert window == (5.0, 12.0)
    assert what.endswith("since the statistics were reset")


def test_without_a_plateau_the_window_is_the_load_period_from_the_first_request() -> None:
    spike = plan_with((Stage(3.0, 1), Stage(3.0, 10), Stage(3.0, 1)), profile="spike")
    collector = fake_collector()
    assert measured_window(spike, collector, stopped_at_s=9.0) == (None, "no request was sent")
    collector.record("GET", "/a", 1.0, False, at(0.4))
    window, what = measured_window(spike, collector, stopped_at_s=9.0)
    assert window == (pytest.approx(0.4), 9.0)
    assert what == "load period, from the first request to the end of the load"
    # a stop before the plateau starts: the load period, not an empty plateau
    late_plateau = plan_with((Stage(5.0, 4), Stage(5.0, 4)))
    window, _ = measured_window(late_plateau, collector, stopped_at_s=3.0)
    assert window == (pytest.approx(0.4), 3.0)
    # a reset after the stop leaves an empty window, never a negative one
    window, _ = measured_window(spike, collector, stopped_at_s=3.0, measure_from_s=4.0)
    assert window == (4.0, 4.0)
