"""Per-run queue quantities from constructed series: deltas, rate, drain, stall, growth."""

from __future__ import annotations

import pytest

from loadkit.observe.queue_metrics import (
    Sample,
    drain,
    find_stall,
    growth_per_s,
    increase,
    keep_draining,
    run_jobs,
)


def series(field_values: dict[str, list[float]], step_s: float = 1.0) -> list[Sample]:
    """One sample per ``step_s``, the i-th holding the i-th value of each field."""
    length = len(next(iter(field_values.values())))
    return [
        (round(i * step_s, 3), {name: values[i] for name, values in field_values.items()})
        for i in range(length)
    ]


def test_jobs_of_the_run_are_deltas_not_the_queue_lifetime_totals() -> None:
    # 1000 jobs finished before the run; 40 completed and 6 failed during its 4 s.
    samples = series({"completed": [1000, 1010, 1020, 1030, 1040], "failed": [50, 52, 52, 55, 56]})
    jobs = run_jobs(samples)
    assert (jobs.completed, jobs.failed, jobs.duration_s) == (40, 6, 4.0)
    assert jobs.processing_rate_per_s == 10.0
    assert jobs.completed_from == "completed"
    later = run_jobs(samples, start_s=2, end_s=4)
    assert (later.completed, later.failed, later.processing_rate_per_s) == (20, 4, 10.0)


def test_the_metrics_total_is_preferred_over_a_trimmed_set() -> None:
    # removeOnComplete keeps `completed` at its cap; the metrics total still counts.
    samples = series({"completed": [100, 100, 100], "completed_total": [500, 530, 560]})
    jobs = run_jobs(samples)
    assert (jobs.completed, jobs.completed_from, jobs.failed) == (60, "completed_total", None)


def test_a_counter_that_falls_counts_no_negative_work() -> None:
    samples = series({"completed": [10, 15, 0, 4]})  # a clean at t=2 s
    assert increase(samples, "completed") == 5 + 4
    assert increase(samples[:1], "completed") is None
    assert run_jobs(samples[:1]).processing_rate_per_s is None


def test_drain_time_is_from_the_stop_to_the_first_empty_reading() -> None:
    samples = series({"depth": [0, 40, 80, 60, 30, 0, 0]}, step_s=0.5)
    result = drain(samples, load_stopped_s=1.0)
    assert result is not None
    assert (result.backlog_at_stop, result.drained_after_s, result.remaining) == (80, 1.5, 0)
    assert result.drained


def test_a_backlog_that_does_not_drain_is_reported_with_what_remains() -> None:
    samples = series({"depth": [10, 50, 45, 44]})
    result = drain(samples, load_stopped_s=1.0)
    assert result is not None and not result.drained
    assert (result.backlog_at_stop, result.remaining) == (50, 44)
    assert drain(samples, load_stopped_s=1.0, field="overdue") is None
    empty_at_stop = drain(series({"depth": [3, 0, 0]}), load_stopped_s=1.0)
    assert empty_at_stop is not None and empty_at_stop.drained_after_s == 0.0


def test_keep_draining_until_empty_or_the_bound() -> None:
    busy = series({"depth": [5, 7]})
    assert keep_draining(busy, load_stopped_s=1.0, now_s=2.0, max_drain_s=30)
    assert not keep_draining(busy, load_stopped_s=1.0, now_s=31.0, max_drain_s=30)
    assert not keep_draining(series({"depth": [5, 0]}), 1.0, 2.0, 30)
    assert not keep_draining([], 1.0, 2.0, 30)  # never read: nothing to follow


def test_jobs_a_worker_still_holds_are_reported_not_waited_for() -> None:
    # Depth 0 at 2 s with one job still running: the drain is over (a job can be a call that
    # lasts minutes), and the running job is reported beside it.
    samples = series({"depth": [0, 6, 0], "active": [1, 1, 1], "completed": [0, 3, 8]})
    assert not keep_draining(samples, load_stopped_s=1.0, now_s=2.0, max_drain_s=30)
    result = drain(samples, load_stopped_s=1.0)
    assert result is not None and result.drained
    assert (result.backlog_at_stop, result.drained_after_s, result.still_running) == (6, 1.0, 1)
    no_active = drain(series({"depth": [3, 0]}), load_stopped_s=0.0)
    assert no_active is not None and no_active.still_running is None


def test_a_stalled_consumer_is_found_one_window_after_it_stops() -> None:
    # Healthy for 3 s (due work steady, completions rising), then nothing finishes from 3 s on
    # while due work keeps growing: found at 3 + 2 = 5 s with a 2 s window.
    samples = series(
        {
            "depth": [5, 6, 5, 6, 20, 40, 60, 80],
            "completed": [0, 10, 20, 30, 30, 30, 30, 30],
            "failed": [0, 0, 1, 1, 1, 1, 1, 1],
            "active": [4, 4, 4, 4, 0, 0, 0, 0],
        }
    )
    stall = find_stall(samples, window_s=2.0)
    assert stall is not None
    assert (stall.since_s, stall.at_s, stall.due_before, stall.due_after) == (3, 5, 6, 40)
    assert stall.active == 4  # the last sample before the stall still showed 4
    assert stall.describe() == (
        "depth grew from 6 to 40 jobs between 3 s and 5 s with no job finished, 4 active"
    )
    assert find_stall(samples[:5], window_s=2.0) is None  # too early to tell


def test_no_stall_while_jobs_finish_or_due_work_does_not_grow() -> None:
    busy = series({"depth": [0, 50, 100, 150], "completed": [0, 1, 2, 3]})
    assert find_stall(busy, window_s=2.0) is None  # slow, but finishing
    idle = series({"depth": [0, 0, 0, 0], "completed": [7, 7, 7, 7]})
    assert find_stall(idle, window_s=2.0) is None  # nothing to do
    blind = series({"depth": [0, 50, 100, 150]})
    assert find_stall(blind, window_s=2.0) is None  # no counter: cannot tell progress
    with pytest.raises(ValueError):
        find_stall(busy, window_s=0)


def test_growth_per_s_over_a_span() -> None:
    samples = series({"overdue": [0, 10, 30, 60]}, step_s=0.5)
    assert growth_per_s(samples, "overdue") == 40.0
    assert growth_per_s(samples, "overdue", start_s=1.0) == 60.0
    assert growth_per_s(samples[:1], "overdue") is None
