"""Calls and their running aggregates: the platform's only state about calls.

The analytics dashboard must answer in constant time per day of range however many calls are
stored, so every status change updates counters keyed by (campaign, day, status) here, and the
dashboard sums those counters over the days asked for; it never scans calls.

A call's *day* is the UTC date of the ``scheduled_at`` it was created with. A retry does not
move the call to another day: the counters of one day only ever shift between statuses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

SCHEDULED: Final = "scheduled"
"""Created, due in the future (the queue's ``delayed``)."""
RETRY_SCHEDULED: Final = "retry_scheduled"
"""Retried, the retry due in the future (also ``delayed``)."""
QUEUED: Final = "queued"
"""Due, waiting for a free agent (the queue's ``waiting``)."""
IN_PROGRESS: Final = "in_progress"
"""An agent is on the call (the queue's ``active``)."""
COMPLETED: Final = "completed"
NO_ANSWER: Final = "no_answer"
BUSY: Final = "busy"
FAILED: Final = "failed"

ALL_STATUSES: Final = (
    SCHEDULED,
    RETRY_SCHEDULED,
    QUEUED,
    IN_PROGRESS,
    COMPLETED,
    NO_ANSWER,
    BUSY,
    FAILED,
)
OUTCOMES: Final = (COMPLETED, NO_ANSWER, BUSY, FAILED)
"""Statuses a dial ends in; a call in one of them is *finished* for the success rate."""
DELAYED_STATUSES: Final = frozenset((SCHEDULED, RETRY_SCHEDULED))
RETRYABLE_STATUSES: Final = frozenset((SCHEDULED, RETRY_SCHEDULED, QUEUED, NO_ANSWER, BUSY, FAILED))


@dataclass(slots=True, eq=False)
class Call:
    """One scheduled call. ``ticket`` changes whenever the call is (re)queued, so queue entries
    left behind by an earlier schedule are recognised as stale and skipped."""

    id: str
    phone_number: str
    campaign_id: str
    scheduled_at: datetime
    day: int
    """``date.toordinal()`` of the UTC date the call is counted under."""
    status: str
    metadata: dict[str, Any] | None = None
    attempts: int = 0
    ticket: int = 0
    retry_at: datetime | None = None


@dataclass(frozen=True)
class DashboardTotals:
    """What the dashboard shows for a range of days: counts by status, and per day."""

    by_status: dict[str, int]
    by_day: list[tuple[date, int, int]]
    """``(day, total, completed)`` for every day of the range, empty days included."""

    @property
    def total_calls(self) -> int:
        return sum(self.by_status.values())

    @property
    def success_rate(self) -> float:
        """Completed over finished calls (0..1); 0 when no call has finished."""
        finished = sum(self.by_status[s] for s in OUTCOMES)
        return self.by_status[COMPLETED] / finished if finished else 0.0


_ALL_CAMPAIGNS: Final = "\x00all"
"""Aggregate key of the totals over every campaign (not a valid-looking campaign id)."""


@dataclass
class CallStore:
    """Calls by id plus incremental counters by (campaign, day, status) and by status."""

    _calls: dict[str, Call] = field(default_factory=dict)
    _daily: dict[str, dict[int, Counter[str]]] = field(default_factory=dict)
    status_counts: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> Call | None:
        return self._calls.get(call_id)

    def add(self, call: Call) -> None:
        self._calls[call.id] = call
        self._bump(call, call.status, 1)

    def set_status(self, call: Call, status: str) -> None:
        if call.status == status:
            return
        self._bump(call, call.status, -1)
        call.status = status
        self._bump(call, status, 1)

    def _bump(self, call: Call, status: str, delta: int) -> None:
        self.status_counts[status] += delta
        for key in (call.campaign_id, _ALL_CAMPAIGNS):
            days = self._daily.get(key)
            if days is None:
                days = self._daily[key] = {}
            counts = days.get(call.day)
            if counts is None:
                counts = days[call.day] = Counter()
            counts[status] += delta

    def dashboard(
        self, first_day: date, last_day: date, campaign_id: str | None
    ) -> DashboardTotals:
        """Sum the counters of ``first_day..last_day`` (inclusive): O(days), not O(calls)."""
        days = self._daily.get(_ALL_CAMPAIGNS if campaign_id is None else campaign_id, {})
        by_status = dict.fromkeys(ALL_STATUSES, 0)
        by_day: list[tuple[date, int, int]] = []
        for ordinal in range(first_day.toordinal(), last_day.toordinal() + 1):
            counts = days.get(ordinal)
            if not counts:
                by_day.append((date.fromordinal(ordinal), 0, 0))
                continue
            _add_into(by_status, counts.items())
            by_day.append((date.fromordinal(ordinal), sum(counts.values()), counts[COMPLETED]))
        return DashboardTotals(by_status=by_status, by_day=by_day)


def _add_into(total: dict[str, int], items: Iterable[tuple[str, int]]) -> None:
    for status, count in items:
        total[status] = total.get(status, 0) + count
