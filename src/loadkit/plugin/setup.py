"""The kit's Locust plugin: settings, the embedded platform and the secret filter for every run.

Imported (through ``loadkit.plugin.user``) by every locustfile, so plain ``locust -f`` and
``loadkit run`` behave the same. Listeners are registered here at import, the way Locust plugins
are; the work they do happens in ``init`` (every process) and ``quitting``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.observe.queue_sources import QueueSourceError
from loadkit.plugin import arrival
from loadkit.plugin import verdict as verdict_hook
from loadkit.plugin.host_guard import install_host_guard, refuse_if_off_list
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.plugin.locust_adapter import keep_out_of_total
from loadkit.plugin.outputs import add_output_arguments, install_outputs
from loadkit.plugin.queue import install_queue_sampler
from loadkit.plugin.redaction import add_secrets, install_redaction
from loadkit.plugin.staged_shape import add_profile_arguments
from loadkit.plugin.verdict import add_verdict_arguments
from loadkit.plugin.watchdog import install_watchdog
from loadkit.plugin.web_guard import install_web_guard
from loadkit.plugin.worker_wait import install_worker_wait
from loadkit.plugin.worker_watch import add_worker_arguments
from loadkit.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("loadkit")


@dataclass
class KitContext:
    """What the kit keeps per Locust environment."""

    settings: Settings
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    extras: dict[str, Any] = field(default_factory=dict)


def context_of(environment: Environment) -> KitContext:
    """The kit's context of this environment, built from env/.env if ``init`` has not run.

    Tests (and library users) that build an ``Environment`` by hand never fire ``init``; they
    still get the same settings object the plugin would have built.
    """
    ctx = getattr(environment, "loadkit", None)
    if ctx is None:
        ctx = KitContext(settings=load_settings())
        environment.loadkit = ctx  # type: ignore[attr-defined]
    return ctx


def settings_of(environment: Environment) -> Settings:
    return context_of(environment).settings


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    add_profile_arguments(parser)
    add_verdict_arguments(parser)
    arrival.add_arrival_arguments(parser)
    add_output_arguments(parser)
    add_worker_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        exit_invalid(str(exc))
        return
    ctx = KitContext(settings=settings)
    environment.loadkit = ctx  # type: ignore[attr-defined]
    install_watchdog(environment)
    keep_out_of_total(environment.stats)
    install_redaction(environment, settings)  # after: its error masking must wrap every path
    install_host_guard(environment, settings)
    install_web_guard(environment)
    verdict_hook.install(environment)
    arrival.install(environment)
    install_outputs(environment)
    if isinstance(environment.runner, WorkerRunner):
        if not settings.api_key_value:
            exit_invalid("API_KEY is not set on this worker (workers need the same key)")
        return
    _aim(environment, ctx)
    install_worker_wait(environment)
    results_dir = getattr(environment.parsed_options, "results_dir", None)
    try:
        install_queue_sampler(
            environment, ctx.settings, results_dir=Path(results_dir) if results_dir else None
        )
    except QueueSourceError as exc:
        exit_invalid(str(exc))


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
    from loadkit.platform.launcher import start_platform

    key = settings.api_key_value or _random_key()
    platform = ctx.cleanup.enter_context(start_platform(api_key=key))
    ctx.settings = settings.model_copy(update={"api_key": settings.api_key or _secret(key)})
    add_secrets(environment, [key])
    environment.host = platform.url
    ctx.extras["platform"] = platform
    logger.info("loadkit: no API_URL given; embedded reference platform at %s", platform.url)


def _random_key() -> str:
    import secrets

    return secrets.token_urlsafe(24)


def _secret(key: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(key)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    ctx = getattr(environment, "loadkit", None)
    if ctx is not None:
        ctx.cleanup.close()
