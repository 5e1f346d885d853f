"""What the platform's queue did during a run, as the verdict shows it: plain numbers, no I/O.

The guide asks to watch three things on the queue: its depth, its processing rate and its
failed jobs. Criteria judge them (gauges ``queue_*``, counters ``queue_jobs_*``), but a reader
needs them even when no criterion names them, and needs to know which queue was read (its
library version, whether it was paused) and how it drained once the load stopped. This record
carries that beside the criteria; ``observe.queue_run`` builds it from the sampled series.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueDrain:
    """The due backlog after the load stopped, followed for at most ``max_s`` seconds."""

    max_s: float
    """The bound (``LOADKIT_QUEUE_DRAIN_MAX_S``)."""
    backlog_at_stop: float
    """Depth (due jobs not being processed) in the reading taken when the load stopped."""
    drained_after_s: float | None
    """Seconds from the end of the load to the first reading with depth 0 (0: nothing was due);
    None when the backlog did not drain within the bound."""
    remaining: float
    """Depth at the last reading: what was still due when the kit stopped watching."""
    still_running: float | None = None
    """Jobs workers held at the last reading, not waited for (None: the source does not read
    ``active``): the run's job count plus these is what the queue ends with."""
    skipped: str = ""
    """Why the drain was not followed (e.g. the run was interrupted); empty when it was."""

    @property
    def drained(self) -> bool:
        return self.drained_after_s is not None


@dataclass(frozen=True)
class QueueReport:
    """The queue's side of a run: which queue, its depth, the jobs it finished, its drain."""

    source: str
    """What was read (``Redis redis://127.0.0.1:6379/0 bull:calls:*``, ``GET /api/queue/stats``)."""
    depth_meaning: str
    """What ``depth`` counts, in one sentence (``observe.queue_sources.DEPTH_MEANING``)."""
    samples: int
    """Readings taken during the load (the drain's come on top)."""
    failed_samples: int
    depth_max: float | None
    """The largest depth during the load; None without a reading."""
    depth_final: float | None
    """The depth when the load stopped."""
    overdue_max: float | None = None
    """The most delayed jobs that were due and not taken; None when the source cannot tell."""
    overdue_final: float | None = None
    jobs_completed: float | None = None
    """Jobs completed from the run's start to the end of its drain (a delta, not the queue's
    lifetime total); None when the source has no completed counter."""
    jobs_failed: float | None = None
    """Jobs failed over the same span; None without a failed counter."""
    processing_rate_per_s: float | None = None
    """``jobs_completed`` per second over the same span."""
    completed_from: str | None = None
    """The counter the job numbers come from (``completed_total`` or ``completed``)."""
    version: str | None = None
    """The queue library and version its ``meta`` hash names (``bullmq:6.7.6``)."""
    paused: bool | None = None
    """Whether the queue was paused at any reading (None: the source cannot tell)."""
    drain: QueueDrain | None = None
    """None when there was no reading at the end of the load (or sampling ended early)."""
    stall: str | None = None
    """The worst stall seen (due work grew while no job finished), in one line; None if none."""
    stall_window_s: float | None = None
    """The window a stall is looked for over; None when the series cannot tell progress."""
