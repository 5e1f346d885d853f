"""The ``loadkit`` command: a thin layer that parses, checks and delegates.

Exit codes: 0 the run passed; 1 a criterion failed or had no data, or the run was aborted;
2 nothing was sent (bad input, a failed preflight); 3 the run did not complete (stopped early,
interrupted, a lost worker) though nothing failed on what was measured.

This process never imports Locust: it plans the run, starts the platform and Locust, and keeps
the results; the Locust process does the rest (``loadkit.plugin``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from loadkit import __version__, registry
from loadkit.cli.compare import add_compare_parser, run_compare
from loadkit.cli.history import add_history_parser, run_history
from loadkit.cli.inputs import (
    InputError,
    OneLineArgumentParser,
    add_safety_options,
    check_run_inputs,
    check_target_host,
    check_ui_inputs,
    share_safety_settings,
)
from loadkit.cli.plan import add_plan_parser, run_plan
from loadkit.cli.planning import UsageError, check_metrics_source, plan_from_args
from loadkit.cli.preflight import run_preflight
from loadkit.cli.records import history_env, with_reference
from loadkit.cli.run_all import StepOutcome, render_steps
from loadkit.cli.runner import (
    Launch,
    MissingKeyError,
    child_env,
    execute,
    run_worker,
    target,
    ui_command,
)
from loadkit.cli.topology import (
    DEFAULT_MASTER_PORT,
    LOCAL_MASTER_HOST,
    Role,
    Topology,
    free_loopback_port,
    run_processes,
)
from loadkit.core.baselines import BaselineError, default_baseline_path, load_baseline
from loadkit.core.exit_codes import EXIT_INVALID
from loadkit.core.profiles import ProfileError
from loadkit.core.redact import mask_url_credentials
from loadkit.registry import UnknownNameError
from loadkit.settings import Settings, SettingsError, load_settings

#: Options of the kit that Locust's parser also knows: after ``--`` they would be ignored, since
#: the Locust process plays the plan, so they are refused there.
KIT_OPTIONS = frozenset(
    {"--time-scale", "--user-scale", "--stage", "--recovery", "--rate", "--rate-stage",
     "--max-in-flight", "--baseline", "--no-baseline", "--scenario", "--results-dir", "-t",
     "--run-time"}
)  # fmt: skip


def say(message: str) -> None:
    """One line on stderr; a URL's password (API_URL's user part) never reaches the console."""
    print(f"loadkit: {mask_url_credentials(message)}", file=sys.stderr, flush=True)


def _profiles_help() -> str:
    return ", ".join(
        f"{p.name} ({p.k6.removeprefix('k6 run ')})" for p in registry.PROFILES.values()
    )


def _scenario_names() -> str:
    return ", ".join(registry.SCENARIOS)


def _env(name: str) -> str | None:
    """A default from the environment (``LOADKIT_TIME_SCALE`` ...): the same variables plain
    Locust reads for these options, so CI can scale runs without changing command lines
    (argparse converts and checks a string default like a typed value)."""
    return os.environ.get(name) or None


def _env_flag(name: str) -> bool:
    """A yes/no from the environment: ``1``, ``true`` or ``yes`` mean yes."""
    return (_env(name) or "").strip().lower() in ("1", "true", "yes")


def _env_list(name: str) -> list[str]:
    value = _env(name)
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


def _add_http_client_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http-client",
        choices=("fast", "lean"),
        help="PlatformUser's HTTP client: fast (Locust's FastHttpUser, the default) or lean "
        "(about half the CPU per request; docs/performance.md) [LOADKIT_HTTP_CLIENT]",
    )


def _shared_run_options(*, baseline_file: bool = True) -> argparse.ArgumentParser:
    """Options of every command that runs load: scaling, rate, verdict, cluster, target."""
    shared = argparse.ArgumentParser(add_help=False)
    arrival = ", ".join(s.name for s in registry.SCENARIOS.values() if s.is_arrival_rate)
    rate = shared.add_argument_group(f"arrival rate (arrival-rate scenarios only: {arrival})")
    rate.add_argument(
        "--rate",
        default=_env("LOADKIT_RATE"),
        metavar="PER_S",
        help="iterations started per second (default: the scenario's) [LOADKIT_RATE]",
    )
    rate.add_argument(
        "--rate-stage",
        action="append",
        default=_env_list("LOADKIT_RATE_STAGES"),
        metavar="DURATION:PER_S",
        help="k6-style rate stage, repeatable (e.g. --rate-stage 30s:10) [LOADKIT_RATE_STAGES]",
    )
    rate.add_argument(
        "--max-in-flight",
        default=_env("LOADKIT_MAX_IN_FLIGHT"),
        metavar="N",
        help="iterations allowed at once; more are dropped and counted "
        "(default: max(100, 10 s x peak rate)) [LOADKIT_MAX_IN_FLIGHT]",
    )
    shared.add_argument(
        "--time-scale",
        type=float,
        default=_env("LOADKIT_TIME_SCALE"),
        help="multiply every stage duration (default 1) [LOADKIT_TIME_SCALE]",
    )
    shared.add_argument(
        "--user-scale",
        type=float,
        default=_env("LOADKIT_USER_SCALE"),
        help="multiply every stage's user count (default 1) [LOADKIT_USER_SCALE]",
    )
    verdict = shared.add_mutually_exclusive_group()
    if baseline_file:
        verdict.add_argument(
            "--baseline", type=Path, help="baseline file (default: baselines/SCENARIO.toml)"
        )
    verdict.add_argument("--no-baseline", action="store_true", help="run without criteria")
    shared.add_argument(
        "--graceful-stop",
        metavar="DURATION",
        help="how long requests in flight may finish when the load stops, like k6's "
        "gracefulStop (default 5s; 0 cuts them off) [LOADKIT_GRACEFUL_STOP_S]",
    )
    shared.add_argument("--api-url", help="platform base URL (default: API_URL, else embedded)")
    _add_http_client_option(shared)
    shared.add_argument(
        "--skip-preflight", action="store_true", help="don't check the platform before the load"
    )
    shared.add_argument(
        "--results", type=Path, help="parent folder of the run folders (default: results/)"
    )
    shared.add_argument(
        "--save-reference",
        action="store_true",
        default=_env_flag("LOADKIT_SAVE_REFERENCE"),
        help="if the run passes, make it the reference of its scenario, profile and load "
        "(what [[regression]] criteria and `loadkit compare` compare with) "
        "[LOADKIT_SAVE_REFERENCE=1]",
    )
    add_safety_options(shared)
    return shared


def _cluster_options(parser: argparse.ArgumentParser, *, roles: bool) -> None:
    cluster = parser.add_argument_group("distributed (Locust master/worker)")
    group = cluster.add_mutually_exclusive_group()
    group.add_argument(
        "--workers", type=int, default=0, metavar="N", help="run a master and N local workers"
    )
    if roles:
        group.add_argument("--master", action="store_true", help="run only the master of a cluster")
        group.add_argument("--worker", action="store_true", help="run only a worker of a cluster")
        cluster.add_argument("--expect-workers", type=int, help="workers the master waits for")
        cluster.add_argument(
            "--master-host",
            default="127.0.0.1",
            help="where a worker finds its master (default 127.0.0.1)",
        )
        cluster.add_argument(
            "--master-port", type=int, help=f"master's port (default {DEFAULT_MASTER_PORT})"
        )
    cluster.add_argument(
        "--on-worker-loss",
        choices=("end", "continue"),
        help="what a lost worker does to the run (default: end)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
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
    run.add_argument("scenario", help=f"one of: {_scenario_names()}")
    run.add_argument("--profile", help=f"one of: {_profiles_help()}")
    run.add_argument(
        "--recovery",
        default=_env("LOADKIT_RECOVERY"),
        metavar="DURATION",
        help="spike: how long the load is held at the pre-spike level after the surge, where "
        "recovery is judged (default 30s, scaled by --time-scale; 0s: the guide's stages only) "
        "[LOADKIT_RECOVERY]",
    )
    run.add_argument(
        "--stage",
        action="append",
        default=_env_list("LOADKIT_STAGES"),
        metavar="DURATION:USERS",
        help="k6-style stage, repeatable (e.g. --stage 30s:10 --stage 1m:50) [LOADKIT_STAGES]",
    )
    run.add_argument(
        "-u", "--users", type=int, help="concurrent users, with -t (default: the scenario's)"
    )
    run.add_argument(
        "-r", "--spawn-rate", type=float, help="users started per second (default: all at once)"
    )
    run.add_argument("-t", "--run-time", help="stop after this long (e.g. 30s, 5m)")
    run.add_argument(
        "--reference",
        metavar="RUN",
        help="the run [[regression]] criteria compare with: a run folder or run id (default: "
        "the marked reference, else the last passing run of the same scenario, profile, load)",
    )
    _cluster_options(run, roles=True)

    run_all = commands.add_parser(
        "run-all",
        parents=[_shared_run_options(baseline_file=False)],
        help="smoke, average, stress for each scenario, with one summary table",
        description="Run profiles in order for each scenario (default: all scenarios; smoke, "
        "then average, then stress), stopping at the first failed step unless --keep-going. "
        "Each scenario is judged against its own baselines/SCENARIO.toml.",
    )
    run_all.add_argument("scenarios", nargs="*", help=f"any of: {_scenario_names()}")
    run_all.add_argument(
        "--profiles",
        default="smoke,average,stress",
        help="comma-separated, run in this order (default: smoke,average,stress)",
    )
    run_all.add_argument("--keep-going", action="store_true", help="run every step regardless")
    _cluster_options(run_all, roles=False)
    run_all.set_defaults(
        stage=[], users=None, spawn_rate=None, run_time=None, baseline=None, worker=False,
        reference=None,
        master=False, expect_workers=None, master_port=None, master_host=LOCAL_MASTER_HOST,
    )  # fmt: skip

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
        "start, stop, restart. Each run is judged and kept in its own folder.",
    )
    ui.add_argument("scenario", help=f"one of: {_scenario_names()}")
    ui.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")
    ui.add_argument("--api-url", help="platform base URL (default: API_URL, else embedded)")
    _add_http_client_option(ui)
    ui.add_argument(
        "--results",
        type=Path,
        help="parent folder of the session's folder (default: results/)",
    )
    add_safety_options(ui, remote_ui=True)

    preflight = commands.add_parser(
        "preflight",
        help="check the prerequisites: API reachable and healthy, key accepted, Redis, queue",
        description="One line per check; exit code 2 if any fails. Nothing is load-tested.",
    )
    preflight.add_argument("--api-url", help="platform base URL (overrides API_URL)")
    add_safety_options(preflight, limits=False)

    scenarios = commands.add_parser("scenarios", help="list the scenarios and their default load")
    scenarios.add_argument(
        "--json", action="store_true", help="their names as a JSON list (e.g. for a CI matrix)"
    )
    commands.add_parser("profiles", help="list the load profiles")
    add_plan_parser(commands)
    add_compare_parser(commands)
    add_history_parser(commands)
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
    if registry.LOAD_ERROR is not None:
        say(str(registry.LOAD_ERROR))
        return EXIT_INVALID
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "scenarios":
        if args.json:
            print(json.dumps(list(registry.SCENARIOS)))
            return 0
        for s in registry.SCENARIOS.values():
            print(f"{s.name:<12} {s.load.describe():>16}  {s.purpose}")
        return 0
    if args.command == "plan":
        return run_plan(args)
    if args.command == "compare":
        return run_compare(args)
    if args.command == "history":
        return run_history(args)
    if args.command == "profiles":
        for p in registry.PROFILES.values():
            print(f"{p.name:<8} {p.k6.removeprefix('k6 run '):<36} {p.purpose}")
        return 0
    try:
        share_safety_settings(args)
        _refuse_kit_options_for_locust(locust_extra)
        if args.command == "ui":
            return _ui(args, locust_extra)
        if args.command == "run-all":
            return _run_all(args, locust_extra)
        if args.command == "preflight":
            return _preflight(args)
        return _run(args, locust_extra)
    except (
        InputError,
        UsageError,
        SettingsError,
        UnknownNameError,
        MissingKeyError,
        ProfileError,
        BaselineError,
    ) as exc:
        say(str(exc))
        return EXIT_INVALID


def _refuse_kit_options_for_locust(locust_extra: Sequence[str]) -> None:
    for arg in locust_extra:
        option = arg.split("=", 1)[0]
        if option in ("-s", "--stop-timeout"):
            raise UsageError(
                f"{option} after `--` would be ignored: give loadkit --graceful-stop DURATION"
            )
        if option in KIT_OPTIONS:
            raise UsageError(
                f"{option} after `--` would be ignored: give it to loadkit, before `--`"
            )


def _preflight(args: argparse.Namespace) -> int:
    settings = load_settings(api_url=args.api_url)
    if not settings.api_url:
        raise UsageError("API_URL is not set (preflight checks a platform you name)")
    if settings.api_key is None:
        raise MissingKeyError(f"API_KEY is not set (needed to call {settings.api_url})")
    check_target_host(settings)
    return 0 if run_preflight(settings, out=sys.stdout) else EXIT_INVALID


def _ui(args: argparse.Namespace, locust_extra: list[str]) -> int:
    scenario = registry.get_scenario(args.scenario)
    settings = load_settings(
        api_url=args.api_url, results_dir=args.results, http_client=args.http_client
    )
    load_baseline(default_baseline_path(scenario.name), scenario.name)
    web = check_ui_inputs(args, locust_extra, settings)
    with target(settings, say) as (url, key):
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        session_dir = settings.results_dir / f"{scenario.name}-ui-{stamp}"
        login = f", log in as {settings.web_user}" if settings.web_password is not None else ""
        say(f"web UI: {web.web_url} (each run's results in {session_dir}/{login})")
        command = ui_command(scenario.name, url, session_dir, args.web_port, locust_extra)
        env = child_env(url, key, http_client=settings.http_client) | history_env(settings)
        return run_processes(command, [], env)


def _topology(args: argparse.Namespace) -> Topology:
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    expect = getattr(args, "expect_workers", None)
    if expect is not None and expect < 1:
        raise UsageError(f"--expect-workers must be >= 1, got {expect}")
    if getattr(args, "worker", False) or getattr(args, "master", False):
        port = args.master_port or DEFAULT_MASTER_PORT
        role: Role = "worker" if args.worker else "master"
        return Topology(role, 0, args.master_host, port, expect)
    if args.workers:
        port = getattr(args, "master_port", None) or free_loopback_port()
        return Topology("master", args.workers, LOCAL_MASTER_HOST, port, args.workers)
    return Topology()


def _launch(args: argparse.Namespace, locust_extra: list[str]) -> Launch:
    extra = list(locust_extra)
    if args.on_worker_loss:
        extra = ["--on-worker-loss", args.on_worker_loss, *extra]
    return Launch(_topology(args), extra, args.skip_preflight, args.save_reference)


def _load_generators(topology: Topology) -> int:
    return max(1, topology.local_workers or (topology.expect_workers or 1))


def _settings(args: argparse.Namespace) -> Settings:
    """The settings, with the key checked first: a platform named without its key is refused."""
    settings = load_settings(
        api_url=args.api_url, results_dir=args.results, http_client=args.http_client
    )
    if settings.api_url and settings.api_key is None:
        raise MissingKeyError(f"API_KEY is not set (needed to call {settings.api_url})")
    return settings


def _run(args: argparse.Namespace, locust_extra: list[str]) -> int:
    settings = _settings(args)
    scenario = registry.get_scenario(args.scenario)
    checked = check_run_inputs(args, locust_extra, settings)
    args.run_time = checked.run_time
    launch = _launch(args, locust_extra)
    if launch.topology.role == "worker":
        return run_worker(scenario.name, launch, say, settings.http_client)
    plan = plan_from_args(args, scenario, _load_generators(launch.topology), settings)
    plan = with_reference(plan, settings, args.reference)
    check_metrics_source(plan, settings.metrics_url, embedded=not settings.api_url)
    with target(settings, say) as (url, key):
        if checked.notice:
            say(checked.notice)
        code, _ = execute(plan, launch, settings, url, key, say)
    return code


def _run_all(args: argparse.Namespace, locust_extra: list[str]) -> int:
    """Smoke, then average, then stress (or --profiles) for each scenario; one table at the end."""
    settings = _settings(args)
    scenarios = [registry.get_scenario(name) for name in args.scenarios or registry.SCENARIOS]
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    launch = _launch(args, locust_extra)
    steps = []
    for scenario in scenarios:
        for profile in profiles:
            step_args = argparse.Namespace(**vars(args))
            step_args.profile = profile
            step_args.scenario = scenario.name
            check_run_inputs(step_args, locust_extra, settings)
            plan = plan_from_args(step_args, scenario, _load_generators(launch.topology), settings)
            plan = with_reference(plan, settings, None)
            check_metrics_source(plan, settings.metrics_url, embedded=not settings.api_url)
            steps.append((f"{scenario.name} {profile}", plan))
    outcomes: list[StepOutcome] = []
    with target(settings, say) as (url, key):
        for label, plan in steps:
            say(f"step {len(outcomes) + 1}/{len(steps)}: {label}")
            code, run_dir = execute(plan, launch, settings, url, key, say)
            assert plan.scenario is not None
            outcomes.append(StepOutcome.read(plan.scenario, plan.profile, code, run_dir))
            if code == EXIT_INVALID and run_dir is None:
                say("preflight failed: nothing was sent (--skip-preflight runs anyway)")
                break
            if code != 0 and not args.keep_going:
                say(f"stopping after the failed step ({label}); --keep-going runs the rest")
                break
            launch = replace(launch, skip_preflight=True)
    print(render_steps(outcomes, planned=len(steps)), flush=True)
    return max((o.exit_code for o in outcomes), default=0)


if __name__ == "__main__":
    raise SystemExit(main())
