"""The run's verdict, computed from plain numbers: no Locust here, so it is unit-tested directly.

``evaluate`` judges every criterion of a baseline against what a run measured; ``AbortWatch``
decides during the run whether an ``abort_on_fail`` criterion has failed for long enough to stop.
Anything that could not be measured is reported as "no data" and fails the run: a threshold that
was never checked must not look like one that held.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from loadkit import endpoints
from loadkit.core.baselines import (
    AGGREGATED_KEY,
    TOTAL,
    Baseline,
    Criterion,
    Reference,
    check_profile,
    format_number,
)
from loadkit.core.metrics import EndpointMetrics

Status = Literal["passed", "failed", "skipped", "no data"]
PASSED: Final = "passed"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"
NO_DATA: Final = "no data"

#: Process exit codes: every applicable criterion passed / the run failed / the input was invalid
#: (the last is raised as ``BaselineError`` before anything runs, never returned by a verdict).
EXIT_PASSED: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2

_OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class GaugeSummary:
    """What a gauge (e.g. queue depth) did during the run, in the gauge's own unit."""

    samples: int
    min: float
    max: float
    avg: float
    p95: float
    final: float
    """The last sample: where the gauge stood when the run ended."""


@dataclass(frozen=True)
class Window:
    """The time span the rates (rps) were computed over, in seconds from the start of the run."""

    start_s: float | None
    end_s: float | None
    description: str


@dataclass(frozen=True)
class Totals:
    """The run's HTTP aggregate (JOB entries excluded)."""

    requests: int
    failures: int
    error_rate: float
    rps: float
    p95_ms: float | None = None
    """P95 of all HTTP requests; None when only per-endpoint rows were given."""


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's outcome; ``measured`` is in the criterion's canonical unit, or None."""

    index: int
    """Position in the baseline file (``criteria[index]``)."""
    criterion: Criterion
    measured: float | None
    status: Status
    reason: str

    @property
    def fails_run(self) -> bool:
        """Failed or no data: either one makes the run fail."""
        return self.status in (FAILED, NO_DATA)


@dataclass(frozen=True)
class Verdict:
    """The judgement of one run: every criterion's result and what it adds up to."""

    scenario: str
    profile: str
    window: Window
    results: tuple[CriterionResult, ...]
    totals: Totals
    references: tuple[Reference, ...] = ()
    aborted: str | None = None
    """Why the run was stopped early, if it was."""
    interrupted: bool = False
    """Stopped by a person or a signal before the profile ended."""
    baseline_path: str | None = None
    notes: tuple[str, ...] = ()
    """Things a reader must know that no criterion judges (e.g. a worker lost mid-run)."""

    @property
    def failed(self) -> tuple[CriterionResult, ...]:
        return tuple(r for r in self.results if r.status == FAILED)

    @property
    def no_data(self) -> tuple[CriterionResult, ...]:
        return tuple(r for r in self.results if r.status == NO_DATA)

    @property
    def skipped(self) -> tuple[CriterionResult, ...]:
        return tuple(r for r in self.results if r.status == SKIPPED)

    @property
    def passed(self) -> bool:
        """True only if nothing failed or lacked data and the run ran to its end."""
        return not (self.aborted or self.interrupted or any(r.fails_run for r in self.results))

    @property
    def exit_code(self) -> int:
        return EXIT_PASSED if self.passed else EXIT_FAILED

    @property
    def summary(self) -> str:
        """The final line: ``PASSED: ...`` or ``FAILED: ...`` with why."""
        judged = len(self.results) - len(self.skipped)
        if self.passed:
            if judged == 0:
                return (
                    f"PASSED, but nothing was judged: no criterion applies to profile "
                    f"{self.profile!r}"
                )
            skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
            return f"PASSED: {judged} of {judged} criteria met{skipped}"
        why: list[str] = []
        if self.aborted:
            why.append(f"aborted — {self.aborted}")
        if self.interrupted:
            why.append("interrupted before the profile ended")
        if self.failed:
            names = ", ".join(r.criterion.describe() for r in self.failed)
            why.append(f"{len(self.failed)} of {judged} criteria failed: {names}")
        if self.no_data:
            names = ", ".join(r.criterion.describe() for r in self.no_data)
            why.append(f"{len(self.no_data)} had no data: {names}")
        return "FAILED: " + "; ".join(why)


def measure(
    criterion: Criterion,
    metrics: Mapping[str, EndpointMetrics],
    gauges: Mapping[str, GaugeSummary] | None = None,
    counters: Mapping[str, float] | None = None,
) -> float | None:
    """The criterion's metric in its canonical unit, or None when nothing was measured."""
    if criterion.gauge is not None:
        summary = (gauges or {}).get(criterion.gauge)
        if summary is None or summary.samples <= 0:
            return None
        return float(getattr(summary, criterion.metric))
    if criterion.counter is not None:
        count = (counters or {}).get(criterion.counter)
        return None if count is None else float(count)
    key = AGGREGATED_KEY if criterion.request == TOTAL else str(criterion.request)
    row = metrics.get(key)
    if row is None or row.count <= 0:
        return None
    metric = criterion.metric
    if metric == "error_rate":
        return row.failures / row.count
    if metric == "count":
        return float(row.count)
    if metric == "rps":
        return float(row.rps)
    return float(getattr(row, f"{metric}_ms"))


def holds(criterion: Criterion, measured: float) -> bool:
    """Whether ``measured op threshold`` is true; a non-finite measurement never holds."""
    return math.isfinite(measured) and _OPS[criterion.op](measured, criterion.threshold)


def _no_data_reason(criterion: Criterion) -> str:
    if criterion.gauge is not None:
        return f"gauge {criterion.gauge!r} was not sampled"
    if criterion.counter is not None:
        return f"counter {criterion.counter!r} was not reported"
    if criterion.request == TOTAL:
        return "no HTTP requests were recorded"
    return f"no {criterion.request!r} requests were recorded"


def judge(
    index: int,
    criterion: Criterion,
    profile: str,
    metrics: Mapping[str, EndpointMetrics],
    gauges: Mapping[str, GaugeSummary] | None = None,
    counters: Mapping[str, float] | None = None,
) -> CriterionResult:
    """One criterion's result for a run of ``profile``."""
    if not criterion.applies_to(profile):
        where = ", ".join(criterion.profiles or ())
        reason = f"applies to {where}, not {profile}"
        return CriterionResult(index, criterion, None, SKIPPED, reason)
    measured = measure(criterion, metrics, gauges, counters)
    if measured is None:
        return CriterionResult(index, criterion, None, NO_DATA, _no_data_reason(criterion))
    threshold = f"{criterion.op} {criterion.format(criterion.threshold)}"
    if holds(criterion, measured):
        return CriterionResult(
            index, criterion, measured, PASSED, f"{criterion.format(measured)} {threshold}"
        )
    return CriterionResult(
        index, criterion, measured, FAILED, f"{criterion.format(measured)}, needs {threshold}"
    )


def _totals(metrics: Mapping[str, EndpointMetrics]) -> Totals:
    """The aggregate row, or the sum of the HTTP rows if the aggregate is missing."""
    row = metrics.get(AGGREGATED_KEY)
    if row is not None:
        return Totals(row.count, row.failures, row.error_rate, row.rps, row.p95_ms)
    http = [m for m in metrics.values() if m.method not in endpoints.NON_HTTP_REQUEST_TYPES]
    requests = sum(m.count for m in http)
    failures = sum(m.failures for m in http)
    rate = failures / requests if requests else 0.0
    return Totals(requests, failures, rate, sum(m.rps for m in http))


def _window(
    metrics: Mapping[str, EndpointMetrics],
    window: tuple[float, float] | None,
    description: str | None,
) -> Window:
    if window is None:
        row = metrics.get(AGGREGATED_KEY)
        length = f" ({format_number(row.window_s)} s)" if row is not None else ""
        return Window(None, None, description or f"whole run{length}")
    start_s, end_s = window
    if not (0 <= start_s <= end_s):
        raise ValueError(f"window must satisfy 0 <= start <= end, got {window!r}")
    span = f"t={format_number(start_s)}–{format_number(end_s)} s"
    text = f"{span} ({format_number(end_s - start_s)} s)"
    return Window(float(start_s), float(end_s), f"{text}: {description}" if description else text)


def evaluate(
    metrics: Mapping[str, EndpointMetrics],
    baseline: Baseline,
    *,
    profile: str,
    gauges: Mapping[str, GaugeSummary] | None = None,
    counters: Mapping[str, float] | None = None,
    window: tuple[float, float] | None = None,
    window_description: str | None = None,
    aborted: str | None = None,
    interrupted: bool = False,
    notes: tuple[str, ...] = (),
) -> Verdict:
    """Judge a run of ``profile`` against ``baseline``.

    ``metrics`` is keyed by ``EndpointMetrics.key`` ("POST /api/calls", "Aggregated" for the HTTP
    total). ``window`` is the (start_s, end_s) span the rps values cover; None means the whole run.
    ``aborted`` is the abort reason if the run was stopped early; ``interrupted`` means a person or
    a signal stopped it. Either one fails the run whatever the criteria say.
    """
    check_profile(profile)
    results = tuple(
        judge(i, c, profile, metrics, gauges, counters) for i, c in enumerate(baseline.criteria)
    )
    return Verdict(
        scenario=baseline.scenario,
        profile=profile,
        window=_window(metrics, window, window_description),
        results=results,
        totals=_totals(metrics),
        references=baseline.reference,
        aborted=aborted,
        interrupted=interrupted,
        baseline_path=baseline.path,
        notes=notes,
    )


class AbortWatch:
    """Decides, from periodic observations, when an ``abort_on_fail`` criterion should stop the run.

    A criterion triggers once it has failed in every observation for at least its
    ``delay_abort_eval`` (measured from the first failing observation); one passing observation
    resets it. No data is not a failure here: at the start of a run nothing has been measured yet.
    Unlike k6, whose delayAbortEval only postpones evaluation after the start, this needs the
    failure to persist, so a short burst of errors does not throw away an hour of soak.
    The watch is pure: the caller passes the clock (``t_s``) and the numbers to judge.
    """

    def __init__(self, baseline: Baseline, profile: str) -> None:
        check_profile(profile)
        self._watched = tuple(
            (i, c)
            for i, c in enumerate(baseline.criteria)
            if c.abort_on_fail and c.applies_to(profile)
        )
        self._failing_since_s: dict[int, float] = {}
        self._reason: str | None = None

    @property
    def active(self) -> bool:
        """Whether any criterion can abort this run (if not, the caller needn't observe)."""
        return bool(self._watched)

    @property
    def reason(self) -> str | None:
        """The abort reason once one was found (it stays)."""
        return self._reason

    def observe(
        self,
        t_s: float,
        metrics_now: Mapping[str, EndpointMetrics],
        *,
        gauges: Mapping[str, GaugeSummary] | None = None,
        counters: Mapping[str, float] | None = None,
    ) -> str | None:
        """Judge the numbers seen at time ``t_s`` (seconds, any monotonic origin).

        Returns the abort reason when a watched criterion has now failed for its delay, and keeps
        returning it afterwards; None otherwise.
        """
        if self._reason is not None:
            return self._reason
        for index, criterion in self._watched:
            measured = measure(criterion, metrics_now, gauges, counters)
            if measured is None or holds(criterion, measured):
                self._failing_since_s.pop(index, None)
                continue
            since_s = self._failing_since_s.setdefault(index, t_s)
            failing_s = t_s - since_s
            if failing_s >= criterion.delay_abort_eval_s:
                self._reason = (
                    f"criteria[{index}] {criterion.describe()} failed for "
                    f"{format_number(failing_s)} s (measured {criterion.format(measured)})"
                )
                return self._reason
        return None
