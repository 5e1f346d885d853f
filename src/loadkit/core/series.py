"""A sampled series judged three ways: as a gauge, as a counter's rate, as a growth per hour.

Pure arithmetic on ``(t_s, value)`` points (seconds since the run started), shared by every
series the kit samples beside the load: the platform's own metrics (``observe.prometheus``),
the load generators' memory, the queue depth.

* gauge: min, max, mean, nearest-rank p95 and the final value of all points;
* rate: a counter's increase per second over a window (``process_cpu_seconds_total`` gives the
  CPU share: 0.8 = 80 % of one core). A drop is a counter reset (a restarted process), as in
  PromQL's ``rate()``: the value after it is all new increase;
* growth: the least-squares slope over a window, per hour. A slope, not last minus first, so
  one noisy point at either end does not decide a soak.

A window is chosen by the caller: normally the profile's steady window (``growth_window``
leaves its first sixth out: memory grows while caches fill and pools open, whatever leaks).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

Point = tuple[float, float]
P95: Final = 95.0
#: The share of a steady window memory may spend warming up before growth is judged.
WARM_UP_FRACTION: Final = 1 / 6
SECONDS_PER_HOUR: Final = 3600.0


@dataclass(frozen=True, order=True)
class SeriesSelector:
    """One exposed sample name and the labels its samples must carry (``observe.prometheus``)."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str] | None = None) -> SeriesSelector:
        return cls(name, tuple(sorted((labels or {}).items())))

    @property
    def key(self) -> str:
        """``name{a="1",b="2"}`` (labels sorted): how the series is named in files and messages."""
        if not self.labels:
            return self.name
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return name == self.name and all(labels.get(k) == v for k, v in self.labels)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def nearest_rank(sorted_values: Sequence[float], percent: float) -> float:
    """The value at rank ⌈percent/100 · N⌉ (1-based): always a value that was observed."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(percent / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def in_window(points: Sequence[Point], window: tuple[float, float] | None) -> list[Point]:
    """The points with ``start <= t <= end`` (all of them without a window), in time order."""
    ordered = sorted(points)
    if window is None:
        return ordered
    start_s, end_s = window
    return [(t, v) for t, v in ordered if start_s <= t <= end_s]


def rate_per_s(points: Sequence[Point], window: tuple[float, float] | None = None) -> float | None:
    """A counter's increase per second over the points in ``window``; None with fewer than two
    points or no time between them."""
    inside = in_window(points, window)
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    increase = 0.0
    for (_, before), (_, after) in itertools.pairwise(inside):
        increase += after - before if after >= before else after
    return increase / (inside[-1][0] - inside[0][0])


def growth_per_h(
    points: Sequence[Point], window: tuple[float, float] | None = None
) -> float | None:
    """Least-squares slope of the points in ``window``, per hour; None with fewer than two
    distinct times."""
    inside = in_window(points, window)
    if len(inside) < 2 or inside[-1][0] == inside[0][0]:
        return None
    times = [t for t, _ in inside]
    values = [v for _, v in inside]
    mean_t, mean_v = statistics.fmean(times), statistics.fmean(values)
    spread = math.fsum((t - mean_t) ** 2 for t in times)
    covariance = math.fsum((t - mean_t) * (v - mean_v) for t, v in inside)
    return covariance / spread * SECONDS_PER_HOUR


def growth_window(window: tuple[float, float] | None) -> tuple[float, float] | None:
    """``window`` without its first sixth (warm-up)."""
    if window is None:
        return None
    start_s, end_s = window
    return (start_s + (end_s - start_s) * WARM_UP_FRACTION, end_s)
