"""The queue's part of the verdict from constructed series: gauges over the load, job deltas and
rates over the run, the worst stall named, the drain, and how the console and JSON show it."""

from __future__ import annotations

import json

import pytest

from loadkit.observe.queue_metrics import Sample, worst_stall
from loadkit.observe.queue_run import (
    describe_stall,
    queue_counters,
    queue_gauges,
    queue_report,
    stall_explanations,
)
from loadkit.observe.queue_sources import DEPTH_MEANING
from loadkit.results.queue_section import queue_to_dict, render_queue


def bull(t_s: float, overdue: int, waiting: int = 0, completed: int = 0, **more: int) -> Sample:
    """A reading shaped like the BullMQ source's (depth = waiting + overdue)."""
    reading = {"depth": waiting + overdue, "waiting": waiting, "overdue": overdue, "active": 0,
               "delayed": 50, "completed": completed, "failed": more.pop("failed", 3),
               "queue_paused": more.pop("queue_paused", 0)}  # fmt: skip
    return (t_s, {**reading, **more})


# A healthy start (jobs finish), then the consumer stops at 3 s: overdue grows, nothing finishes.
STALLED = [
    bull(0, 0, completed=100),
    bull(1, 0, completed=110),
    bull(2, 1, completed=120),
    bull(3, 2, completed=125),
    bull(4, 9, completed=125),
    bull(5, 17, completed=125),
    bull(6, 26, completed=125),
    bull(7, 30, 2, completed=125),
    bull(8, 41, 2, completed=125),
]


def test_counters_are_deltas_and_the_worst_stall_is_the_growth_of_its_window() -> None:
    counters = queue_counters(STALLED, stall_window_s=3)
    assert counters["queue_jobs_completed"] == 25  # 125 - 100: the queue's earlier jobs drop out
    assert counters["queue_jobs_completed.rate"] == pytest.approx(25 / 8)
    assert counters["queue_jobs_failed"] == 0 and counters["queue_jobs_failed.rate"] == 0
    # windows with no job finished: [3, 6] 2 -> 26, [4, 7] 9 -> 32, [5, 8] 17 -> 43: the worst
    # grew by 26 (the first, [3, 6], grew 24).
    assert counters["queue_stalled_jobs"] == 26
    stall = worst_stall(STALLED, window_s=3)
    assert stall is not None and (stall.since_s, stall.at_s) == (5, 8)


def test_the_stall_is_explained_by_its_overdue_and_waiting_jobs() -> None:
    explained = stall_explanations(STALLED, stall_window_s=3)
    assert explained == {
        "counter queue_stalled_jobs": (
            "stalled consumer: 43 jobs due and not processed (41 overdue, 2 waiting) at 8 s, "
            "up from 17 at 5 s, with no job completed or failed in between (0 active)"
        )
    }
    assert stall_explanations(STALLED[:4], stall_window_s=3) == {}


def test_a_healthy_queue_has_no_stall_and_a_source_without_counters_has_no_stall_counter() -> None:
    healthy = [bull(t, t % 2, completed=10 * t) for t in range(10)]
    assert queue_counters(healthy, stall_window_s=3)["queue_stalled_jobs"] == 0
    blind = [(float(t), {"depth": float(t)}) for t in range(10)]  # depth only: can't tell
    assert queue_counters(blind, stall_window_s=3) == {}


def test_gauges_summarise_each_field_with_its_growth() -> None:
    gauges = queue_gauges(STALLED)
    assert set(gauges) == {
        "queue_depth", "queue_overdue", "queue_waiting", "queue_active", "queue_delayed",
    }  # fmt: skip
    overdue = gauges["queue_overdue"]
    assert (overdue.max, overdue.final, overdue.samples) == (41, 41, 9)
    assert overdue.growth_per_s == pytest.approx(41 / 8)
    assert gauges["queue_depth"].max == 43
    assert queue_gauges([])["queue_depth"].samples == 0  # "no data", never a pass


def test_report_splits_the_load_from_the_drain() -> None:
    # Load until 4 s (backlog 9), then the drain: 9 -> 4 -> 0 at 6 s.
    samples = [
        *STALLED[:5],
        bull(5, 4, completed=130),
        bull(6, 0, completed=139),
        bull(7, 0, completed=139),
    ]
    report = queue_report(
        samples, source="Redis r bull:calls:*", depth_meaning=DEPTH_MEANING, failed_samples=1,
        load_ended_s=4, drain_max_s=30, stall_window_s=5, version="bullmq:6.7.6",
    )  # fmt: skip
    assert (report.samples, report.depth_max, report.depth_final) == (5, 9, 9)
    assert (report.jobs_completed, report.jobs_failed) == (39, 0)
    assert report.processing_rate_per_s == pytest.approx(39 / 7)
    assert report.drain is not None
    assert (report.drain.backlog_at_stop, report.drain.drained_after_s) == (9, 2)
    assert report.stall is None and report.stall_window_s == 5
    assert (report.version, report.paused) == ("bullmq:6.7.6", False)
    lines = render_queue(report)
    assert lines[1] == "  queue: Redis r bull:calls:* (bullmq:6.7.6), 5 readings during the load"
    assert lines[2] == f"    {DEPTH_MEANING}"
    assert (
        "    depth: max 9, 9 when the load stopped; overdue: max 9, 9 when the load stopped"
        in lines
    )
    assert (
        "    processing rate: 5.571/s (39 jobs completed, 0 failed during the run, "
        "from `completed`)"
    ) in lines
    assert "    drain: 9 jobs due when the load stopped; drained after 2 s (bound 30 s)" in lines
    assert "    1 readings failed" in lines
    data = json.loads(json.dumps(queue_to_dict(report)))
    assert data["drain"] == {
        "max_s": 30, "backlog_at_stop": 9, "drained_after_s": 2, "remaining": 0,
        "still_running": 0, "skipped": "", "drained": True,
    }  # fmt: skip
    assert data["depth_meaning"] == DEPTH_MEANING and data["version"] == "bullmq:6.7.6"


def test_report_of_a_backlog_that_did_not_drain_a_pause_and_a_stall() -> None:
    paused = [bull(t, min(t, 4) * 5, completed=7, queue_paused=1) for t in range(8)]
    report = queue_report(
        paused, source="s", depth_meaning=DEPTH_MEANING, failed_samples=0,
        load_ended_s=5, drain_max_s=2, stall_window_s=3,
    )  # fmt: skip
    assert report.drain is not None and not report.drain.drained
    assert (report.drain.backlog_at_stop, report.drain.remaining) == (20, 20)
    assert report.paused is True
    assert report.stall is not None and report.stall.startswith("stalled consumer: 15 jobs")
    text = "\n".join(render_queue(report))
    assert (
        "drain: 20 jobs due when the load stopped; ✗ NOT drained within 2 s: 20 still due" in text
    )
    assert "PAUSED: the queue was paused" in text
    assert "✗ stalled consumer: 15 jobs due and not processed (15 overdue, 0 waiting)" in text


def test_a_stall_named_from_a_reading_without_overdue() -> None:
    samples = [(0.0, {"depth": 0.0, "completed": 1.0}), (5.0, {"depth": 8.0, "completed": 1.0})]
    stall = worst_stall(samples, window_s=5)
    assert stall is not None
    assert describe_stall(stall, samples) == (
        "stalled consumer: 8 jobs due and not processed at 5 s, up from 0 at 0 s, with no job "
        "completed or failed in between"
    )


def test_each_source_says_what_its_depth_counts() -> None:
    from loadkit.observe.bullmq import QueueAddress
    from loadkit.observe.queue_sources import (
        BullQueueSource,
        HttpQueueSource,
        RedisQueueSource,
        depth_meaning_of,
    )

    address = QueueAddress("bull", "calls")
    assert BullQueueSource("redis://127.0.0.1:1/0", address).depth_meaning == DEPTH_MEANING
    http = HttpQueueSource("http://127.0.0.1:1", path="/s", headers={})
    assert http.depth_meaning == DEPTH_MEANING
    named = HttpQueueSource("http://x", path="/s", headers={}, depth_fields=("waiting", "delayed"))
    assert named.depth_meaning == "queue depth = waiting + delayed (LOADKIT_QUEUE_DEPTH_FIELDS)"
    keys = RedisQueueSource("redis://127.0.0.1:1/0", {"waiting": ("q:w",)})
    assert "cannot tell overdue jobs" in keys.depth_meaning
    assert depth_meaning_of(object()) == DEPTH_MEANING


def test_jobs_still_running_are_reported_and_not_waited_for() -> None:
    # Long jobs (calls that last minutes): nothing is due from 2 s on, 3 are still running. The
    # drain ends at the first reading with nothing due and says what workers still held.
    long_jobs = [bull(t, max(0, 4 - 2 * t), completed=10 + t, active=3) for t in range(3)]
    report = queue_report(
        long_jobs, source="s", depth_meaning=DEPTH_MEANING, failed_samples=0,
        load_ended_s=1, drain_max_s=30, stall_window_s=5,
    )  # fmt: skip
    assert report.drain is not None and report.drain.drained
    assert (report.drain.backlog_at_stop, report.drain.drained_after_s) == (2, 1)
    assert report.drain.still_running == 3
    assert (
        "    drain: 2 jobs due when the load stopped; drained after 1 s (bound 30 s); "
        "3 jobs still running (not waited for)"
    ) in render_queue(report)
    assert queue_to_dict(report)["drain"]["still_running"] == 3
