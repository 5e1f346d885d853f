"""The arrival-rate executor: its rate arithmetic with a fake clock, its options, and its Locust
glue in-process for a second (the real-process proof is tests/test_arrival_e2e.py)."""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import configargparse
import gevent
import pytest
from locust import User, task
from locust.env import Environment

from loadkit.cli import main as cli
from loadkit.core.arrival_schedule import (
    Admission,
    ArrivalError,
    ArrivalPlan,
    ArrivalSchedule,
    RateProfile,
    RateStage,
    Share,
    default_max_in_flight,
    parse_max_in_flight,
    parse_rate,
    parse_rate_stage,
    parse_rate_stages,
)
from loadkit.core.profiles import ProfileError
from loadkit.endpoints import INTENDED_REQUEST_TYPE
from loadkit.measure.collector import Collector
from loadkit.plugin.arrival import (
    ArrivalRateUser,
    add_arrival_arguments,
    arrival_counters,
    install,
    read_arrival_options,
    summary_line,
    tracker_of,
)

# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "rate"), [("50", 50.0), ("12.5", 12.5), (" 3/s ", 3.0), (7, 7.0)])
def test_parse_rate(text: Any, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "inf", "5/min", "1e3"])
def test_parse_rate_rejects_in_one_line(text: str) -> None:
    with pytest.raises(ArrivalError, match="invalid rate") as caught:
        parse_rate(text)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ProfileError)  # reported like any profile error


def test_parse_rate_stage() -> None:
    assert parse_rate_stage("30s:10") == RateStage(30.0, 10.0)
    assert parse_rate_stage("1m30s:2.5") == RateStage(90.0, 2.5)
    assert parse_rate_stage("10s:0") == RateStage(10.0, 0.0)  # ramping down to zero is fine


@pytest.mark.parametrize(
    ("spec", "why"),
    [("30s", "missing ':'"), ("3x:5", "unknown unit"), ("5s:-1", "invalid rate"), (":5", "empty")],
)
def test_parse_rate_stage_rejects(spec: str, why: str) -> None:
    with pytest.raises(ArrivalError, match=why):
        parse_rate_stage(spec)


def test_parse_rate_stages_splits_commas_and_scales_time() -> None:
    stages = parse_rate_stages(["30s:10,1m:50", "10s:0"], time_scale=0.1)
    assert stages == (RateStage(3.0, 10.0), RateStage(6.0, 50.0), RateStage(1.0, 0.0))


def test_parse_max_in_flight() -> None:
    assert parse_max_in_flight("5") == 5
    for bad in ("0", "-1", "2.5", "many"):
        with pytest.raises(ArrivalError, match="max in flight"):
            parse_max_in_flight(bad)


# -- the rate over time ---------------------------------------------------------------------------


def test_constant_rate_starts_iteration_j_at_j_over_rate() -> None:
    profile = RateProfile.constant(50)
    assert [profile.start_time_s(j) for j in range(4)] == [0.0, 0.02, 0.04, 0.06]
    assert profile.start_time_s(3600 * 50) == pytest.approx(3600.0)  # no drift after an hour
    assert profile.duration_s == math.inf
    assert profile.iterations_by(10.0) == pytest.approx(500.0)
    assert profile.rate_at(123.0) == 50.0


def test_ramp_from_zero_follows_the_integral() -> None:
    # 0 -> 10/s over 10 s: N(t) = t^2 / 2, so iteration j is due at sqrt(2j); 50 in all.
    profile = RateProfile.ramping([RateStage(10.0, 10.0)])
    for j in (0, 1, 8, 18, 49):
        assert profile.start_time_s(j) == pytest.approx(math.sqrt(2 * j))
    assert profile.start_time_s(50) is None  # the profile is over
    assert profile.total_iterations == pytest.approx(50.0)
    assert profile.rate_at(5.0) == pytest.approx(5.0)
    assert profile.rate_at(10.0) == 0.0


def test_stages_hold_jump_and_ramp_down() -> None:
    # k6 semantics: 0 before the first stage; "0s:20" jumps; "10s:0" ramps down to 0.
    profile = RateProfile.ramping(
        [RateStage(5.0, 0.0), RateStage(0.0, 20.0), RateStage(5.0, 20.0), RateStage(10.0, 0.0)]
    )
    assert profile.start_time_s(0) == 5.0  # nothing is due during the idle first stage
    assert profile.start_time_s(1) == pytest.approx(5.05)
    assert profile.iterations_by(10.0) == pytest.approx(100.0)
    starts = [profile.start_time_s(j) for j in range(200)]
    assert all(isinstance(t, float) for t in starts)
    assert starts == sorted(starts)
    # Ramp down 20 -> 0 over 10 s adds 100: N(10 + u) = 100 + 20u - u^2, so j = 175 -> u = 5.
    assert profile.start_time_s(175) == pytest.approx(15.0)
    assert profile.start_time_s(200) is None
    assert profile.peak_rate_per_s == 20.0
    assert profile.duration_s == 20.0


def test_count_in_each_stage_matches_its_area() -> None:
    profile = RateProfile.ramping([RateStage(30.0, 10.0), RateStage(60.0, 50.0)])
    starts = [profile.start_time_s(j) for j in range(2000)]
    due = [t for t in starts if t is not None]
    assert len(due) == round(0.5 * 30 * 10 + 0.5 * (10 + 50) * 60)  # 150 + 1800
    assert sum(1 for t in due if t < 30.0) == 150


# -- one process's schedule, with a fake clock ----------------------------------------------------


def test_schedule_returns_what_is_due_and_catches_up() -> None:
    schedule = ArrivalSchedule(RateProfile.constant(50))
    assert schedule.due(0.0) == [0.0]
    assert schedule.due(0.01) == []
    assert schedule.next_start_s == 0.02
    assert schedule.due(0.05) == [0.02, 0.04]
    # A caller that wakes 0.1 s late still gets every missed start, oldest first.
    assert schedule.due(0.15) == pytest.approx([0.06, 0.08, 0.10, 0.12, 0.14])


def test_schedule_skips_what_nobody_was_there_to_start() -> None:
    schedule = ArrivalSchedule(RateProfile.constant(10))
    assert schedule.due(0.0) == [0.0]
    assert schedule.skip_until(1.0) == 9
    assert schedule.due(1.0) == [1.0]


def test_schedule_ends_with_the_profile() -> None:
    schedule = ArrivalSchedule(RateProfile.ramping([RateStage(0.0, 4.0), RateStage(1.0, 4.0)]))
    assert schedule.due(10.0) == [0.0, 0.25, 0.5, 0.75]
    assert schedule.next_start_s is None


def test_workers_split_the_cluster_rate_and_interleave() -> None:
    profile = RateProfile.ramping([RateStage(2.0, 30.0), RateStage(2.0, 30.0)])
    whole = ArrivalSchedule(profile).due(10.0)
    parts = [ArrivalSchedule(profile, Share(i, 3)).due(10.0) for i in range(3)]
    assert sorted(t for part in parts for t in part) == whole
    assert [len(p) for p in parts] == [30, 30, 30]
    assert parts[1][0] > parts[0][0]  # worker 1 starts between worker 0's iterations


def test_share_of_worker_and_portions() -> None:
    assert Share.of_worker(3, 2) == Share(1, 2)  # a reconnected worker's fresh index wraps
    assert Share.of_worker(0, 0) == Share(0, 1)
    assert [Share(i, 3).portion(10) for i in range(3)] == [4, 3, 3]
    assert [Share(i, 3).portion(2) for i in range(3)] == [1, 1, 1]  # never 0
    with pytest.raises(ArrivalError):
        Share(2, 2)


def test_admission_caps_in_flight_and_counts_drops() -> None:
    admission = Admission(2)
    assert [admission.try_start() for _ in range(3)] == [True, True, False]
    admission.finish()
    assert admission.try_start() is True
    assert (admission.started, admission.dropped, admission.in_flight) == (3, 1, 2)
    admission.abandon_in_flight()
    assert admission.in_flight == 0


def test_admission_counts_every_due_iteration_once() -> None:
    """Admitted iterations count as started when they begin; those the generator reached too
    late, and those admitted but cut off before they began, count as dropped."""
    admission = Admission(3)
    assert [admission.admit() for _ in range(4)] == [True, True, True, False]  # 4th: cap
    admission.begin()
    admission.begin()  # the third never begins: the test stops first
    admission.drop_late()
    assert (admission.started, admission.pending, admission.in_flight) == (2, 1, 3)
    admission.finish()
    admission.abandon_in_flight()
    assert (admission.started, admission.dropped, admission.dropped_late) == (2, 3, 1)
    assert admission.abandoned == 1
    assert admission.started + admission.dropped == 5  # every due iteration, once
    assert (admission.pending, admission.in_flight) == (0, 0)


def test_schedule_counts_what_it_issued() -> None:
    schedule = ArrivalSchedule(RateProfile.constant(10))
    schedule.due(0.95)
    schedule.due(1.95)
    assert schedule.issued == 20


def test_cap_against_a_slow_platform_drops_the_excess() -> None:
    """50/s of 0.5 s iterations with 5 in flight, simulated: 10/s start, 40/s are dropped."""
    schedule, admission = ArrivalSchedule(RateProfile.constant(50)), Admission(5)
    running: list[float] = []  # end times
    for intended_s in schedule.due(10.0 - 1e-9):
        running = [end_s for end_s in running if end_s > intended_s]
        admission.in_flight = len(running)
        if admission.try_start():
            running.append(intended_s + 0.5)
    assert admission.started + admission.dropped == 500
    assert admission.started == 100
    assert admission.dropped == 400


def test_plan_defaults_and_conflicts() -> None:
    plan = ArrivalPlan.build(default_rate_per_s=50)
    assert plan.profile.description == "50/s"
    assert plan.max_in_flight == default_max_in_flight(50) == 500
    assert default_max_in_flight(2) == 100
    staged = ArrivalPlan.build(default_rate_per_s=50, rate_stage_specs=["10s:20"], time_scale=0.5)
    assert staged.profile.duration_s == 5.0
    assert (
        ArrivalPlan.build(default_rate_per_s=50, rate_per_s=5, max_in_flight=3).max_in_flight == 3
    )
    with pytest.raises(ArrivalError, match="not both"):
        ArrivalPlan.build(default_rate_per_s=50, rate_per_s=5, rate_stage_specs=["1s:5"])


# -- options --------------------------------------------------------------------------------------


def test_options_parse_on_a_configargparse_parser_with_env(monkeypatch: Any) -> None:
    parser = configargparse.ArgumentParser()
    add_arrival_arguments(parser)
    add_arrival_arguments(parser)  # idempotent
    monkeypatch.setenv("LOADKIT_RATE_STAGES", "10s:5,20s:10")
    monkeypatch.setenv("LOADKIT_MAX_IN_FLIGHT", "7")
    options = read_arrival_options(parser.parse_args([]))
    assert options.rate_stage_specs == ("10s:5", "20s:10")
    assert options.max_in_flight == 7
    assert read_arrival_options(parser.parse_args(["--rate-stage", "1s:1"])).rate_stage_specs == (
        "1s:1",
    )


@pytest.mark.parametrize(
    "argv", [["--rate", "fast"], ["--rate-stage", "10s"], ["--max-in-flight", "0"]]
)
def test_bad_option_values_exit_2_at_parse_time(argv: list[str], capsys: Any) -> None:
    parser = argparse.ArgumentParser()
    add_arrival_arguments(parser)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(argv)
    assert exited.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_read_arrival_options_defaults_and_web_strings() -> None:
    assert read_arrival_options(None) == read_arrival_options(argparse.Namespace())
    options = read_arrival_options(
        argparse.Namespace(rate="20", rate_stage="", max_in_flight="", time_scale="0.5")
    )
    assert (options.rate_per_s, options.rate_stage_specs, options.max_in_flight) == (20.0, (), None)
    assert options.time_scale == 0.5 and options.given


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "abc"], "loadkit: invalid rate 'abc'"),
        (["--rate", "5", "--rate-stage", "1s:5"], "loadkit: give --rate or --rate-stage, not both"),
        (["--rate-stage", "30s"], "loadkit: invalid rate stage '30s'"),
    ],
)
def test_cli_rejects_bad_rates_in_one_line(argv: list[str], message: str, capsys: Any) -> None:
    assert cli.main(["run", "scheduling", "--no-baseline", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_collector_keeps_intended_rows_out_of_the_http_total() -> None:
    recorder = Collector()
    recorder.start(run_id=None, start_epoch_s=1000.0, start_mono_s=0.0)
    recorder.record("POST", "/api/calls", 500.0, False, 1.5)
    recorder.record(INTENDED_REQUEST_TYPE, "POST /api/calls", 520.0, False, 1.5)
    snapshot = recorder.snapshot()
    assert snapshot["Aggregated"].count == 1
    assert snapshot["INTENDED POST /api/calls"].p50_ms == pytest.approx(520, rel=0.01)


# -- the Locust glue, in-process ------------------------------------------------------------------

ITERATION_S = 0.3


class SleepyUser(ArrivalRateUser, User):
    """An iteration "calls" for 0.3 s and reports it like an HTTP client would."""

    host = "http://127.0.0.1:9"  # never contacted
    rate_per_s = 20

    @task
    def call(self) -> None:
        started = time.perf_counter()
        gevent.sleep(ITERATION_S)
        self.environment.events.request.fire(
            request_type="GET",
            name="/sleep",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None,
            context={},
        )


def _environment(user_class: type[User] = SleepyUser, **options: Any) -> Environment:
    parsed = argparse.Namespace(
        rate=None, rate_stage=None, max_in_flight=None, time_scale=1.0, headless=True,
        run_time=None,
    )  # fmt: skip
    vars(parsed).update(options)
    environment = Environment(user_classes=[user_class], parsed_options=parsed)
    environment.create_local_runner()
    install(environment)
    return environment


def test_executor_runs_at_the_rate_caps_and_records_intended_rows() -> None:
    # 20/s of 0.3 s iterations with 3 in flight: about 10/s start, the rest are dropped.
    environment = _environment(max_in_flight=3)
    runner = environment.runner
    runner.start(3, spawn_rate=100)  # three users, one executor: the rate is not tripled
    gevent.sleep(1.0)
    runner.quit()
    started, dropped, late = tracker_of(environment).local_counts()
    assert started + dropped == pytest.approx(21, abs=2)
    assert 3 <= started <= 3 + 3 * (1.0 - ITERATION_S) / ITERATION_S + 1
    assert dropped >= 5
    assert late <= dropped
    assert arrival_counters(environment) == {
        "dropped_iterations": float(dropped),
        "dropped_late_iterations": float(late),
    }
    stats = environment.stats
    sent = stats.get("/sleep", "GET")
    intended = stats.get("GET /sleep", INTENDED_REQUEST_TYPE)
    assert sent.num_requests == intended.num_requests > 0
    assert intended.total_response_time >= sent.total_response_time
    assert "in-flight cap 3" in summary_line(environment)


BURN_S = 0.002


class BusyUser(ArrivalRateUser, User):
    """An iteration costs 2 ms of CPU: one process can run at most ~500 of them a second."""

    host = "http://127.0.0.1:9"  # never contacted
    rate_per_s = 2000
    ran = 0

    @task
    def burn(self) -> None:
        BusyUser.ran += 1
        end_s = time.perf_counter() + BURN_S
        while time.perf_counter() < end_s:
            pass


def test_a_saturated_generator_drops_what_it_cannot_start_and_loses_nothing() -> None:
    # 2000/s asked of a process that can run ~500/s: it runs what it can and counts the rest as
    # dropped -- never "started" iterations that never run, never a queue that grows.
    BusyUser.ran = 0
    environment = _environment(BusyUser)
    runner = environment.runner
    runner.start(1, spawn_rate=100)
    gevent.sleep(1.0)
    runner.quit()
    executor = tracker_of(environment).executors[BusyUser]
    admission = executor.admission
    assert admission.started == BusyUser.ran > 0  # started means it ran
    assert admission.started + admission.dropped == executor.schedule.issued  # nothing lost
    assert admission.dropped_late > admission.started  # the generator, not the cap, was the limit
    # Dropped because the generator was behind, or cut off by the stop; none at the cap (20000).
    assert admission.dropped == admission.dropped_late + admission.abandoned
    # Bounded: a handful of iteration greenlets, not one per due iteration (~2000 in 1 s).
    assert len(executor.iterations) < 100


def test_another_user_takes_over_when_the_driver_stops() -> None:
    environment = _environment(rate=50)
    runner = environment.runner
    runner.start(2, spawn_rate=100)
    gevent.sleep(0.2)
    executor = tracker_of(environment).executors[SleepyUser]
    first = executor.driver
    assert first is not None
    first.stop(force=True)
    gevent.sleep(0.2)
    assert executor.driver is not None and executor.driver is not first
    started_after_handover = executor.admission.started
    gevent.sleep(0.2)
    runner.quit()
    assert executor.admission.started > started_after_handover
    assert executor.admission.started == pytest.approx(0.6 * 50, abs=3)


def test_counters_are_empty_without_an_arrival_rate_run() -> None:
    environment = Environment(user_classes=[SleepyUser])
    assert arrival_counters(environment) == {}


def test_user_class_mistakes_fail_at_class_definition() -> None:
    from loadkit.plugin.user import PlatformUser

    with pytest.raises(TypeError, match="plain @task methods"):

        class NoTasks(ArrivalRateUser, User):
            pass

    with pytest.raises(TypeError, match="put ArrivalRateUser before"):

        class WrongOrder(PlatformUser, ArrivalRateUser):
            @task
            def call(self) -> None:
                pass
