"""Is a change a regression? One rule for ``[[regression]]`` criteria and ``loadkit compare``.

A metric has regressed when it is worse than the reference's value by more than the tolerance
AND, when at least ``MIN_SPREAD_RUNS`` earlier passing runs of the same load exist, worse than
every one of them. In numbers, for a metric that gets worse by rising (latency, error rate)::

    limit = max(reference x (1 + tolerance), reference + 1 ms, highest of the earlier runs)

and a run regresses when its value is above the limit (for the request rate, which gets worse by
falling: below ``min(reference x (1 - tolerance), lowest of the earlier runs)``). The error rate's
tolerance is in percentage points (``reference + tolerance``), since a reference of 0 errors
allows no relative change at all.

Why the range of the earlier runs, not a standard deviation: a nightly history holds a handful of
comparable runs, and a standard deviation from five samples is itself uncertain by about a third;
the range needs no assumption about the distribution and answers the question a reader of the
trend chart asks: "is tonight worse than anything the recent passing runs have shown?". Failed
runs never widen it, so a regression cannot hide behind earlier regressions; one noisy outlier
widens it only while it is among the last ``spread_runs`` passing runs. The 1 ms floor keeps
scheduling jitter on a busy load generator from failing a 2 ms endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from loadkit.core.baselines import (
    AGGREGATED_KEY,
    LATENCY_METRICS,
    TOTAL,
    UNIT_FRACTION,
    UNIT_MS,
    UNIT_PER_S,
    Baseline,
    RegressionCriterion,
    format_number,
)
from loadkit.core.metrics import EndpointMetrics
from loadkit.core.reference import ReferenceLookup, Spread, metric_value, request_row
from loadkit.core.verdict import (
    FAILED,
    NO_DATA,
    PASSED,
    REGRESSION_TABLE,
    SKIPPED,
    CriterionResult,
    Status,
)

#: Earlier passing runs needed before their spread counts (two values show no spread worth
#: the name; three is the smallest set with a middle).
MIN_SPREAD_RUNS: Final = 3
#: A latency change smaller than this is never a regression (nor an improvement).
LATENCY_FLOOR_MS: Final = 1.0

Judgement = Literal["regression", "improvement", "within", "no data"]
REGRESSION: Final = "regression"
IMPROVEMENT: Final = "improvement"
WITHIN: Final = "within"


def rises_when_worse(metric: str) -> bool:
    """Latencies and the error rate get worse by rising; the request rate by falling."""
    return metric != "rps"


def tolerance_text(metric: str, tolerance: float) -> str:
    """``+20%``, ``-10%``, ``+0.5 points`` (error rate)."""
    if metric == "error_rate":
        return f"+{format_number(tolerance * 100)} points"
    sign = "+" if rises_when_worse(metric) else "-"
    return f"{sign}{format_number(tolerance * 100)}%"


def format_value(metric: str, value: float | None) -> str:
    """``41.2 ms``, ``98.5/s``, ``0.12%``, ``1200``; ``-`` for nothing."""
    if value is None:
        return "-"
    if metric in LATENCY_METRICS:
        return f"{format_number(value)} ms"
    if metric == "error_rate":
        return f"{format_number(value * 100)}%"
    if metric == "rps":
        return f"{format_number(value)}/s"
    return format_number(value)


def _usable(spread: Spread | None) -> Spread | None:
    return spread if spread is not None and spread.runs >= MIN_SPREAD_RUNS else None


def worst_accepted(
    metric: str, reference: float, tolerance: float, spread: Spread | None = None
) -> float:
    """The worst value of ``metric`` that is not a regression (the rule in the module doc)."""
    spread = _usable(spread)
    if metric == "error_rate":
        limit = reference + tolerance
    elif rises_when_worse(metric):
        limit = max(reference * (1 + tolerance), reference + LATENCY_FLOOR_MS)
    else:
        limit = reference * (1 - tolerance)
    if spread is None:
        return limit
    return max(limit, spread.high) if rises_when_worse(metric) else min(limit, spread.low)


def _best_unremarkable(
    metric: str, reference: float, tolerance: float, spread: Spread | None
) -> float:
    """The best value that is not yet an improvement: the same rule, the other way round."""
    spread = _usable(spread)
    if metric == "error_rate":
        limit = reference - tolerance
    elif rises_when_worse(metric):
        limit = min(reference * (1 - tolerance), reference - LATENCY_FLOOR_MS)
    else:
        limit = reference * (1 + tolerance)
    if spread is None:
        return limit
    return min(limit, spread.low) if rises_when_worse(metric) else max(limit, spread.high)


@dataclass(frozen=True)
class Change:
    """One metric of one request, before and after, and what the change amounts to."""

    metric: str
    before: float | None
    after: float | None
    tolerance: float
    spread: Spread | None
    limit: float | None
    """The worst value still accepted (None when either side is missing)."""
    judgement: Judgement

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        """The change as a fraction of ``before``; None when ``before`` is 0 or missing."""
        delta = self.delta
        return None if delta is None or not self.before else delta / self.before

    def describe_change(self) -> str:
        """``+12.3 ms (+30.1%)``, ``-0.5/s (-0.5%)``, ``+0.2 points``."""
        delta = self.delta
        if delta is None:
            return "-"
        if self.metric == "error_rate":
            return f"{delta * 100:+.4g} points"
        sign = "+" if delta >= 0 else "-"
        text = f"{sign}{format_value(self.metric, abs(delta))}"
        relative = self.relative
        return text if relative is None else f"{text} ({relative * 100:+.1f}%)"


def judge_change(
    metric: str,
    before: float | None,
    after: float | None,
    tolerance: float,
    spread: Spread | None = None,
) -> Change:
    """``after`` against ``before`` (the reference) under ``tolerance`` and the earlier runs'
    ``spread`` (used only with ``MIN_SPREAD_RUNS`` or more runs)."""
    spread = _usable(spread)
    if before is None or after is None:
        return Change(metric, before, after, tolerance, spread, None, "no data")
    limit = worst_accepted(metric, before, tolerance, spread)
    best = _best_unremarkable(metric, before, tolerance, spread)
    rising = rises_when_worse(metric)
    if (after > limit) if rising else (after < limit):
        judgement: Judgement = REGRESSION
    elif (after < best) if rising else (after > best):
        judgement = IMPROVEMENT
    else:
        judgement = WITHIN
    return Change(metric, before, after, tolerance, spread, limit, judgement)


# -- [[regression]] criteria in the verdict ----------------------------------------------------


@dataclass(frozen=True)
class RegressionCheck:
    """A ``[[regression]]`` rule made concrete for one run: the reference's value and the limit.

    It answers what the verdict's outputs ask of a criterion (subject, metric, op, threshold,
    format, describe), so the console, JSON, JUnit and the web tab show both kinds alike.
    """

    rule: RegressionCriterion
    reference_value: float | None = None
    limit: float | None = None
    spread: Spread | None = None
    reference_run: str | None = None
    """``run 3f2a1c9e of ... (the last passing run)``; None without a reference."""

    gauge: None = None
    counter: None = None
    platform: None = None
    labels: None = None
    during: None = None
    tolerance_fraction: None = None
    abort_on_fail: bool = False

    @property
    def request(self) -> str:
        return self.rule.request

    @property
    def subject(self) -> str:
        return self.rule.request

    @property
    def metric(self) -> str:
        return self.rule.metric

    @property
    def op(self) -> str:
        return "<=" if self.rule.rising else ">="

    @property
    def threshold(self) -> float | None:
        """The limit in ``unit``; None without a reference."""
        return self.limit

    @property
    def unit(self) -> str:
        if self.metric in LATENCY_METRICS:
            return UNIT_MS
        return UNIT_FRACTION if self.metric == "error_rate" else UNIT_PER_S

    @property
    def threshold_text(self) -> str:
        """The rule as written: ``+20%`` (of the reference), ``+0.5 points``."""
        return tolerance_text(self.metric, self.rule.tolerance)

    @property
    def profiles(self) -> tuple[str, ...] | None:
        return self.rule.profiles

    @property
    def source(self) -> str | None:
        return self.rule.source

    def applies_to(self, profile: str) -> bool:
        return self.rule.applies_to(profile)

    def format(self, amount: float | None) -> str:
        if amount is None:
            return f"reference {self.threshold_text}"
        return format_value(self.metric, amount)

    def describe(self) -> str:
        """``total p95 <= 48 ms (reference 40 ms +20%)``."""
        if self.limit is None or self.reference_value is None:
            return f"{self.subject} {self.metric} {self.op} reference {self.threshold_text}"
        reference = format_value(self.metric, self.reference_value)
        return (
            f"{self.subject} {self.metric} {self.op} {self.format(self.limit)} "
            f"(reference {reference} {self.threshold_text})"
        )


def _measured(metrics: Mapping[str, EndpointMetrics], request: str, metric: str) -> float | None:
    row = metrics.get(AGGREGATED_KEY if request == TOTAL else request)
    return None if row is None else metric_value(request_row(row), metric)


def _judge_one(
    index: int,
    rule: RegressionCriterion,
    baseline: Baseline,
    profile: str,
    metrics: Mapping[str, EndpointMetrics],
    lookup: ReferenceLookup | None,
) -> CriterionResult:
    def result(
        check: RegressionCheck, measured: float | None, status: Status, reason: str
    ) -> CriterionResult:
        return CriterionResult(index, check, measured, status, reason, table=REGRESSION_TABLE)

    if not rule.applies_to(profile):
        where = ", ".join(rule.profiles or ())
        return result(RegressionCheck(rule), None, SKIPPED, f"applies to {where}, not {profile}")
    run = lookup.run if lookup is not None else None
    reference = run.value(rule.request, rule.metric) if run is not None else None
    missing = SKIPPED if baseline.regression_policy.no_reference == "pass" else NO_DATA
    if run is None:
        return result(RegressionCheck(rule), None, missing, "no reference run to compare with")
    if reference is None:
        why = f"the reference {run.describe()} has no {rule.metric} of {rule.request!r}"
        return result(RegressionCheck(rule, reference_run=run.describe()), None, missing, why)
    spread = run.spread_for(rule.request, rule.metric)
    measured = _measured(metrics, rule.request, rule.metric)
    change = judge_change(rule.metric, reference, measured, rule.tolerance, spread)
    limit = worst_accepted(rule.metric, reference, rule.tolerance, spread)
    check = RegressionCheck(rule, reference, limit, change.spread, run.describe())
    if measured is None:
        what = "no HTTP requests" if rule.request == TOTAL else f"no {rule.request!r} requests"
        return result(check, None, NO_DATA, f"{what} were recorded")
    verdict_text = "more than" if change.judgement == REGRESSION else "within"
    reason = (
        f"{change.describe_change()} against the reference's "
        f"{format_value(rule.metric, reference)}: {verdict_text} {check.threshold_text}"
    )
    if change.spread is not None:
        low, high = (format_value(rule.metric, v) for v in (change.spread.low, change.spread.high))
        joint = "and" if change.judgement == REGRESSION else "or"
        reason += f" {joint} the {low}–{high} of {change.spread.runs} earlier runs"
    return result(check, measured, FAILED if change.judgement == REGRESSION else PASSED, reason)


def judge_regressions(
    baseline: Baseline,
    profile: str,
    metrics: Mapping[str, EndpointMetrics],
    lookup: ReferenceLookup | None,
) -> tuple[tuple[CriterionResult, ...], tuple[str, ...]]:
    """The ``[[regression]]`` results of a run of ``profile``, and the notes that explain them.

    Without a reference (``lookup`` None: nobody looked; ``lookup.run`` None: none found), each
    applicable rule is skipped (``no_reference = "pass"``) or has no data (``"fail"``).
    """
    rules = baseline.regression
    if not rules:
        return (), ()
    results = tuple(
        _judge_one(i, rule, baseline, profile, metrics, lookup) for i, rule in enumerate(rules)
    )
    if not any(rule.applies_to(profile) for rule in rules):
        return results, ()
    run = lookup.run if lookup is not None else None
    if run is not None:
        judged = f"regression criteria judged against {run.describe()}"
        change = lookup.generator_change() if lookup is not None else None
        return results, (judged,) if change is None else (judged, change)
    where = lookup.searched if lookup is not None else "no reference was looked up"
    policy = baseline.regression_policy.no_reference
    outcome = "they fail the run" if policy == "fail" else "they are skipped"
    return results, (
        f"no reference run for the regression criteria ({where}): {outcome} "
        f'(regression_policy.no_reference = "{policy}")',
    )
