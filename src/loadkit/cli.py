"""The ``loadkit`` command: a thin layer that parses, validates and delegates.

Exit codes: 0 the run passed, 1 it failed (a baseline, a check, an abort), 2 nothing was sent:
the input was bad or the preflight checks failed (``loadkit preflight`` itself exits 1).
"""

from __future__ import annotations

# Locust patches the standard library with gevent when it is imported, and patching after ssl
# (imported by requests) breaks it; so the command patches first, as Locust's own entry does.
from gevent import monkey

monkey.patch_all()

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from loadkit import __version__
from loadkit.arrival_schedule import ArrivalPlan, parse_rate
from loadkit.baselines import BaselineError, default_baseline_path, load_baseline
from loadkit.plan_command import add_plan_parser, run_plan
from loadkit.preflight import run_preflight
from loadkit.profiles import ProfileError, Stage, resolve_profile
from loadkit.run_all import StepOutcome, render_steps
from loadkit.runner import (
    MissingKeyError,
    PreparedRun,
    RunPlan,
    check_target,
    child_env,
    execute,
    new_results_dir,
    run_worker,
    target,
    ui_command,
)
from loadkit.scenarios import SCENARIOS, UnknownScenarioError, get_scenario
from loadkit.settings import SettingsError, load_settings
from loadkit.topology import (
    DEFAULT_MASTER_PORT,
    LOCAL_MASTER_HOST,
    Role,
    Topology,
    free_loopback_port,
    run_processes,
)

EXIT_INVALID = 2


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


def say(message: str) -> None:
    print(f"loadkit: {message}", file=sys.stderr, flush=True)


def _shared_run_options() -> argparse.ArgumentParser:
    """Options of every command that runs load: scaling, verdict, cluster, target, results."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--rate", metavar="PER_S", help="arrival-rate scenarios: iterations started per second"
    )
    shared.add_argument(
        "--rate-stage",
        action="append",
        default=[],
        metavar="DURATION:PER_S",
        help="k6-style arrival-rate stage, repeatable (e.g. --rate-stage 30s:10)",
    )
    shared.add_argument("--time-scale", type=float, help="multiply every stage duration")
    shared.add_argument("--user-scale", type=float, help="multiply every stage's user count")
    verdict = shared.add_mutually_exclusive_group()
    verdict.add_argument(
        "--baseline", type=Path, help="baseline file (default: baselines/SCENARIO.toml)"
    )
    verdict.add_argument("--no-baseline", action="store_true", help="run without a verdict")
    cluster = shared.add_argument_group("distributed (Locust master/worker)")
    roles = cluster.add_mutually_exclusive_group()
    roles.add_argument(
        "--workers", type=int, default=0, metavar="N", help="run a master and N local workers"
    )
    roles.add_argument("--master", action="store_true", help="run only the master of a cluster")
    roles.add_argument("--worker", action="store_true", help="run only a worker of a cluster")
    cluster.add_argument("--expect-workers", type=int, help="workers the master waits for")
    cluster.add_argument(
        "--master-host", default="127.0.0.1", help="where a worker finds its master"
    )
    cluster.add_argument("--master-port", type=int, help="master's port (default 5557)")
    cluster.add_argument(
        "--on-worker-loss", choices=("end", "continue"), help="what a lost worker does to the run"
    )
    shared.add_argument("--api-url", help="platform base URL (overrides API_URL)")
    shared.add_argument(
        "--skip-preflight", action="store_true", help="don't check the platform before the load"
    )
    shared.add_argument(
        "--results", type=Path, help="parent folder of the run's results (default: results/)"
    )
    return shared


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadkit", description="Load tests for the AI calling platform's HTTP API."
    )
    parser.add_argument("--version", action="version", version=f"loadkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    shared = _shared_run_options()
    run = commands.add_parser(
        "run",
        parents=[shared],
        help="run one scenario headless and give a verdict",
        description="Run a scenario headless. Arguments after `--` go to Locust unchanged.",
    )
    run.add_argument("scenario", help=f"one of: {', '.join(SCENARIOS)}")
    run.add_argument("--profile", help="smoke, average, stress, spike or soak")
    run.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="DURATION:USERS",
        help="k6-style stage, repeatable (e.g. --stage 30s:10 --stage 1m:50)",
    )
    run.add_argument("-u", "--users", type=int, help="concurrent users (without a profile)")
    run.add_argument("-r", "--spawn-rate", type=float, help="users started per second")
    run.add_argument("-t", "--run-time", help="stop after this long (e.g. 30s, 5m)")

    run_all = commands.add_parser(
        "run-all",
        parents=[shared],
        help="smoke, average, stress for each scenario, with one summary table",
        description="Run profiles in order for each scenario (default: all scenarios; smoke, "
        "then average, then stress), stopping at the first failed step unless --keep-going.",
    )
    run_all.add_argument("scenarios", nargs="*", help=f"any of: {', '.join(SCENARIOS)}")
    run_all.add_argument(
        "--profiles", default="smoke,average,stress", help="comma-separated, run in this order"
    )
    run_all.add_argument("--keep-going", action="store_true", help="run every step regardless")
    run_all.set_defaults(stage=[], users=None, spawn_rate=None, run_time=None)

    target_cmd = commands.add_parser(
        "target",
        help="serve the reference platform",
        description="Serve the reference platform on loopback (see docs/api.md).",
        add_help=False,
    )
    target_cmd.add_argument("platform_args", nargs=argparse.REMAINDER)

    ui = commands.add_parser(
        "ui",
        help="open Locust's web UI for a scenario, every profile selectable",
        description="Locust's web UI on 127.0.0.1 with the class picker: choose a profile, "
        "start, stop, restart. Each stopped test is judged (Baseline tab, verdict.json).",
    )
    ui.add_argument("scenario", help=f"one of: {', '.join(SCENARIOS)}")
    ui.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")
    ui.add_argument("--api-url", help="platform base URL (overrides API_URL)")
    ui.add_argument("--results", type=Path, help="parent folder of the verdicts")

    preflight = commands.add_parser(
        "preflight",
        help="check the prerequisites: API reachable and healthy, key accepted, Redis, queue",
        description="One line per check; exit code 1 if any fails. Nothing is load-tested.",
    )
    preflight.add_argument("--api-url", help="platform base URL (overrides API_URL)")

    commands.add_parser("scenarios", help="list the scenarios")
    add_plan_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    locust_extra: list[str] = []
    if "--" in args_list:
        split = args_list.index("--")
        args_list, locust_extra = args_list[:split], args_list[split + 1 :]
    if args_list[:1] == ["target"]:
        # The platform has its own parser (and --help); argparse's REMAINDER drops options.
        from loadkit.platform.server import main as platform_main

        return platform_main(args_list[1:] + locust_extra, prog="loadkit target")
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "scenarios":
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<12} {scenario.users:>4} users  {scenario.purpose}")
        return 0
    if args.command == "plan":
        return run_plan(args)
    try:
        if args.command == "ui":
            return _ui(args, locust_extra)
        if args.command == "run-all":
            return _run_all(args, locust_extra)
        if args.command == "preflight":
            settings = load_settings(api_url=args.api_url)
            if not settings.api_url:
                raise UsageError("API_URL is not set (preflight checks a platform you name)")
            if settings.api_key is None:
                raise MissingKeyError(f"API_KEY is not set (needed to call {settings.api_url})")
            return 0 if run_preflight(settings, out=sys.stdout) else 1
        return _run(args, locust_extra)
    except (
        UsageError,
        SettingsError,
        UnknownScenarioError,
        MissingKeyError,
        ProfileError,
        BaselineError,
    ) as exc:
        say(str(exc))
        return EXIT_INVALID


def _ui(args: argparse.Namespace, locust_extra: list[str]) -> int:
    scenario = get_scenario(args.scenario)
    settings = load_settings(api_url=args.api_url, results_dir=args.results)
    load_baseline(default_baseline_path(scenario.name), scenario.name)
    with target(settings, say) as (url, key):
        run_dir = new_results_dir(settings.results_dir, scenario.name, "ui")
        say(f"web UI: http://127.0.0.1:{args.web_port} (verdicts in {run_dir})")
        command = ui_command(scenario, url, run_dir, args.web_port, locust_extra)
        return run_processes(command, [], child_env(url, key, run_dir, scenario.name))


def _topology(args: argparse.Namespace) -> Topology:
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if args.expect_workers is not None and args.expect_workers < 1:
        raise UsageError(f"--expect-workers must be >= 1, got {args.expect_workers}")
    if args.worker or args.master:
        port = args.master_port or DEFAULT_MASTER_PORT
        role: Role = "worker" if args.worker else "master"
        return Topology(role, 0, args.master_host, port, args.expect_workers)
    if args.workers:
        port = args.master_port or free_loopback_port()
        return Topology("master", args.workers, LOCAL_MASTER_HOST, port, args.workers)
    return Topology()


def _prepare(args: argparse.Namespace, locust_extra: list[str]) -> PreparedRun:
    scenario = get_scenario(args.scenario)
    topology = _topology(args)
    if (args.profile or args.stage) and args.users is not None:
        raise UsageError("--users cannot be combined with a profile or --stage (use --user-scale)")
    stages: tuple[Stage, ...] = ()
    if args.profile or args.stage or args.time_scale or args.user_scale:
        stages = resolve_profile(
            args.profile,
            args.stage,
            time_scale=args.time_scale or 1.0,
            user_scale=args.user_scale or 1.0,
        )
    baseline = None
    if not args.no_baseline:
        path = args.baseline or default_baseline_path(scenario.name)
        baseline = load_baseline(path, scenario.name)
    plan = RunPlan(
        scenario=scenario,
        profile=args.profile,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        results_root=args.results_root,
        locust_args=[
            *_verdict_args(args),
            *_cluster_args(args),
            *_arrival_args(args),
            *locust_extra,
        ],
        stage_specs=args.stage,
        time_scale=args.time_scale,
        user_scale=args.user_scale,
        topology=topology,
    )
    return PreparedRun(plan, stages, baseline)


def _run(args: argparse.Namespace, locust_extra: list[str]) -> int:
    settings = load_settings(api_url=args.api_url, results_dir=args.results)
    args.results_root = settings.results_dir
    prepared = _prepare(args, locust_extra)
    if prepared.plan.topology.role == "worker":
        return run_worker(prepared.plan, say)
    with target(settings, say) as (url, key):
        if not args.skip_preflight and not check_target(settings, url, key, say):
            return EXIT_INVALID
        code, _ = execute(prepared, url, key, say)
    return code


def _run_all(args: argparse.Namespace, locust_extra: list[str]) -> int:
    """Smoke, then average, then stress (or --profiles) for each scenario; one table at the end."""
    settings = load_settings(api_url=args.api_url, results_dir=args.results)
    scenarios = args.scenarios or list(SCENARIOS)
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    steps: list[tuple[str, PreparedRun]] = []
    for scenario in scenarios:
        for profile in profiles:
            step_args = argparse.Namespace(**vars(args))
            step_args.scenario, step_args.profile = scenario, profile
            step_args.results_root = settings.results_dir
            steps.append((f"{scenario} {profile}", _prepare(step_args, locust_extra)))
    outcomes: list[StepOutcome] = []
    with target(settings, say) as (url, key):
        if not args.skip_preflight and not check_target(settings, url, key, say):
            return EXIT_INVALID
        for label, prepared in steps:
            say(f"step {len(outcomes) + 1}/{len(steps)}: {label}")
            code, run_dir = execute(prepared, url, key, say)
            plan = prepared.plan
            outcomes.append(StepOutcome.read(plan.scenario.name, plan.profile or "", code, run_dir))
            if code != 0 and not args.keep_going:
                say(f"stopping after the failed step ({label}); --keep-going runs the rest")
                break
    print(render_steps(outcomes, planned=len(steps)), flush=True)
    return max((o.exit_code for o in outcomes), default=0)


def _cluster_args(args: argparse.Namespace) -> list[str]:
    return ["--on-worker-loss", args.on_worker_loss] if args.on_worker_loss else []


def _arrival_args(args: argparse.Namespace) -> list[str]:
    """``--rate`` / ``--rate-stage`` for Locust, checked here so a typo exits 2 in one line."""
    ArrivalPlan.build(
        default_rate_per_s=1.0,
        rate_per_s=None if args.rate is None else parse_rate(args.rate),
        rate_stage_specs=args.rate_stage,
        time_scale=args.time_scale or 1.0,
    )
    out = [] if args.rate is None else ["--rate", args.rate.strip()]
    for spec in args.rate_stage:
        out += ["--rate-stage", spec]
    return out


def _verdict_args(args: argparse.Namespace) -> list[str]:
    if args.no_baseline:
        return ["--no-baseline"]
    return ["--baseline", str(args.baseline)] if args.baseline else []


if __name__ == "__main__":
    raise SystemExit(main())
