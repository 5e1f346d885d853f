"""Locust glue of the time series: where samples are taken, shipped, and written, and when.

* every process: the ``request`` listener records into a ``PerSecondSeries`` when this run's
  series is on (a local run with an output; on workers, when the master asked for it);
* worker: samples its memory once a second while a test runs and ships a delta with every stats
  report (``report_to_master``);
* local runner or master: merges the workers' deltas (``worker_report``), samples users and its
  own memory once a second, and hands every final second to the sinks (the JSON-lines file, the
  InfluxDB writer) from one greenlet; at ``quitting`` it writes what is left and calls the
  end-of-run hooks (the plot); at ``quit`` it writes any straggler and closes the sinks.

The master tags each run with an id carried to the workers in ``parsed_options`` (Locust copies
custom options with every spawn message, before the workers' ``test_start``), so a worker knows
the series is wanted and reports from a previous run are dropped.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import gevent
import psutil
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadkit.measure.per_second import ROLE_LOCAL, ROLE_MASTER, ROLE_WORKER, PerSecondSeries

logger = logging.getLogger("loadkit.outputs")

#: Key of the series' delta in Locust's worker->master stats report.
REPORT_KEY: Final = "loadkit_timeseries"
#: Set on the master's ``parsed_options`` at ``test_start``: the run id workers record under.
RUN_ID_OPTION: Final = "loadkit_timeseries_run_id"
#: The ticker wakes this long after each second ends (all of that second's requests are in).
TICK_DELAY_S: Final = 0.01
#: The longest the master waits for a silent worker before writing a second without it
#: (workers report every 3 s).
MAX_LAG_S: Final = 10.0


class Sink(Protocol):
    """Receives the records of each final second (``loadkit.measure.per_second``)."""

    def write(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


class Collector:
    """Subscribes one ``PerSecondSeries`` to an environment's events (role fixed at init)."""

    def __init__(
        self,
        environment: Environment,
        sinks: Sequence[Sink] = (),
        at_end: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.environment = environment
        self.sinks = list(sinks)
        self.at_end = list(at_end)
        self.series = PerSecondSeries()
        runner = environment.runner
        self.role = (
            ROLE_WORKER
            if isinstance(runner, WorkerRunner)
            else ROLE_MASTER
            if isinstance(runner, MasterRunner)
            else ROLE_LOCAL
        )
        #: Whether requests are recorded (set per run at ``test_start``).
        self.active = False
        self.running = False
        self._process = psutil.Process()
        self._ticker: gevent.Greenlet | None = None
        self._written_since_end = False
        self._warned: set[str] = set()

        series = self.series
        monotonic = time.monotonic

        def on_request(
            request_type: str,
            name: str,
            response_time: float | None,
            exception: BaseException | None = None,
            **_kwargs: Any,
        ) -> None:
            if self.active:
                series.record(request_type, name, response_time, exception is not None, monotonic())

        events = environment.events
        events.request.add_listener(on_request)
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        if self.role == ROLE_WORKER:
            events.report_to_master.add_listener(self.on_report_to_master)
        else:
            events.worker_report.add_listener(self.on_worker_report)
            events.quitting.add_listener(self.on_quitting)
            events.quit.add_listener(self.on_quit)

    # -- events ---------------------------------------------------------------------------------

    def on_test_start(self, environment: Environment, **_kwargs: Any) -> None:
        options = environment.parsed_options
        run_id: str | None = None
        if self.role == ROLE_WORKER:
            run_id = getattr(options, RUN_ID_OPTION, None) if options is not None else None
            self.active = run_id is not None
        else:
            self._write(self.series.pop_all())  # a web UI restart: finish the previous run
            if self.role == ROLE_MASTER and options is not None:
                run_id = uuid.uuid4().hex
                setattr(options, RUN_ID_OPTION, run_id)
            self.active = True
        self.series.reset(run_id=run_id)
        self.running = True
        if self._ticker is None and (self.active or self.role != ROLE_WORKER):
            self._ticker = gevent.spawn(self._tick_forever)

    def on_test_stop(self, **_kwargs: Any) -> None:
        now = time.monotonic()
        self._sample(self.series.second_of(now))
        self.running = False
        if self.role == ROLE_WORKER:
            return
        self.series.stop(now)
        if self.role == ROLE_LOCAL:  # locally nothing can arrive after test_stop
            self._write(self.series.pop_all())

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        if self.active:
            data[REPORT_KEY] = self.series.export_delta(time.monotonic())

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        payload = data.get(REPORT_KEY)
        if payload is not None and not self.series.merge_delta(client_id, payload):
            logger.debug("loadkit outputs: dropped a time-series report of another run")

    def on_quitting(self, **_kwargs: Any) -> None:
        """Write what is left and run the end-of-run hooks (twice on SIGTERM: both are safe)."""
        if self._ticker is not None:
            self._ticker.kill(block=False)
            self._ticker = None
        self._finish()

    def on_quit(self, **_kwargs: Any) -> None:
        """Write any straggler that came in after ``quitting``, then close the sinks."""
        self._finish()
        for sink in self.sinks:
            self._guard(f"close {type(sink).__name__}", sink.close)

    # -- work -----------------------------------------------------------------------------------

    def _finish(self) -> None:
        self._write(self.series.pop_all())
        if self._written_since_end:
            self._written_since_end = False
            for hook in self.at_end:
                self._guard(getattr(hook, "__name__", "end-of-run output"), hook)

    def _tick_forever(self) -> None:
        """Wake just after each second ends: sample it, then write what has become final."""
        while True:
            epoch_s = self.series.epoch_s(time.monotonic())
            gevent.sleep(math.floor(epoch_s) + 1 + TICK_DELAY_S - epoch_s)
            self._guard("time series", self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.running:
            # the state at the end of the second that just ended
            self._sample(self.series.second_of(now) - 1)
        if self.role == ROLE_WORKER:
            return
        sources: list[str] = []
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            sources = [c.id for c in runner.clients.values() if c.state != STATE_MISSING]
        before = self.series.final_before(sources, self.series.epoch_s(now), MAX_LAG_S)
        self._write(self.series.pop_records(before))

    def _sample(self, second: int) -> None:
        """Users (where they are counted) and this process's resident memory, for ``second``."""
        if self.role != ROLE_WORKER:
            self.series.sample_users(self.environment.runner.user_count, second)
        if self.role != ROLE_WORKER or self.active:
            rss_bytes = self._process.memory_info().rss
            self.series.sample_rss(self.role, self.role, rss_bytes, second)

    def _write(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        self._written_since_end = True
        for sink in self.sinks:
            self._guard(f"write {type(sink).__name__}", sink.write, records)

    def _guard(self, what: str, call: Callable[..., Any], *args: Any) -> None:
        """Run ``call``; an error is logged once per kind and never reaches Locust (which
        would turn any handler exception into exit code 2)."""
        try:
            call(*args)
        except Exception as exc:
            if what not in self._warned:
                self._warned.add(what)
                logger.warning("loadkit outputs: %s failed: %s: %s", what, type(exc).__name__, exc)
