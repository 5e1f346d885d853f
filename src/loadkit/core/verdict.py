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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, Protocol

from loadkit import endpoints
from loadkit.core.baselines import (
    AGGREGATED_KEY,
    TOTAL,
    Baseline,
    Criterion,
    Reference,
    check_profile,
    counter_key,
    format_number,
)
from loadkit.core.exit_codes import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INVALID, EXIT_PASSED
from loadkit.core.lifecycle import RunState
from loadkit.core.metrics import EndpointMetrics, no_rate_reason
from loadkit.core.queue_report import QueueReport

if TYPE_CHECKING:
    from loadkit.core.reference import ReferenceLookup
    from loadkit.core.regression import RegressionCheck

__all__ = ["EXIT_FAILED", "EXIT_INCOMPLETE", "EXIT_INVALID", "EXIT_PASSED", "RunState"]

Status = Literal["passed", "failed", "skipped", "no data"]
PASSED: Final = "passed"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"
NO_DATA: Final = "no data"
#: The baseline table a result comes from: ``[[criteria]]`` (fixed thresholds) or
#: ``[[regression]]`` (relative to a reference run, ``core.regression``).
CRITERIA_TABLE: Final = "criteria"
REGRESSION_TABLE: Final = "regression"


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
    growth_per_s: float | None = None
    """How fast the gauge rose from the first sample to the last, per second (negative when it
    fell); None when the samples span no time."""
    growth: float | None = None
    """Least-squares slope over the steady window after its warm-up, per hour (``core.series``);
    None when that window holds fewer than two samples."""
    rate: float | None = None
    """A counter's increase per second over the steady window (platform metrics)."""
    why_missing: str = ""
    """Why there are no samples, or no growth or rate: for the "no data" reason."""


class TimelineFigures(Protocol):
    """Measures the criteria judged on the run's seconds rather than its whole-run rows
    (``Criterion.needs_timeline``: a spike phase, the recovery, a soak's drift)."""

    def measure(self, criterion: Criterion) -> float | None:
        """The criterion's value in its canonical unit; None when it could not be measured."""
        ...

    def explain(self, criterion: Criterion) -> str:
        """One line a reader needs beside the number (the pre-spike P95, why nothing was
        measured); empty when the number says it all."""
        ...


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
    rps: float | None
    """Requests per second over the window; None when it is shorter than a second."""
    p95_ms: float | None = None
    """P95 of all HTTP requests; None when only per-endpoint rows were given."""


@dataclass(frozen=True)
class Transfer:
    """Data transferred by one request row (or ``Aggregated``: every HTTP request)."""

    name: str
    bytes_received: int
    bytes_sent: int
    received_per_s: float | None
    """Over the verdict's window, like ``rps`` (None when it is shorter than a second)."""
    sent_per_s: float | None


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's outcome; ``measured`` is in the criterion's canonical unit, or None."""

    index: int
    """Position in its table of the baseline file (``criteria[index]``, ``regression[index]``)."""
    criterion: Criterion | RegressionCheck
    measured: float | None
    status: Status
    reason: str
    detail: str = ""
    """What a reader needs beside the number (a recovery's pre-spike P95 and limit)."""
    table: str = CRITERIA_TABLE
    """``criteria`` (a fixed threshold) or ``regression`` (against a reference run)."""

    @property
    def label(self) -> str:
        """``criteria[2]`` or ``regression[0]``: where the criterion is in the file."""
        return f"{self.table}[{self.index}]"

    @property
    def fails_run(self) -> bool:
        """Failed or no data: either one makes the run fail."""
        return self.status in (FAILED, NO_DATA)


@dataclass(frozen=True)
class Verdict:
    """The judgement of one run: every criterion's result, how the run ended, what it adds up to."""

    scenario: str
    profile: str
    window: Window
    results: tuple[CriterionResult, ...]
    totals: Totals
    references: tuple[Reference, ...] = ()
    state: RunState = RunState.COMPLETE
    """How the run ended; only a complete run can pass (``core.lifecycle``)."""
    state_reason: str = ""
    """One line on why the run ended that way (empty for a complete run)."""
    queue: QueueReport | None = None
    """What the platform's queue did during the run (None: it was not sampled)."""
    baseline_path: str | None = None
    notes: tuple[str, ...] = ()
    """Things a reader must know that no criterion judges (e.g. a worker lost mid-run)."""
    live: bool = False
    """Judged while the load still runs: a snapshot, not the run's verdict."""
    metrics: Mapping[str, EndpointMetrics] = field(default_factory=dict)
    """What was measured, per request (``EndpointMetrics.key``; ``"Aggregated"`` for the total):
    the numbers a later run is compared with."""
    gauges: Mapping[str, GaugeSummary] = field(default_factory=dict)
    counters: Mapping[str, float] = field(default_factory=dict)
    started_at_s: float | None = None
    """Wall-clock start of the run (epoch seconds), when known."""
    reference: ReferenceLookup | None = None
    """The reference run the ``[[regression]]`` criteria were judged against, if looked up."""
    transfer: tuple[Transfer, ...] = ()
    """Bytes received and sent: the HTTP total first, then each request row."""

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
    def criteria_held(self) -> bool:
        """No criterion failed or lacked data (whatever the run's state)."""
        return not any(r.fails_run for r in self.results)

    @property
    def complete(self) -> bool:
        return self.state is RunState.COMPLETE

    @property
    def passed(self) -> bool:
        """True only if every judged criterion held and the run ran to its planned end."""
        return self.criteria_held and self.complete

    @property
    def aborted(self) -> str | None:
        """The abort reason, when the kit stopped the run."""
        return self.state_reason if self.state is RunState.ABORTED else None

    @property
    def interrupted(self) -> bool:
        return self.state is RunState.INTERRUPTED

    @property
    def exit_code(self) -> int:
        """0 passed; 1 a criterion failed or had no data, or the run was aborted; 3 the run did
        not complete (stopped early, interrupted, lost a worker) though nothing failed."""
        if not self.criteria_held or self.state is RunState.ABORTED:
            return EXIT_FAILED
        return EXIT_PASSED if self.complete else EXIT_INCOMPLETE

    @property
    def headline(self) -> str:
        """``PASSED``, ``FAILED``, or the state of a run that did not complete (``INTERRUPTED``)."""
        if self.live:
            return "RUNNING"
        if self.complete:
            return "PASSED" if self.criteria_held else "FAILED"
        return self.state.value.upper()

    @property
    def summary(self) -> str:
        """The final line: the headline, then why: ``STOPPED EARLY: web UI stop at 22.8 s of 45 s
        (criteria so far: 5 of 5 met)``."""
        judged = len(self.results) - len(self.skipped)
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        problems: list[str] = []
        if self.failed:
            names = ", ".join(r.criterion.describe() for r in self.failed)
            problems.append(f"{len(self.failed)} of {judged} criteria failed: {names}")
        if self.no_data:
            names = ", ".join(r.criterion.describe() for r in self.no_data)
            problems.append(f"{len(self.no_data)} had no data: {names}")
        if judged == 0:
            if self.results:
                held = f"nothing was judged: no criterion applies to profile {self.profile!r}"
            elif self.baseline_path is not None:  # a run stopped before anything was measured
                held = "nothing was judged: nothing was measured"
            else:
                held = "nothing was judged: no baseline"
        else:
            held = f"{judged - len(self.failed) - len(self.no_data)} of {judged} criteria met"
        if self.live:
            return f"RUNNING: so far {'; '.join(problems) or held}{skipped}"
        if self.complete:
            if self.criteria_held:
                return f"PASSED: {held}{skipped}" if judged else f"PASSED, but {held}"
            return "FAILED: " + "; ".join(problems)
        what = f"{self.headline}: {self.state_reason}" if self.state_reason else self.headline
        so_far = "; ".join(problems) if problems else f"{held}{skipped}"
        return f"{what} (on what was measured: {so_far})"


def measure(
    criterion: Criterion,
    metrics: Mapping[str, EndpointMetrics],
    gauges: Mapping[str, GaugeSummary] | None = None,
    counters: Mapping[str, float] | None = None,
    figures: TimelineFigures | None = None,
) -> float | None:
    """The criterion's metric in its canonical unit, or None when nothing was measured."""
    if criterion.gauge_key is not None:
        summary = (gauges or {}).get(criterion.gauge_key)
        if summary is None or summary.samples <= 0:
            return None
        value = getattr(summary, criterion.metric)
        return None if value is None else float(value)
    if criterion.needs_timeline:
        return None if figures is None else figures.measure(criterion)
    if criterion.counter is not None:
        count = (counters or {}).get(counter_key(criterion.counter, criterion.metric))
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
        return None if row.rps is None else float(row.rps)
    return float(getattr(row, f"{metric}_ms"))


def holds(criterion: Criterion, measured: float) -> bool:
    """Whether ``measured op threshold`` is true; a non-finite measurement never holds."""
    return math.isfinite(measured) and _OPS[criterion.op](measured, criterion.threshold)


def _no_data_reason(
    criterion: Criterion,
    metrics: Mapping[str, EndpointMetrics] | None = None,
    gauges: Mapping[str, GaugeSummary] | None = None,
    figures: TimelineFigures | None = None,
) -> str:
    if criterion.gauge is not None and criterion.metric == "growth_per_s":
        return f"gauge {criterion.gauge!r} has no two samples apart in time"
    if criterion.gauge_key is not None:
        summary = (gauges or {}).get(criterion.gauge_key)
        what = "gauge" if criterion.gauge is not None else "platform metric"
        name = criterion.gauge or criterion.platform_series
        if summary is None or summary.samples <= 0:
            why = f": {summary.why_missing}" if summary is not None and summary.why_missing else ""
            return f"{what} {name!r} was not sampled{why}"
        why = summary.why_missing or "too few samples in the steady window"
        return f"no {criterion.metric} of {what} {name!r}: {why}"
    if criterion.needs_timeline:
        why = figures.explain(criterion) if figures is not None else ""
        return why or f"{criterion.describe()} could not be measured"
    if criterion.counter is not None:
        if criterion.metric != "count":
            return f"counter {criterion.counter!r} has no {criterion.metric} reported"
        return f"counter {criterion.counter!r} was not reported"
    key = AGGREGATED_KEY if criterion.request == TOTAL else str(criterion.request)
    row = (metrics or {}).get(key)
    if criterion.metric == "rps" and row is not None and row.count > 0:
        return no_rate_reason(row.window_s)
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
    explanations: Mapping[str, str] | None = None,
    figures: TimelineFigures | None = None,
) -> CriterionResult:
    """One criterion's result for a run of ``profile``; a failure's reason ends with the
    ``explanations`` entry of its subject, if any."""
    if not criterion.applies_to(profile):
        where = ", ".join(criterion.profiles or ())
        reason = f"applies to {where}, not {profile}"
        return CriterionResult(index, criterion, None, SKIPPED, reason)
    measured = measure(criterion, metrics, gauges, counters, figures)
    if measured is None:
        reason = _no_data_reason(criterion, metrics, gauges, figures)
        return CriterionResult(index, criterion, None, NO_DATA, reason)
    threshold = f"{criterion.op} {criterion.format(criterion.threshold)}"
    detail = figures.explain(criterion) if figures is not None and criterion.needs_timeline else ""
    why = f" ({detail})" if detail else ""
    shown = criterion.format(measured) if math.isfinite(measured) else "never"
    if holds(criterion, measured):
        reason = f"{shown} {threshold}{why}"
        return CriterionResult(index, criterion, measured, PASSED, reason, detail)
    reason = f"{shown}, needs {threshold}{why}"
    explained = (explanations or {}).get(criterion.subject)
    if explained:
        reason = f"{reason}: {explained}"
    return CriterionResult(index, criterion, measured, FAILED, reason, detail)


def _totals(metrics: Mapping[str, EndpointMetrics]) -> Totals:
    """The aggregate row, or the sum of the HTTP rows if the aggregate is missing."""
    row = metrics.get(AGGREGATED_KEY)
    if row is not None:
        return Totals(row.count, row.failures, row.error_rate, row.rps, row.p95_ms)
    http = [m for m in metrics.values() if m.method not in endpoints.NON_HTTP_REQUEST_TYPES]
    requests = sum(m.count for m in http)
    failures = sum(m.failures for m in http)
    rate = failures / requests if requests else 0.0
    rates = [m.rps for m in http]
    rps = None if any(r is None for r in rates) else sum(r for r in rates if r is not None)
    return Totals(requests, failures, rate, rps)


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
    figures: TimelineFigures | None = None,
    window: tuple[float, float] | None = None,
    window_description: str | None = None,
    state: RunState = RunState.COMPLETE,
    state_reason: str = "",
    notes: tuple[str, ...] = (),
    live: bool = False,
    explanations: Mapping[str, str] | None = None,
    queue: QueueReport | None = None,
    reference: ReferenceLookup | None = None,
    started_at_s: float | None = None,
) -> Verdict:
    """Judge a run of ``profile`` against ``baseline``.

    ``metrics`` is keyed by ``EndpointMetrics.key`` ("POST /api/calls", "Aggregated" for the HTTP
    total). ``window`` is the (start_s, end_s) span the rps values cover; None means the whole run.
    ``state`` says how the run ended (``core.lifecycle``): a run that did not complete never
    passes, whatever the criteria say; ``live`` marks a snapshot taken while the load runs.
    ``explanations`` (subject -> one line) end the reason of a failed criterion on that subject
    (``"counter queue_stalled_jobs"`` -> which jobs piled up, when); ``queue`` is shown as is.
    ``reference`` is the run the ``[[regression]]`` criteria compare with (``core.regression``).
    """
    from loadkit.core.regression import judge_regressions

    check_profile(profile)
    results = tuple(
        judge(i, c, profile, metrics, gauges, counters, explanations, figures)
        for i, c in enumerate(baseline.criteria)
    )
    regressions, regression_notes = judge_regressions(baseline, profile, metrics, reference)
    return Verdict(
        scenario=baseline.scenario,
        profile=profile,
        window=_window(metrics, window, window_description),
        results=(*results, *regressions),
        totals=_totals(metrics),
        references=baseline.reference,
        state=state,
        state_reason=state_reason,
        queue=queue,
        baseline_path=baseline.path,
        notes=(*notes, *regression_notes),
        live=live,
        metrics=dict(metrics),
        gauges=dict(gauges or {}),
        counters=dict(counters or {}),
        started_at_s=started_at_s,
        reference=reference,
        transfer=_transfer(metrics),
    )


def _transfer(metrics: Mapping[str, EndpointMetrics]) -> tuple[Transfer, ...]:
    """The HTTP total, then the HTTP request rows by name (JOB and INTENDED rows carry none)."""
    rows = [
        m
        for key, m in sorted(metrics.items())
        if key != AGGREGATED_KEY and m.method not in endpoints.NON_HTTP_REQUEST_TYPES
    ]
    total = metrics.get(AGGREGATED_KEY)
    ordered = ([total] if total is not None else []) + rows
    return tuple(
        Transfer(m.key, m.bytes_received, m.bytes_sent, m.received_per_s, m.sent_per_s)
        for m in ordered
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
        explanations: Mapping[str, str] | None = None,
    ) -> str | None:
        """Judge the numbers seen at time ``t_s`` (seconds, any monotonic origin).

        Returns the abort reason when a watched criterion has now failed for its delay, and keeps
        returning it afterwards; None otherwise. The reason ends with the ``explanations`` entry
        of the criterion's subject, if any (as in :func:`evaluate`).
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
                why = (explanations or {}).get(criterion.subject)
                if why:
                    self._reason += f": {why}"
                return self._reason
        return None
