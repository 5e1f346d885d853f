"""Two runs side by side, per request: what changed, by how much, and whether it matters.

Pure: the runs come in as their ``requests`` sections (``core.reference``), the verdict on each
change comes from the one rule in ``core.regression``, so ``loadkit compare`` and a baseline's
``[[regression]]`` criteria can never disagree about the same numbers and tolerance.

The default tolerances: a latency percentile may rise by 20% (P99, the noisiest, by 30%), the
request rate may fall by 10%, the error rate may rise by 0.5 percentage points. The request
count is shown, never judged: it follows the run's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from loadkit.core.baselines import REGRESSION_METRICS, TOTAL, parse_tolerance
from loadkit.core.reference import Spread, metric_value
from loadkit.core.regression import (
    IMPROVEMENT,
    REGRESSION,
    format_value,
    judge_change,
    tolerance_text,
)

DEFAULT_TOLERANCES: Final[Mapping[str, float]] = MappingProxyType(
    {"rps": 0.10, "error_rate": 0.005, "p50": 0.20, "p95": 0.20, "p99": 0.30}
)
#: Shown for each request, judged or not, in this order.
SHOWN_METRICS: Final = ("count", "rps", "error_rate", "p50", "p95", "p99")
NOT_JUDGED: Final = "not judged"
ONLY_IN_A: Final = "only in A"
ONLY_IN_B: Final = "only in B"


class ToleranceError(ValueError):
    """A ``--tolerance`` that cannot be used; one line."""


def parse_tolerances(specs: list[str]) -> dict[str, float]:
    """The defaults, overridden by ``METRIC=VALUE`` specs (``p95=30%``, ``error_rate=0.1%``)."""
    tolerances = dict(DEFAULT_TOLERANCES)
    for spec in specs:
        metric, sep, value = spec.partition("=")
        metric = metric.strip()
        if not sep or metric not in REGRESSION_METRICS:
            known = ", ".join(REGRESSION_METRICS)
            raise ToleranceError(f"--tolerance {spec!r}: say METRIC=VALUE, METRIC one of {known}")
        try:
            tolerances[metric] = parse_tolerance(value.strip())
        except ValueError as exc:
            raise ToleranceError(f"--tolerance {spec!r}: {exc}") from None
    return tolerances


def describe_tolerances(tolerances: Mapping[str, float]) -> str:
    """``rps -10%, error_rate +0.5 points, p95 +20%``."""
    return ", ".join(f"{m} {tolerance_text(m, t)}" for m, t in tolerances.items())


@dataclass(frozen=True)
class MetricRow:
    """One metric of one request in both runs."""

    request: str
    metric: str
    a: float | None
    b: float | None
    change: str
    """``+12 ms (+30.0%)``, ``-``."""
    relative: float | None
    judgement: str
    """regression, improvement, within, no data, not judged, only in A, only in B."""
    tolerance: float | None
    limit: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "metric": self.metric,
            "a": self.a,
            "b": self.b,
            "delta": None if self.a is None or self.b is None else self.b - self.a,
            "relative": self.relative,
            "tolerance": self.tolerance,
            "limit": self.limit,
            "judgement": self.judgement,
        }


@dataclass(frozen=True)
class Comparison:
    rows: tuple[MetricRow, ...]
    tolerances: Mapping[str, float]

    @property
    def regressions(self) -> tuple[MetricRow, ...]:
        return tuple(r for r in self.rows if r.judgement == REGRESSION)

    @property
    def improvements(self) -> tuple[MetricRow, ...]:
        return tuple(r for r in self.rows if r.judgement == IMPROVEMENT)


def _order(requests: set[str]) -> list[str]:
    return sorted(requests, key=lambda name: (name != TOTAL, name))


def compare(
    a: Mapping[str, Mapping[str, Any]],
    b: Mapping[str, Mapping[str, Any]],
    tolerances: Mapping[str, float] = DEFAULT_TOLERANCES,
    spread: Mapping[str, Mapping[str, Spread]] | None = None,
) -> Comparison:
    """Every request of either run (``rows_by_request``), ``total`` first; ``spread`` is the
    earlier runs' spread per request and metric, used as ``core.regression`` says."""
    metrics = [*SHOWN_METRICS, *(m for m in tolerances if m not in SHOWN_METRICS)]
    rows = []
    for request in _order(set(a) | set(b)):
        only = ONLY_IN_B if request not in a else ONLY_IN_A if request not in b else None
        for metric in metrics:
            before = metric_value(a.get(request), metric)
            after = metric_value(b.get(request), metric)
            tolerance = tolerances.get(metric)
            if only is not None or tolerance is None:
                delta = None if before is None or after is None else after - before
                text = "-"
                if delta is not None:
                    text = f"{'+' if delta >= 0 else '-'}{format_value(metric, abs(delta))}"
                judgement = only or NOT_JUDGED
                rows.append(
                    MetricRow(
                        request, metric, before, after, text, None, judgement, tolerance, None
                    )
                )
                continue
            earlier = (spread or {}).get(request, {}).get(metric)
            change = judge_change(metric, before, after, tolerance, earlier)
            rows.append(
                MetricRow(
                    request,
                    metric,
                    before,
                    after,
                    change.describe_change(),
                    change.relative,
                    change.judgement,
                    tolerance,
                    change.limit,
                )
            )
    return Comparison(tuple(rows), dict(tolerances))
