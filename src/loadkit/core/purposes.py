"""What each profile exists to find, as numbers a criterion can judge.

The guide gives each profile a purpose: a spike tests "recovery from spikes", a soak finds
"memory leaks, resource exhaustion", a stress run finds "performance limits". This module turns
those into measurements, from what ``measure.timeline`` kept of the run's seconds:

* **windows** (:func:`purpose_windows`): the parts of the run a purpose reads, from the played
  stages. A spike: ``before`` (up to the rise to the peak), ``surge`` (the rise, the peak and
  the way down to the pre-spike load), ``recovery`` (the hold at the pre-spike load that
  follows; the kit adds one, ``registry``). Any profile with a steady window: ``first`` and
  ``last``, its first and last sixth (a soak's drift).
* **recovery** (s): the pre-spike P95 of the request is the reference; a second of the hold
  counts as recovered when its own P95 is at most ``max(reference x (1 + tolerance),
  reference + RECOVERY_SLACK_MS)``. Recovery is the time from the start of the hold to the first
  recovered second after which every second with requests was recovered too; 0 when P95 was
  back before the hold began; infinite (fails any limit) when it never came back.
* **p95_drift** (ms): P95 of the ``last`` window minus P95 of the ``first``.
* **during**: a request's whole-run metrics, restricted to one spike phase.
* **held users**: the baseline's latency and error-rate criteria judged per user level (the
  requests completed while that many users ran), in rising order; the highest level reached
  before the first level that failed.

Pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from loadkit import registry
from loadkit.core.baselines import (
    AGGREGATED_KEY,
    LATENCY_METRICS,
    TOTAL,
    Baseline,
    Criterion,
    format_number,
)
from loadkit.core.histogram import LatencyHistogram
from loadkit.core.metrics import EndpointMetrics
from loadkit.core.profiles import Stage, main_steady_window, stage_ends_s

#: A 0.5 ms pre-spike P95 must not demand 0.6 ms: below this much above the reference,
#: a second counts as recovered whatever the tolerance says.
RECOVERY_SLACK_MS: Final = 1.0
#: A soak compares its first and last sixth: 10 min of a 1 h soak.
DRIFT_WINDOW_FRACTION: Final = 1 / 6
BEFORE, SURGE, RECOVERY, FIRST, LAST = "before", "surge", "recovery", "first", "last"


class RowTally(Protocol):
    """One row's requests over some seconds (``measure.timeline.Tally``)."""

    hist: LatencyHistogram
    requests: int
    failures: int
    seconds: int


def spike_windows(stages: Sequence[Stage]) -> dict[str, tuple[float, float]]:
    """``before``, ``surge`` and (when the profile holds the pre-spike load afterwards)
    ``recovery``, in seconds of the run; empty when the stages have no peak above their start."""
    if not stages:
        return {}
    ends_s = stage_ends_s(stages)
    peak = max(stage.target_users for stage in stages)
    first = next(i for i, stage in enumerate(stages) if stage.target_users == peak)
    base = stages[first - 1].target_users if first > 0 else 0
    if base == 0 or peak <= base:
        return {}
    rise_start_s = ends_s[first] - stages[first].duration_s
    back = next((i for i in range(first + 1, len(stages)) if stages[i].target_users <= base), None)
    if back is None:
        return {BEFORE: (0.0, rise_start_s), SURGE: (rise_start_s, ends_s[-1])}
    windows = {BEFORE: (0.0, rise_start_s), SURGE: (rise_start_s, ends_s[back])}
    hold_end = back
    while hold_end + 1 < len(stages) and stages[hold_end + 1].target_users == base:
        hold_end += 1
    if ends_s[hold_end] > ends_s[back]:
        windows[RECOVERY] = (ends_s[back], ends_s[hold_end])
    return windows


def drift_windows(stages: Sequence[Stage]) -> dict[str, tuple[float, float]]:
    """``first`` and ``last``: the first and last sixth of the main steady window."""
    steady = main_steady_window(stages)
    if steady is None:
        return {}
    start_s, end_s = steady
    width_s = (end_s - start_s) * DRIFT_WINDOW_FRACTION
    return {FIRST: (start_s, start_s + width_s), LAST: (end_s - width_s, end_s)}


def purpose_windows(profile: str, stages: Sequence[Stage]) -> dict[str, tuple[float, float]]:
    """Every window a purpose criterion of ``profile`` may read."""
    spec = registry.PROFILES.get(profile)
    windows = drift_windows(stages)
    if spec is not None and spec.report == "spike":
        windows.update(spike_windows(stages))
    return windows


def endpoint_metrics(key: str, tally: RowTally, window_s: float | None) -> EndpointMetrics:
    """A row's metrics over some seconds (``rps`` over ``window_s`` when given)."""
    method, _, name = key.partition(" ") if key != AGGREGATED_KEY else ("", "", key)
    return EndpointMetrics.from_histogram(
        method,
        name,
        tally.hist,
        tally.requests,
        tally.failures,
        rps=tally.requests / window_s if window_s else None,
        window_s=window_s or 0.0,
    )


def _row(criterion: Criterion) -> str:
    return AGGREGATED_KEY if criterion.request == TOTAL else str(criterion.request)


def _ms(value_ms: float) -> str:
    return f"{format_number(round(value_ms, 2))} ms"


@dataclass(frozen=True)
class Recovery:
    """How P95 came back after a spike, for one row."""

    reference_ms: float
    """The pre-spike P95 (every request of the ``before`` window)."""
    limit_ms: float
    recovery_s: float
    """Seconds from the start of the hold until P95 stayed within the limit; inf if never."""
    last_p95_ms: float
    """P95 of the hold's last second with requests."""


def recovery(
    before: RowTally | None,
    hold_p95_ms: Mapping[float, float],
    hold_start_s: float,
    tolerance: float,
) -> Recovery | str:
    """The recovery of one row, or why it cannot be measured.

    ``hold_p95_ms``: second (its start, run time) -> that second's P95, for the hold's seconds.
    """
    if before is None or before.requests == 0:
        return "no requests before the spike: no pre-spike P95 to recover to"
    if not hold_p95_ms:
        return "no requests in the recovery hold"
    reference_ms = before.hist.percentile_ms(95)
    limit_ms = max(reference_ms * (1 + tolerance), reference_ms + RECOVERY_SLACK_MS)
    seconds = sorted(hold_p95_ms.items())
    recovered_at: float | None = None
    for t_s, p95_ms in seconds:
        if p95_ms > limit_ms:
            recovered_at = None
        elif recovered_at is None:
            recovered_at = t_s
    last_p95_ms = seconds[-1][1]
    if recovered_at is None:
        return Recovery(reference_ms, limit_ms, math.inf, last_p95_ms)
    recovered_s = 0.0 if recovered_at == seconds[0][0] else max(0.0, recovered_at - hold_start_s)
    return Recovery(reference_ms, limit_ms, recovered_s, last_p95_ms)


@dataclass(frozen=True)
class HeldLoad:
    """The highest user level at which the baseline's limits held."""

    users: int | None
    """None: not even the lowest level held."""
    rps: float | None
    """Requests per second (HTTP total) at that level."""
    first_failed: int | None
    """The level that failed first, if any."""
    failure: str
    """What failed there (``total p95 62 ms, needs < 50 ms``)."""
    levels: int

    def describe(self) -> str:
        held = (
            "no user level held"
            if self.users is None
            else f"held up to {self.users} users"
            + (f" ({format_number(round(self.rps, 1))} rps)" if self.rps is not None else "")
        )
        if self.first_failed is None:
            return f"{held}; no level failed ({self.levels} levels)"
        return f"{held}; first failed at {self.first_failed} users: {self.failure}"


def level_criteria(baseline: Baseline, profile: str) -> tuple[Criterion, ...]:
    """The criteria a load level is judged on: each request latency and error-rate criterion
    of ``profile`` that is judged on whole rows (not a phase, recovery or drift)."""
    return tuple(
        c
        for c in baseline.criteria_for(profile)
        if c.kind == "request"
        and not c.needs_timeline
        and (c.metric in LATENCY_METRICS or c.metric == "error_rate")
    )


def held_load(
    levels: Mapping[int, Mapping[str, RowTally]], criteria: Sequence[Criterion]
) -> HeldLoad | None:
    """Judge ``criteria`` at each level in rising order; None without criteria or levels."""
    from loadkit.core.verdict import holds, measure

    if not criteria or not levels:
        return None
    held: int | None = None
    held_rps: float | None = None
    for users in sorted(levels):
        rows = levels[users]
        metrics = {key: endpoint_metrics(key, tally, None) for key, tally in rows.items()}
        for criterion in criteria:
            value = measure(criterion, metrics)
            if value is not None and not holds(criterion, value):
                failure = (
                    f"{criterion.subject} {criterion.metric} {criterion.format(value)}, "
                    f"needs {criterion.op} {criterion.format(criterion.threshold)}"
                )
                return HeldLoad(held, held_rps, users, failure, len(levels))
        total = rows.get(AGGREGATED_KEY)
        held = users
        held_rps = total.requests / total.seconds if total is not None and total.seconds else None
    return HeldLoad(held, held_rps, None, "", len(levels))


class PurposeFigures:
    """The ``TimelineFigures`` of one run: phases, recovery seconds and drift windows."""

    def __init__(
        self,
        windows: Mapping[str, tuple[float, float]],
        by_window: Mapping[str, Mapping[str, RowTally]],
        recovery_p95_ms: Mapping[float, Mapping[str, float]],
        stopped_at_s: float | None = None,
    ) -> None:
        self.windows = windows
        self.by_window = by_window
        self.recovery_p95_ms = recovery_p95_ms
        self.stopped_at_s = stopped_at_s

    def _missing_window(self, name: str, what: str) -> str | None:
        if name not in self.windows:
            return f"this profile has no {what}"
        end_s = self.windows[name][1]
        if self.stopped_at_s is not None and self.stopped_at_s < end_s - 0.5:
            return (
                f"the run stopped at {format_number(round(self.stopped_at_s, 1))} s, before "
                f"the end of its {what} ({format_number(round(end_s, 1))} s)"
            )
        return None

    def _result(self, criterion: Criterion) -> float | str:
        row = _row(criterion)
        if criterion.during is not None:
            name = criterion.during
            missing = self._missing_window(name, f"{name} phase (a spike profile's)")
            if missing:
                return missing
            tally = self.by_window.get(name, {}).get(row)
            if tally is None or tally.requests == 0:
                return f"no {criterion.request!r} requests during the {name}"
            start_s, end_s = self.windows[name]
            from loadkit.core.verdict import measure

            metrics = {row: endpoint_metrics(row, tally, end_s - start_s)}
            value = measure(criterion.model_copy(update={"during": None}), metrics)
            return "no data" if value is None else value
        if criterion.metric == "recovery":
            missing = self._missing_window(RECOVERY, "recovery hold (spike with --recovery)")
            if missing:
                return missing
            found = self._recovery(criterion)
            return found if isinstance(found, str) else found.recovery_s
        if criterion.metric == "p95_drift":
            for name in (FIRST, LAST):
                missing = self._missing_window(name, "steady window to compare")
                if missing:
                    return missing
            first = self.by_window.get(FIRST, {}).get(row)
            last = self.by_window.get(LAST, {}).get(row)
            if first is None or last is None or not first.requests or not last.requests:
                return f"no {criterion.request!r} requests in the first or the last window"
            return last.hist.percentile_ms(95) - first.hist.percentile_ms(95)
        return f"{criterion.metric} is not judged on the timeline"

    def _recovery(self, criterion: Criterion) -> Recovery | str:
        row = _row(criterion)
        hold = {t_s: rows[row] for t_s, rows in self.recovery_p95_ms.items() if row in rows}
        before = self.by_window.get(BEFORE, {}).get(row)
        return recovery(before, hold, self.windows[RECOVERY][0], criterion.tolerance_fraction)

    def measure(self, criterion: Criterion) -> float | None:
        result = self._result(criterion)
        return None if isinstance(result, str) else result

    def explain(self, criterion: Criterion) -> str:
        result = self._result(criterion)
        if isinstance(result, str):
            return result
        row = _row(criterion)
        if criterion.metric == "recovery":
            found = self._recovery(criterion)
            if isinstance(found, str):
                return found
            back = (
                "never back within it"
                if math.isinf(found.recovery_s)
                else f"back within it after {format_number(round(found.recovery_s, 1))} s"
            )
            return (
                f"pre-spike P95 {_ms(found.reference_ms)}, limit {_ms(found.limit_ms)}; "
                f"{back}; last second of the hold {_ms(found.last_p95_ms)}"
            )
        if criterion.metric == "p95_drift":
            first = self.by_window[FIRST][row].hist.percentile_ms(95)
            last = self.by_window[LAST][row].hist.percentile_ms(95)
            return f"P95 {_ms(first)} in the first window, {_ms(last)} in the last"
        return ""
