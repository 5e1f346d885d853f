"""A reference run's numbers, as plain data: what a later run is compared with.

The numbers of a run are its ``requests`` section (``verdict.json`` and the history's records
hold the same rows): one row per request name, ``"total"`` for the HTTP aggregate, with counts,
the rate over the measured window, the error rate and the latency percentiles in ms. The parent
process looks a reference up in the history (``results.references``) and sends it to the Locust
process inside the run plan, where the ``[[regression]]`` criteria are judged with the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from loadkit.core.baselines import AGGREGATED_KEY, LATENCY_METRICS, TOTAL
from loadkit.core.metrics import EndpointMetrics

#: The fields of one row of a ``requests`` section, in the kit's units (ms, fraction, per second).
ROW_FIELDS: Final = (
    "count", "failures", "error_rate", "rps", "min_ms", "avg_ms", "p50_ms", "p90_ms", "p95_ms",
    "p99_ms", "max_ms", "bytes_received",
)  # fmt: skip


def request_name(metrics: EndpointMetrics) -> str:
    """How baselines name a row: ``"GET /health"``, or ``"total"`` for the HTTP aggregate."""
    return TOTAL if metrics.key == AGGREGATED_KEY else metrics.key


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def request_row(metrics: EndpointMetrics) -> dict[str, Any]:
    """One row of a ``requests`` section (strict JSON: no NaN, None for what was not measured)."""
    measured = metrics.count > 0
    row: dict[str, Any] = {
        "request": request_name(metrics),
        "method": metrics.method,
        "name": metrics.name,
        "count": metrics.count,
        "failures": metrics.failures,
        "error_rate": metrics.error_rate if measured else None,
        "rps": _finite(metrics.rps),
        "bytes_received": metrics.bytes_received,
    }
    for metric in ("min", "avg", "p50", "p90", "p95", "p99", "max"):
        row[f"{metric}_ms"] = _finite(getattr(metrics, f"{metric}_ms")) if measured else None
    return row


def requests_section(metrics: Mapping[str, EndpointMetrics]) -> list[dict[str, Any]]:
    """Every row, the total first, then by request name."""
    rows = [request_row(m) for m in metrics.values()]
    return sorted(rows, key=lambda row: (row["request"] != TOTAL, row["request"]))


def rows_by_request(section: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """A ``requests`` section keyed by request name."""
    return {str(row["request"]): row for row in section}


def metric_value(row: Mapping[str, Any] | None, metric: str) -> float | None:
    """``metric`` (p95, rps, error_rate, count ...) of a row in its canonical unit, or None."""
    if row is None or not row.get("count"):
        return None
    key = f"{metric}_ms" if metric in LATENCY_METRICS else metric
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass(frozen=True)
class Spread:
    """How far a metric moved between earlier runs: their lowest and highest value."""

    low: float
    high: float
    runs: int

    def to_list(self) -> list[float | int]:
        return [self.low, self.high, self.runs]


def spread_of(
    runs: Sequence[Mapping[str, Mapping[str, Any]]], request: str, metric: str
) -> Spread | None:
    """The spread of ``request``'s ``metric`` over ``runs`` (each a ``rows_by_request``); None
    when fewer than two runs measured it."""
    values = [v for run in runs if (v := metric_value(run.get(request), metric)) is not None]
    if len(values) < 2:
        return None
    return Spread(min(values), max(values), len(values))


@dataclass(frozen=True)
class ReferenceRun:
    """The run a new one is compared with: who it is and what it measured."""

    run_id: str
    requests: Mapping[str, Mapping[str, Any]]
    """Its ``requests`` section keyed by request name (``"total"`` for the aggregate)."""
    chosen_by: str
    """Why this run: ``--reference``, ``marked with --save-reference``, ``the last passing run``."""
    started_at: str | None = None
    run_dir: str | None = None
    spread: Mapping[str, Mapping[str, Spread]] = field(default_factory=dict)
    """Per request and metric, the spread of the earlier passing runs (``core.regression``)."""
    http_client: str | None = None
    """The HTTP client the reference ran on (``fast``/``lean``); None in records kept before
    the kit noted it."""

    def value(self, request: str, metric: str) -> float | None:
        return metric_value(self.requests.get(request), metric)

    def spread_for(self, request: str, metric: str) -> Spread | None:
        return self.spread.get(request, {}).get(metric)

    @property
    def short_id(self) -> str:
        return self.run_id[:8]

    def describe(self) -> str:
        """``run 3f2a1c9e of 2026-05-01T02:00:03Z (the last passing run)``."""
        when = f" of {self.started_at}" if self.started_at else ""
        return f"run {self.short_id}{when} ({self.chosen_by})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "chosen_by": self.chosen_by,
            "started_at": self.started_at,
            "run_dir": self.run_dir,
            "http_client": self.http_client,
            "requests": [dict(row) for row in self.requests.values()],
            "spread": {
                request: {metric: s.to_list() for metric, s in metrics.items()}
                for request, metrics in self.spread.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceRun:
        return cls(
            run_id=str(data["run_id"]),
            chosen_by=str(data["chosen_by"]),
            started_at=data.get("started_at"),
            run_dir=data.get("run_dir"),
            http_client=data.get("http_client"),
            requests=rows_by_request(data["requests"]),
            spread={
                request: {m: Spread(float(lo), float(hi), int(n)) for m, (lo, hi, n) in d.items()}
                for request, d in (data.get("spread") or {}).items()
            },
        )


def http_client_change(before: tuple[str, str | None], after: tuple[str, str | None]) -> str | None:
    """``A ran on the fast HTTP client and B on the lean one: ...`` for two (who, client)
    pairs whose clients are known and differ; None otherwise. One wording for the verdict's
    reference and ``loadkit compare``."""
    (before_who, before_client), (after_who, after_client) = before, after
    if before_client is None or after_client is None or before_client == after_client:
        return None
    return (
        f"{before_who} ran on the {before_client} HTTP client and {after_who} on the "
        f"{after_client} one: the generator changed too, so a change in latency or rate is not "
        "the platform's alone"
    )


@dataclass(frozen=True)
class ReferenceLookup:
    """The outcome of looking for a reference: the run found, or None, and where it was sought
    (so "no reference" can say what was searched)."""

    run: ReferenceRun | None
    searched: str
    http_client: str | None = None
    """The HTTP client of the run being judged, known where the reference is looked up: set
    against the reference's, it tells a change of generator from a change of platform."""

    def generator_change(self) -> str | None:
        """A note when the reference ran on another HTTP client than this run; else None.

        The lean client spends about half of FastHttpUser's CPU per request, so on a busy
        generator the same platform reads faster on it: a regression or an improvement across
        a change of client may be the generator's, not the platform's.
        """
        theirs = self.run.http_client if self.run is not None else None
        return http_client_change(("the reference", theirs), ("this run", self.http_client))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": None if self.run is None else self.run.to_dict(),
            "searched": self.searched,
            "http_client": self.http_client,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceLookup:
        run = data.get("run")
        return cls(
            None if run is None else ReferenceRun.from_dict(run),
            str(data["searched"]),
            data.get("http_client"),
        )
