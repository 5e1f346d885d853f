"""Refusing, inside Locust, a target host that is off the allow-list (``loadkit.core.hosts``).

The ``loadkit`` command checks the host before it starts Locust; this covers what it cannot see:
plain ``locust -f locustfiles/x.py --host ...``, a ``--host`` given after ``--``, and a worker
whose master (maybe on another machine, maybe not running the kit) tells it where to send.
The web UI's host field is checked by ``web_guard``.
"""

from __future__ import annotations

from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.core.hosts import AllowList, AllowListError, HostNotAllowedError
from loadkit.plugin.context import context_of, existing_context
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.settings import Settings


def allow_list_of(environment: Environment) -> AllowList:
    """The allow-list this process enforces (kept on the environment at ``init``)."""
    allow = existing_context(environment, "allow_list")
    return allow if isinstance(allow, AllowList) else AllowList.of()


def install_host_guard(environment: Environment, settings: Settings) -> AllowList:
    """Keep the allow-list for this process; on a worker, check each host the master sends."""
    try:
        allow = settings.allow_list()
    except AllowListError as exc:  # settings validate it; a hand-built Settings may not
        exit_invalid(str(exc))
    context_of(environment).extras["allow_list"] = allow
    if isinstance(environment.runner, WorkerRunner):
        # Locust sets the host from the spawn message before test_start fires, and starts the
        # users after it: a refusal here sends nothing.
        environment.events.test_start.add_listener(lambda **_: refuse_if_off_list(environment))
    return allow


def refuse_if_off_list(environment: Environment) -> None:
    """Exit 2 with one line if ``environment.host`` is set and off the allow-list."""
    if not environment.host:
        return
    try:
        allow_list_of(environment).check_url(environment.host, what="--host")
    except HostNotAllowedError as exc:
        exit_invalid(str(exc))
