"""Open-model load in Locust: start N iterations per second whatever the platform's response time.

Why: Locust users are a closed model -- each waits for its reply before sending again, so a slow
platform quietly receives less load (coordinated omission), and ``constant_throughput`` is per
user and never catches up. An arrival-rate user class starts iterations on a timetable instead,
like k6's ``constant-arrival-rate`` / ``ramping-arrival-rate``. The arithmetic lives in
``arrival_schedule`` (pure); this module maps it onto Locust:

* ``ArrivalRateUser`` -- a mixin a scenario opts in with (``class S(ArrivalRateUser,
  PlatformUser)``); its ``@task`` methods are what one iteration runs (weighted, as usual).
* One executor per user class per load-generator process. The first user instance of that class
  in the process drives it: a loop that, at each intended start time of the process's share of
  the rate, spawns an iteration greenlet running one task on that user's client (whose connection
  pool is sized to the in-flight cap, so the pool never queues a request). Further instances of
  the class wait and take over if the driver is stopped: Locust's user count does not set the
  load, the rate does (run at least one user per worker).
* The rate is split across workers: the master puts its worker count into ``parsed_options`` at
  ``test_start`` (Locust copies custom options into every spawn message, before a worker's
  ``test_start``), and worker ``i`` of ``n`` starts every ``n``-th iteration of the cluster.
* Iterations beyond ``--max-in-flight`` are dropped and counted; workers ship the counts with
  their stats reports, so the master (or local runner) knows the cluster's ``dropped_iterations``
  (``arrival_counters``) and prints them at the end of the run.
* Each request made inside an iteration is recorded twice: as usual (timed from its send), and as
  ``INTENDED <method> <name>`` timed from the iteration's intended start (the send-time latency
  plus how late the iteration started). ``INTENDED`` rows stay out of the HTTP totals.

Registered by the kit's plugin: ``add_arrival_arguments`` on Locust's parser, ``install`` from
``init`` (every process).
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import configargparse
import gevent
from gevent.event import Event
from gevent.pool import Group
from locust import FastHttpUser, TaskSet, User
from locust.env import Environment
from locust.exception import StopTest, StopUser
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner
from locust.user.users import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

from loadkit.core.arrival_schedule import (
    Admission,
    ArrivalError,
    ArrivalPlan,
    ArrivalSchedule,
    Share,
    parse_max_in_flight,
    parse_rate,
    parse_rate_stage,
)
from loadkit.core.profiles import split_stage_specs
from loadkit.endpoints import INTENDED_REQUEST_TYPE
from loadkit.measure.recorder import NON_HTTP_REQUEST_TYPES, RUN_ID_OPTION
from loadkit.plugin.invalid_input import exit_invalid

logger = logging.getLogger("loadkit.arrival")

RATE_ENV: Final = "LOADKIT_RATE"
RATE_STAGES_ENV: Final = "LOADKIT_RATE_STAGES"
MAX_IN_FLIGHT_ENV: Final = "LOADKIT_MAX_IN_FLIGHT"
#: Counter name the verdict knows (``baselines.COUNTERS``).
DROPPED_ITERATIONS: Final = "dropped_iterations"
#: Custom option the master sets at ``test_start``: how many workers share the rate.
WORKERS_OPTION: Final = "loadkit_arrival_workers"
#: Key of this module's counts in Locust's worker->master stats report.
REPORT_KEY: Final = "loadkit_arrival"
#: Longest the driver sleeps between looks at the clock and its user's state: bounds how late a
#: graceful stop is noticed when the next iteration is far away (rate 0, profile over).
MAX_SLEEP_S: Final = 0.05
_TRACKER_ATTR: Final = "loadkit_arrival"


# -- options --------------------------------------------------------------------------------------


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            parse(text)
        except ArrivalError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return parse(text)

    convert.__name__ = parse.__name__
    return convert


def _rate_stage_specs(text: str) -> str:
    """Validate ``30s:10`` (or a comma-separated list) and keep the text, like ``--stage``."""
    for spec in split_stage_specs([text]):
        parse_rate_stage(spec)
    return text


def add_arrival_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--rate``, ``--rate-stage`` and ``--max-in-flight`` on a Locust parser.

    Call it from an ``@events.init_command_line_parser`` listener; safe to call twice. Values
    are checked at parse time (a typo exits 2 before any load). On a configargparse parser they
    also read ``LOADKIT_RATE``, ``LOADKIT_RATE_STAGES`` (comma separated) and
    ``LOADKIT_MAX_IN_FLIGHT``.
    """
    if "--rate" in parser._option_string_actions:
        return

    def extras(env_var: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if isinstance(parser, configargparse.ArgumentParser):
            kwargs["env_var"] = env_var
        return kwargs

    group = parser.add_argument_group("loadkit arrival rate (open model)")
    group.add_argument(
        "--rate",
        type=_argparse_type(parse_rate),
        default=None,
        metavar="PER_S",
        help="iterations started per second across all workers, whatever the response time "
        "(default: the user class's rate_per_s). [env var: LOADKIT_RATE]",
        **extras(RATE_ENV),
    )
    group.add_argument(
        "--rate-stage",
        action="append",
        type=_argparse_type(_rate_stage_specs),
        default=None,
        metavar="DURATION:PER_S",
        help="k6-style arrival-rate stage, repeatable or comma-separated (30s:10 ramps to 10/s "
        "over 30 s); --time-scale applies. [env var: LOADKIT_RATE_STAGES, comma separated]",
        **extras(RATE_STAGES_ENV),
    )
    group.add_argument(
        "--max-in-flight",
        type=_argparse_type(parse_max_in_flight),
        default=None,
        metavar="N",
        help="iterations allowed to run at once across all workers; a due iteration beyond it "
        "is dropped and counted (default: max(100, 10 s x peak rate)). "
        "[env var: LOADKIT_MAX_IN_FLIGHT]",
        **extras(MAX_IN_FLIGHT_ENV),
    )


@dataclass(frozen=True)
class ArrivalOptions:
    """The arrival knobs of one run, read from Locust's parsed options (None: not given)."""

    rate_per_s: float | None = None
    rate_stage_specs: tuple[str, ...] = ()
    max_in_flight: int | None = None
    time_scale: float = 1.0

    @property
    def given(self) -> bool:
        """Whether any arrival option was set (on the command line or in the environment)."""
        return bool(
            self.rate_per_s is not None or self.rate_stage_specs or self.max_in_flight is not None
        )

    def plan(self, user_class: type[ArrivalRateUser]) -> ArrivalPlan:
        """The cluster's plan for ``user_class`` (its ``rate_per_s`` is the default rate)."""
        return ArrivalPlan.build(
            default_rate_per_s=user_class.rate_per_s,
            rate_per_s=self.rate_per_s,
            rate_stage_specs=self.rate_stage_specs,
            max_in_flight=self.max_in_flight,
            time_scale=self.time_scale,
        )


def read_arrival_options(parsed_options: Any) -> ArrivalOptions:
    """The arrival knobs from ``parsed_options`` (None or missing attributes give defaults)."""
    rate = getattr(parsed_options, "rate", None)
    stages = getattr(parsed_options, "rate_stage", None)
    cap = getattr(parsed_options, "max_in_flight", None)
    scale = getattr(parsed_options, "time_scale", None)
    specs = [stages] if isinstance(stages, str) else [str(s) for s in stages or ()]
    return ArrivalOptions(
        rate_per_s=None if rate in (None, "") else parse_rate(rate),
        rate_stage_specs=tuple(split_stage_specs(specs)),
        max_in_flight=None if cap in (None, "") else parse_max_in_flight(cap),
        time_scale=float(scale) if scale not in (None, "") else 1.0,
    )


# -- the user class -------------------------------------------------------------------------------


class ArrivalRateUser(User):
    """Opt a scenario into the open model: its tasks run at a rate, not in a closed loop.

    Put it first among the bases (``class SchedulingUser(ArrivalRateUser, PlatformUser)``) and
    set ``rate_per_s``; each iteration runs one of the class's ``@task`` methods (weighted, as
    in any Locust user) on the driving user's client, concurrently with the other iterations in
    flight. ``wait_time`` is not used. Tasks must be plain functions (no nested TaskSets), and
    should not call ``self.wait()``.
    """

    abstract = True
    rate_per_s: ClassVar[float] = 1.0
    """Iterations per second (whole cluster) when neither ``--rate`` nor ``--rate-stage`` is
    given."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        if FastHttpUser in mro and mro.index(FastHttpUser) < mro.index(ArrivalRateUser):
            raise TypeError(
                f"{cls.__name__}: put ArrivalRateUser before the HTTP user class in its bases, "
                "so the client's connection pool is sized for the in-flight iterations"
            )
        nested = [t for t in cls.tasks if isinstance(t, type) and issubclass(t, TaskSet)]
        if not cls.abstract and (not cls.tasks or nested):
            raise TypeError(f"{cls.__name__}: an arrival-rate user needs plain @task methods")

    def __init__(self, environment: Environment) -> None:
        executor = tracker_of(environment).executor_for(type(self))
        # FastHttpUser builds its client in __init__ from this class-level knob: one connection
        # per iteration in flight, so the pool never delays a request (the delay would count
        # as response time).
        self.concurrency = executor.admission.max_in_flight
        super().__init__(environment)

    def run(self) -> None:  # type: ignore[misc]  # User.run is final: replaced on purpose
        """Host this class's executor instead of looping over tasks (mirrors ``User.run``)."""
        self._state = LOCUST_STATE_RUNNING
        try:
            try:
                self.on_start()
            except Exception as exc:
                logger.error("%s\n%s", exc, traceback.format_exc())
                if not isinstance(exc, (StopUser, StopTest)):
                    self.environment.events.user_error.fire(
                        user_instance=self, exception=exc, tb=exc.__traceback__
                    )
                raise
            tracker_of(self.environment).executor_for(type(self)).host(self)
        except (gevent.GreenletExit, StopUser, StopTest):
            pass
        self.on_stop()


class _Iteration(gevent.Greenlet):
    """An iteration's greenlet; carries how late it started, for the intended-start rows."""

    def __init__(self, run: Callable[..., Any], *args: Any) -> None:
        super().__init__(run, *args)
        self.start_delay_ms = 0.0


class _Executor:
    """One user class's arrival-rate executor in one process (see the module docstring)."""

    def __init__(
        self,
        user_class: type[ArrivalRateUser],
        plan: ArrivalPlan,
        share: Share,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.user_class = user_class
        self.plan = plan
        self.share = share
        self.schedule = ArrivalSchedule(plan.profile, share)
        self.admission = Admission(share.portion(plan.max_in_flight))
        self.clock = clock
        self.started_at = clock()
        self.iterations = Group()
        self.driver: ArrivalRateUser | None = None
        self.hosts = 0
        self.seat_free = Event()
        self.vacant = False

    def elapsed_s(self) -> float:
        return self.clock() - self.started_at

    def host(self, user: ArrivalRateUser) -> None:
        """Run in ``user``'s greenlet until it stops: drive the schedule, or wait to take over."""
        self.hosts += 1
        try:
            if self.vacant:  # nobody hosted this class for a while: nothing was due to anyone
                skipped = self.schedule.skip_until(self.elapsed_s())
                self.vacant = False
                logger.info("loadkit: %d iterations skipped while no user ran", skipped)
            while self.driver is not None:
                user._state = LOCUST_STATE_WAITING  # a graceful stop kills a waiter at once
                self.seat_free.clear()
                self.seat_free.wait()
                user._state = LOCUST_STATE_RUNNING
            self.driver = user
            try:
                self._drive(user)
            finally:
                self.driver = None
                self.seat_free.set()
        finally:
            self.hosts -= 1
            if self.hosts == 0:
                self.iterations.kill(block=False)
                self.admission.abandon_in_flight()
                self.vacant = True

    def _drive(self, user: ArrivalRateUser) -> None:
        schedule, admission = self.schedule, self.admission
        while user._state != LOCUST_STATE_STOPPING:
            for intended_s in schedule.due(self.elapsed_s()):
                if admission.try_start():
                    self.iterations.start(_Iteration(self._iterate, user, intended_s))
            next_s = schedule.next_start_s
            pause_s = MAX_SLEEP_S if next_s is None else min(MAX_SLEEP_S, next_s - self.elapsed_s())
            gevent.sleep(max(0.0, pause_s))
        if self.hosts == 1:  # graceful stop of the last host: let the iterations finish
            self.iterations.join()

    def _iterate(self, user: ArrivalRateUser, intended_s: float) -> None:
        current = gevent.getcurrent()
        if isinstance(current, _Iteration):
            current.start_delay_ms = max(0.0, (self.elapsed_s() - intended_s) * 1000)
        try:
            random.choice(user.tasks)(user)
        except Exception as exc:
            user.environment.events.user_error.fire(
                user_instance=user, exception=exc, tb=exc.__traceback__
            )
            logger.error("%s\n%s", exc, traceback.format_exc())
        finally:
            self.admission.finish()


# -- per-environment bookkeeping and Locust events ------------------------------------------------


class ArrivalTracker:
    """The executors of one environment and the iteration counts, local or cluster-wide."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.executors: dict[type[ArrivalRateUser], _Executor] = {}
        self._shipped = (0, 0)
        #: Master only: counts added up from the workers' reports in this run.
        self.cluster_started = 0
        self.cluster_dropped = 0
        self.reports = 0

    # -- executors (local runner and workers) ----------------------------------------------------

    def executor_for(self, user_class: type[ArrivalRateUser]) -> _Executor:
        executor = self.executors.get(user_class)
        if executor is None:
            options = read_arrival_options(self.environment.parsed_options)
            executor = _Executor(user_class, options.plan(user_class), self._share())
            self.executors[user_class] = executor
            logger.info(
                "loadkit: %s starts %s (share %d of %d, in-flight cap %d)",
                user_class.__name__,
                executor.plan.profile.description,
                executor.share.index + 1,
                executor.share.count,
                executor.admission.max_in_flight,
            )
        return executor

    def _share(self) -> Share:
        runner = self.environment.runner
        if not isinstance(runner, WorkerRunner):
            return Share()
        count = getattr(self.environment.parsed_options, WORKERS_OPTION, None) or 1
        return Share.of_worker(runner.worker_index, int(count))

    def local_counts(self) -> tuple[int, int]:
        """(started, dropped) by this process's executors in this run."""
        admissions = [e.admission for e in self.executors.values()]
        return sum(a.started for a in admissions), sum(a.dropped for a in admissions)

    # -- totals ------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether an arrival-rate executor ran in this run (here, or on a reporting worker)."""
        return bool(self.executors) or self.reports > 0

    def totals(self) -> tuple[int, int]:
        """(started, dropped) for the whole run: this process's, or the cluster's on a master."""
        if isinstance(self.environment.runner, MasterRunner):
            return self.cluster_started, self.cluster_dropped
        return self.local_counts()

    # -- events ------------------------------------------------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        self.executors = {}
        self._shipped = (0, 0)
        self.cluster_started = self.cluster_dropped = self.reports = 0
        runner = environment.runner
        if isinstance(runner, MasterRunner) and environment.parsed_options is not None:
            setattr(environment.parsed_options, WORKERS_OPTION, runner.worker_count)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int = 0,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """Record a request made inside an iteration again, timed from the intended start."""
        if request_type in NON_HTTP_REQUEST_TYPES or response_time is None:
            return
        current = gevent.getcurrent()
        if not isinstance(current, _Iteration):
            return
        self.environment.events.request.fire(
            request_type=INTENDED_REQUEST_TYPE,
            name=f"{request_type} {name}",
            response_time=response_time + current.start_delay_ms,
            response_length=response_length,
            exception=exception,
            context=context or {},
        )

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        if not self.executors:
            return
        started, dropped = self.local_counts()
        data[REPORT_KEY] = {
            "run": getattr(self.environment.parsed_options, RUN_ID_OPTION, None),
            "started": started - self._shipped[0],
            "dropped": dropped - self._shipped[1],
        }
        self._shipped = (started, dropped)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        payload = data.get(REPORT_KEY)
        if payload is None:
            return
        ours = getattr(self.environment.parsed_options, RUN_ID_OPTION, None)
        if ours is not None and payload.get("run") not in (None, ours):
            return  # the tail of a previous run
        self.cluster_started += int(payload["started"])
        self.cluster_dropped += int(payload["dropped"])
        self.reports += 1

    def on_spawning_complete(self, **_: Any) -> None:
        """Master: warn when a worker hosts no arrival user (its share of the rate is lost)."""
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return
        workers = getattr(self.environment.parsed_options, WORKERS_OPTION, None)
        nodes = list(runner.clients.values())
        for user_class in arrival_classes(self.environment):
            hosting = sum(1 for n in nodes if n.user_classes_count.get(user_class.__name__, 0))
            if workers and hosting < workers:
                logger.warning(
                    "loadkit: only %d of %d workers run %s, so only %d/%d of its rate is "
                    "delivered: run at least one user per worker (-u >= %d)",
                    hosting, workers, user_class.__name__, hosting, workers, workers,
                )  # fmt: skip

    def on_worker_connect(self, client_id: str, **_: Any) -> None:
        if self.environment.runner.state in (STATE_SPAWNING, STATE_RUNNING) and arrival_classes(
            self.environment
        ):
            logger.warning(
                "loadkit: worker %s joined a running test: arrival-rate shares were fixed at "
                "the start (use --expect-workers), so the delivered rate may be off",
                client_id,
            )

    def on_quit(self, **_: Any) -> None:
        if not self.active or isinstance(self.environment.runner, WorkerRunner):
            return
        print(summary_line(self.environment), flush=True)


def summary_line(environment: Environment) -> str:
    """``loadkit: arrival rate 50/s (in-flight cap 5): 300 iterations started, 12 dropped``."""
    tracker = tracker_of(environment)
    started, dropped = tracker.totals()
    options = read_arrival_options(environment.parsed_options)
    plans = [options.plan(c) for c in arrival_classes(environment)]
    what = ", ".join(f"{p.profile.description} (in-flight cap {p.max_in_flight})" for p in plans)
    return f"loadkit: arrival rate {what or '?'}: {started} iterations started, {dropped} dropped"


def tracker_of(environment: Environment) -> ArrivalTracker:
    """The environment's tracker (created on first use; ``install`` also subscribes it)."""
    tracker = getattr(environment, _TRACKER_ATTR, None)
    if tracker is None:
        tracker = ArrivalTracker(environment)
        setattr(environment, _TRACKER_ATTR, tracker)
    return tracker


def arrival_classes(environment: Environment) -> list[type[ArrivalRateUser]]:
    """The run's user classes that use the arrival-rate executor."""
    classes = environment.runner.user_classes if environment.runner else environment.user_classes
    return [c for c in classes if isinstance(c, type) and issubclass(c, ArrivalRateUser)]


def arrival_counters(environment: Environment) -> dict[str, float]:
    """``{"dropped_iterations": n}`` for the verdict's ``counters``, where the cluster's numbers
    live (local runner, or master once the workers' final reports are in); ``{}`` when no
    arrival-rate executor ran (the criterion then reads "not reported")."""
    tracker = getattr(environment, _TRACKER_ATTR, None)
    if tracker is None or not tracker.active:
        return {}
    return {DROPPED_ITERATIONS: float(tracker.totals()[1])}


def install(environment: Environment) -> ArrivalTracker:
    """Subscribe the tracker to ``environment``'s events; call it from ``init`` (every process).

    On the local runner or master it also checks the options once (exit 2 on a bad combination)
    and, for a headless run with rate stages and no ``--run-time`` or shape, stops the run when
    the stages end, as a profile would.
    """
    tracker = tracker_of(environment)
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        _check_options(environment)
    events = environment.events
    events.test_start.add_listener(tracker.on_test_start)
    events.request.add_listener(tracker.on_request)
    events.report_to_master.add_listener(tracker.on_report_to_master)
    events.worker_report.add_listener(tracker.on_worker_report)
    events.spawning_complete.add_listener(tracker.on_spawning_complete)
    events.worker_connect.add_listener(tracker.on_worker_connect)
    events.quit.add_listener(tracker.on_quit)
    return tracker


def _check_options(environment: Environment) -> None:
    options = environment.parsed_options
    try:
        arrival = read_arrival_options(options)
        plans = [arrival.plan(c) for c in arrival_classes(environment)]
    except ArrivalError as exc:
        exit_invalid(str(exc))
    if arrival.given and not plans:
        logger.warning("loadkit: --rate/--rate-stage/--max-in-flight ignored: no arrival-rate user")
        return
    headless = bool(getattr(options, "headless", False))
    run_time = getattr(options, "run_time", None)
    if arrival.rate_stage_specs and headless and not run_time and not environment.shape_class:
        duration_s = max(p.profile.duration_s for p in plans)
        if math.isfinite(duration_s):
            options.run_time = duration_s
            logger.info("loadkit: run time set to %g s, the rate stages' length", duration_s)
