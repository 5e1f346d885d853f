"""Per-run queue quantities from a series of queue samples: pure functions, no I/O, no clock.

The queue's own counters (``completed``, ``failed``) are totals over the queue's life: a run
must be judged on what happened during it. These functions turn the sampler's series
(``(t_s, reading)`` pairs, ``t_s`` counted from the run's start) into per-run numbers: jobs
finished and failed during the run, the processing rate, how long the backlog took to drain
after the load stopped, and whether the consumer stalled (due work growing while nothing
finishes). The caller decides the window and what to do with the answer.

Which counter says "a job finished": BullMQ's metrics total (``completed_total``) when workers
keep metrics, since ``removeOnComplete``/``removeOnFail`` trim the ``completed``/``failed``
sets and then hide work done; else the set sizes (right unless something trims them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

Sample = tuple[float, Mapping[str, float]]
"""``(t_s, reading)``: seconds since the run started, and the counts read then."""

#: The counters of finished jobs, best first (see the module docstring).
COMPLETED_FIELDS: Final = ("completed_total", "completed")
FAILED_FIELDS: Final = ("failed_total", "failed")
DEPTH: Final = "depth"
#: Jobs a worker has taken and not finished: not due work, so not part of the depth.
ACTIVE: Final = "active"


def counter_field(samples: Sequence[Sample], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` that every sample has; None if none does."""
    for name in candidates:
        if samples and all(name in reading for _, reading in samples):
            return name
    return None


def window(samples: Sequence[Sample], start_s: float | None, end_s: float | None) -> list[Sample]:
    """The samples with ``start_s <= t_s <= end_s`` (an open end when None), in order."""
    return [
        (t_s, reading)
        for t_s, reading in samples
        if (start_s is None or t_s >= start_s) and (end_s is None or t_s <= end_s)
    ]


def increase(samples: Sequence[Sample], field: str) -> float | None:
    """How much the cumulative count ``field`` grew over ``samples``: the sum of its rises.

    A fall (a clean, a trim, a flushed Redis) counts as no work rather than negative work, and
    the count carries on from the lower value. None with fewer than two samples having ``field``.
    """
    values = [reading[field] for _, reading in samples if field in reading]
    if len(values) < 2:
        return None
    return sum(max(0.0, later - earlier) for earlier, later in pairwise(values))


@dataclass(frozen=True)
class RunJobs:
    """What the queue did during a span of the run, from its counters."""

    duration_s: float
    """From the first to the last sample of the span."""
    completed: float | None
    """Jobs completed in the span (None: no completed counter in the readings)."""
    failed: float | None
    """Jobs failed in the span (None: no failed counter)."""
    completed_from: str | None
    """The counter read (``completed_total`` or ``completed``)."""

    @property
    def processing_rate_per_s(self) -> float | None:
        """Jobs completed per second over the span; None without a counter or a duration."""
        if self.completed is None or self.duration_s <= 0:
            return None
        return self.completed / self.duration_s


def run_jobs(
    samples: Sequence[Sample], *, start_s: float | None = None, end_s: float | None = None
) -> RunJobs:
    """Jobs completed and failed between ``start_s`` and ``end_s`` (the whole series by
    default), as deltas of the queue's counters: earlier runs' jobs are not counted."""
    span = window(samples, start_s, end_s)
    completed_field = counter_field(span, COMPLETED_FIELDS)
    failed_field = counter_field(span, FAILED_FIELDS)
    return RunJobs(
        duration_s=span[-1][0] - span[0][0] if len(span) >= 2 else 0.0,
        completed=increase(span, completed_field) if completed_field else None,
        failed=increase(span, failed_field) if failed_field else None,
        completed_from=completed_field,
    )


@dataclass(frozen=True)
class Drain:
    """How the backlog went down after the load stopped."""

    backlog_at_stop: float
    """``depth`` at the last sample taken at or before the stop (the first after it if none)."""
    drained_after_s: float | None
    """Seconds from the stop to the first sample with ``depth`` 0; None if none came. The queue
    emptied at most one sampling interval before that."""
    remaining: float
    """``depth`` at the last sample: what was still due and unprocessed when sampling ended."""
    still_running: float | None = None
    """``active`` at the last sample: jobs workers held when sampling ended (None: the source
    does not read it). Not waited for: on a calling platform a job can be a call that lasts
    minutes, and the verdict would wait out the bound on every run. Reported, so the run's job
    count plus these is what the queue ends with."""

    @property
    def drained(self) -> bool:
        return self.drained_after_s is not None


def drain(samples: Sequence[Sample], load_stopped_s: float, field: str = DEPTH) -> Drain | None:
    """The drain after ``load_stopped_s``; None when no sample has ``field``."""
    series = [(t_s, reading[field]) for t_s, reading in samples if field in reading]
    if not series:
        return None
    before = [value for t_s, value in series if t_s <= load_stopped_s]
    after = [(t_s, value) for t_s, value in series if t_s >= load_stopped_s]
    backlog = before[-1] if before else (after[0][1] if after else series[-1][1])
    if backlog == 0:
        drained_after_s: float | None = 0.0
    else:
        first_empty = next((t_s for t_s, value in after if value == 0), None)
        drained_after_s = None if first_empty is None else first_empty - load_stopped_s
    last = next(reading for _, reading in reversed(samples) if field in reading)
    return Drain(backlog, drained_after_s, last[field], last.get(ACTIVE))


def keep_draining(
    samples: Sequence[Sample],
    load_stopped_s: float,
    now_s: float,
    max_drain_s: float,
    field: str = DEPTH,
) -> bool:
    """Whether a sampler should go on after the load stopped: the last reading still shows due
    work and the drain bound is not reached. No reading at all (the source failed during the load
    and at its end, e.g. a rejected key): stop, there is nothing known to follow, and waiting out
    the bound only delays the verdict by up to ``max_drain_s``."""
    if now_s - load_stopped_s >= max_drain_s:
        return False
    values = [reading[field] for _, reading in samples if field in reading]
    return bool(values) and values[-1] > 0


@dataclass(frozen=True)
class Stall:
    """Due work grew over a whole window while no job finished: the consumer is not consuming."""

    since_s: float
    """Start of the window (seconds since the run started)."""
    at_s: float
    """End of the window: when the stall was seen."""
    due_before: float
    due_after: float
    active: float | None
    """The largest ``active`` count in the window (None: not read)."""

    @property
    def growth(self) -> float:
        """How many due jobs piled up over the window."""
        return self.due_after - self.due_before

    def describe(self, due_field: str = DEPTH) -> str:
        """One line for a verdict or a log."""
        active = "" if self.active is None else f", {self.active:g} active"
        return (
            f"{due_field} grew from {self.due_before:g} to {self.due_after:g} jobs between "
            f"{self.since_s:g} s and {self.at_s:g} s with no job finished{active}"
        )


def find_stall(
    samples: Sequence[Sample], *, window_s: float, due_field: str = DEPTH
) -> Stall | None:
    """The first window of at least ``window_s`` in which ``due_field`` rose and neither
    finished-job counter did; None when there is none (or no counter to tell progress by).

    Checked at every sample against the latest sample at least ``window_s`` earlier, so a
    caller that runs it after each reading learns of a stall about ``window_s`` after it began.
    """
    return next(stalls(samples, window_s=window_s, due_field=due_field), None)


def worst_stall(
    samples: Sequence[Sample], *, window_s: float, due_field: str = DEPTH
) -> Stall | None:
    """Of the windows :func:`find_stall` looks at, the one in which ``due_field`` grew most
    while no job finished (the earliest of equals); None when there is none."""
    worst: Stall | None = None
    for stall in stalls(samples, window_s=window_s, due_field=due_field):
        if worst is None or stall.growth > worst.growth:
            worst = stall
    return worst


def can_tell_progress(samples: Sequence[Sample]) -> bool:
    """Whether the series has a finished-job counter in every sample: without one, a stall
    cannot be told from a busy consumer, and :func:`find_stall` finds none."""
    return any(counter_field(samples, names) for names in (COMPLETED_FIELDS, FAILED_FIELDS))


def stalls(
    samples: Sequence[Sample], *, window_s: float, due_field: str = DEPTH
) -> Iterator[Stall]:
    """Every window of at least ``window_s`` (one per ending sample, each starting at the latest
    sample at least ``window_s`` earlier) in which ``due_field`` rose and no job finished."""
    if window_s <= 0:
        raise ValueError("window_s must be > 0")
    series = [(t_s, reading) for t_s, reading in samples if due_field in reading]
    counters = [counter_field(series, COMPLETED_FIELDS), counter_field(series, FAILED_FIELDS)]
    finished = [name for name in counters if name is not None]
    if not finished:
        return
    start = 0
    for end in range(len(series)):
        end_s = series[end][0]
        while start + 1 < end and end_s - series[start + 1][0] >= window_s:
            start += 1
        if end_s - series[start][0] < window_s:
            continue
        span = series[start : end + 1]
        due_before, due_after = span[0][1][due_field], span[-1][1][due_field]
        if due_after <= due_before:
            continue
        if any(increase(span, name) for name in finished):
            continue
        active = [reading[ACTIVE] for _, reading in span if ACTIVE in reading]
        yield Stall(span[0][0], end_s, due_before, due_after, max(active) if active else None)


def growth_per_s(
    samples: Sequence[Sample],
    field: str,
    *,
    start_s: float | None = None,
    end_s: float | None = None,
) -> float | None:
    """How fast ``field`` changed between the first and last sample of the span, per second
    (negative when it fell); None with fewer than two samples or no time between them."""
    series = [(t_s, r[field]) for t_s, r in window(samples, start_s, end_s) if field in r]
    if len(series) < 2 or series[-1][0] == series[0][0]:
        return None
    return (series[-1][1] - series[0][1]) / (series[-1][0] - series[0][0])
