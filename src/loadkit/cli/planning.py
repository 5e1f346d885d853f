"""From ``loadkit run``'s options to a checked ``RunPlan``: every input refused here, in one line.

Nothing is started before this returns, so a typo never costs a results folder, a platform start
or a request. The Locust process later reads the plan and decides nothing again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loadkit import registry
from loadkit.core.arrival_schedule import ArrivalError, parse_max_in_flight, parse_rate
from loadkit.core.baselines import load_baseline
from loadkit.core.durations import DurationError, parse_duration
from loadkit.core.plan import (
    DEFAULT_GRACEFUL_STOP_S,
    ArrivalSpec,
    PlanError,
    RunPlan,
    check_duration,
    closed_stages,
    hosting_stages,
    resolve_stages,
    scenario_baseline_path,
)
from loadkit.core.profiles import ProfileError
from loadkit.registry import ScenarioSpec
from loadkit.settings import Settings

#: The longest a run may wait for requests in flight once its load stopped.
MAX_GRACEFUL_STOP_S = 600.0


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


def plan_from_args(
    args: argparse.Namespace,
    scenario: ScenarioSpec,
    load_generators: int = 1,
    settings: Settings | None = None,
) -> RunPlan:
    """The run ``args`` ask for; ``UsageError``/``PlanError``/``BaselineError`` if they can't.

    ``load_generators`` is the number of processes that send load (workers, or 1): an
    arrival-rate scenario needs one user per process to host its share of the rate.
    """
    time_scale = _scale(args.time_scale, "--time-scale")
    user_scale = _scale(args.user_scale, "--user-scale")
    run_time_s = _run_time(args.run_time)
    arrival = _arrival(args, scenario, time_scale)
    profile_given = bool(args.profile or args.stage)
    if profile_given and args.users is not None:
        raise UsageError("--users cannot be combined with a profile or --stage (use --user-scale)")
    if profile_given:
        profile, stages = resolve_stages(
            args.profile,
            args.stage,
            time_scale=time_scale,
            user_scale=user_scale,
            recovery_s=recovery_option(args),
        )
    else:
        if run_time_s is None and not (scenario.is_arrival_rate and args.rate_stage):
            raise UsageError(
                "say how long the run lasts: --profile NAME, --stage DURATION:USERS or "
                "-t DURATION (a run always ends by itself)"
            )
        users = args.users if args.users is not None else scenario.default_users
        if scenario.is_arrival_rate:
            users = max(users, load_generators)
        if users < 1:
            raise UsageError(f"--users must be >= 1, got {users}")
        profile = registry.CUSTOM_PROFILE
        length_s = run_time_s or (arrival.duration_s if arrival is not None else None) or 0.0
        stages = closed_stages(users, length_s, args.spawn_rate)
    if scenario.is_arrival_rate:
        stages = hosting_stages(stages, max(load_generators, args.users or 1))
    baseline = None
    if not args.no_baseline:
        path = scenario_baseline_path(scenario.name, args.baseline)
        baseline = load_baseline(path, scenario.name) if path is not None else None
    return RunPlan(
        scenario=scenario.name,
        profile=profile,
        stages=stages,
        time_scale=time_scale,
        user_scale=user_scale,
        run_time_s=run_time_s if profile_given else None,
        arrival=arrival,
        baseline=baseline,
        graceful_stop_s=_graceful_stop(getattr(args, "graceful_stop", None), settings),
    )


def _graceful_stop(text: str | None, settings: Settings | None) -> float:
    """``--graceful-stop``, else ``LOADKIT_GRACEFUL_STOP_S``, else 5 s; 0 is allowed."""
    if text is None:
        return settings.graceful_stop_s if settings is not None else DEFAULT_GRACEFUL_STOP_S
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise UsageError(f"--graceful-stop: {exc}") from None
    if seconds > MAX_GRACEFUL_STOP_S:
        raise UsageError(f"--graceful-stop {text}: at most {MAX_GRACEFUL_STOP_S:g} s")
    return seconds


def check_metrics_source(plan: RunPlan, metrics_url: str | None, embedded: bool) -> None:
    """Refuse, before any load, a run whose baseline judges the platform's own metrics when
    nothing says where they are: the criterion would only show "no data" after the whole run.
    The embedded platform serves its own ``/metrics``."""
    if metrics_url is not None or embedded or plan.baseline is None:
        return
    wanted = [
        (i, c)
        for i, c in enumerate(plan.baseline.criteria)
        if c.platform is not None and c.applies_to(plan.profile)
    ]
    if wanted:
        index, criterion = wanted[0]
        raise UsageError(
            f"{plan.baseline.path}: criteria[{index}] {criterion.describe()} judges the "
            f"platform's own metrics in a {plan.profile} run: set LOADKIT_METRICS_URL to its "
            "Prometheus endpoint (a URL, or a path under API_URL such as /metrics), or pass "
            "--baseline with a file that does not name platform metrics"
        )


def recovery_option(args: argparse.Namespace) -> float | None:
    """``--recovery`` in seconds (the profile's own hold when not given)."""
    text = getattr(args, "recovery", None)
    if text is None:
        return None
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise UsageError(f"--recovery: {exc}") from None


def _scale(value: float | None, option: str) -> float:
    if value is None:
        return 1.0
    if not value > 0 or value == float("inf"):
        raise UsageError(f"{option} must be a finite number > 0, got {value:g}")
    return float(value)


def _run_time(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return check_duration(parse_duration(text))
    except (DurationError, ProfileError) as exc:
        raise UsageError(f"-t/--run-time: {exc}") from None


def _arrival(
    args: argparse.Namespace, scenario: ScenarioSpec, time_scale: float
) -> ArrivalSpec | None:
    """The rate of an arrival-rate scenario: ``--rate``/``--rate-stage``, else the registry's."""
    from loadkit.core.arrival_schedule import parse_rate_stages

    given = args.rate is not None or args.rate_stage or args.max_in_flight is not None
    if not scenario.is_arrival_rate:
        if given:
            raise UsageError(
                f"--rate/--rate-stage/--max-in-flight apply to arrival-rate scenarios "
                f"({', '.join(s.name for s in registry.SCENARIOS.values() if s.is_arrival_rate)})"
                f", not {scenario.name}"
            )
        return None
    option = "--rate-stage (LOADKIT_RATE_STAGES)"
    try:
        stages = parse_rate_stages(args.rate_stage, time_scale=time_scale)
        option = "--rate (LOADKIT_RATE)"
        rate = None if args.rate is None else parse_rate(args.rate)
        option = "--max-in-flight (LOADKIT_MAX_IN_FLIGHT)"
        cap = None if args.max_in_flight is None else parse_max_in_flight(args.max_in_flight)
    except ArrivalError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if stages and rate is not None:
        raise UsageError("give --rate or --rate-stage, not both")
    if not stages and rate is None:
        rate = scenario.default_rate_per_s
    return ArrivalSpec(stages, rate, cap)


def results_folder(root: Path, scenario: str, profile: str, stamp: str) -> Path:
    """``results/<scenario>-<profile>-<time>``, never an existing one."""
    base = root / f"{scenario}-{profile}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


__all__ = ["PlanError", "UsageError", "plan_from_args", "results_folder"]
