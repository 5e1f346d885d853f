"""What a run measured, per endpoint, in the kit's own terms (independent of Locust's classes).

The verdict is computed from these values, so they are plain data that tests can construct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from loadkit.core.histogram import LatencyHistogram

#: The shortest window a rate is computed over.
MIN_RATE_WINDOW_S: Final = 1.0


def no_rate_reason(window_s: float) -> str:
    """Why a rate is missing: ``window 0.9 s is shorter than 1 s``."""
    return f"window {window_s:.3g} s is shorter than {MIN_RATE_WINDOW_S:g} s: no rate"


@dataclass(frozen=True)
class EndpointMetrics:
    """One stats row: an endpoint (method + grouped name) or the HTTP total.

    ``method`` is the HTTP method, or ``"JOB"`` for the kit's own timing entries (for example the
    bulk import's upload-to-completed time). The HTTP total has ``method == ""`` and
    ``name == "Aggregated"`` and excludes JOB entries.
    Latencies are in milliseconds; ``rps`` is requests per second over ``window_s`` seconds (the
    steady part of the profile, or the load period), None when the window is shorter than
    ``MIN_RATE_WINDOW_S``: a rate over a fraction of a second is noise, never 0.
    """

    method: str
    name: str
    count: int
    failures: int
    min_ms: float
    max_ms: float
    avg_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    rps: float | None
    window_s: float
    bytes_received: int = 0
    """Response bytes (bodies) received, as Locust's ``response_length`` counts them."""
    bytes_sent: int = 0
    """Request bytes sent: the request line, headers and body (``plugin.locust_adapter``)."""
    received_per_s: float | None = None
    """Bytes received per second over ``window_s`` (None like ``rps``)."""
    sent_per_s: float | None = None
    """Bytes sent per second over ``window_s`` (None like ``rps``)."""

    @classmethod
    def from_histogram(
        cls,
        method: str,
        name: str,
        hist: LatencyHistogram,
        count: int,
        failures: int,
        **rates: Any,
    ) -> EndpointMetrics:
        """A row whose latencies are ``hist``'s (the one place percentiles are read for it);
        ``rates``: ``rps``, ``window_s``, bytes and bytes per second."""
        rates.setdefault("rps", None)
        rates.setdefault("window_s", 0.0)
        return cls(
            method=method,
            name=name,
            count=count,
            failures=failures,
            min_ms=hist.min_ms,
            max_ms=hist.max_ms,
            avg_ms=hist.mean_ms,
            p50_ms=hist.percentile_ms(50),
            p90_ms=hist.percentile_ms(90),
            p95_ms=hist.percentile_ms(95),
            p99_ms=hist.percentile_ms(99),
            **rates,
        )

    @property
    def error_rate(self) -> float:
        """Failures as a fraction of requests (0.0 with no requests)."""
        return self.failures / self.count if self.count else 0.0

    @property
    def key(self) -> str:
        """``"POST /api/calls"``: how baselines and reports name the row."""
        return f"{self.method} {self.name}".strip()
