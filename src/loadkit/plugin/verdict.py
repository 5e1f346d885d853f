"""The end-of-run verdict, wired into Locust: where and when the baseline is judged.

Thin glue around pure code (``recorder``, ``baselines``, ``verdict``, ``verdict_output``):

* ``init`` (local runner or master): resolve the scenario, load and validate the baseline -- a
  bad file exits 2 before any user starts; attach the recorder (every process, so workers ship
  their samples).
* headless ``quitting`` (local or master): judge, write ``verdict.json`` / ``junit.xml`` /
  ``summary.txt`` and set the process exit code (the workers' final samples arrive within tens
  of ms of ``test_stop``, before the master quits); the console summary is printed at ``quit``,
  after Locust's own tables.
* web UI ``test_stop``: judge each stopped test once the workers' next reports are in (they send
  nothing extra on a stop); no exit code.
* while running: an abort watch (``abort_on_fail`` criteria) checks every second, and on a
  master a lost worker ends the run (``worker_watch``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from loadkit.core.baselines import Baseline, BaselineError, default_baseline_path, load_baseline
from loadkit.core.profiles import main_steady_window
from loadkit.core.verdict import AbortWatch, Verdict, evaluate
from loadkit.measure.recorder import RunRecorder, attach, wait_for_final_reports
from loadkit.plugin.arrival import arrival_counters
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.plugin.queue import queue_gauges
from loadkit.plugin.staged_shape import StagedShape, read_profile_options
from loadkit.plugin.web import register_baseline_tab
from loadkit.plugin.worker_watch import install_worker_watch
from loadkit.registry import SCENARIOS
from loadkit.results.locust_files import finalize_csv_at_exit, write_html_report
from loadkit.results.verdict_files import render_console, write_junit_xml, write_verdict_json

logger = logging.getLogger("loadkit.verdict")

RUN_DIR_ENV = "LOADKIT_RUN_DIR"
SCENARIO_ENV = "LOADKIT_SCENARIO"
BASELINE_ENV = "LOADKIT_BASELINE"
#: Seconds the master waits, after a web UI stop, for the workers' last samples (they report
#: every 3 s and send nothing extra on stop).
FINAL_REPORT_TIMEOUT_S = 10.0
ABORT_CHECK_INTERVAL_S = 1.0


def add_verdict_arguments(parser: Any) -> None:
    group = parser.add_argument_group("loadkit verdict")
    group.add_argument(
        "--baseline",
        env_var=BASELINE_ENV,
        default=None,
        help="baseline file (default: baselines/<scenario>.toml)",
    )
    group.add_argument(
        "--no-baseline",
        action="store_true",
        default=False,
        help="run without a verdict (like k6 --no-thresholds)",
    )
    group.add_argument(
        "--scenario",
        env_var=SCENARIO_ENV,
        default=None,
        help="scenario name for the baseline (default: the locustfile's name)",
    )
    group.add_argument(
        "--results-dir",
        env_var=RUN_DIR_ENV,
        default=None,
        help="folder for verdict.json, junit.xml and summary.txt",
    )


@dataclass
class VerdictHook:
    """Per-environment state of the verdict."""

    environment: Environment
    recorder: RunRecorder
    scenario: str | None
    baseline: Baseline | None
    results_dir: Path | None
    profile: str = "custom"
    window: tuple[float, float] | None = None
    window_description: str = ""
    spawned_at_s: float | None = None
    started_at_s: float | None = None
    aborted: str | None = None
    interrupted: bool = False
    lost_workers: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    printed: bool = False
    watchers: list[gevent.Greenlet] = field(default_factory=list)

    # -- events ---------------------------------------------------------------------------------

    def on_test_start(self, **_: Any) -> None:
        self.started_at_s = time.monotonic()
        self.spawned_at_s = None
        self.aborted = None
        self.interrupted = False
        self.lost_workers = []
        self.verdict = None
        self.profile, stages = self._profile()
        self.window = main_steady_window(stages) if stages else None
        self.window_description = (
            f"steady part of the {self.profile} profile" if self.window else ""
        )
        if self.baseline is not None:
            watch = AbortWatch(self.baseline, self.profile)
            if watch.active:
                self.watchers.append(gevent.spawn(self._watch_aborts, watch))

    def on_worker_lost(self, worker_id: str) -> None:
        self.lost_workers.append(worker_id)
        options = self.environment.parsed_options
        if getattr(options, "on_worker_loss", "end") == "end" and self.aborted is None:
            self.aborted = f"lost worker {worker_id} (--on-worker-loss end)"
            gevent.spawn(self.environment.runner.quit)

    def on_spawning_complete(self, **_: Any) -> None:
        if self.spawned_at_s is None and self.started_at_s is not None:
            self.spawned_at_s = time.monotonic() - self.started_at_s

    def on_test_stop(self, **_: Any) -> None:
        for watcher in self.watchers:
            watcher.kill(block=False)
        self.watchers.clear()
        if self.environment.parsed_options and not self.environment.parsed_options.headless:
            gevent.spawn(self.judge, False, FINAL_REPORT_TIMEOUT_S)

    def on_quitting(self, **_: Any) -> None:
        if self.environment.parsed_options and not self.environment.parsed_options.headless:
            return
        # Locust fires quitting twice on SIGTERM/Ctrl-C: first while the runner still runs (that
        # is how an interruption shows), then after stopping it, with the workers' last samples.
        if self.environment.runner.state in (STATE_RUNNING, STATE_SPAWNING):
            self.interrupted = True
        if self.interrupted:
            write_html_report(self.environment)
        # The master stops receiving worker reports once it quits: nothing to wait for here.
        verdict = self.judge(self.interrupted, final_report_wait_s=0.0)
        if verdict is not None:
            self.environment.process_exit_code = verdict.exit_code

    def on_quit(self, **_: Any) -> None:
        if self.verdict is not None and not self.printed:
            self.printed = True
            print(render_console(self.verdict), flush=True)
            if self.results_dir:
                print(f"loadkit: verdict written to {self.results_dir / 'verdict.json'}")

    # -- work -----------------------------------------------------------------------------------

    def judge(self, interrupted: bool, final_report_wait_s: float) -> Verdict | None:
        """Evaluate the baseline on what was recorded, write the outputs, keep the verdict."""
        if self.baseline is None or self.started_at_s is None:
            return None
        if isinstance(self.environment.runner, MasterRunner) and not wait_for_final_reports(
            self.recorder, final_report_wait_s
        ):
            missing = ", ".join(sorted(self.recorder.pending_sources()))
            logger.warning("loadkit: no final report from worker(s) %s; judging without", missing)
        verdict = self._evaluate(interrupted)
        self.verdict = verdict
        self.printed = False
        if self.results_dir:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            write_verdict_json(verdict, self.results_dir / "verdict.json")
            write_junit_xml(verdict, self.results_dir / "junit.xml")
            (self.results_dir / "summary.txt").write_text(render_console(verdict))
        return verdict

    def current_verdict(self) -> Verdict | None:
        """The final verdict of the last test, or a live one while a test runs (web UI)."""
        if self.verdict is not None or self.baseline is None or self.started_at_s is None:
            return self.verdict
        return self._evaluate(interrupted=False)

    def _evaluate(self, interrupted: bool) -> Verdict:
        assert self.baseline is not None
        window, description = self._measured_window()
        return evaluate(
            self.recorder.snapshot(window),
            self.baseline,
            profile=self.profile,
            window=window,
            window_description=description,
            gauges=queue_gauges(self.environment),
            counters=arrival_counters(self.environment),
            aborted=self.aborted,
            interrupted=interrupted and self.aborted is None,
            notes=tuple(f"lost worker {worker} during the run" for worker in self.lost_workers),
        )

    def _measured_window(self) -> tuple[tuple[float, float] | None, str]:
        """The profile's plateau, else the time after spawning completed, else the whole run."""
        elapsed_s = time.monotonic() - (self.started_at_s or time.monotonic())
        if self.window is not None:
            start_s, end_s = self.window
            if elapsed_s > start_s:
                return (start_s, min(end_s, elapsed_s)), self.window_description
        if self.spawned_at_s is not None and elapsed_s - self.spawned_at_s >= 1:
            return (self.spawned_at_s, elapsed_s), "after all users were started"
        return None, "whole run"

    def _profile(self) -> tuple[str, tuple[Any, ...]]:
        shape = self.environment.shape_class
        if not isinstance(shape, StagedShape):
            return "custom", ()
        stages = shape.effective_stages
        if read_profile_options(self.environment.parsed_options).stage_specs:
            return "custom", stages
        name = type(shape).__name__.removesuffix("Shape").lower()
        return (name if name in _PROFILE_NAMES else "custom"), stages

    def _watch_aborts(self, watch: AbortWatch) -> None:
        while True:
            gevent.sleep(ABORT_CHECK_INTERVAL_S)
            now_s = time.monotonic() - (self.started_at_s or 0.0)
            reason = watch.observe(
                now_s,
                self.recorder.snapshot(),
                gauges=queue_gauges(self.environment),
                counters=arrival_counters(self.environment),
            )
            if reason is not None:
                self.aborted = reason
                logger.error("loadkit: aborting the run: %s", reason)
                # From a fresh greenlet: stopping kills this watcher, which must not abort quit().
                gevent.spawn(self.environment.runner.quit)
                return


_PROFILE_NAMES = frozenset({"smoke", "average", "stress", "spike", "soak"})


def install(environment: Environment) -> VerdictHook | None:
    """Set up the recorder everywhere and the verdict where the aggregated numbers live."""
    recorder = attach(environment)
    if isinstance(environment.runner, WorkerRunner):
        return None
    finalize_csv_at_exit(environment)
    options = environment.parsed_options
    scenario = _scenario(environment)
    baseline: Baseline | None = None
    if options is not None and not options.no_baseline:
        if scenario is None:
            exit_invalid(
                "cannot tell which scenario this is: pass --scenario NAME "
                f"(one of {', '.join(SCENARIOS)}) or --no-baseline"
            )
        path = options.baseline or default_baseline_path(scenario)
        try:
            baseline = load_baseline(path, scenario)
        except BaselineError as exc:
            exit_invalid(f"invalid baseline: {exc}")
    results_dir = Path(options.results_dir) if options and options.results_dir else None
    hook = VerdictHook(environment, recorder, scenario, baseline, results_dir)
    events = environment.events
    events.test_start.add_listener(hook.on_test_start)
    events.spawning_complete.add_listener(hook.on_spawning_complete)
    events.test_stop.add_listener(hook.on_test_stop)
    events.quitting.add_listener(hook.on_quitting)
    events.quit.add_listener(hook.on_quit)
    install_worker_watch(environment, hook.on_worker_lost)
    register_baseline_tab(environment, hook.current_verdict)
    environment.loadkit_verdict = hook  # type: ignore[attr-defined]
    return hook


def _scenario(environment: Environment) -> str | None:
    options = environment.parsed_options
    if options is not None and options.scenario:
        return str(options.scenario)
    locustfiles = str(getattr(options, "locustfile", "") or "")
    for part in locustfiles.split(","):
        stem = Path(part.strip()).stem
        if stem in SCENARIOS:
            return stem
    return None
