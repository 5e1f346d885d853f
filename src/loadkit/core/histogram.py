"""A latency histogram precise enough to judge thresholds such as "P95 ≤ 20 ms".

Locust buckets response times coarsely (1 ms steps below 100 ms, 10 ms below 1 s, 100 ms below
10 s) and reads sub-millisecond latencies as 0 or 1, so its percentiles can be ~5% off. The kit's
verdict needs better, and the histogram must be mergeable across distributed workers and cheap
to update on every request.

Buckets (decimal log-linear, so round thresholds are bucket edges)
------------------------------------------------------------------
A value ``v`` (ms, finite, ≥ 0) falls into the right-closed bucket ``(lo, hi]`` with

* ``v ≤ 10 ms``: width 0.01 ms (``0`` has its own bucket ``[0, 0]``);
* ``10 ms < v ≤ 100 ms``: width 0.1 ms; ``100 ms < v ≤ 1 s``: width 1 ms; and so on, 900
  buckets per decade.

Every bucket's width is ≤ 1% of its lower edge above 10 ms (0.1% at the top of a decade), and
every edge is a round decimal number, so a sample of exactly 20 ms is reported as 20 ms, not
above. Values within 1e-8 ms above an edge are treated as on it (floating-point noise such as
``1.1 * 100 == 110.00000000000001``).

Percentile definition (nearest rank)
------------------------------------
``percentile_ms(p)`` estimates the nearest-rank percentile: the sample ``x[r]`` (1-based, sorted
ascending) with ``r = max(1, ceil(p/100 · N))``, i.e. the smallest recorded value with at least
p% of the samples ≤ it. It reports the upper edge of the bucket holding ``x[r]``, clamped to
the exact ``[min, max]``. Hence the estimate is never optimistic::

    0 ≤ estimate − x[r] < 0.01 ms            when x[r] ≤ 10 ms
    0 ≤ estimate − x[r] < x[r] / 100         when x[r] > 10 ms   (worst case 1%)

``p = 0`` gives the exact minimum and ``p = 100`` the exact maximum. ``min``, ``max``, ``mean``
and ``count`` are exact (the sum is a float).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Final

#: Internal unit: 0.01 ms. Every bucket edge is an integer number of units.
_UNITS_PER_MS: Final = 100.0
#: Largest unit count kept at full (one unit) resolution: 10 ms.
_LINEAR_TOP_UNITS: Final = 1000
#: Buckets per decade above the linear part (steps 101..1000 of the decade's width).
_PER_DECADE: Final = 900
#: Tolerance (in units, i.e. 1e-8 ms) that absorbs float noise just above a bucket edge.
_EDGE_TOLERANCE_UNITS: Final = 1e-6


def bucket_index(value_ms: float) -> int:
    """The index of the bucket holding ``value_ms``: monotonic in the value, 0 for exactly 0."""
    if value_ms < 0:
        raise ValueError(f"latency must be ≥ 0 ms, got {value_ms!r}")
    units = math.ceil(value_ms * _UNITS_PER_MS - _EDGE_TOLERANCE_UNITS)
    if units <= _LINEAR_TOP_UNITS:
        return max(units, 0)
    return _index_above_linear(units)


def _index_above_linear(units: int) -> int:
    """Bucket index for ``units > 1000`` (values above 10 ms): decade ``d`` has width ``10**d``."""
    decade = 1
    width = 10
    top = _LINEAR_TOP_UNITS * 10
    while units > top:
        decade += 1
        width *= 10
        top *= 10
    step = -(-units // width)  # ceil: the bucket is (step-1)·width < units ≤ step·width
    return _LINEAR_TOP_UNITS + (decade - 1) * _PER_DECADE + (step - 100)


def bucket_bounds_ms(index: int) -> tuple[float, float]:
    """``(lo, hi)`` of bucket ``index`` in ms: it holds ``lo < v ≤ hi`` (bucket 0 holds 0 only)."""
    if index < 0:
        raise ValueError(f"bucket index must be ≥ 0, got {index}")
    if index <= _LINEAR_TOP_UNITS:
        return max(index - 1, 0) / _UNITS_PER_MS, index / _UNITS_PER_MS
    offset = index - _LINEAR_TOP_UNITS - 1
    decade = offset // _PER_DECADE + 1
    step = offset % _PER_DECADE + 101
    width = 10**decade
    return (step - 1) * width / _UNITS_PER_MS, step * width / _UNITS_PER_MS


class LatencyHistogram:
    """Counts of latencies (ms) per bucket, plus exact count, sum, min and max.

    ``record`` is O(1): one bucket computation and a dict increment. Empty histograms report 0.0
    for every statistic (like Locust), so check ``count`` before trusting them.
    """

    __slots__ = ("_buckets", "_count", "_max_ms", "_min_ms", "_sum_ms")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._count = 0
        self._sum_ms = 0.0
        self._min_ms = math.inf
        self._max_ms = -math.inf

    def record(self, value_ms: float) -> None:
        """Add one latency in ms (finite, ≥ 0; a negative value raises ``ValueError``)."""
        # bucket_index inlined for the linear part: this runs on every request.
        if value_ms < 0:
            raise ValueError(f"latency must be ≥ 0 ms, got {value_ms!r}")
        units = math.ceil(value_ms * _UNITS_PER_MS - _EDGE_TOLERANCE_UNITS)
        if units > _LINEAR_TOP_UNITS:
            index = _index_above_linear(units)
        else:
            index = units if units > 0 else 0
        buckets = self._buckets
        buckets[index] = buckets.get(index, 0) + 1
        self._count += 1
        self._sum_ms += value_ms
        if value_ms > self._max_ms:
            self._max_ms = value_ms
        if value_ms < self._min_ms:
            self._min_ms = value_ms

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s samples to this histogram (same result as recording them here)."""
        if not other._count:
            return
        buckets = self._buckets
        for index, n in other._buckets.items():
            buckets[index] = buckets.get(index, 0) + n
        self._count += other._count
        self._sum_ms += other._sum_ms
        self._min_ms = min(self._min_ms, other._min_ms)
        self._max_ms = max(self._max_ms, other._max_ms)

    @property
    def count(self) -> int:
        """Number of recorded samples."""
        return self._count

    @property
    def min_ms(self) -> float:
        """Exact smallest sample (0.0 when empty)."""
        return self._min_ms if self._count else 0.0

    @property
    def max_ms(self) -> float:
        """Exact largest sample (0.0 when empty)."""
        return self._max_ms if self._count else 0.0

    @property
    def mean_ms(self) -> float:
        """Arithmetic mean of the samples (0.0 when empty)."""
        return self._sum_ms / self._count if self._count else 0.0

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank ``p``-th percentile (0 ≤ p ≤ 100), never below the exact value.

        See the module docstring for the definition and the error bound. ``p`` is read as the
        decimal it prints as (``99.9`` is 999/1000), so ranks are exact for typed percentiles.
        """
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be within [0, 100], got {p!r}")
        if not self._count:
            return 0.0
        rank = max(1, math.ceil(Fraction(str(p)) * self._count / 100))
        if rank == 1:
            return self._min_ms
        if rank >= self._count:
            return self._max_ms
        seen = 0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                upper_ms = bucket_bounds_ms(index)[1]
                return min(max(upper_ms, self._min_ms), self._max_ms)
        raise AssertionError("bucket counts do not add up to count")  # pragma: no cover

    def to_dict(self) -> dict[str, Any]:
        """A compact, msgpack/JSON-friendly form (str keys; ints, floats and lists only)."""
        indices = sorted(self._buckets)
        return {
            "n": self._count,
            "sum": self._sum_ms,
            "min": self.min_ms,
            "max": self.max_ms,
            "idx": indices,
            "cnt": [self._buckets[i] for i in indices],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from ``to_dict()`` output."""
        hist = cls()
        count = int(data["n"])
        if not count:
            return hist
        counts = [int(n) for n in data["cnt"]]
        if sum(counts) != count:
            raise ValueError("histogram data is inconsistent: bucket counts do not add up to n")
        hist._buckets = {int(i): n for i, n in zip(data["idx"], counts, strict=True)}
        hist._count = count
        hist._sum_ms = float(data["sum"])
        hist._min_ms = float(data["min"])
        hist._max_ms = float(data["max"])
        return hist

    def __repr__(self) -> str:
        return (
            f"LatencyHistogram(count={self._count}, min_ms={self.min_ms}, "
            f"max_ms={self.max_ms}, buckets={len(self._buckets)})"
        )
