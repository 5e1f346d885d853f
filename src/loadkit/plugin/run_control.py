"""One run's life inside Locust: when it starts, how long it lasts, who stops it, when it's judged.

Runs on the local runner or the master (workers only measure). For each test Locust starts:

* ``test_start`` -- the run's plan is fixed (``loadkit run``'s plan file, or built from the shape
  and the options: web UI starts and plain ``locust -f`` runs), its results folder made (a new
  numbered one per start in a web UI session), the collector started, and, when the run has a
  planned length, a timer armed on the monotonic clock that ends the load exactly then;
* ``test_stopping`` (the first moment of any stop) -- the stop's time is kept, and its cause if
  nobody named one: a stop before the planned end is "stopped early";
* ``test_stop`` (users gone, and on a master the workers' final measurements in) -- the run is
  judged once, and its verdict written; a headless run then quits;
* Ctrl-C / SIGTERM -- "interrupted": the load stops gracefully (requests in flight may finish
  for ``--stop-timeout``), is judged and written; a second Ctrl-C kills the users at once and
  still writes what was measured. ``quitting`` catches Locust's own shutdown paths the same way.

The cause of a stop is recorded once, by whoever stops first (``core.lifecycle``).
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner

from loadkit import registry
from loadkit.core.baselines import Baseline
from loadkit.core.lifecycle import Lifecycle, RunState
from loadkit.core.plan import ArrivalSpec, RunPlan, closed_stages
from loadkit.core.verdict import AbortWatch, Verdict
from loadkit.plugin import locust_adapter
from loadkit.plugin.context import KitContext, context_of
from loadkit.plugin.measurement import Measurement, Sink
from loadkit.plugin.redaction import redactor_of
from loadkit.plugin.staged_shape import StagedShape, read_profile_options
from loadkit.plugin.verdict import judge, write_verdict
from loadkit.results.locust_files import write_html_report
from loadkit.results.verdict_files import render_console

logger = logging.getLogger("loadkit.run")

#: Seconds a master waits after ``test_stop`` for a worker's final measurements.
FINAL_REPORT_TIMEOUT_S: Final = 10.0
#: Locust's HTML report of each web UI run, in the run's folder.
REPORT_FILE: Final = "report.html"
ABORT_CHECK_INTERVAL_S: Final = 1.0


class RunControl:
    """The lifecycle of every run in one environment (local runner or master)."""

    def __init__(self, environment: Environment, ctx: KitContext, measurement: Measurement):
        self.environment = environment
        self.ctx = ctx
        self.measurement = measurement
        self.baseline: Baseline | None = ctx.planned.baseline if ctx.planned else None
        self.headless = bool(getattr(environment.parsed_options, "headless", False))
        autostart = bool(getattr(environment.parsed_options, "autostart", False))
        # A web UI session leaves -t in the form (its Run time field); each start sets its own.
        self.run_time_s = (
            locust_adapter.take_over_run_time(environment) if self.headless or autostart else None
        )
        if self.run_time_s is not None:
            logger.info(
                "loadkit: the run ends after %g s of load (the kit's timer, not Locust's)",
                self.run_time_s,
            )
        self.lifecycle: Lifecycle | None = None
        self.verdict: Verdict | None = None
        self.runs_started = 0
        self.started_mono_s: float | None = None
        self.measure_from_s = 0.0
        self.lost_workers: list[str] = []
        self.notes: list[str] = []
        self.interrupts = 0
        self._stop_by = "stopped"
        self._greenlets: list[gevent.Greenlet] = []
        self._judged = Event()
        self._printed = False
        self._stop_greenlet: gevent.Greenlet | None = None
        self.run_sinks_for: Any = None
        """``(run_dir) -> list[Sink]``: the per-run outputs (set by ``plugin.outputs``)."""

    def subscribe(self) -> None:
        locust_adapter.serialize_stops(self.environment.runner)
        locust_adapter.stop_workers_before_quitting(self.environment.runner)
        events = self.environment.events
        events.test_start.add_listener(self.on_test_start)
        events.test_stopping.add_listener(self.on_test_stopping)
        events.test_stop.add_listener(self.on_test_stop)
        events.reset_stats.add_listener(self.on_reset)
        events.quitting.add_listener(self.on_quitting)
        events.quit.add_listener(self.on_quit)
        if self.headless:
            gevent.signal_handler(signal.SIGINT, self.on_signal, "Ctrl-C")
            gevent.signal_handler(signal.SIGTERM, self.on_signal, "SIGTERM")

    # -- clock -------------------------------------------------------------------------------------

    def elapsed_s(self) -> float:
        if self.started_mono_s is None:
            return 0.0
        return time.monotonic() - self.started_mono_s

    # -- events -----------------------------------------------------------------------------------

    def on_test_start(self, **_: Any) -> None:
        self._kill_greenlets()
        self.runs_started += 1
        plan = self._plan_for_this_run()
        self.ctx.run = plan
        self.started_mono_s = time.monotonic()
        self.measure_from_s = 0.0
        self.lifecycle = Lifecycle(plan.planned_duration_s)
        self.verdict = None
        self.lost_workers = []
        self.notes = []
        self._stop_by = "stopped"
        self._judged.clear()
        self._printed = False
        self.environment.stop_timeout = plan.graceful_stop_s
        sinks: list[Sink] = []
        if plan.results_dir is not None:
            Path(plan.results_dir).mkdir(parents=True, exist_ok=True)
            if self.run_sinks_for is not None:
                sinks = self.run_sinks_for(Path(plan.results_dir))
        self.measurement.begin(plan.run_id, sinks)
        self.measurement.unreachable_after_s = self.ctx.settings.abort_when_unreachable_s
        self.measurement.on_unreachable = self.on_unreachable
        planned_s = plan.planned_duration_s
        if planned_s is not None:
            self._spawn(self._end_at_planned_time, planned_s)
        if plan.baseline is not None:
            watch = AbortWatch(plan.baseline, plan.profile)
            if watch.active:
                self._spawn(self._watch_aborts, watch)
        length = "open-ended" if planned_s is None else f"{planned_s:g} s of load"
        logger.info(
            "loadkit: run %s: %s, profile %s, %s",
            plan.run_id[:8],
            plan.scenario,
            plan.profile,
            length,
        )

    def on_test_stopping(self, **_: Any) -> None:
        if self.lifecycle is None:
            return
        self.lifecycle.stopped(self.elapsed_s(), by=self._stop_by)
        self.measurement.load_stopped()

    def on_test_stop(self, **_: Any) -> None:
        self._kill_greenlets()
        if self.lifecycle is None or self.ctx.run is None:
            return
        if not self.lifecycle.ended:  # a stop that skipped test_stopping (a test's direct call)
            self.lifecycle.stopped(self.elapsed_s(), by=self._stop_by)
        from loadkit.plugin.platform_metrics import finish_platform_sampling
        from loadkit.plugin.queue import finish_queue_sampling

        finish_queue_sampling(self.environment)
        finish_platform_sampling(self.environment)
        complete = self.measurement.finish(FINAL_REPORT_TIMEOUT_S)
        if not complete:
            self.notes.append("a worker's last measurements never arrived: judged without them")
        self.verdict = self._judge()
        if self.ctx.run_dir is not None:
            write_verdict(self.verdict, self.ctx.run_dir)
            if not self.headless:  # a web UI session: each run keeps its own report
                mask = redactor_of(self.environment).mask
                write_html_report(self.environment, self.ctx.run_dir / REPORT_FILE, mask)
        self.measurement.close_run_sinks()
        self._judged.set()
        if self.headless:
            self.environment.process_exit_code = self.verdict.exit_code

    def on_reset(self, **_: Any) -> None:
        """Locust's Reset button: a new measurement of the same run, from now."""
        if self.lifecycle is not None and not self.lifecycle.ended:
            self.measure_from_s = self.elapsed_s()
            logger.info(
                "loadkit: statistics reset at %.1f s: measuring from here", self.measure_from_s
            )

    def on_quitting(self, **_: Any) -> None:
        """Locust is shutting down (SIGTERM handled by Locust, or the end of a headless run)."""
        runner = self.environment.runner
        if self.lifecycle is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING):
            self.interrupt("Locust was asked to shut down")
            self._stop_once()
        if self.verdict is not None and self.headless:
            self.environment.process_exit_code = self.verdict.exit_code
            if not self.verdict.complete:
                write_html_report(self.environment)  # Locust skips it on SIGTERM

    def on_quit(self, **_: Any) -> None:
        if self.verdict is not None and self.headless and not self._printed:
            self._printed = True
            print(render_console(self.verdict), flush=True)
            if self.ctx.run_dir is not None:
                print(f"loadkit: verdict written to {self.ctx.run_dir / 'verdict.json'}")

    def on_signal(self, what: str) -> None:
        """First Ctrl-C/SIGTERM: graceful stop and a verdict; the next one: stop at once."""
        self.interrupts += 1
        if self.interrupts == 1:
            logger.warning("loadkit: %s: stopping the load (again to stop at once)", what)
            self.interrupt(f"{what} at {self.elapsed_s():.1f} s")
            gevent.spawn(self._stop_and_quit)
            return
        logger.warning("loadkit: %s again: stopping the users at once", what)
        self.environment.stop_timeout = 0
        locust_adapter.kill_users_now(self.environment.runner)

    def on_worker_lost(self, worker_id: str) -> None:
        self.lost_workers.append(worker_id)
        options = self.environment.parsed_options
        if getattr(options, "on_worker_loss", "end") == "end":
            self.end_now(RunState.LOST_WORKER, f"worker {worker_id} disappeared")
        else:
            self.notes.append(f"lost worker {worker_id} during the run (--on-worker-loss continue)")

    def on_unreachable(self, silent_s: float, last_error: str) -> None:
        self.end_now(
            RunState.ABORTED,
            f"the target stopped answering: no response for {silent_s:.0f} s (last: {last_error})",
        )

    # -- the web UI's requests ---------------------------------------------------------------------

    def stop_requested(self, source: str) -> None:
        """Someone asked to stop (``from the web UI``): a stop before the planned end then reads
        "stopped from the web UI at 12 s of 90 s"."""
        if self.lifecycle is not None and not self.lifecycle.ended:
            self._stop_by = f"stopped {source}"

    def start_requested(self, run_time_s: float | None) -> None:
        """A web UI start was accepted: its form's Run time is the next run's planned end."""
        self.run_time_s = run_time_s

    # -- stopping ----------------------------------------------------------------------------------

    def interrupt(self, reason: str) -> None:
        if self.lifecycle is not None:
            self.lifecycle.stop(RunState.INTERRUPTED, self.elapsed_s(), reason, self._phase())

    def end_now(self, state: RunState, reason: str) -> None:
        """Stop the run for a reason of the kit's own (an abort, a lost worker)."""
        if self.lifecycle is None or not self.lifecycle.stop(
            state, self.elapsed_s(), reason, self._phase()
        ):
            return
        logger.error("loadkit: ending the run: %s", reason)
        # From a fresh greenlet: stopping kills the kit's watchers, one of which may be calling.
        gevent.spawn(self._stop_and_quit)

    def _end_at_planned_time(self, planned_s: float) -> None:
        while (remaining_s := planned_s - self.elapsed_s()) > 0:
            gevent.sleep(remaining_s)
        if self.lifecycle is not None and self.lifecycle.stop(RunState.COMPLETE, self.elapsed_s()):
            gevent.spawn(self._stop_and_quit)

    def _stop_and_quit(self) -> None:
        runner = self.environment.runner
        workers = locust_adapter.worker_ids(runner)
        self._stop_once()
        if self.headless:
            locust_adapter.quit_stopped_workers(runner, workers)
            runner.quit()

    def _stop_once(self) -> None:
        """Stop the runner once; a second caller waits for the first stop's verdict."""
        if self._stop_greenlet is None:
            self._stop_greenlet = gevent.getcurrent()
            try:
                self.environment.runner.stop()
            finally:
                self._stop_greenlet = None
        elif self._stop_greenlet is not gevent.getcurrent():
            self._judged.wait(timeout=self.ctx.run.graceful_stop_s + 70 if self.ctx.run else 70)

    def _phase(self) -> str:
        state = self.environment.runner.state
        return "starting" if state == STATE_SPAWNING else "running"

    # -- judging -----------------------------------------------------------------------------------

    def live_verdict(self) -> Verdict | None:
        """The final verdict of the last run, or a live one while it runs (web UI)."""
        if self.verdict is not None or self.lifecycle is None or self.ctx.run is None:
            return self.verdict
        return self._judge()

    def _judge(self) -> Verdict:
        assert self.lifecycle is not None and self.ctx.run is not None
        from loadkit.plugin.arrival import arrival_counters
        from loadkit.plugin.outputs import output_problems
        from loadkit.plugin.purposes import purpose_measures
        from loadkit.plugin.queue import queue_inputs

        env = self.environment
        purpose = purpose_measures(env, self.elapsed_s(), self.lifecycle.stopped_at_s)
        notes = [*self.notes, *self.measurement.problems, *output_problems(env), *purpose.notes]
        queue = queue_inputs(env)
        return judge(
            self.ctx.run,
            self.measurement.collector,
            self.lifecycle,
            self.elapsed_s(),
            gauges={**queue.gauges, **purpose.gauges},
            counters={**arrival_counters(env), **queue.counters, **purpose.counters},
            figures=purpose.figures,
            notes=tuple(notes),
            measure_from_s=self.measure_from_s,
            explanations=queue.explanations,
            queue=queue.report,
        )

    def _watch_aborts(self, watch: AbortWatch) -> None:
        from loadkit.plugin.arrival import arrival_counters
        from loadkit.plugin.purposes import purpose_measures
        from loadkit.plugin.queue import queue_inputs

        while True:
            gevent.sleep(ABORT_CHECK_INTERVAL_S)
            queue = queue_inputs(self.environment, report=False)
            purpose = purpose_measures(self.environment, self.elapsed_s(), None)
            reason = watch.observe(
                self.elapsed_s(),
                self.measurement.collector.snapshot(),
                gauges={**queue.gauges, **purpose.gauges},
                counters={**arrival_counters(self.environment), **queue.counters},
                explanations=queue.explanations,
            )
            if reason is not None:
                self.end_now(RunState.ABORTED, reason)
                return

    # -- planning ----------------------------------------------------------------------------------

    def _plan_for_this_run(self) -> RunPlan:
        """``loadkit run``'s plan; else one built from the shape and the options (web UI, plain
        ``locust -f``), with a numbered results folder per start in a web UI session."""
        if self.ctx.planned is not None and self.runs_started == 1:
            return self.ctx.planned
        environment = self.environment
        options = environment.parsed_options
        profile_options = read_profile_options(options)
        shape = environment.shape_class
        stages: tuple[Any, ...] = ()
        profile = registry.CUSTOM_PROFILE
        if isinstance(shape, StagedShape):
            stages = shape.effective_stages
            profile = shape.run_profile_name(profile_options)
        elif shape is None and self.run_time_s is not None:
            users = int(getattr(options, "num_users", None) or 1)
            stages = closed_stages(users, self.run_time_s, getattr(options, "spawn_rate", None))
        base = self.ctx.planned
        from loadkit.plugin.arrival import arrival_spec_from_options

        arrival = arrival_spec_from_options(environment)
        plan = RunPlan(
            scenario=base.scenario if base else self.ctx.extras.get("scenario"),
            profile=profile,
            stages=tuple(stages),
            time_scale=profile_options.time_scale,
            user_scale=profile_options.user_scale,
            run_time_s=self.run_time_s if shape is not None else None,
            arrival=arrival if arrival != ArrivalSpec() else None,
            baseline=base.baseline if base else self.ctx.extras.get("baseline"),
            # Locust's --stop-timeout when given (> 0), else LOADKIT_GRACEFUL_STOP_S.
            graceful_stop_s=float(environment.stop_timeout or 0)
            or self.ctx.settings.graceful_stop_s,
        )
        root = self.ctx.results_root
        if root is not None:
            run_dir = root if self.headless else root / f"{self.runs_started}-{profile}"
            plan = replace(plan, results_dir=str(run_dir))
        return plan

    # -- greenlets ---------------------------------------------------------------------------------

    def _spawn(self, run: Any, *args: Any) -> None:
        self._greenlets.append(gevent.spawn(run, *args))

    def _kill_greenlets(self) -> None:
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        self._greenlets = []


def control_of(environment: Environment) -> RunControl | None:
    return context_of(environment).control


def is_master(environment: Environment) -> bool:
    return isinstance(environment.runner, MasterRunner)
