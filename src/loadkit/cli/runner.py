"""``loadkit run``: aim at a platform, check it, run Locust on the plan, and always leave a verdict.

Locust runs as a child process with the same locustfile a user would pass to ``locust -f`` plus
the kit's planned shape; the kit's plugin inside it reads the plan file, judges the run and sets
the exit code. This module owns the run's folder, the embedded platform's lifetime and the
signals: a Ctrl-C or SIGTERM at any moment (preflight, start-up, load, shutdown) still ends with
a folder holding a ``verdict.json`` that says where the run was stopped.

Nothing here imports Locust: the parent process stays small, and what it decided travels to the
child once, in ``plan.json``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Final

from pydantic import SecretStr

from loadkit import registry
from loadkit.cli.planning import results_folder
from loadkit.cli.preflight import Preflight, PreflightNeeds, check_platform, needs_of
from loadkit.cli.profile_summary import profile_summary, write_profile_report
from loadkit.cli.records import keep_record
from loadkit.cli.topology import Topology, run_processes
from loadkit.core.lifecycle import RunState
from loadkit.core.plan import PLAN_ENV, PLAN_FILE, RunPlan
from loadkit.core.verdict import Totals, Verdict, Window
from loadkit.endpoints import PLATFORM_METRICS
from loadkit.results.history import utc_now
from loadkit.results.verdict_files import render_console, write_junit_xml, write_verdict_json
from loadkit.settings import ENV_PREFIX, HTTP_CLIENT_ENV, QueueSourceKind, Settings

#: The setting that turns queue sampling off in Locust's process.
QUEUE_SOURCE_ENV: Final = f"{ENV_PREFIX}QUEUE_SOURCE"

#: The kit's own shape files (``locust -f locustfile,<shape>``), inside the package.
PLUGIN_DIR: Final = Path(__file__).resolve().parents[1] / "plugin"
RUN_SHAPE_FILE: Final = PLUGIN_DIR / "run_shape.py"
PROFILE_SHAPES_FILE: Final = PLUGIN_DIR / "profile_shapes.py"
VERDICT_FILE: Final = "verdict.json"
METRICS_URL_ENV: Final = "LOADKIT_METRICS_URL"


class MissingKeyError(ValueError):
    pass


@dataclass(frozen=True)
class Launch:
    """How a planned run is started: topology, and Locust options the user passed after ``--``."""

    topology: Topology = field(default_factory=Topology)
    locust_args: Sequence[str] = ()
    skip_preflight: bool = False
    save_reference: bool = False
    """Mark the run, if it passes, as the reference of its scenario, profile and load."""


@contextlib.contextmanager
def target(settings: Settings, announce: Callable[[str], None]) -> Iterator[tuple[str, str]]:
    """Yield ``(url, api_key)``: the configured platform, or an embedded one for the run."""
    if settings.api_url:
        key = settings.api_key_value
        if key is None:
            raise MissingKeyError(f"API_KEY is not set (needed to call {settings.api_url})")
        yield settings.api_url, key
        return
    from loadkit.platform.launcher import embedded_platform

    with embedded_platform(settings) as (platform, key), _scrape_embedded(settings, platform.url):
        announce(f"no API_URL given: started the embedded reference platform at {platform.url}")
        yield platform.url, key


@contextlib.contextmanager
def _scrape_embedded(settings: Settings, url: str) -> Iterator[None]:
    """With no metrics URL of its own, the run scrapes the embedded platform's ``/metrics``
    (handed to Locust like ``API_URL``: in the child's environment)."""
    if settings.metrics_url is not None or METRICS_URL_ENV in os.environ:
        yield
        return
    os.environ[METRICS_URL_ENV] = url + PLATFORM_METRICS
    try:
        yield
    finally:
        os.environ.pop(METRICS_URL_ENV, None)


def locust_command(plan: RunPlan, launch: Launch, host: str, run_dir: Path) -> list[str]:
    """The ``locust`` command line of a headless run (nothing secret on it)."""
    assert plan.scenario is not None
    locustfile = registry.get_scenario(plan.scenario).locustfile
    return [
        sys.executable, "-m", "locust",
        "-f", f"{locustfile},{RUN_SHAPE_FILE}",
        "--headless",
        "--host", host,
        "--csv", str(run_dir / "stats"),
        "--csv-full-history",
        "--html", str(run_dir / "report.html"),
        "--logfile", str(run_dir / "locust.log"),
        "--stop-timeout", f"{plan.graceful_stop_s:g}",
        *launch.topology.master_args(),
        *launch.locust_args,
    ]  # fmt: skip


def worker_commands(plan: RunPlan, launch: Launch) -> list[list[str]]:
    """The local worker processes: the scenario's locustfile only (the shape runs on the
    master); they learn the host and the run from the master."""
    assert plan.scenario is not None
    base = worker_command(plan.scenario)
    return [base + launch.topology.worker_args() for _ in range(launch.topology.local_workers)]


def worker_command(scenario: str) -> list[str]:
    """``locust -f <the scenario's locustfile>``: what every worker of a kit run starts."""
    return [sys.executable, "-m", "locust", "-f", str(registry.get_scenario(scenario).locustfile)]


def child_env(
    url: str,
    key: str,
    plan_path: Path | None = None,
    *,
    sample_queue: bool = True,
    http_client: str = "fast",
) -> dict[str, str]:
    """Locust's environment; ``sample_queue`` False (preflight could not read a queue the run
    does not need) turns the queue sampler off, so it does not warn all through the run.
    ``http_client`` (``--http-client``) is read by every Locust process as it imports the
    locustfile."""
    env = dict(os.environ)
    env.update({"API_URL": url, "API_KEY": key, HTTP_CLIENT_ENV: http_client})
    if plan_path is not None:
        env[PLAN_ENV] = str(plan_path)
    if not sample_queue:
        env[QUEUE_SOURCE_ENV] = QueueSourceKind.OFF.value
    return env


def execute(
    plan: RunPlan,
    launch: Launch,
    settings: Settings,
    url: str,
    key: str,
    announce: Callable[[str], None],
) -> tuple[int, Path | None]:
    """Run the plan against ``url``; returns (exit code, results folder or None).

    The folder is made once the platform passed preflight, or when a signal arrives during it
    (then it holds a verdict saying so). After Locust exits, a verdict is guaranteed: Locust's
    own, or one written here that says how the run ended without one.
    """
    assert plan.scenario is not None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = results_folder(settings.results_dir, plan.scenario, plan.profile, stamp)
    plan = plan.with_results_dir(run_dir)
    with SignalWatch() as signals:
        checked = Preflight(True, True)
        if not launch.skip_preflight:
            checked = check_target(
                settings, url, key, announce, needs_of(plan), stopped=signals.was_received
            )
        if not checked.passed:
            if signals.received:
                return _stopped_before_load(
                    plan, run_dir, signals.received, settings, url, announce
                )
            return 2, None
        if signals.received:
            return _stopped_before_load(plan, run_dir, signals.received, settings, url, announce)
    run_dir.mkdir(parents=True)
    plan_path = plan.write(run_dir / PLAN_FILE)
    announce(f"results: {run_dir}")
    logs = [run_dir / f"worker-{i}.log" for i in range(launch.topology.local_workers)]
    started_at = utc_now()
    code = run_processes(
        locust_command(plan, launch, url, run_dir),
        worker_commands(plan, launch),
        child_env(
            url,
            key,
            plan_path,
            sample_queue=checked.sample_queue,
            http_client=settings.http_client,
        ),
        logs,
    )
    if not (run_dir / VERDICT_FILE).exists():
        code = _write_fallback_verdict(plan, run_dir, code)
    report = profile_summary(plan, run_dir)
    if report:
        print("\n".join(report), flush=True)
        write_profile_report(run_dir, report)
    keep_record(
        settings, plan, run_dir, url, started_at, announce, save_reference=launch.save_reference
    )
    announce(f"results: {run_dir} (exit code {code})")
    return code, run_dir


def check_target(
    settings: Settings,
    url: str,
    key: str,
    announce: Callable[[str], None],
    needs: PreflightNeeds | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> Preflight:
    """The preflight checks the run ``needs`` against its target, before any load; lines on
    stderr. ``stopped`` ends it between two checks (a signal arrived)."""
    checked = settings.model_copy(update={"api_url": url, "api_key": SecretStr(key)})
    outcome = check_platform(checked, out=sys.stderr, api_url=url, needs=needs, stopped=stopped)
    if not outcome.passed and not stopped():
        announce("preflight failed: nothing was sent (--skip-preflight runs anyway)")
    return outcome


def run_worker(
    plan_scenario: str,
    launch: Launch,
    announce: Callable[[str], None],
    http_client: str = "fast",
) -> int:
    """A cluster worker: no target, results or verdict of its own; the master has them."""
    topology = replace(launch.topology, local_workers=1)
    announce(f"worker of {topology.master_host}:{topology.master_port}")
    command = [*worker_command(plan_scenario), *topology.worker_args()]
    return run_processes(command, [], {**os.environ, HTTP_CLIENT_ENV: http_client})


# -- a verdict for every ending -------------------------------------------------------------------


class SignalWatch:
    """Notes SIGINT/SIGTERM while the parent works alone (preflight), instead of dying."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalWatch:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def was_received(self) -> bool:
        return self.received is not None

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"


def _stopped_before_load(
    plan: RunPlan,
    run_dir: Path,
    what: str,
    settings: Settings,
    url: str,
    announce: Callable[[str], None],
) -> tuple[int, Path]:
    """A signal during preflight: the run's folder holds a verdict saying so, and is recorded."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plan.write(run_dir / PLAN_FILE)
    verdict = unmeasured_verdict(
        plan, RunState.INTERRUPTED, f"{what} during preflight: no load was sent"
    )
    _write(verdict, run_dir)
    print(render_console(verdict), flush=True)
    keep_record(settings, plan, run_dir, url, utc_now(), announce)
    announce(f"results: {run_dir} (exit code {verdict.exit_code})")
    return verdict.exit_code, run_dir


def _write_fallback_verdict(plan: RunPlan, run_dir: Path, code: int) -> int:
    """Locust ended without a verdict (killed, crashed, stopped during start-up): say so."""
    if code < 0:
        how = f"the Locust process was killed by signal {signal.Signals(-code).name}"
    else:
        how = f"the Locust process exited with code {code} before judging the run"
    verdict = unmeasured_verdict(plan, RunState.INTERRUPTED, f"{how}; see locust.log")
    _write(verdict, run_dir)
    print(render_console(verdict), flush=True)
    return 2 if code == 2 else verdict.exit_code


def unmeasured_verdict(plan: RunPlan, state: RunState, reason: str) -> Verdict:
    """The verdict of a run that measured nothing the parent can read: its state, no criteria."""
    notes = ()
    if plan.baseline is not None:
        notes = (f"the criteria of {plan.baseline.path} were not judged: nothing was measured",)
    return Verdict(
        scenario=plan.scenario or "custom",
        profile=plan.profile,
        window=Window(None, None, "nothing was measured"),
        results=(),
        totals=Totals(0, 0, 0.0, None),
        state=state,
        state_reason=reason,
        baseline_path=plan.baseline.path if plan.baseline else None,
        notes=notes,
    )


def _write(verdict: Verdict, run_dir: Path) -> None:
    write_verdict_json(verdict, run_dir / VERDICT_FILE)
    write_junit_xml(verdict, run_dir / "junit.xml")
    (run_dir / "summary.txt").write_text(render_console(verdict), encoding="utf-8")


def ui_command(
    scenario: str, host: str, results_dir: Path, web_port: int, extra: Sequence[str] = ()
) -> list[str]:
    """Locust's web UI with every profile in the class picker, bound to loopback."""
    locustfile = registry.get_scenario(scenario).locustfile
    return [
        sys.executable, "-m", "locust",
        "-f", f"{locustfile},{PROFILE_SHAPES_FILE}",
        "--class-picker",
        "--web-host", "127.0.0.1",
        "--web-port", str(web_port),
        "--host", host,
        "--results-dir", str(results_dir),
        *extra,
    ]  # fmt: skip
