"""Was a load generator the bottleneck? Its own CPU, second by second, over the measured window.

A generator process that runs out of CPU measures itself: requests wait in its event loop before
they are sent and after their answers arrive, so latency figures grow and the rate falls while
the platform may be idle. The guide wants CPU below 80%; Locust's own warning looks every 10 s
at one psutil reading (the first is always 0), so it cannot fire in a short run and never says
which worker. Here every generator process (the local runner, or each worker; a master sends no
load) is judged on its CPU sampled each second inside the window the verdict measures.

A second over the limit is not yet a verdict: spawning users or writing a report can take one.
A generator counts as saturated when it spent at least ``MIN_BUSY_S`` seconds (or every second of
a shorter window) and at least ``MIN_BUSY_SHARE`` of the window's sampled seconds above the limit.

Pure: no psutil, no Locust; seconds are run seconds (0 = the run's start).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

GENERATOR_CPU_LIMIT_PCT: Final = 80.0
"""The guide's ceiling for CPU, applied to each load generator process."""
MIN_BUSY_S: Final = 3
MIN_BUSY_SHARE: Final = 0.1
_MISSING: Final = 0
_CAP: Final = 254


class CpuSeries:
    """One process's CPU per run second, one byte a second (percent + 1; 0 = not sampled): a
    day-long run with a hundred workers keeps ~9 MB, not a dict entry per sample."""

    __slots__ = ("_pct",)

    def __init__(self) -> None:
        self._pct = bytearray()

    def add(self, t_s: float, cpu_pct: float) -> None:
        if t_s < 0 or math.isnan(cpu_pct):
            return
        index = int(t_s)
        if index >= len(self._pct):
            self._pct.extend(bytes(index + 1 - len(self._pct)))
        self._pct[index] = min(_CAP, max(0, round(cpu_pct))) + 1

    def samples(self, window: tuple[float, float] | None) -> list[tuple[int, int]]:
        """``(second, percent)`` of the seconds sampled whose middle lies in ``window``."""
        start_s, end_s = window if window is not None else (0.0, math.inf)
        return [
            (second, stored - 1)
            for second, stored in enumerate(self._pct)
            if stored != _MISSING and start_s <= second + 0.5 < end_s
        ]


@dataclass(frozen=True)
class GeneratorLoad:
    """One generator process's CPU over the measured window."""

    process: str
    seconds: int
    """Seconds sampled inside the window."""
    busy_seconds: int
    """Of those, seconds above the limit."""
    peak_pct: int
    median_pct: float
    limit_pct: float = GENERATOR_CPU_LIMIT_PCT

    @property
    def saturated(self) -> bool:
        if self.seconds == 0:
            return False
        enough = self.busy_seconds >= min(MIN_BUSY_S, self.seconds)
        return enough and self.busy_seconds >= MIN_BUSY_SHARE * self.seconds

    def describe(self) -> str:
        """``worker w-1: CPU above 80% in 12 of 20 s (median 91%, peak 100%)``."""
        return (
            f"{self.process}: CPU above {self.limit_pct:g}% in {self.busy_seconds} of "
            f"{self.seconds} s (median {self.median_pct:g}%, peak {self.peak_pct}%)"
        )


def generator_loads(
    series: Mapping[str, CpuSeries],
    window: tuple[float, float] | None,
    limit_pct: float = GENERATOR_CPU_LIMIT_PCT,
) -> list[GeneratorLoad]:
    """Each generator process's CPU in ``window`` (None: the whole run), busiest first."""
    loads = []
    for process, cpu in series.items():
        values = sorted(pct for _, pct in cpu.samples(window))
        if not values:
            continue
        middle = len(values) // 2
        median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
        loads.append(
            GeneratorLoad(
                process=process,
                seconds=len(values),
                busy_seconds=sum(1 for pct in values if pct > limit_pct),
                peak_pct=values[-1],
                median_pct=median,
                limit_pct=limit_pct,
            )
        )
    return sorted(loads, key=lambda load: (-load.busy_seconds, -load.peak_pct, load.process))


def busiest_per_second(
    series: Mapping[str, CpuSeries], window: tuple[float, float] | None
) -> list[tuple[float, float]]:
    """``(second, percent)`` of the busiest generator in each sampled second: the gauge a
    baseline can judge (``generator_cpu_percent``), any worker's saturation included."""
    busiest: dict[int, int] = {}
    for cpu in series.values():
        for second, pct in cpu.samples(window):
            busiest[second] = max(pct, busiest.get(second, 0))
    return [(float(second), float(pct)) for second, pct in sorted(busiest.items())]


def saturation_note(loads: Iterable[GeneratorLoad]) -> str | None:
    """The verdict's note when a generator ran out of CPU; None when none did."""
    saturated = [load for load in loads if load.saturated]
    if not saturated:
        return None
    who = "; ".join(load.describe() for load in saturated)
    return (
        f"load generator saturated ({who}): its latencies include its own waiting for CPU and "
        "its rate may be its limit, not the platform's; add workers (--workers N) or lower the load"
    )


def late_drop_note(dropped_late: int, started: int, dropped: int) -> str | None:
    """The verdict's note when arrival-rate iterations were dropped because the generator fell
    behind its schedule (not because the platform held ``--max-in-flight`` iterations)."""
    if dropped_late <= 0:
        return None
    due = started + max(dropped, dropped_late)
    return (
        f"the load generator was the limit: {dropped_late} of {due} due arrival-rate iterations "
        "were dropped because it fell behind its schedule (not the platform's answers); add "
        "workers (--workers N) or lower the rate"
    )
