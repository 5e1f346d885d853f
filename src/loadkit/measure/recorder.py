"""The kit's own measurement of a run: exact counts, fine percentiles and per-second rates.

Why not Locust's stats: its percentiles are coarsely bucketed and its RPS is a smoothed "current"
rate, while the verdict compares P95 with thresholds like 20 ms and wants RPS over the steady
window of a profile. ``RunRecorder`` (pure, clock passed in) keeps, per ``(request_type, name)``:
a ``LatencyHistogram``, the failure count, and per-second ``(requests, failures)`` counts keyed
by wall-clock epoch second. ``attach`` wires it to Locust's events, locally or distributed.

Clocks: intervals come from a monotonic clock; each recorder pairs one monotonic reading with
one wall-clock reading at its start and maps ``now`` (monotonic) to an epoch second through
that pair. Workers' monotonic clocks differ, but their epoch seconds line up, so the master can
add per-second counts from many workers (as far as the machines' wall clocks agree). A request
is counted in the second in which it *completed* (when Locust fires ``request``), like Locust.

Rates (``rps``) count only whole epoch seconds inside the window, so the partial seconds at the
edges neither inflate nor dilute the rate; see ``RunRecorder.counted_seconds``.

Distributed runs: each worker sends the samples recorded since its previous report (a delta,
then forgets them) with every stats report; the master adds the deltas up. Nothing is counted
twice (each sample leaves a worker once) and a report is only lost if Locust's own report is.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from loadkit.core.histogram import LatencyHistogram
from loadkit.core.metrics import EndpointMetrics
from loadkit.endpoints import NON_HTTP_REQUEST_TYPES
from loadkit.measure.run_clock import RunClock

if TYPE_CHECKING:
    from locust.env import Environment

logger = logging.getLogger(__name__)

#: Key of the recorder's delta in Locust's worker→master stats report.
REPORT_KEY: Final = "loadkit_recorder"
#: Attribute set on the master's ``parsed_options`` at ``test_start``; Locust copies custom
#: options to the workers in every spawn message, before their ``test_start`` fires.
RUN_ID_OPTION: Final = "loadkit_recorder_run_id"
#: Stats name of the HTTP total row (as Locust names it).
AGGREGATED_NAME: Final = "Aggregated"
#: Request types of the kit's own timings (not HTTP requests), left out of the HTTP total: bulk
#: import jobs, and requests re-timed from an arrival-rate iteration's intended start.


class _Row:
    """Everything recorded for one ``(request_type, name)``."""

    __slots__ = ("failures", "hist", "seconds")

    def __init__(self) -> None:
        self.hist = LatencyHistogram()
        self.failures = 0
        #: epoch second -> [requests, failures]
        self.seconds: dict[int, list[int]] = {}

    def merge(self, other: _Row) -> None:
        self.hist.merge(other.hist)
        self.failures += other.failures
        for second, (requests, failures) in other.seconds.items():
            counts = self.seconds.get(second)
            if counts is None:
                self.seconds[second] = [requests, failures]
            else:
                counts[0] += requests
                counts[1] += failures

    def to_dict(self, request_type: str, name: str) -> dict[str, Any]:
        seconds = sorted(self.seconds)
        return {
            "type": request_type,
            "name": name,
            "failures": self.failures,
            "hist": self.hist.to_dict(),
            "sec": seconds,
            "req": [self.seconds[s][0] for s in seconds],
            "fail": [self.seconds[s][1] for s in seconds],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Row:
        row = cls()
        row.hist = LatencyHistogram.from_dict(data["hist"])
        row.failures = int(data["failures"])
        row.seconds = {
            int(s): [int(r), int(f)]
            for s, r, f in zip(data["sec"], data["req"], data["fail"], strict=True)
        }
        return row


class RunRecorder:
    """Per-endpoint histograms, failures and per-second counts of one test run (pure core).

    The same object serves a local run (records directly), a worker (records, then exports
    deltas) and the master (merges the workers' deltas).
    """

    def __init__(
        self,
        *,
        start_epoch_s: float | None = None,
        start_mono_s: float | None = None,
        run_id: str | None = None,
    ) -> None:
        """Start empty; the clock pair defaults to "now" (``time.time()``, ``time.monotonic()``)."""
        self._rows: dict[tuple[str, str], _Row] = {}
        self.reset(start_epoch_s=start_epoch_s, start_mono_s=start_mono_s, run_id=run_id)

    def reset(
        self,
        *,
        start_epoch_s: float | None = None,
        start_mono_s: float | None = None,
        run_id: str | None = None,
    ) -> None:
        """Forget everything and start a new run at the given (or current) clock pair."""
        clock = RunClock.started(start_epoch_s, start_mono_s)
        self._start_epoch_s = clock.start_epoch_s
        #: Kept as a plain attribute: ``record`` (the hot path) reads it on every request.
        self._epoch_offset_s = clock.epoch_offset_s
        self._rows = {}
        #: Identifies the run; reports carrying another run id are dropped as stale.
        self.run_id = run_id
        #: Worker reports merged since the last reset (master only).
        self.reports_received = 0
        #: Worker reports dropped since the last reset because they belong to another run.
        self.stale_reports = 0
        self._final_by_source: dict[str, bool] = {}

    @property
    def start_epoch_s(self) -> float:
        """Wall-clock time (epoch seconds) of the run's start: windows are relative to it."""
        return self._start_epoch_s

    # -- recording (hot path) -------------------------------------------------------------------

    def record(
        self, request_type: str, name: str, response_time_ms: float, failed: bool, now: float
    ) -> None:
        """Count one completed request; ``now`` is a monotonic reading (``time.monotonic()``)."""
        key = (request_type, name)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row()
        row.hist.record(response_time_ms)
        second = math.floor(now + self._epoch_offset_s)
        counts = row.seconds.get(second)
        if counts is None:
            counts = row.seconds[second] = [0, 0]
        counts[0] += 1
        if failed:
            counts[1] += 1
            row.failures += 1

    # -- reading --------------------------------------------------------------------------------

    def counted_seconds(self, window: tuple[float, float] | None = None) -> range:
        """The epoch seconds over which ``rps`` is computed: whole seconds inside the window.

        ``window=(start_s, end_s)`` is relative to ``start_epoch_s`` (the test start), as a
        shape's run time is: second ``s`` counts iff ``[s, s+1)`` lies within
        ``[start + start_s, start + end_s)``. ``None`` means the whole run: from the first whole
        second after the start up to, not including, the second of the last recorded request
        (that one is partial by definition). An empty range means "too short to measure".
        """
        if window is None:
            last = max(
                (max(row.seconds) for row in self._rows.values() if row.seconds), default=None
            )
            if last is None:
                return range(0)
            return range(math.ceil(self._start_epoch_s), max(last, math.ceil(self._start_epoch_s)))
        start_s, end_s = window
        if end_s < start_s:
            raise ValueError(f"window ends before it starts: {window!r}")
        first = math.ceil(self._start_epoch_s + start_s)
        end = math.floor(self._start_epoch_s + end_s)
        return range(first, max(end, first))

    def snapshot(self, window: tuple[float, float] | None = None) -> dict[str, EndpointMetrics]:
        """One ``EndpointMetrics`` per endpoint, keyed by ``.key``, plus ``"Aggregated"``.

        Counts, failures and latencies cover the whole run; ``rps`` is requests per second over
        ``counted_seconds(window)`` and ``window_s`` is that range's length (0.0 and rps 0.0 when
        no whole second fits). ``"Aggregated"`` (method ``""``) totals the HTTP rows only:
        rows with a type in ``NON_HTTP_REQUEST_TYPES`` (``JOB``, ``INTENDED``) are the kit's
        own timings, not requests.
        """
        seconds = self.counted_seconds(window)
        out: dict[str, EndpointMetrics] = {}
        total = _Row()
        for request_type, name in sorted(self._rows):
            row = self._rows[(request_type, name)]
            metrics = _metrics(request_type, name, row, seconds)
            out[metrics.key] = metrics
            if request_type not in NON_HTTP_REQUEST_TYPES:
                total.merge(row)
        aggregated = _metrics("", AGGREGATED_NAME, total, seconds)
        out[aggregated.key] = aggregated
        return out

    def per_second(self, key: str) -> dict[int, tuple[int, int]]:
        """``{epoch second: (requests, failures)}`` of row ``key`` (``"Aggregated"`` for HTTP)."""
        if key == AGGREGATED_NAME:
            rows = [row for (t, _), row in self._rows.items() if t not in NON_HTTP_REQUEST_TYPES]
        else:
            rows = [row for (t, n), row in self._rows.items() if f"{t} {n}".strip() == key]
        merged = _Row()
        for row in rows:
            merged.merge(row)
        return {s: (r, f) for s, (r, f) in sorted(merged.seconds.items())}

    # -- distribution ---------------------------------------------------------------------------

    def export_delta(self, *, final: bool) -> dict[str, Any]:
        """Everything recorded since the previous export, msgpack-friendly; then forgets it.

        ``final`` tells the master that this source will record nothing more in this run.
        """
        rows = [row.to_dict(t, n) for (t, n), row in self._rows.items()]
        self._rows = {}
        return {"run": self.run_id, "final": final, "rows": rows}

    def merge_report(self, source: str, payload: Mapping[str, Any]) -> bool:
        """Add a delta from ``export_delta`` sent by ``source``; False if dropped as stale.

        A report is stale when both sides know a run id and they differ: it was recorded
        before the source joined this run (for example, the tail of a previous run).
        """
        run = payload.get("run")
        if self.run_id is not None and run != self.run_id:
            self.stale_reports += 1
            return False
        for data in payload["rows"]:
            key = (str(data["type"]), str(data["name"]))
            incoming = _Row.from_dict(data)
            row = self._rows.get(key)
            if row is None:
                self._rows[key] = incoming
            else:
                row.merge(incoming)
        self.reports_received += 1
        self._final_by_source[source] = bool(payload["final"])
        return True

    def expect_sources(self, sources: Iterable[str]) -> None:
        """Declare sources whose final report is awaited even if none has arrived yet."""
        for source in sources:
            self._final_by_source.setdefault(source, False)

    def pending_sources(self) -> set[str]:
        """Known sources whose latest accepted report was not final."""
        return {source for source, final in self._final_by_source.items() if not final}


def _metrics(request_type: str, name: str, row: _Row, seconds: range) -> EndpointMetrics:
    hist = row.hist
    in_window = 0
    if seconds:
        for second, (requests, _failures) in row.seconds.items():
            if second in seconds:
                in_window += requests
    window_s = float(len(seconds))
    return EndpointMetrics(
        method=request_type,
        name=name,
        count=hist.count,
        failures=row.failures,
        min_ms=hist.min_ms,
        max_ms=hist.max_ms,
        avg_ms=hist.mean_ms,
        p50_ms=hist.percentile_ms(50),
        p90_ms=hist.percentile_ms(90),
        p95_ms=hist.percentile_ms(95),
        p99_ms=hist.percentile_ms(99),
        rps=in_window / window_s if window_s else 0.0,
        window_s=window_s,
    )


# -- Locust glue --------------------------------------------------------------------------------


def attach(environment: Environment) -> RunRecorder:
    """Create a ``RunRecorder`` fed by ``environment``'s events; call it from an ``init`` listener.

    Everywhere: records each ``request`` event where it is fired and resets on ``test_start``.
    Worker: ships a delta with every stats report (``report_to_master``) and marks the reports
    sent after its ``test_stop`` as final. Master: merges the deltas (``worker_report``), tags
    each run with an id so late reports of a previous run are dropped, and at ``test_stop``
    starts awaiting a final report from every connected worker (``wait_for_final_reports``).
    Locally the recorder is complete at ``test_stop``; on the master only once
    ``pending_sources()`` is empty (``test_stop`` fires before the workers' last reports).
    """
    return _Listener(environment).recorder


def wait_for_final_reports(recorder: RunRecorder, timeout_s: float) -> bool:
    """Wait (gevent-friendly) until no worker's final report is pending; False on timeout.

    Useful on the master after ``test_stop`` in web-UI runs, where workers send their last
    samples with the next periodic report (Locust sends stats every 3 s). Returns at once
    for local runs.
    """
    import gevent

    deadline_s = time.monotonic() + timeout_s
    while recorder.pending_sources():
        if time.monotonic() >= deadline_s:
            return False
        gevent.sleep(0.05)
    return True


class _Listener:
    """Subscribes one recorder to an environment's events (role decided per event)."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.recorder = RunRecorder()
        self.stopped = False
        recorder = self.recorder
        monotonic = time.monotonic

        def on_request(
            request_type: str,
            name: str,
            response_time: float,
            exception: BaseException | None = None,
            **_kwargs: Any,
        ) -> None:
            recorder.record(request_type, name, response_time, exception is not None, monotonic())

        events = environment.events
        events.request.add_listener(on_request)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.worker_report.add_listener(self.on_worker_report)

    def on_test_start(self, environment: Environment, **_kwargs: Any) -> None:
        from locust.runners import MasterRunner, WorkerRunner

        runner = environment.runner
        options = environment.parsed_options
        run_id: str | None = None
        if isinstance(runner, MasterRunner):
            run_id = uuid.uuid4().hex
            if options is not None:
                setattr(options, RUN_ID_OPTION, run_id)
            else:  # nothing carries the id to the workers: accept every report
                run_id = None
        elif isinstance(runner, WorkerRunner) and options is not None:
            run_id = getattr(options, RUN_ID_OPTION, None)
        self.stopped = False
        self.recorder.reset(run_id=run_id)

    def on_test_stop(self, environment: Environment, **_kwargs: Any) -> None:
        from locust.runners import MasterRunner

        self.stopped = True
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            self.recorder.expect_sources(list(runner.clients.keys()))

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        data[REPORT_KEY] = self.recorder.export_delta(final=self.stopped)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        payload = data.get(REPORT_KEY)
        if payload is None:
            return
        if not self.recorder.merge_report(client_id, payload) and payload.get("rows"):
            logger.warning(
                "loadkit recorder: dropped %d rows from worker %s recorded in another run",
                len(payload["rows"]),
                client_id,
            )
