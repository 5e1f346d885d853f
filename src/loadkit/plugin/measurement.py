"""The collector, wired into Locust: one request listener, one clock, one worker message.

* every process: one ``request`` listener records into the ``Collector`` while a run is on;
* the run's clock starts on the local runner or master at ``test_start``; the master tells its
  workers the run id and start time with ``runner.send_message("loadkit:run", ...)`` (Locust
  delivers it before the spawn message that starts their users);
* a worker sends what it recorded as ``loadkit:measure`` once a second and a final delta at its
  ``test_stop`` (which Locust fires after the worker's users have stopped, and before it reports
  itself stopped), so the master holds every request by the time its own ``test_stop`` fires;
* the local runner or master folds each final second once a second: into the whole-run numbers,
  and as records to the sinks (``timeseries.jsonl``, InfluxDB);
* Locust's Reset button starts a new measurement (the master tells its workers to drop theirs).

The side rows (``JOB``, ``INTENDED``) are recorded with :func:`record_side_row`, not through
Locust's ``request`` event, so Locust's "Aggregated" total keeps counting requests only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import gevent
import psutil
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadkit.measure.collector import (
    ROLE_LOCAL,
    ROLE_MASTER,
    ROLE_WORKER,
    Collector,
    ProcessSample,
)
from loadkit.plugin import locust_adapter
from loadkit.plugin.context import context_of

logger = logging.getLogger("loadkit.measure")

RUN_MESSAGE: Final = "loadkit:run"
MEASURE_MESSAGE: Final = "loadkit:measure"
RESET_MESSAGE: Final = "loadkit:reset"
#: A worker sends its measurements this often (and once more, final, when it stops).
SEND_INTERVAL_S: Final = 1.0
#: The ticker wakes this long after each second ends (that second's requests are all in).
TICK_DELAY_S: Final = 0.01
#: The longest the master waits for a silent worker before writing a second without it.
MAX_LAG_S: Final = 10.0


class Sink(Protocol):
    """Receives the records of each final second (``loadkit.measure.collector``)."""

    def write(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


class NoResponse(Protocol):
    """A failure in which the target did not answer at all (``workload.checks.NoResponseError``)."""

    no_response: bool


class Measurement:
    """The collector of one environment, and the greenlets that feed and drain it."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.collector = Collector()
        runner = environment.runner
        self.role = (
            ROLE_WORKER
            if isinstance(runner, WorkerRunner)
            else ROLE_MASTER
            if isinstance(runner, MasterRunner)
            else ROLE_LOCAL
        )
        self.active = False
        self.sinks: list[Sink] = []
        self.run_sinks: list[Sink] = []
        self.problems: list[str] = []
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading is always 0: prime it
        self._greenlets: list[gevent.Greenlet] = []
        #: When the target last answered (any HTTP status), for ``on_unreachable``.
        self.last_answer_mono_s = time.monotonic()
        self.last_no_response: str = ""
        self.on_unreachable: Callable[[float, str], None] | None = None
        self.unreachable_after_s = 0.0
        #: Called before every export and snapshot, to add counts kept elsewhere (arrival rate).
        self.counter_syncs: list[Callable[[Collector], None]] = []
        self._subscribe()

    # -- wiring ---------------------------------------------------------------------------------

    def _subscribe(self) -> None:
        collector = self.collector
        monotonic = time.monotonic

        bytes_sent = locust_adapter.request_bytes_sent

        def on_request(
            request_type: str,
            name: str,
            response_time: float | None,
            response_length: int = 0,
            exception: BaseException | None = None,
            response: Any = None,
            **_kwargs: Any,
        ) -> None:
            if not self.active:
                return
            now = monotonic()
            collector.record(
                request_type,
                name,
                response_time,
                exception is not None,
                now,
                response_length,
                bytes_sent(response) if response is not None else 0,
            )
            if exception is None:
                self.last_answer_mono_s = now
            else:
                self._failed(exception, now)

        events = self.environment.events
        events.request.add_listener(on_request)
        events.reset_stats.add_listener(self.on_reset)
        runner = self.environment.runner
        if self.role == ROLE_WORKER:
            runner.register_message(RUN_MESSAGE, self.on_run_message)
            runner.register_message(RESET_MESSAGE, lambda **_: self.collector.reset())
            events.test_stop.add_listener(self.on_worker_stop)
        elif self.role == ROLE_MASTER:
            runner.register_message(MEASURE_MESSAGE, self.on_measure_message)
            events.worker_connect.add_listener(self.on_worker_connect)

    def _failed(self, exception: BaseException, now: float) -> None:
        if not getattr(exception, "no_response", False) and not isinstance(
            exception, (ConnectionError, TimeoutError)
        ):
            self.last_answer_mono_s = now  # an HTTP error is still an answer
            return
        self.last_no_response = str(exception)
        silent_s = now - self.last_answer_mono_s
        if self.unreachable_after_s and silent_s >= self.unreachable_after_s:
            callback, self.on_unreachable = self.on_unreachable, None
            if callback is not None:
                callback(silent_s, self.last_no_response)

    # -- run boundaries (called by RunControl, in this order) -----------------------------------

    def begin(self, run_id: str, sinks: Sequence[Sink] = ()) -> None:
        """A run starts now (local runner or master): new clock, new measurement, new sinks."""
        now_epoch, now_mono = time.time(), time.monotonic()
        self.collector.start(run_id=run_id, start_epoch_s=now_epoch, start_mono_s=now_mono)
        self.run_sinks = list(sinks)
        self.last_answer_mono_s = now_mono
        self.active = True
        if self.role == ROLE_MASTER:
            self.environment.runner.send_message(RUN_MESSAGE, self._run_message())
        self._start_greenlet(self._tick_forever)

    def load_stopped(self) -> None:
        """The stop began: seconds after this one get lines only if they have data."""
        self.collector.stop(time.monotonic())

    def finish(self, final_report_wait_s: float) -> bool:
        """After ``test_stop``: await the workers' final deltas (master), write everything left.

        Returns False when a worker's final delta never came (judged without it)."""
        complete = True
        if self.role == ROLE_MASTER:
            complete = self._await_final_reports(final_report_wait_s)
        self.active = False
        self._kill_greenlets()
        self._sample(self.collector.second_of(time.monotonic()))
        self._write(self.collector.pop_all())
        return complete

    def close_run_sinks(self) -> None:
        for sink in self.run_sinks:
            self._guard(f"close {type(sink).__name__}", sink.close)
        self.run_sinks = []

    def close(self) -> None:
        self.close_run_sinks()
        for sink in self.sinks:
            self._guard(f"close {type(sink).__name__}", sink.close)

    # -- events -----------------------------------------------------------------------------------

    def on_reset(self, **_: Any) -> None:
        self.collector.reset()
        if self.role == ROLE_MASTER:
            self.environment.runner.send_message(RESET_MESSAGE, {})

    def on_worker_connect(self, client_id: str, **_: Any) -> None:
        if self.active:  # a worker joining a running test still needs the run's clock
            self.environment.runner.send_message(RUN_MESSAGE, self._run_message(), client_id)

    def on_run_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        self.collector.start(
            run_id=data["run_id"],
            start_epoch_s=float(data["start_epoch_s"]),
            start_mono_s=time.monotonic(),
            now_epoch_s=time.time(),
        )
        self.active = True
        context_of(environment).extras["run_message"] = data
        if data.get("graceful_stop_s") is not None:  # requests in flight may finish this long
            environment.stop_timeout = float(data["graceful_stop_s"])
        self._start_greenlet(self._send_forever)

    def on_worker_stop(self, **_: Any) -> None:
        if not self.active:
            return
        self._kill_greenlets()
        self._sample(self.collector.second_of(time.monotonic()))
        self._send(final=True)
        self.active = False
        locust_adapter.skip_worker_ready_delay(self.environment)

    def on_measure_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        if not self.collector.merge_delta(msg.node_id, msg.data):
            logger.debug("loadkit: dropped measurements of another run from %s", msg.node_id)

    # -- work -------------------------------------------------------------------------------------

    def _run_message(self) -> dict[str, Any]:
        ctx = context_of(self.environment)
        runner = self.environment.runner
        message: dict[str, Any] = {
            "run_id": self.collector.run_id,
            "start_epoch_s": self.collector.start_epoch_s,
            "workers": runner.worker_count,
        }
        if ctx.run is not None:
            message["scenario"] = ctx.run.scenario
            message["graceful_stop_s"] = ctx.run.graceful_stop_s
            if ctx.run.arrival is not None:
                message["arrival"] = ctx.run.to_dict()["arrival"]
        return message

    def _send_forever(self) -> None:
        while True:
            gevent.sleep(SEND_INTERVAL_S)
            self._guard("sample", self._sample, self.collector.second_of(time.monotonic()))
            self._guard("send", self._send, False)

    def sync_counters(self) -> None:
        for sync in self.counter_syncs:
            sync(self.collector)

    def _send(self, final: bool) -> None:
        self.sync_counters()
        payload = self.collector.export_delta(time.monotonic(), final=final)
        self.environment.runner.send_message(MEASURE_MESSAGE, payload)

    def _tick_forever(self) -> None:
        """Wake just after each second ends: sample it, then write what has become final."""
        while True:
            epoch_s = self.collector.epoch_s(time.monotonic())
            gevent.sleep(math.floor(epoch_s) + 1 + TICK_DELAY_S - epoch_s)
            self._guard("time series", self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self._sample(self.collector.second_of(now) - 1)
        sources: list[str] = []
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            sources = [c.id for c in runner.clients.values() if c.state != STATE_MISSING]
        before = self.collector.final_before(sources, self.collector.epoch_s(now), MAX_LAG_S)
        self._write(self.collector.pop_records(before))

    def _sample(self, second: int) -> None:
        """Users (where they are counted), this process's memory and CPU, for ``second``."""
        if self.role != ROLE_WORKER:
            self.collector.sample_users(self.environment.runner.user_count, second)
        sample = ProcessSample(
            self.role, self._process.memory_info().rss, self._process.cpu_percent(None)
        )
        self.collector.sample_process(self.role, sample, second)

    def _await_final_reports(self, timeout_s: float) -> bool:
        runner = self.environment.runner
        self.collector.expect_sources(c.id for c in runner.clients.values())
        deadline_s = time.monotonic() + timeout_s
        while self.collector.pending_sources():
            if time.monotonic() >= deadline_s:
                missing = ", ".join(sorted(self.collector.pending_sources()))
                logger.warning("loadkit: no final measurements from worker(s) %s", missing)
                return False
            gevent.sleep(0.02)
        return True

    def _write(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        for sink in [*self.run_sinks, *self.sinks]:
            self._guard(f"write {type(sink).__name__}", sink.write, records)

    def _start_greenlet(self, run: Callable[[], None]) -> None:
        self._kill_greenlets()
        self._greenlets.append(gevent.spawn(run))

    def _kill_greenlets(self) -> None:
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        self._greenlets = []

    def _guard(self, what: str, call: Callable[..., Any], *args: Any) -> None:
        """Run ``call``; a failure is said once per kind (console and verdict notes) and never
        reaches Locust, which would turn any exception in a handler into exit code 2."""
        try:
            call(*args)
        except Exception as exc:
            problem = f"{what} failed: {type(exc).__name__}: {exc}"
            if problem not in self.problems:
                self.problems.append(problem)
                logger.warning("loadkit: %s", problem)


def measurement_of(environment: Environment) -> Measurement:
    """The environment's measurement, created (and subscribed) on first use."""
    ctx = context_of(environment)
    if ctx.measurement is None:
        ctx.measurement = Measurement(environment)
    return ctx.measurement


def record_side_row(
    environment: Environment,
    request_type: str,
    name: str,
    response_time_ms: float,
    response_length: int = 0,
    exception: BaseException | str | None = None,
) -> None:
    """Record one of the kit's own timings (a ``JOB`` or ``INTENDED`` row): in the kit's
    collector, and in Locust's statistics as its own row, outside Locust's request total."""
    measurement = context_of(environment).measurement
    if measurement is not None and measurement.active:
        measurement.collector.record(
            request_type,
            name,
            response_time_ms,
            exception is not None,
            time.monotonic(),
            response_length,
        )
    locust_adapter.log_outside_total(
        environment, request_type, name, response_time_ms, response_length, exception
    )
