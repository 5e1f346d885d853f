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
  the rate (looking at the clock every 2 ms at most), hands the iteration to a parked, reusable
  iteration greenlet that runs one task on that user's client (whose connection pool is sized to
  the in-flight cap, so the pool never queues a request). Further instances of
  the class wait and take over if the driver is stopped: Locust's user count does not set the
  load, the rate does (run at least one user per worker).
* The rate is split across workers: the master puts its worker count into ``parsed_options`` at
  ``test_start`` (Locust copies custom options into every spawn message, before a worker's
  ``test_start``), and worker ``i`` of ``n`` starts every ``n``-th iteration of the cluster.
* Iterations beyond ``--max-in-flight`` are dropped and counted, and so are iterations the
  generator itself is too far behind to start on time (its CPU is saturated): past its capacity
  the delivered rate stays at that capacity instead of queueing without bound. An iteration
  counts as started when it begins running. Workers ship the counts with
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
import random
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import configargparse
import gevent
from gevent.event import Event
from gevent.hub import Waiter
from gevent.pool import Group
from locust import FastHttpUser, TaskSet, User
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.exception import StopTest, StopUser
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner
from locust.user.users import LOCUST_STATE_RUNNING

from loadkit import registry
from loadkit.core.arrival_schedule import (
    Admission,
    ArrivalError,
    ArrivalPlan,
    ArrivalSchedule,
    Share,
    parse_max_in_flight,
    parse_rate,
    parse_rate_stage,
    parse_rate_stages,
)
from loadkit.core.plan import ArrivalSpec
from loadkit.core.profiles import split_stage_specs
from loadkit.endpoints import INTENDED_REQUEST_TYPE, NON_HTTP_REQUEST_TYPES
from loadkit.leanclient import LeanHttpUser
from loadkit.measure.collector import Collector
from loadkit.plugin import locust_adapter
from loadkit.plugin.context import context_of
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.plugin.measurement import measurement_of, record_side_row

logger = logging.getLogger("loadkit.arrival")

RATE_ENV: Final = "LOADKIT_RATE"
RATE_STAGES_ENV: Final = "LOADKIT_RATE_STAGES"
MAX_IN_FLIGHT_ENV: Final = "LOADKIT_MAX_IN_FLIGHT"
#: Counter names: the verdict knows ``dropped_iterations`` (``baselines.COUNTERS``).
DROPPED_ITERATIONS: Final = "dropped_iterations"
STARTED_ITERATIONS: Final = "iterations_started"
#: The part of ``dropped_iterations`` the generator reached too late to start (it was behind).
LATE_ITERATIONS: Final = "dropped_late_iterations"
#: Longest the driver sleeps between looks at the clock and its user's state: bounds how late a
#: graceful stop is noticed when the next iteration is far away (rate 0, profile over).
MAX_SLEEP_S: Final = 0.05


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
    if locust_adapter.has_option(parser, "--rate"):
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
    # In the web UI's form only where they steer something: a scenario with an arrival-rate
    # user (Locust builds the form's parser after loading the locustfiles).
    if isinstance(parser, LocustArgumentParser) and _arrival_rate_user_loaded():
        for option in ("--rate", "--rate-stage", "--max-in-flight"):
            locust_adapter.show_in_web_ui(parser, option)


def _arrival_rate_user_loaded() -> bool:
    """Whether a concrete arrival-rate user class has been defined (its locustfile loaded)."""
    pending = list(ArrivalRateUser.__subclasses__())
    while pending:
        cls = pending.pop()
        if not cls.abstract:
            return True
        pending.extend(cls.__subclasses__())
    return False


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

    def spec(self) -> ArrivalSpec:
        """The options as the run plan keeps them (rate stages scaled by ``--time-scale``)."""
        stages = parse_rate_stages(self.rate_stage_specs, time_scale=self.time_scale)
        if stages and self.rate_per_s is not None:
            raise ArrivalError("give a rate or rate stages, not both")
        return ArrivalSpec(stages, self.rate_per_s, self.max_in_flight)


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

    Put it first among the bases (``class SchedulingUser(ArrivalRateUser, PlatformUser)``);
    ``rate_per_s`` optionally sets the default rate. Each iteration runs one of the class's
    ``@task`` methods (weighted, as in any Locust user) on the driving user's client,
    concurrently with the other iterations in flight. ``wait_time`` is not used. Tasks must be
    plain functions (no nested TaskSets), and should not call ``self.wait()``.
    """

    abstract = True
    rate_per_s: ClassVar[float | None] = None
    """Iterations per second (whole cluster) when neither ``--rate`` nor ``--rate-stage`` is
    given; None: the scenario's default rate in the registry (``loadkit scenarios``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        clients = [c for c in (FastHttpUser, LeanHttpUser) if c in mro]
        if clients and mro.index(clients[0]) < mro.index(ArrivalRateUser):
            raise TypeError(
                f"{cls.__name__}: put ArrivalRateUser before the HTTP user class in its bases, "
                "so the client's connection pool is sized for the in-flight iterations"
            )
        nested = [t for t in cls.tasks if isinstance(t, type) and issubclass(t, TaskSet)]
        if not cls.abstract and (not cls.tasks or nested):
            raise TypeError(f"{cls.__name__}: an arrival-rate user needs plain @task methods")

    def __init__(self, environment: Environment) -> None:
        executor = tracker_of(environment).executor_for(type(self))
        # The HTTP user builds its client in __init__ from this class-level knob: one connection
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


#: The driver never sleeps less than this between looks at the clock: iterations that fall due
#: within it start together. A 1 ms ``gevent.sleep`` costs ~50 µs of CPU on the development
#: machine (timer, epoll, switch); waking once per iteration (every 0.3 ms at 3,500/s) cost more
#: than batching them. The tick delays a start by at most 2 ms, which the INTENDED rows show.
MIN_SLEEP_S: Final = 0.002
#: An iteration the driver reaches more than this after its intended start is dropped (and
#: counted in ``Admission.dropped_late``) instead of started: the generator itself is behind
#: (its CPU is saturated), and starting everything late would queue without bound -- memory
#: grows, latency reads the generator's own queue, and delivered load collapses. Dropping keeps
#: the delivered rate at what the generator can do (a plateau), like k6 running out of VUs.
MAX_START_DELAY_S: Final = 0.1
#: An iteration is also dropped when one admitted earlier has waited this long without
#: beginning: handed-over iterations begin on the event loop's next turn, so one still waiting
#: after many ticks means the loop has more ready work than it can run (gevent runs up to 50
#: callbacks before it looks at the clock). Keeps the queue of admitted iterations short. 20 ms
#: also dropped ~3% at 3,500/s with the CPU at ~80%: on a shared machine the process loses its
#: core for tens of ms now and then, which is not saturation.
MAX_QUEUED_S: Final = 0.05


class _Iteration(gevent.Greenlet):
    """A reusable iteration greenlet (k6's VU): runs one iteration at a time, handed to it by the
    driver, and parks between iterations.

    Reused rather than spawned per iteration: creating, starting and reaping a greenlet cost
    about 20 µs, handing an iteration to a parked one about 2 µs. ``start_delay_ms`` is how late
    the current iteration started (read by the ``INTENDED`` rows).
    """

    def __init__(self, executor: _Executor, user: ArrivalRateUser, intended_s: float) -> None:
        super().__init__(self._serve, user, intended_s)
        self.executor = executor
        self.start_delay_ms = 0.0
        self._waiter: Waiter[tuple[ArrivalRateUser, float]] | None = None

    def hand_over(self, user: ArrivalRateUser, intended_s: float) -> None:
        """Give this parked greenlet its next iteration (it starts on the loop's next turn)."""
        waiter, self._waiter = self._waiter, None
        assert waiter is not None, "handed an iteration to a busy greenlet"
        waiter.hub.loop.run_callback(waiter.switch, (user, intended_s))

    def _serve(self, user: ArrivalRateUser, intended_s: float) -> None:
        executor = self.executor
        while True:
            executor.run_iteration(self, user, intended_s)
            waiter: Waiter[tuple[ArrivalRateUser, float]] = Waiter()
            self._waiter = waiter
            executor.idle.append(self)
            user, intended_s = waiter.get()


class _Executor:
    """One user class's arrival-rate executor in one process (see the module docstring).

    Accounting (``Admission``): every due iteration is either started (its task began running)
    or dropped -- at the in-flight cap, because the generator was too far behind
    (``MAX_START_DELAY_S``), or because the test ended before it could begin.
    """

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
        #: The schedule's zero: reset when the first driver begins (the first user of the class
        #: is built a while before its greenlet runs, and iterations due in between would
        #: otherwise all be late at once).
        self.started_at = clock()
        self.driven = False
        #: Set when the last host left and the iterations were killed: an iteration handed over
        #: just before (its greenlet not yet resumed) was already counted as dropped.
        self.stopped = False
        #: Every iteration greenlet, busy or parked (killed together when the test stops).
        self.iterations = Group()
        #: Parked iteration greenlets, ready for the next due iteration (last parked first).
        self.idle: list[_Iteration] = []
        #: Intended start times of the admitted iterations that have not begun yet, oldest
        #: first (they begin in the order they were handed over).
        self.waiting: deque[float] = deque()
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
                locust_adapter.mark_waiting(user)  # a graceful stop kills a waiter at once
                self.seat_free.clear()
                self.seat_free.wait()
                locust_adapter.mark_running(user)
            self.driver = user
            self.stopped = False
            if not self.driven:
                self.driven = True
                self.started_at = self.clock()
            try:
                self._drive(user)
            finally:
                self.driver = None
                self.seat_free.set()
        finally:
            self.hosts -= 1
            if self.hosts == 0:
                self._stop_iterations()
                self.vacant = True

    def _drive(self, user: ArrivalRateUser) -> None:
        schedule, admission, waiting = self.schedule, self.admission, self.waiting
        while not locust_adapter.is_stopping(user):
            now_s = self.elapsed_s()
            for intended_s in schedule.due(now_s):
                # Behind: this iteration is already too late, or one admitted earlier has not
                # even begun (the loop has more ready work than it can run).
                if now_s - intended_s > MAX_START_DELAY_S or (
                    waiting and now_s - waiting[0] > MAX_QUEUED_S
                ):
                    admission.drop_late()
                elif admission.admit():
                    waiting.append(intended_s)
                    self._dispatch(user, intended_s)
            next_s = schedule.next_start_s
            pause_s = MAX_SLEEP_S if next_s is None else min(MAX_SLEEP_S, next_s - self.elapsed_s())
            gevent.sleep(max(MIN_SLEEP_S, pause_s))
        if self.hosts == 1:  # graceful stop of the last host: let the iterations finish
            while admission.in_flight:
                gevent.sleep(0.01)

    def _dispatch(self, user: ArrivalRateUser, intended_s: float) -> None:
        """Start an admitted iteration on a parked greenlet, or on a new one if none is."""
        if self.idle:
            self.idle.pop().hand_over(user, intended_s)
        else:
            self.iterations.start(_Iteration(self, user, intended_s))

    def run_iteration(self, current: _Iteration, user: ArrivalRateUser, intended_s: float) -> None:
        """One iteration, in ``current``: one of the user's tasks (weighted), errors reported."""
        if self.stopped:
            return  # handed over before the stop: counted as dropped by _stop_iterations
        self.admission.begin()
        if self.waiting:
            self.waiting.popleft()
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

    def _stop_iterations(self) -> None:
        """Kill every iteration greenlet; admitted iterations that never began count as dropped."""
        self.stopped = True
        self.idle.clear()
        self.waiting.clear()
        self.iterations.kill(block=False)
        self.admission.abandon_in_flight()


# -- per-environment bookkeeping and Locust events ------------------------------------------------


class ArrivalTracker:
    """The executors of one environment, and their counts in the run's collector."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.executors: dict[type[ArrivalRateUser], _Executor] = {}
        self._synced = (0, 0, 0)

    # -- executors (local runner and workers) ----------------------------------------------------

    def executor_for(self, user_class: type[ArrivalRateUser]) -> _Executor:
        executor = self.executors.get(user_class)
        if executor is None:
            spec, workers = self.run_arrival()
            resolved = bool(spec.rate_stages) or spec.rate_per_s is not None
            default = 0.0 if resolved else default_rate_for(self.environment, user_class)
            plan = spec.arrival_plan(default)
            executor = _Executor(user_class, plan, self._share(workers))
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

    def run_arrival(self) -> tuple[ArrivalSpec, int]:
        """This run's rate (the run plan's; on a worker, the master's run message) and the
        number of processes that share it."""
        ctx = context_of(self.environment)
        if isinstance(self.environment.runner, WorkerRunner):
            message = ctx.extras.get("run_message") or {}
            data = message.get("arrival")
            spec = ArrivalSpec() if data is None else _spec_from_dict(data)
            return spec, int(message.get("workers") or 1)
        run = ctx.run
        if run is None:  # an Environment built by hand (Locust as a library): its options
            return arrival_spec_from_options(self.environment), 1
        return (run.arrival or ArrivalSpec()), 1

    def _share(self, workers: int) -> Share:
        runner = self.environment.runner
        if not isinstance(runner, WorkerRunner):
            return Share()
        return Share.of_worker(locust_adapter.worker_index(runner), max(1, workers))

    def local_counts(self) -> tuple[int, int, int]:
        """(started, dropped, of those dropped: late) by this process's executors in this run."""
        admissions = [e.admission for e in self.executors.values()]
        return (
            sum(a.started for a in admissions),
            sum(a.dropped for a in admissions),
            sum(a.dropped_late for a in admissions),
        )

    def sync_counters(self, collector: Collector) -> None:
        """Add what was started and dropped since the last sync to the run's collector (which
        ships them to the master with the rest of the measurements)."""
        if not self.executors:
            return
        started, dropped, late = self.local_counts()
        collector.count(STARTED_ITERATIONS, started - self._synced[0])
        collector.count(DROPPED_ITERATIONS, dropped - self._synced[1])
        collector.count(LATE_ITERATIONS, late - self._synced[2])
        self._synced = (started, dropped, late)

    # -- events ------------------------------------------------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        self.executors = {}
        self._synced = (0, 0, 0)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int = 0,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        """Record a request made inside an iteration again, timed from the intended start."""
        if request_type in NON_HTTP_REQUEST_TYPES or response_time is None:
            return
        current = gevent.getcurrent()
        if not isinstance(current, _Iteration):
            return
        record_side_row(
            self.environment,
            INTENDED_REQUEST_TYPE,
            f"{request_type} {name}",
            response_time + current.start_delay_ms,
            response_length,
            exception,
        )

    def on_spawning_complete(self, **_: Any) -> None:
        """Master: warn when a worker hosts no arrival user (its share of the rate is lost)."""
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return
        workers = runner.worker_count
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
        if isinstance(self.environment.runner, WorkerRunner):
            return
        counters = measurement_of(self.environment).collector.counters
        if STARTED_ITERATIONS in counters:
            print(summary_line(self.environment), flush=True)


def _spec_from_dict(data: dict[str, Any]) -> ArrivalSpec:
    from loadkit.core.arrival_schedule import RateStage

    stages = tuple(RateStage(float(d), float(r)) for d, r in data.get("rate_stages") or ())
    return ArrivalSpec(stages, data.get("rate_per_s"), data.get("max_in_flight"))


def default_rate_for(environment: Environment, user_class: type[ArrivalRateUser]) -> float:
    """The class's ``rate_per_s``, else the scenario's default rate in the registry."""
    if user_class.rate_per_s is not None:
        return float(user_class.rate_per_s)
    ctx = context_of(environment)
    message = ctx.extras.get("run_message") or {}
    scenario = ctx.run.scenario if ctx.run is not None else message.get("scenario")
    spec = registry.SCENARIOS.get(scenario or "")
    if spec is not None and spec.default_rate_per_s is not None:
        return spec.default_rate_per_s
    raise ArrivalError(
        f"{user_class.__name__} has no rate: set rate_per_s on the class or pass --rate"
    )


def arrival_spec_from_options(environment: Environment) -> ArrivalSpec:
    """The arrival options of a run started without a plan file (web UI, plain ``locust``)."""
    try:
        return read_arrival_options(environment.parsed_options).spec()
    except ArrivalError as exc:
        exit_invalid(str(exc))


def summary_line(environment: Environment) -> str:
    """``loadkit: arrival rate 50/s (in-flight cap 5): 300 iterations started, 12 dropped``.

    The rate and cap are the executors' here (a worker's share on a worker); the counts are
    the run's (the whole cluster's on a master).
    """
    counters = measurement_of(environment).collector.counters
    plans = [e.plan for e in tracker_of(environment).executors.values()]
    if not plans:
        spec, _ = tracker_of(environment).run_arrival()
        classes = arrival_classes(environment)
        plans = [spec.arrival_plan(default_rate_for(environment, c)) for c in classes]
    what = ", ".join(f"{p.profile.description} (in-flight cap {p.max_in_flight})" for p in plans)
    started = int(counters.get(STARTED_ITERATIONS, 0))
    dropped = int(counters.get(DROPPED_ITERATIONS, 0))
    late = int(counters.get(LATE_ITERATIONS, 0))
    why = f" ({late} because the generator fell behind)" if late else ""
    return (
        f"loadkit: arrival rate {what or '?'}: {started} iterations started, {dropped} dropped{why}"
    )


def tracker_of(environment: Environment) -> ArrivalTracker:
    """The environment's tracker (created on first use; ``install`` also subscribes it)."""
    ctx = context_of(environment)
    tracker = ctx.extras.get("arrival")
    if tracker is None:
        tracker = ctx.extras["arrival"] = ArrivalTracker(environment)
    return tracker


def arrival_classes(environment: Environment) -> list[type[ArrivalRateUser]]:
    """The run's user classes that use the arrival-rate executor."""
    classes = environment.runner.user_classes if environment.runner else environment.user_classes
    return [c for c in classes if isinstance(c, type) and issubclass(c, ArrivalRateUser)]


def arrival_counters(environment: Environment) -> dict[str, float]:
    """``{"dropped_iterations": n, "dropped_late_iterations": m}`` for the verdict, where the
    cluster's numbers live (local runner, or master once the workers' final measurements are
    in); ``{}`` when no arrival-rate executor ran (the criterion then reads "not reported")."""
    measurement = measurement_of(environment)
    measurement.sync_counters()
    counters = measurement.collector.counters
    if STARTED_ITERATIONS not in counters:
        return {}
    return {
        DROPPED_ITERATIONS: float(counters.get(DROPPED_ITERATIONS, 0)),
        LATE_ITERATIONS: float(counters.get(LATE_ITERATIONS, 0)),
    }


def install(environment: Environment) -> ArrivalTracker:
    """Subscribe the tracker to ``environment``'s events; call it from ``init`` (every process).

    On the local runner or master it also checks the options once (exit 2 on a bad combination).
    """
    tracker = tracker_of(environment)
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        _check_options(environment)
    measurement_of(environment).counter_syncs.append(tracker.sync_counters)
    events = environment.events
    events.test_start.add_listener(tracker.on_test_start)
    if arrival_classes(environment):  # ~1 µs a request otherwise spent finding no iteration
        events.request.add_listener(tracker.on_request)
    events.spawning_complete.add_listener(tracker.on_spawning_complete)
    events.worker_connect.add_listener(tracker.on_worker_connect)
    events.quit.add_listener(tracker.on_quit)
    return tracker


def _check_options(environment: Environment) -> None:
    """Bad arrival options exit 2 at start; given without an arrival-rate user, they warn."""
    try:
        arrival = read_arrival_options(environment.parsed_options)
        arrival.spec()
    except ArrivalError as exc:
        exit_invalid(str(exc))
    if arrival.given and not arrival_classes(environment):
        logger.warning("loadkit: --rate/--rate-stage/--max-in-flight ignored: no arrival-rate user")
