"""The one collector: every request counted once, on one clock, merged exactly across workers.

Why the kit measures at all: Locust's percentiles are bucketed up to ±5% and its RPS is a smoothed
"current" figure, while a verdict compares P95 with thresholds like 20 ms and wants the rate over
the steady part of a profile. Why only once: the verdict, the time series, InfluxDB, the plot, the
profile report and the web tabs must agree to the request, so they all read this object.

What is kept (pure: no Locust, no clock of its own -- callers pass monotonic readings)
-----------------------------------------------------------------------------------------
Per wall-clock epoch second and per row (``(request_type, name)``), a *cell*: requests, failures,
response bytes and a ``LatencyHistogram`` (< 1% error, mergeable). A request is counted in the
second in which it completed, as Locust does. Cells are *folded* once their second is final
(``pop_records``): added to the row's whole-run totals and per-second counts, and handed to the
outputs as that second's records. So each request costs one histogram update, memory is bounded by
the write lag, and the whole run's numbers are the sum of what was written (late data included).

Clocks: each process maps monotonic readings to epoch seconds through one (epoch, monotonic) pair
taken when the run starts, so workers' seconds line up on the master as far as the machines' wall
clocks agree. Windows (``snapshot``) are in seconds since the run started (``start_epoch_s``).

Rates over a window ``[a, b]`` add each second's count weighted by the share of it that lies in
the window, divided by ``b - a``: seconds inside count fully, an edge second pro rata over the
span its requests occupy (its first to its last completion, kept per row and second), so the
partly loaded seconds where a run starts and stops are not read as thinned out. A window shorter
than ``MIN_RATE_WINDOW_S`` has no rate (None, never 0).

Distributed runs: a worker exports what it recorded since its last export (``export_delta``,
then forgets it); the master merges (``merge_delta``). Each sample leaves its worker once, and
histograms merge losslessly, so the master's numbers are exact. Deltas of another run (a stale
``run`` id) are dropped. A worker's *watermark* (its clock at export) tells the master which
seconds that worker can no longer add to (``final_before``); data that arrives for a second
already written is folded in and written again as ``late`` lines, never lost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from loadkit.core.histogram import LatencyHistogram
from loadkit.core.metrics import MIN_RATE_WINDOW_S, EndpointMetrics
from loadkit.endpoints import NON_HTTP_REQUEST_TYPES

#: Name of the HTTP total row (as Locust names it); JOB and INTENDED rows stay out of it.
AGGREGATED_NAME: Final = "Aggregated"
ROLE_LOCAL: Final = "local"
ROLE_MASTER: Final = "master"
ROLE_WORKER: Final = "worker"

Key = tuple[str, str]
Record = dict[str, Any]


class _Cell:
    """One row in one second, or (in ``_Row``) one row over the whole run."""

    __slots__ = ("bytes", "failures", "first_s", "hist", "last_s", "requests", "sent")

    def __init__(self) -> None:
        self.hist = LatencyHistogram()
        self.requests = 0
        self.failures = 0
        self.bytes = 0
        self.sent = 0
        """Request bytes sent (head and body; ``plugin.locust_adapter.request_bytes_sent``)."""
        #: Epoch seconds of the first and the last completion counted here.
        self.first_s = math.inf
        self.last_s = -math.inf

    def merge(self, other: _Cell) -> None:
        self.hist.merge(other.hist)
        self.requests += other.requests
        self.failures += other.failures
        self.bytes += other.bytes
        self.sent += other.sent
        self.first_s = min(self.first_s, other.first_s)
        self.last_s = max(self.last_s, other.last_s)


class _Second:
    """One row's counts in one second (requests, failures, bytes received and sent), and the
    span (epoch s) in which its requests completed."""

    __slots__ = ("bytes", "failures", "first_s", "last_s", "requests", "sent")

    def __init__(self) -> None:
        self.requests = 0
        self.failures = 0
        self.bytes = 0
        self.sent = 0
        self.first_s = math.inf
        self.last_s = -math.inf

    def add(self, cell: _Cell | _Second) -> None:
        self.requests += cell.requests
        self.failures += cell.failures
        self.bytes += cell.bytes
        self.sent += cell.sent
        self.first_s = min(self.first_s, cell.first_s)
        self.last_s = max(self.last_s, cell.last_s)

    def share_in(self, start_s: float, end_s: float) -> float:
        """The share of these requests inside ``[start_s, end_s]`` (epoch s), taking them as
        spread evenly between the first and the last completion."""
        span_s = self.last_s - self.first_s
        if span_s > 0:
            inside_s = min(self.last_s, end_s) - max(self.first_s, start_s)
            return max(0.0, inside_s) / span_s
        return 1.0 if start_s <= self.first_s <= end_s else 0.0


class _Row(_Cell):
    """A row's whole-run totals plus its per-second counts and spans, for window rates."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[int, _Second] = {}

    def copy(self) -> _Row:
        row = _Row()
        row.merge(self)
        for second, counts in self.seconds.items():
            row.add_second(second, counts)
        return row

    def fold(self, second: int, cell: _Cell) -> None:
        self.merge(cell)
        self.add_second(second, cell)

    def add_second(self, second: int, counts: _Cell | _Second) -> None:
        target = self.seconds.get(second)
        if target is None:
            target = self.seconds[second] = _Second()
        target.add(counts)


@dataclass(frozen=True)
class ProcessSample:
    """A load-generating process in one second: its role and resident memory."""

    role: str
    rss_bytes: int
    cpu_percent: float | None = None


class SecondObserver(Protocol):
    """Sees each second as it is folded (``measure.timeline``): the same cells the records and
    the whole-run rows are made of, so what it keeps agrees with them to the request."""

    def on_second(
        self, second: int, users: int | None, cells: Mapping[Key, _Cell], total: _Cell
    ) -> None: ...

    def on_processes(self, second: int, samples: Mapping[str, ProcessSample]) -> None: ...


class Collector:
    """Per-request measurements of one run in one process (local runner, worker or master)."""

    def __init__(self) -> None:
        #: Told of every folded second; kept across runs (each observer resets itself).
        self.observers: list[SecondObserver] = []
        self.start(run_id=None, start_epoch_s=0.0, start_mono_s=0.0)

    # -- run boundaries ----------------------------------------------------------------------------

    def start(
        self,
        *,
        run_id: str | None,
        start_epoch_s: float,
        start_mono_s: float,
        now_epoch_s: float | None = None,
    ) -> None:
        """Forget everything: a run ``run_id`` started at ``start_epoch_s`` (epoch seconds).

        ``start_mono_s`` is this process's monotonic reading paired with ``now_epoch_s`` (default
        ``start_epoch_s``): a worker told of the master's start later passes its own pair.
        """
        pair_epoch_s = start_epoch_s if now_epoch_s is None else now_epoch_s
        self.run_id = run_id
        self.start_epoch_s = start_epoch_s
        #: Added to a monotonic reading, gives its epoch time (kept plain: the hot path reads it).
        self._epoch_offset_s = pair_epoch_s - start_mono_s
        self._start_second = math.floor(start_epoch_s)
        self._rows: dict[Key, _Row] = {}
        self._cells: dict[int, dict[Key, _Cell]] = {}
        self._counters: dict[str, float] = {}
        self._users: dict[int, int] = {}
        self._last_users: int | None = None
        self._processes: dict[int, dict[str, ProcessSample]] = {}
        #: The first second not yet written; data for earlier seconds is written as ``late``.
        self._cursor = self._start_second
        #: The second the load stopped in; after it only seconds with data are written.
        self._end_second: int | None = None
        self._watermarks: dict[str, float] = {}
        self._final: dict[str, bool] = {}
        self.first_request_s: float | None = None
        self.reports_merged = 0
        self.stale_reports = 0

    def reset(self) -> None:
        """Forget the measurements but keep the run (Locust's Reset button): a new measurement."""
        self._rows, self._cells, self._counters = {}, {}, {}
        self.first_request_s = None

    def stop(self, now_mono_s: float) -> None:
        """The load stopped: quiet seconds after this one get no (empty) lines."""
        self._end_second = math.floor(now_mono_s + self._epoch_offset_s)

    # -- clock ----------------------------------------------------------------------------------

    def epoch_s(self, now_mono_s: float) -> float:
        return now_mono_s + self._epoch_offset_s

    def elapsed_s(self, now_mono_s: float) -> float:
        """Seconds since the run started, for a monotonic reading of this process."""
        return now_mono_s + self._epoch_offset_s - self.start_epoch_s

    def second_of(self, now_mono_s: float) -> int:
        return math.floor(now_mono_s + self._epoch_offset_s)

    # -- recording (the hot path) -----------------------------------------------------------------

    def record(
        self,
        request_type: str,
        name: str,
        response_time_ms: float | None,
        failed: bool,
        now_mono_s: float,
        response_length: int = 0,
        bytes_sent: int = 0,
    ) -> None:
        """Count one completed request; ``None`` latency counts it without a timing."""
        epoch_s = now_mono_s + self._epoch_offset_s
        second = math.floor(epoch_s)
        row = self._cells.get(second)
        if row is None:
            row = self._cells[second] = {}
            if self.first_request_s is None:
                self.first_request_s = epoch_s - self.start_epoch_s
        key = (request_type, name)
        cell = row.get(key)
        if cell is None:
            cell = row[key] = _Cell()
        if epoch_s < cell.first_s:
            cell.first_s = epoch_s
        if epoch_s > cell.last_s:
            cell.last_s = epoch_s
        cell.requests += 1
        if response_length:
            cell.bytes += response_length
        if bytes_sent:
            cell.sent += bytes_sent
        if failed:
            cell.failures += 1
        if response_time_ms is not None:
            cell.hist.record(response_time_ms)

    def count(self, counter: str, amount: float = 1) -> None:
        """Add to a run counter (``iterations_started``, ``dropped_iterations`` ...)."""
        self._counters[counter] = self._counters.get(counter, 0) + amount

    def sample_users(self, users: int, second: int) -> None:
        """Running users at the end of ``second`` (local runner or master)."""
        self._users[second] = users

    def sample_process(self, process: str, sample: ProcessSample, second: int) -> None:
        self._processes.setdefault(second, {})[process] = sample

    # -- distribution ---------------------------------------------------------------------------

    def export_delta(self, now_mono_s: float, *, final: bool = False) -> dict[str, Any]:
        """Everything recorded since the previous export, msgpack-friendly; then forgets it.

        ``upto`` (epoch s) is the watermark: this source records nothing before it any more;
        ``final`` says it will record nothing more in this run.
        """
        cells = [
            [
                second,
                t,
                n,
                c.requests,
                c.failures,
                c.bytes,
                c.hist.to_dict(),
                c.first_s,
                c.last_s,
                c.sent,
            ]
            for second, row in self._cells.items()
            for (t, n), c in row.items()
        ]
        processes = [
            [second, s.role, s.rss_bytes, s.cpu_percent]
            for second, by_process in self._processes.items()
            for s in by_process.values()
        ]
        payload = {
            "run": self.run_id,
            "upto": self.epoch_s(now_mono_s),
            "final": final,
            "first": self.first_request_s,
            "cells": cells,
            "counters": self._counters,
            "processes": processes,
        }
        self._cells, self._counters, self._processes = {}, {}, {}
        return payload

    def merge_delta(self, source: str, payload: Mapping[str, Any]) -> bool:
        """Add a delta from ``export_delta`` sent by ``source``; False if dropped as stale."""
        if self.run_id is not None and payload.get("run") != self.run_id:
            self.stale_reports += 1
            return False
        for second, t, n, requests, failures, nbytes, hist, first_s, last_s, sent in payload[
            "cells"
        ]:
            incoming = _Cell()
            incoming.requests, incoming.failures, incoming.bytes = requests, failures, nbytes
            incoming.sent = int(sent)
            incoming.first_s, incoming.last_s = float(first_s), float(last_s)
            incoming.hist = LatencyHistogram.from_dict(hist)
            row = self._cells.setdefault(int(second), {})
            key = (str(t), str(n))
            cell = row.get(key)
            if cell is None:
                row[key] = incoming
            else:
                cell.merge(incoming)
        first_s = payload.get("first")
        if first_s is not None and (self.first_request_s is None or first_s < self.first_request_s):
            self.first_request_s = float(first_s)
        for counter, amount in payload["counters"].items():
            self.count(str(counter), float(amount))
        for second, role, rss_bytes, cpu in payload["processes"]:
            self.sample_process(source, ProcessSample(str(role), int(rss_bytes), cpu), int(second))
        upto = float(payload["upto"])
        self._watermarks[source] = max(upto, self._watermarks.get(source, upto))
        self._final[source] = bool(payload["final"])
        self.reports_merged += 1
        return True

    def expect_sources(self, sources: Iterable[str]) -> None:
        """Sources whose final delta is awaited (the master's workers at the end of a run)."""
        for source in sources:
            self._final.setdefault(source, False)

    def pending_sources(self) -> set[str]:
        """Sources whose latest delta was not final."""
        return {source for source, final in self._final.items() if not final}

    def final_before(self, sources: Iterable[str], now_epoch_s: float, max_lag_s: float) -> int:
        """The first second that may still change: every earlier one can be written.

        Locally that is the current second; on a master, the second of the lowest watermark of
        the connected workers, but never more than ``max_lag_s`` behind (a silent worker does not
        stall the outputs).
        """
        now_second = math.floor(now_epoch_s)
        marks = [self._watermarks.get(source) for source in sources]
        if not marks:
            return now_second
        floor_s = math.floor(now_epoch_s - max_lag_s)
        if any(mark is None for mark in marks):
            return min(floor_s, now_second)
        lowest = math.floor(min(mark for mark in marks if mark is not None))
        return min(max(lowest, floor_s), now_second)

    # -- reading --------------------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, float]:
        return dict(self._counters)

    def snapshot(self, window: tuple[float, float] | None = None) -> dict[str, EndpointMetrics]:
        """One ``EndpointMetrics`` per row, keyed by ``.key``, plus ``"Aggregated"`` (HTTP only).

        Counts, failures, bytes and latencies cover the whole run (written and pending seconds);
        ``rps`` is per second over ``window`` (seconds since the run started): None without a
        window or when it is shorter than ``MIN_RATE_WINDOW_S``.
        """
        rows = self._merged_rows()
        total = _Row()
        out: dict[str, EndpointMetrics] = {}
        for request_type, name in sorted(rows):
            row = rows[(request_type, name)]
            metrics = self._metrics(request_type, name, row, window)
            out[metrics.key] = metrics
            if request_type not in NON_HTTP_REQUEST_TYPES:
                total.merge(row)
                for second, counts in row.seconds.items():
                    total.add_second(second, counts)
        aggregated = self._metrics("", AGGREGATED_NAME, total, window)
        out[aggregated.key] = aggregated
        return out

    def rate_in(
        self, seconds: Mapping[int, _Second], window: tuple[float, float], field: str = "requests"
    ) -> float:
        """Per second over ``window`` from per-second counts, edges pro rata: ``requests``,
        ``failures``, ``bytes`` (received) or ``sent``."""
        start_s, end_s = window
        a, b = self.start_epoch_s + start_s, self.start_epoch_s + end_s
        counted = 0.0
        for second, counts in seconds.items():
            if second + 1 <= a or second > b:
                continue
            counted += getattr(counts, field) * counts.share_in(a, b)
        return counted / (b - a)

    def _metrics(
        self, request_type: str, name: str, row: _Row, window: tuple[float, float] | None
    ) -> EndpointMetrics:
        hist = row.hist
        window_s = 0.0 if window is None else max(0.0, window[1] - window[0])
        rps = received_per_s = sent_per_s = None
        if window is not None and window_s >= MIN_RATE_WINDOW_S:
            rps = self.rate_in(row.seconds, window)
            received_per_s = self.rate_in(row.seconds, window, "bytes")
            sent_per_s = self.rate_in(row.seconds, window, "sent")
        return EndpointMetrics.from_histogram(
            request_type,
            name,
            hist,
            row.requests,
            row.failures,
            rps=rps,
            window_s=window_s,
            bytes_received=row.bytes,
            bytes_sent=row.sent,
            received_per_s=received_per_s,
            sent_per_s=sent_per_s,
        )

    def per_second(self, key: str) -> dict[int, tuple[int, int]]:
        """``{epoch second: (requests, failures)}`` of row ``key`` (``"Aggregated"`` for HTTP)."""
        merged: dict[int, list[int]] = {}
        for (request_type, name), row in self._merged_rows().items():
            if key == AGGREGATED_NAME:
                wanted = request_type not in NON_HTTP_REQUEST_TYPES
            else:
                wanted = f"{request_type} {name}".strip() == key
            if wanted:
                for second, counts in row.seconds.items():
                    summed = merged.setdefault(second, [0, 0])
                    summed[0] += counts.requests
                    summed[1] += counts.failures
        return {s: (r, f) for s, (r, f) in sorted(merged.items())}

    def _merged_rows(self) -> dict[Key, _Row]:
        """Copies of the whole-run rows with the seconds not yet written folded in."""
        rows = {key: row.copy() for key, row in self._rows.items()}
        for second, cells in self._cells.items():
            for key, cell in cells.items():
                target = rows.get(key)
                if target is None:
                    target = rows[key] = _Row()
                target.fold(second, cell)
        return rows

    # -- output: fold final seconds into the totals and hand them to the sinks -------------------

    def pop_records(self, before_second: int) -> list[Record]:
        """Fold every second before ``before_second`` into the totals; return its records.

        Per second, in order: one ``requests`` record per row that saw requests, sorted by (name,
        method); the ``Aggregated`` HTTP total (also for quiet seconds of the run, with zero
        requests and ``null`` latencies); one ``process`` record per sampled process. Seconds
        before the cursor (data that arrived after its second was written) are marked ``late``.
        """
        cursor = self._cursor
        last_quiet = before_second - 1
        if self._end_second is not None:
            last_quiet = min(last_quiet, self._end_second)
        seconds = {s for s in self._cells if s < before_second}
        seconds.update(s for s in self._processes if s < before_second)
        seconds.update(range(cursor, last_quiet + 1))
        records: list[Record] = []
        for second in sorted(seconds):
            late = second < cursor
            users = self._users_at(second)
            records.extend(self._fold_second(second, users, late))
            records.extend(self._process_records(second, late))
        for second in [s for s in self._users if s < before_second]:
            self._last_users = self._users.pop(second)
        self._cursor = max(cursor, before_second)
        return records

    def pop_all(self) -> list[Record]:
        """Fold and return everything not yet written (at the end of a run)."""
        pending = [*self._cells, *self._processes, self._cursor - 1]
        if self._end_second is not None:
            pending.append(self._end_second)
        return self.pop_records(max(pending) + 1)

    def _users_at(self, second: int) -> int | None:
        users = self._users.get(second)
        if users is not None:
            return users
        earlier = [s for s in self._users if s < second]
        return self._users[max(earlier)] if earlier else self._last_users

    def _fold_second(self, second: int, users: int | None, late: bool) -> list[Record]:
        cells = self._cells.pop(second, {})
        if second < self._start_second and not cells:
            return []
        records: list[Record] = []
        total = _Cell()
        for request_type, name in sorted(cells, key=lambda key: (key[1], key[0])):
            cell = cells[(request_type, name)]
            row = self._rows.get((request_type, name))
            if row is None:
                row = self._rows[(request_type, name)] = _Row()
            row.fold(second, cell)
            records.append(self._record(second, users, name, request_type, cell, late))
            if request_type not in NON_HTTP_REQUEST_TYPES:
                total.merge(cell)
        if cells or not late:
            records.append(self._record(second, users, AGGREGATED_NAME, "", total, late))
        for observer in self.observers:
            observer.on_second(second, users, cells, total)
        return records

    def _record(
        self, second: int, users: int | None, name: str, method: str, cell: _Cell, late: bool
    ) -> Record:
        hist = cell.hist
        timed = hist.count > 0
        record: Record = {
            "kind": "requests",
            "t": second,
            "elapsed_s": second - self._start_second,
            "users": users,
            "name": name,
            "method": method,
            "requests": cell.requests,
            "failures": cell.failures,
            "rps": float(cell.requests),
            "bytes_received": cell.bytes,
            "bytes_sent": cell.sent,
            "p50_ms": _ms(hist.percentile_ms(50)) if timed else None,
            "p95_ms": _ms(hist.percentile_ms(95)) if timed else None,
            "p99_ms": _ms(hist.percentile_ms(99)) if timed else None,
            "max_ms": _ms(hist.max_ms) if timed else None,
        }
        if late:
            record["late"] = True
        return record

    def _process_records(self, second: int, late: bool) -> list[Record]:
        records: list[Record] = []
        samples = self._processes.pop(second, {})
        for observer in self.observers:
            observer.on_processes(second, samples)
        for process, sample in sorted(samples.items()):
            record: Record = {
                "kind": "process",
                "t": second,
                "elapsed_s": second - self._start_second,
                "process": process,
                "role": sample.role,
                "generator_rss_bytes": sample.rss_bytes,
            }
            if sample.cpu_percent is not None:
                record["cpu_percent"] = round(sample.cpu_percent, 1)
            if late:
                record["late"] = True
            records.append(record)
        return records


def _ms(value_ms: float) -> float:
    """Milliseconds rounded to the microsecond: the histogram's resolution is coarser anyway."""
    return round(value_ms, 3)
