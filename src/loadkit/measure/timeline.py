"""The run's seconds, kept the way a profile's purpose is judged: by phase, by load level.

The whole-run rows (``measure.collector``) answer "what was P95 over the run"; a profile exists
to answer something else. A spike asks whether P95 came back after the surge, which needs the
pre-spike P95 and P95 second by second in the recovery hold; a soak asks whether P95 drifted
from its first window to its last; a stress run asks up to which load the baseline held, which
needs P95 and errors per user level. The collector tells this observer of every second it folds
(the same cells its records and rows are made of), and the observer merges them:

* into each named *window* of the run (``core.purposes.purpose_windows``: ``before``,
  ``surge``, ``recovery``, ``first``, ``last``), a second counting where its middle falls;
* into its *user level* (the users running at the end of that second);
* second by second, P95 per row, inside the ``recovery`` window only (bounded: a hold is short);
* and the load generators' memory per second (every process but a master), for its growth,
  and each generator's CPU per second (``core.saturation``: was the generator the limit?).

Memory is bounded by windows x rows and levels x rows histograms, whatever the run's length.
Pure: no Locust, no clock; seconds come as epoch seconds and are placed on the run's clock with
``start_epoch_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from loadkit.core.histogram import LatencyHistogram
from loadkit.core.saturation import CpuSeries
from loadkit.measure.collector import AGGREGATED_NAME, ROLE_MASTER, Key, ProcessSample

RECOVERY: str = "recovery"


class Cell(Protocol):
    """One row's requests in one second (the collector's cell)."""

    hist: LatencyHistogram
    requests: int
    failures: int


@dataclass
class Tally:
    """Requests, failures and latencies of one row over some seconds."""

    hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    requests: int = 0
    failures: int = 0
    seconds: int = 0

    def add(self, cell: Cell) -> None:
        self.hist.merge(cell.hist)
        self.requests += cell.requests
        self.failures += cell.failures


def row_key(key: Key) -> str:
    """``("GET", "/health")`` -> ``"GET /health"``: how baselines and reports name a row."""
    request_type, name = key
    return f"{request_type} {name}".strip()


class Timeline:
    """What one run's purpose criteria read; reset at each run's start."""

    def __init__(self) -> None:
        self.start(0.0, {})

    def start(self, start_epoch_s: float, windows: Mapping[str, tuple[float, float]]) -> None:
        """A new run began at ``start_epoch_s``; ``windows`` in seconds of the run."""
        self.start_epoch_s = start_epoch_s
        self.windows = dict(windows)
        self.by_window: dict[str, dict[str, Tally]] = {name: {} for name in self.windows}
        self.by_level: dict[int, dict[str, Tally]] = {}
        self.recovery_p95_ms: dict[float, dict[str, float]] = {}
        """Second (its start, run time) -> row -> that second's P95, in the recovery window."""
        self.generator_rss: dict[float, int] = {}
        """Second (its start, run time) -> resident bytes of every load generator, summed."""
        self.generator_cpu: dict[str, CpuSeries] = {}
        """Generator process (``local`` or a worker's id) -> its CPU percent per run second."""

    def _t_s(self, second: int) -> float:
        return second - self.start_epoch_s

    def on_second(
        self, second: int, users: int | None, cells: Mapping[Key, Cell], total: Cell
    ) -> None:
        if not cells:
            return
        t_s = self._t_s(second)
        middle_s = t_s + 0.5
        rows: dict[str, Cell] = {row_key(key): cell for key, cell in cells.items()}
        rows[AGGREGATED_NAME] = total
        for name, (start_s, end_s) in self.windows.items():
            if start_s <= middle_s < end_s:
                self._merge(self.by_window[name], rows)
                if name == RECOVERY:
                    per_row = self.recovery_p95_ms.setdefault(t_s, {})
                    for key, cell in rows.items():
                        hist = cell.hist
                        if hist.count and key not in per_row:
                            per_row[key] = hist.percentile_ms(95)
        if users:
            self._merge(self.by_level.setdefault(users, {}), rows, count_second=True)

    @staticmethod
    def _merge(
        tallies: dict[str, Tally], rows: Mapping[str, Cell], count_second: bool = False
    ) -> None:
        for key, cell in rows.items():
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = Tally()
            tally.add(cell)
            if count_second:
                tally.seconds += 1

    def on_processes(self, second: int, samples: Mapping[str, ProcessSample]) -> None:
        t_s = self._t_s(second)
        generators = {p: s for p, s in samples.items() if s.role != ROLE_MASTER}
        if generators:
            rss = sum(s.rss_bytes for s in generators.values())
            self.generator_rss[t_s] = self.generator_rss.get(t_s, 0) + rss
        for process, sample in generators.items():
            if sample.cpu_percent is not None:
                series = self.generator_cpu.get(process)
                if series is None:
                    series = self.generator_cpu[process] = CpuSeries()
                series.add(t_s, sample.cpu_percent)
