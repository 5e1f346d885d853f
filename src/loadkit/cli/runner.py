"""``loadkit run``: validate everything, aim at a platform, run Locust headless, keep the results.

Locust runs as a child process with the same locustfile a user would pass to ``locust -f``; the
kit's plugin inside it computes the verdict and sets the exit code. This module only prepares the
command line and the environment, and owns the embedded platform's lifetime.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from pydantic import SecretStr

from loadkit.cli.preflight import run_preflight
from loadkit.cli.profile_summary import profile_summary, write_profile_report
from loadkit.cli.topology import Topology, run_processes
from loadkit.core.baselines import Baseline
from loadkit.core.profiles import PROFILES, Stage
from loadkit.plugin.verdict import RUN_DIR_ENV, SCENARIO_ENV
from loadkit.registry import Scenario, shapes_dir
from loadkit.settings import Settings

#: The shape files in shapes/, one per profile (custom takes its stages from --stage).
PROFILE_FILES = (*PROFILES, "custom")


@dataclass(frozen=True)
class RunPlan:
    """Everything ``loadkit run`` decided before starting Locust."""

    scenario: Scenario
    profile: str | None
    users: int | None
    spawn_rate: float | None
    run_time: str | None
    results_root: Path
    locust_args: Sequence[str] = field(default_factory=tuple)
    stage_specs: Sequence[str] = field(default_factory=tuple)
    time_scale: float | None = None
    user_scale: float | None = None
    topology: Topology = field(default_factory=Topology)

    def locustfile_arg(self) -> str:
        files = [str(self.scenario.locustfile)]
        if self.profile or self.stage_specs:
            files.append(str(shapes_dir() / f"{self.profile or 'custom'}.py"))
        return ",".join(files)


def new_results_dir(root: Path, scenario: str, profile: str | None) -> Path:
    """``results/<scenario>-<profile>-<timestamp>``: one folder per run, never overwritten."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{scenario}-{profile or 'default'}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def locust_command(plan: RunPlan, host: str, run_dir: Path) -> list[str]:
    """The ``locust`` command line of a headless run (nothing secret on it)."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        plan.locustfile_arg(),
        "--headless",
        "--host",
        host,
        "--csv",
        str(run_dir / "stats"),
        "--csv-full-history",
        "--html",
        str(run_dir / "report.html"),
        "--logfile",
        str(run_dir / "locust.log"),
    ]
    if not plan.profile and not plan.stage_specs:
        users = plan.users if plan.users is not None else plan.scenario.users
        spawn_rate = plan.spawn_rate if plan.spawn_rate is not None else max(1.0, users / 2)
        command += ["--users", str(users), "--spawn-rate", f"{spawn_rate:g}"]
    if plan.run_time:
        command += ["--run-time", plan.run_time]
    for spec in plan.stage_specs:
        command += ["--stage", spec]
    if plan.time_scale is not None:
        command += ["--time-scale", f"{plan.time_scale:g}"]
    if plan.user_scale is not None:
        command += ["--user-scale", f"{plan.user_scale:g}"]
    command += plan.topology.master_args()
    command += list(plan.locust_args)
    return command


@contextlib.contextmanager
def target(settings: Settings, announce: callable) -> Iterator[tuple[str, str]]:  # type: ignore[valid-type]
    """Yield ``(url, api_key)``: the configured platform, or an embedded one for the run."""
    if settings.api_url:
        key = settings.api_key_value
        if key is None:
            raise MissingKeyError(f"API_KEY is not set (needed to call {settings.api_url})")
        yield settings.api_url, key
        return
    from loadkit.platform.launcher import start_platform

    key = settings.api_key_value or secrets.token_urlsafe(24)
    with start_platform(api_key=key) as platform:
        announce(f"no API_URL given: started the embedded reference platform at {platform.url}")
        yield platform.url, key


class MissingKeyError(ValueError):
    pass


def ui_command(
    scenario: Scenario, host: str, run_dir: Path, web_port: int, extra: Sequence[str] = ()
) -> list[str]:
    """Locust's web UI with every profile loaded and the class picker on, bound to loopback."""
    shapes = [str(shapes_dir() / f"{name}.py") for name in PROFILE_FILES]
    return [
        sys.executable, "-m", "locust",
        "-f", ",".join([str(scenario.locustfile), *shapes]),
        "--class-picker",
        "--web-host", "127.0.0.1",
        "--web-port", str(web_port),
        "--host", host,
        "--results-dir", str(run_dir),
        *extra,
    ]  # fmt: skip


def worker_commands(plan: RunPlan) -> list[list[str]]:
    """The commands of the local worker processes (they learn the host from the master)."""
    base = [sys.executable, "-m", "locust", "-f", plan.locustfile_arg()]
    return [base + plan.topology.worker_args() for _ in range(plan.topology.local_workers)]


def run_locust(plan: RunPlan, command: list[str], env: dict[str, str], run_dir: Path) -> int:
    """Run Locust (and its local workers) to the end; returns the exit code Locust chose."""
    workers = worker_commands(plan)
    logs = [run_dir / f"worker-{i}.log" for i in range(len(workers))]
    return run_processes(command, workers, env, logs)


def child_env(url: str, key: str, run_dir: Path, scenario: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"API_URL": url, "API_KEY": key, RUN_DIR_ENV: str(run_dir), SCENARIO_ENV: scenario})
    return env


@dataclass(frozen=True)
class PreparedRun:
    """A run whose every input was checked: nothing is sent before this exists."""

    plan: RunPlan
    stages: tuple[Stage, ...]
    baseline: Baseline | None


def execute(
    prepared: PreparedRun, url: str, key: str, announce: Callable[[str], None]
) -> tuple[int, Path]:
    """Run Locust for a prepared run against ``url``; returns (exit code, results folder).

    After Locust exits (its files are complete then) the profile's own report is printed and
    kept in the results folder.
    """
    plan = prepared.plan
    run_dir = new_results_dir(plan.results_root, plan.scenario.name, plan.profile)
    announce(f"results: {run_dir}")
    env = child_env(url, key, run_dir, plan.scenario.name)
    code = run_locust(plan, locust_command(plan, url, run_dir), env, run_dir)
    report = profile_summary(plan.profile, prepared.stages, run_dir, prepared.baseline)
    if report:
        print("\n".join(report), flush=True)
        write_profile_report(run_dir, report)
    announce(f"results: {run_dir} (exit code {code})")
    return code, run_dir


def check_target(settings: Settings, url: str, key: str, announce: Callable[[str], None]) -> bool:
    """The preflight checks against the run's target, before any load; lines on stderr."""
    checked = settings.model_copy(update={"api_url": url, "api_key": SecretStr(key)})
    if run_preflight(checked, out=sys.stderr, api_url=url):
        return True
    announce("preflight failed: nothing was sent (--skip-preflight runs anyway)")
    return False


def run_worker(plan: RunPlan, announce: Callable[[str], None]) -> int:
    """A cluster worker: no target, results or verdict of its own; the master has them."""
    announce(f"worker of {plan.topology.master_host}:{plan.topology.master_port}")
    topology = replace(plan.topology, local_workers=1)
    command = worker_commands(replace(plan, topology=topology))[0]
    return run_processes(command, [], dict(os.environ))
