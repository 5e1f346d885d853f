"""The kit's Locust plugin: what every Locust process of a kit run sets up, and in which order.

Imported (through ``loadkit.plugin.user``) by every locustfile, so plain ``locust -f`` and
``loadkit run`` behave the same. Listeners are registered here at import, the way Locust plugins
are; the work happens in ``init`` (every process) and in the parts it creates:

* every process: settings, the secret filter, the collector (``plugin.measurement``), the
  arrival-rate tracker;
* local runner or master: the run plan (``LOADKIT_PLAN`` from ``loadkit run``, else built per
  start), the target (an embedded platform when none is given), the run control (timer, stop
  causes, verdict), the outputs, the queue sampler, the worker watch, the web UI tabs.

Order matters where parts listen to the same Locust event: the run control's ``test_start``
listener is registered before the others, so they see the new run's plan and folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit import registry
from loadkit.core.plan import PLAN_ENV, PlanError, RunPlan
from loadkit.endpoints import PLATFORM_METRICS
from loadkit.observe.queue_sources import QueueSourceError
from loadkit.plugin import arrival, locust_adapter
from loadkit.plugin.context import KitContext, attach_context, context_of, settings_of
from loadkit.plugin.host_guard import install_host_guard, refuse_if_off_list
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.plugin.measurement import measurement_of
from loadkit.plugin.outputs import add_output_arguments, install_outputs
from loadkit.plugin.platform_metrics import install_platform_metrics
from loadkit.plugin.purposes import install_timeline
from loadkit.plugin.queue import install_queue_sampler
from loadkit.plugin.records import install_records
from loadkit.plugin.redaction import add_secrets, install_redaction
from loadkit.plugin.run_control import RunControl
from loadkit.plugin.staged_shape import add_profile_arguments
from loadkit.plugin.verdict import (
    add_verdict_arguments,
    baseline_from_options,
    scenario_of,
)
from loadkit.plugin.watchdog import install_watchdog
from loadkit.plugin.web import install_web
from loadkit.plugin.web_guard import install_web_guard
from loadkit.plugin.worker_wait import install_worker_wait
from loadkit.plugin.worker_watch import add_worker_arguments, install_worker_watch
from loadkit.results.locust_files import finalize_csv_at_exit
from loadkit.settings import SettingsError, load_settings

__all__ = ["context_of", "settings_of"]

logger = logging.getLogger("loadkit")


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    add_profile_arguments(parser)
    add_verdict_arguments(parser)
    arrival.add_arrival_arguments(parser)
    add_output_arguments(parser)
    add_worker_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if registry.LOAD_ERROR is not None:
        exit_invalid(str(registry.LOAD_ERROR))
    try:
        settings = load_settings()
    except SettingsError as exc:
        exit_invalid(str(exc))
        return
    ctx = attach_context(environment, KitContext(settings=settings))
    install_watchdog(environment)
    measurement = measurement_of(environment)
    install_redaction(environment, settings)
    install_host_guard(environment, settings)
    install_web_guard(environment)
    arrival.install(environment)
    if isinstance(environment.runner, WorkerRunner):
        locust_adapter.cache_default_options()
        if not settings.api_key_value:
            exit_invalid("API_KEY is not set on this worker (workers need the same key)")
        return
    ctx.planned = _read_plan()
    _session(environment, ctx)
    _aim(environment, ctx)
    control = ctx.control = RunControl(environment, ctx, measurement)
    control.subscribe()
    install_records(environment, ctx)
    finalize_csv_at_exit(environment)
    install_worker_wait(environment)
    install_outputs(environment, control)
    try:
        install_queue_sampler(environment, ctx)
    except QueueSourceError as exc:
        exit_invalid(str(exc))
    install_platform_metrics(environment, ctx)
    install_timeline(environment, ctx)
    install_worker_watch(environment, control.on_worker_lost)
    install_web(environment, control, ctx.settings, _scenario(ctx))


def _scenario(ctx: KitContext) -> str | None:
    return ctx.planned.scenario if ctx.planned is not None else ctx.extras.get("scenario")


def _read_plan() -> RunPlan | None:
    """The plan ``loadkit run`` wrote for this process, if it started it."""
    path = os.environ.get(PLAN_ENV)
    if not path:
        return None
    try:
        return RunPlan.read(Path(path))
    except (OSError, ValueError, KeyError, PlanError) as exc:
        exit_invalid(f"cannot read the run plan {path}: {exc}")


def _session(environment: Environment, ctx: KitContext) -> None:
    """What a session without a plan file needs: scenario, baseline, where results go."""
    options = environment.parsed_options
    if ctx.planned is not None:
        if ctx.planned.results_dir:
            ctx.results_root = Path(ctx.planned.results_dir)
        return
    scenario = scenario_of(options)
    ctx.extras["scenario"] = scenario
    ctx.extras["baseline"] = baseline_from_options(options, scenario)
    results_dir = getattr(options, "results_dir", None)
    ctx.results_root = Path(results_dir) if results_dir else None


def _aim(environment: Environment, ctx: KitContext) -> None:
    """Point the run at ``--host``, else ``API_URL``, else an embedded reference platform."""
    settings = ctx.settings
    if not environment.host and settings.api_url:
        environment.host = settings.api_url
    if environment.host:
        refuse_if_off_list(environment)
        if not settings.api_key_value:
            exit_invalid(f"API_KEY is not set (needed to call {environment.host})")
        return
    from loadkit.platform.launcher import embedded_platform

    platform, key = ctx.cleanup.enter_context(embedded_platform(settings))
    ctx.settings = settings.with_api_key(key)
    if settings.metrics_url is None:  # the reference platform serves its own metrics
        ctx.settings = ctx.settings.model_copy(update={"metrics_url": PLATFORM_METRICS})
    add_secrets(environment, [key])
    environment.host = platform.url
    logger.info("loadkit: no API_URL given; embedded reference platform at %s", platform.url)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    # Registered at import, so it runs after the run control's quitting listener (added in init).
    context_of(environment).cleanup.close()
