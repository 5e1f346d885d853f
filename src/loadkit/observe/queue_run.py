"""The queue's inputs to a run's verdict, from the sampled series: pure functions, no I/O.

The sampler keeps ``(t_s, reading)`` pairs; this module turns them into what
``core.verdict.evaluate`` judges and shows:

* gauges (``queue_depth``, ``queue_overdue``, ...): summaries of the readings taken during the
  load (the drain's readings are the drain's story, reported apart);
* counters: the jobs completed and failed from the run's start to the end of the drain, as
  deltas (``queue_jobs_completed``, its ``rate``: the processing rate) and
  ``queue_stalled_jobs``, the most that due work grew over one stall window while no job
  finished: how a stalled consumer looks;
* explanations: the stall in one line naming the due jobs, for the failed criterion's reason
  and an abort's;
* the :class:`~loadkit.core.queue_report.QueueReport` shown under the criteria.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from loadkit.core.baselines import counter_key, format_number
from loadkit.core.queue_report import QueueDrain, QueueReport
from loadkit.core.verdict import GaugeSummary
from loadkit.observe.queue_metrics import (
    Sample,
    Stall,
    can_tell_progress,
    drain,
    run_jobs,
    window,
    worst_stall,
)
from loadkit.observe.queue_sampler import summarize_field
from loadkit.observe.queue_sources import DEPTH

DEPTH_GAUGE: Final = "queue_depth"
#: Gauge criteria names -> the reading's field they summarise.
GAUGE_FIELDS: Final = {
    "queue_depth": DEPTH,
    "queue_overdue": "overdue",
    "queue_waiting": "waiting",
    "queue_active": "active",
    "queue_delayed": "delayed",
}
COMPLETED: Final = "queue_jobs_completed"
FAILED: Final = "queue_jobs_failed"
STALLED: Final = "queue_stalled_jobs"
#: The criterion subject whose failure the stall explains (``Criterion.subject``).
STALL_SUBJECT: Final = f"counter {STALLED}"


def queue_gauges(samples: Sequence[Sample]) -> dict[str, GaugeSummary]:
    """Every ``queue_*`` gauge the readings have a field for (``queue_depth`` always)."""
    return {
        name: summarize_field(samples, field)
        for name, field in GAUGE_FIELDS.items()
        if name == DEPTH_GAUGE or any(field in reading for _, reading in samples)
    }


def queue_counters(samples: Sequence[Sample], *, stall_window_s: float) -> dict[str, float]:
    """The run's job counts and rates (deltas over ``samples``) and its worst stall; a counter
    the readings cannot give is left out, so a criterion on it has no data."""
    counters: dict[str, float] = {}
    jobs = run_jobs(samples)
    for name, count in ((COMPLETED, jobs.completed), (FAILED, jobs.failed)):
        if count is None:
            continue
        counters[name] = count
        if jobs.duration_s > 0:
            counters[counter_key(name, "rate")] = count / jobs.duration_s
    if can_tell_progress(samples):
        stall = worst_stall(samples, window_s=stall_window_s)
        counters[STALLED] = 0.0 if stall is None else stall.growth
    return counters


def stall_explanations(samples: Sequence[Sample], *, stall_window_s: float) -> dict[str, str]:
    """``{"counter queue_stalled_jobs": "<the worst stall in one line>"}``, or ``{}``."""
    stall = worst_stall(samples, window_s=stall_window_s)
    return {} if stall is None else {STALL_SUBJECT: describe_stall(stall, samples)}


def describe_stall(stall: Stall, samples: Sequence[Sample]) -> str:
    """``stalled consumer: 187 jobs due and not processed (187 overdue, 0 waiting) at 7 s, up
    from 0 at 2 s, with no job completed or failed in between (0 active)``."""
    reading = next((r for t_s, r in samples if t_s == stall.at_s), {})
    parts = [
        f"{format_number(reading[name])} {name}"
        for name in ("overdue", "waiting")
        if name in reading
    ]
    detail = f" ({', '.join(parts)})" if parts else ""
    active = "" if stall.active is None else f" ({format_number(stall.active)} active)"
    return (
        f"stalled consumer: {format_number(stall.due_after)} jobs due and not processed{detail} "
        f"at {_s(stall.at_s)}, up from {format_number(stall.due_before)} at {_s(stall.since_s)}, "
        f"with no job completed or failed in between{active}"
    )


def _s(seconds: float) -> str:
    return f"{format_number(round(seconds, 1))} s"


def queue_report(
    samples: Sequence[Sample],
    *,
    source: str,
    depth_meaning: str,
    failed_samples: int,
    load_ended_s: float | None,
    drain_max_s: float,
    drain_skipped: str = "",
    stall_window_s: float,
    version: str | None = None,
) -> QueueReport:
    """The queue's part of the verdict. ``load_ended_s`` is the sampler time of the reading
    taken when the load stopped (None while the load runs: no drain yet)."""
    load = list(samples) if load_ended_s is None else window(samples, None, load_ended_s)
    depth = summarize_field(load, DEPTH)
    overdue = summarize_field(load, "overdue")
    jobs = run_jobs(samples)
    paused = [reading["queue_paused"] for _, reading in samples if "queue_paused" in reading]
    stall = worst_stall(samples, window_s=stall_window_s)
    tells_progress = can_tell_progress(samples)
    return QueueReport(
        source=source,
        depth_meaning=depth_meaning,
        samples=len(load),
        failed_samples=failed_samples,
        depth_max=depth.max if depth.samples else None,
        depth_final=depth.final if depth.samples else None,
        overdue_max=overdue.max if overdue.samples else None,
        overdue_final=overdue.final if overdue.samples else None,
        jobs_completed=jobs.completed,
        jobs_failed=jobs.failed,
        processing_rate_per_s=jobs.processing_rate_per_s,
        completed_from=jobs.completed_from,
        version=version,
        paused=any(value > 0 for value in paused) if paused else None,
        drain=_drain(samples, load_ended_s, drain_max_s, drain_skipped),
        stall=None if stall is None else describe_stall(stall, samples),
        stall_window_s=stall_window_s if tells_progress else None,
    )


def _drain(
    samples: Sequence[Sample], load_ended_s: float | None, max_s: float, skipped: str
) -> QueueDrain | None:
    if load_ended_s is None:
        return None
    result = drain(samples, load_ended_s)
    if result is None:
        return None
    return QueueDrain(
        max_s=max_s,
        backlog_at_stop=result.backlog_at_stop,
        drained_after_s=result.drained_after_s,
        remaining=result.remaining,
        still_running=result.still_running,
        skipped=skipped,
    )
