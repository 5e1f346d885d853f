"""Per-second statistics of a run: requests, failures and percentiles of each second, per row.

Why the kit keeps its own per-second histograms
-----------------------------------------------
A time series needs the percentiles of the requests *completed in that second*. Locust has no
such number: its "current" percentiles cover a ~10 s sliding window and its histograms are
coarsely bucketed; the kit's ``RunRecorder`` has per-second counts but one whole-run histogram
per row. So this module keeps one ``LatencyHistogram`` per (second, row) -- the same mergeable,
<1%-error histogram the verdict uses -- and forgets each second once it has been written, so
memory stays bounded by the write lag (a few seconds), not by the run's length.

Where the samples are taken (distributed runs)
----------------------------------------------
Samples are recorded where requests are made: the local runner, or each worker. A worker ships
what it recorded since its previous report with Locust's stats report (``export_delta``, every
3 s), the master adds the deltas up (``merge_delta``) -- exact, like the recorder: histograms
merge losslessly, and each sample leaves its worker once. Writing from the master's merged
Locust stats instead would give neither per-second percentiles nor the second a request
completed in (workers' stats arrive in 3 s lumps).

When a second is final
----------------------
Locally, second ``s`` is final once the clock reads ``s + 1`` (a request is counted in the second
it completes). On the master, each worker's report carries its clock at export (its *watermark*):
everything that worker completes later falls after it, so second ``s`` is final once every
worker's watermark is past ``s + 1`` (``final_before``). A worker that stops reporting is waited
for at most ``max_lag_s``; data that arrives for a second already written is written again as
``late`` lines, so counts are never lost (the sum over all lines stays the total).

Clocks: like the recorder, intervals come from a monotonic clock mapped to wall-clock epoch
seconds through one (epoch, monotonic) pair taken at ``reset``; workers' seconds line up on the
master as far as the machines' wall clocks agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from loadkit.core.histogram import LatencyHistogram
from loadkit.endpoints import NON_HTTP_REQUEST_TYPES
from loadkit.measure.run_clock import RunClock

#: Name and method of the per-second HTTP total (JOB timings excluded), as in the recorder.
AGGREGATED_NAME: Final = "Aggregated"
#: Roles of the processes whose memory is sampled.
ROLE_LOCAL: Final = "local"
ROLE_MASTER: Final = "master"
ROLE_WORKER: Final = "worker"

Record = dict[str, Any]


class _Cell:
    """Everything recorded for one row in one second."""

    __slots__ = ("failures", "hist", "requests")

    def __init__(self) -> None:
        self.hist = LatencyHistogram()
        self.requests = 0
        self.failures = 0

    def merge(self, other: _Cell) -> None:
        self.hist.merge(other.hist)
        self.requests += other.requests
        self.failures += other.failures


class PerSecondSeries:
    """Per-second cells of one run, and the records (JSON-ready dicts) they become (pure core).

    The same object serves a local run (records, then ``pop_records``), a worker (records, then
    ``export_delta``) and the master (``merge_delta``, then ``pop_records``).
    """

    def __init__(
        self,
        *,
        start_epoch_s: float | None = None,
        start_mono_s: float | None = None,
        run_id: str | None = None,
    ) -> None:
        """Start empty; the clock pair defaults to "now" (``time.time()``, ``time.monotonic()``)."""
        self.reset(start_epoch_s=start_epoch_s, start_mono_s=start_mono_s, run_id=run_id)

    def reset(
        self,
        *,
        start_epoch_s: float | None = None,
        start_mono_s: float | None = None,
        run_id: str | None = None,
    ) -> None:
        """Forget everything and start a new run at the given (or current) clock pair."""
        self._clock = clock = RunClock.started(start_epoch_s, start_mono_s)
        self.start_epoch_s = clock.start_epoch_s
        #: Kept as a plain attribute: ``record`` (the hot path) reads it on every request.
        self._epoch_offset_s = clock.epoch_offset_s
        self._start_second = clock.start_second
        #: Identifies the run; deltas carrying another run id are dropped as stale.
        self.run_id = run_id
        #: epoch second -> {(method, name): cell}
        self._cells: dict[int, dict[tuple[str, str], _Cell]] = {}
        #: epoch second -> {process: (role, rss bytes)}
        self._rss: dict[int, dict[str, tuple[str, int]]] = {}
        #: epoch second -> users (the last sample taken in that second)
        self._users: dict[int, int] = {}
        self._last_users: int | None = None
        #: The first second not yet written; data for earlier seconds is written as late.
        self._cursor = self._start_second
        #: The second the run stopped in; after it, only seconds with data are written.
        self._end_second: int | None = None
        #: source -> the latest epoch time up to which that source has reported everything.
        self._watermarks: dict[str, float] = {}
        self.stale_deltas = 0

    # -- clocks ---------------------------------------------------------------------------------

    def epoch_s(self, now_mono_s: float) -> float:
        """The epoch time of monotonic reading ``now_mono_s`` on this series' clock."""
        return self._clock.epoch_s(now_mono_s)

    def stop(self, now_mono_s: float) -> None:
        """Mark the end of the run: quiet seconds after it get no (empty) lines."""
        self._end_second = math.floor(self.epoch_s(now_mono_s))

    # -- recording ------------------------------------------------------------------------------

    def record(
        self,
        method: str,
        name: str,
        response_time_ms: float | None,
        failed: bool,
        now_mono_s: float,
    ) -> None:
        """Count one completed request (hot path); ``None`` latency counts without a timing."""
        second = math.floor(now_mono_s + self._epoch_offset_s)
        row = self._cells.get(second)
        if row is None:
            row = self._cells[second] = {}
        key = (method, name)
        cell = row.get(key)
        if cell is None:
            cell = row[key] = _Cell()
        cell.requests += 1
        if failed:
            cell.failures += 1
        if response_time_ms is not None:
            cell.hist.record(response_time_ms)

    def second_of(self, now_mono_s: float) -> int:
        """The epoch second that monotonic reading ``now_mono_s`` falls in."""
        return self._clock.second_of(now_mono_s)

    def sample_users(self, users: int, second: int) -> None:
        """Remember the number of running users for ``second`` (its last sample wins)."""
        self._users[second] = users

    def sample_rss(self, process: str, role: str, rss_bytes: int, second: int) -> None:
        """Remember a process's resident memory for ``second``."""
        self._rss.setdefault(second, {})[process] = (role, rss_bytes)

    # -- distribution ---------------------------------------------------------------------------

    def export_delta(self, now_mono_s: float) -> dict[str, Any]:
        """Everything recorded since the previous export, msgpack-friendly; then forgets it.

        ``upto`` (epoch s) is the watermark: this source records nothing before it any more.
        """
        cells = [
            [second, method, name, cell.requests, cell.failures, cell.hist.to_dict()]
            for second, row in self._cells.items()
            for (method, name), cell in row.items()
        ]
        rss = [
            [second, role, rss_bytes]
            for second, by_process in self._rss.items()
            for role, rss_bytes in by_process.values()
        ]
        self._cells = {}
        self._rss = {}
        return {"run": self.run_id, "upto": self.epoch_s(now_mono_s), "cells": cells, "rss": rss}

    def merge_delta(self, source: str, payload: Mapping[str, Any]) -> bool:
        """Add a delta from ``export_delta`` sent by ``source``; False if dropped as stale."""
        if self.run_id is not None and payload.get("run") != self.run_id:
            self.stale_deltas += 1
            return False
        for second, method, name, requests, failures, hist in payload["cells"]:
            incoming = _Cell()
            incoming.requests = int(requests)
            incoming.failures = int(failures)
            incoming.hist = LatencyHistogram.from_dict(hist)
            row = self._cells.setdefault(int(second), {})
            key = (str(method), str(name))
            cell = row.get(key)
            if cell is None:
                row[key] = incoming
            else:
                cell.merge(incoming)
        for second, role, rss_bytes in payload["rss"]:
            self._rss.setdefault(int(second), {})[source] = (str(role), int(rss_bytes))
        upto = float(payload["upto"])
        self._watermarks[source] = max(upto, self._watermarks.get(source, upto))
        return True

    def final_before(self, sources: Iterable[str], now_epoch_s: float, max_lag_s: float) -> int:
        """The first second that may still change: all earlier seconds can be written.

        Without ``sources`` (a local run) that is the current second. With them (the master's
        connected workers), it is the second of the lowest watermark, but never more than
        ``max_lag_s`` behind ``now_epoch_s`` (a silent worker does not stall the output).
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

    # -- output ---------------------------------------------------------------------------------

    def pop_records(self, before_second: int) -> list[Record]:
        """Records of every second before ``before_second`` not yet written, then forgets them.

        Per second, in order: one ``requests`` record per row that saw requests, sorted by
        (name, method); the ``Aggregated`` HTTP total (also for quiet seconds of the run, with
        zero requests and ``null`` latencies); one ``process`` record per sampled process.
        Seconds before the cursor (data that arrived after its second was written) are marked
        ``"late": true``.
        """
        cursor = self._cursor
        last_quiet = before_second - 1
        if self._end_second is not None:
            last_quiet = min(last_quiet, self._end_second)
        seconds = {s for s in self._cells if s < before_second}
        seconds.update(s for s in self._rss if s < before_second)
        seconds.update(range(cursor, last_quiet + 1))
        records: list[Record] = []
        for second in sorted(seconds):
            late = second < cursor
            users = self._users_at(second)
            records.extend(self._request_records(second, users, late, quiet_ok=not late))
            records.extend(self._process_records(second, late))
        for second in [s for s in self._users if s < before_second]:
            self._last_users = self._users.pop(second)
        self._cursor = max(cursor, before_second)
        return records

    def pop_all(self) -> list[Record]:
        """Records of everything not yet written (at the end of a run)."""
        pending = [*self._cells, *self._rss, self._cursor - 1]
        if self._end_second is not None:
            pending.append(self._end_second)
        return self.pop_records(max(pending) + 1)

    def _users_at(self, second: int) -> int | None:
        users = self._users.get(second)
        if users is not None:
            return users
        earlier = [s for s in self._users if s < second]
        return self._users[max(earlier)] if earlier else self._last_users

    def _request_records(
        self, second: int, users: int | None, late: bool, quiet_ok: bool
    ) -> list[Record]:
        row = self._cells.pop(second, {})
        records: list[Record] = []
        total = _Cell()
        for method, name in sorted(row, key=lambda key: (key[1], key[0])):
            cell = row[(method, name)]
            records.append(self._record(second, users, name, method, cell, late))
            if method not in NON_HTTP_REQUEST_TYPES:
                total.merge(cell)
        if row or quiet_ok:
            records.append(self._record(second, users, AGGREGATED_NAME, "", total, late))
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
        for process, (role, rss_bytes) in sorted(self._rss.pop(second, {}).items()):
            record: Record = {
                "kind": "process",
                "t": second,
                "elapsed_s": second - self._start_second,
                "process": process,
                "role": role,
                "generator_rss_bytes": rss_bytes,
            }
            if late:
                record["late"] = True
            records.append(record)
        return records


def _ms(value_ms: float) -> float:
    """Milliseconds rounded to the microsecond: the histogram's resolution is coarser anyway."""
    return round(value_ms, 3)
