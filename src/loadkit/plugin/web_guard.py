"""Guarding Locust's web UI: who may start load, where it may go, and what the pages show.

Locust's UI has no protection of its own: ``POST /swarm`` accepts a form from any web page in
any browser on the machine, with any ``host`` field (a test post started 1,637 requests carrying
``X-API-Key`` to a host of the poster's choosing). A Flask ``before_request`` hook on
``environment.web_ui.app`` now refuses, with 403 and a one-line message:

* a request whose ``Host`` header is a DNS name other than localhost and this machine's names
  (DNS rebinding: a page on ``evil.test`` whose name later resolves to 127.0.0.1 is "same
  origin" with the UI in the browser's eyes; an IP address in ``Host`` cannot be rebound);
* a state-changing request (POST, PUT, PATCH, DELETE: ``/swarm``, ``/stop``, ``/stats/reset``,
  the kit's own) whose ``Origin`` (or, without one, ``Referer``) is not the UI's own origin, or
  that the browser marks ``Sec-Fetch-Site: cross-site``. Requests with neither header come from
  scripts, not browsers, and pass: a page cannot send them;
* a ``/swarm`` whose ``host`` is off the allow-list, or whose user count or spawn rate is above
  the kit's limits (``LOADKIT_EXCEED_LIMITS=1`` lifts those, as ``--exceed-limits`` does).

An ``after_request`` hook masks the kit's secrets in every page and JSON answer (Locust shows
the host, with any ``user:password@``, on its pages and in its report download).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from typing import Any, Final
from urllib.parse import urlsplit

from locust.env import Environment

from loadkit.core.hosts import HostNotAllowedError
from loadkit.core.limits import (
    OVERRIDE_ENV,
    LimitError,
    LoadSize,
    check_limits,
    check_numbers,
)
from loadkit.plugin.context import context_of
from loadkit.plugin.host_guard import allow_list_of
from loadkit.plugin.redaction import redactor_of

logger = logging.getLogger("loadkit")

STATE_CHANGING_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
#: Answers that are text the kit may rewrite (not files streamed from disk).
MASKED_MIMETYPES: Final = ("text/", "application/json", "application/javascript")


def install_web_guard(environment: Environment) -> bool:
    """Add the guards to this process's web UI, if it has one; True if installed."""
    web_ui = environment.web_ui
    ctx = context_of(environment)
    if web_ui is None or ctx.extras.get("web_guard"):
        return False
    ctx.extras["web_guard"] = True
    app = web_ui.app
    own_names = _own_host_names(environment)

    @app.before_request
    def _guard() -> Any:
        from flask import g, request

        problem = host_header_problem(request.host, own_names) or (
            request.method in STATE_CHANGING_METHODS and origin_problem(request)
        )
        g.loadkit_own_page = not problem  # the web UI's session reports only its own refusals
        if not problem and request.method == "POST" and request.path.endswith("/swarm"):
            problem = swarm_problem(environment, request.form)
        if problem:
            logger.warning(
                "loadkit: web UI refused %s %s: %s", request.method, request.path, problem
            )
            return _refusal(problem)
        return None

    @app.after_request
    def _mask(response: Any) -> Any:
        if response.direct_passthrough or response.is_streamed:
            return response
        if not (response.mimetype or "").startswith(MASKED_MIMETYPES):
            return response
        text = response.get_data(as_text=True)
        masked = redactor_of(environment).mask(text)
        if masked != text:
            response.set_data(masked)
        return response

    return True


def host_header_problem(host_header: str, own_names: frozenset[str]) -> str | None:
    """Why a ``Host`` header is refused (a DNS name that is not ours), or None."""
    hostname = urlsplit(f"//{host_header}").hostname or ""
    try:
        ipaddress.ip_address(hostname)
        return None
    except ValueError:
        pass
    if hostname.removesuffix(".") in own_names:
        return None
    return (
        f"Host {hostname!r} is not this machine's name (open the UI by its address, e.g. "
        "http://127.0.0.1:PORT)"
    )


def origin_problem(request: Any) -> str | None:
    """Why a state-changing request is not from the UI's own pages, or None."""
    own = request.host_url.rstrip("/").lower()
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return "a cross-site request (only the UI's own pages may change a test)"
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.rstrip("/").lower() != own:
            return f"Origin {origin!r} is not the UI's own ({own})"
        return None
    referer = request.headers.get("Referer")
    if referer is not None and not (referer.lower() + "/").startswith(own + "/"):
        return "Referer is not the UI's own page"
    return None


def swarm_problem(environment: Environment, form: Any) -> str | None:
    """Why a ``/swarm`` form is refused: a host off the list, or users/rates over the limits."""
    host = str(form.get("host") or "").replace("<", "").replace(">", "")
    if host:
        try:
            allow_list_of(environment).check_url(host, what="host")
        except HostNotAllowedError as exc:
            return str(exc)
    try:
        users = int(form["user_count"]) if form.get("user_count") else None
        spawn_rate = float(form["spawn_rate"]) if form.get("spawn_rate") else None
    except ValueError:
        return None  # Locust answers a malformed number itself
    size = LoadSize(processes=_processes(environment), users=users, spawn_rate_per_s=spawn_rate)
    try:
        if users is not None and users == 0:
            return None  # Locust's "0 users" keeps a started test idle; nothing to bound
        check_numbers(size)
        if os.environ.get(OVERRIDE_ENV) != "1":
            check_limits(size)
    except LimitError as exc:
        return str(exc)
    return None


def _processes(environment: Environment) -> int:
    runner = environment.runner
    return max(1, int(getattr(runner, "worker_count", 0) or 0))


def _own_host_names(environment: Environment) -> frozenset[str]:
    names = set(LOCAL_NAMES)
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
    web_host = getattr(environment.parsed_options, "web_host", None)
    if web_host and web_host not in ("*", "0.0.0.0", "::"):
        names.add(str(web_host).lower())
    return frozenset(names)


def _refusal(message: str) -> Any:
    from flask import jsonify

    response = jsonify({"success": False, "message": f"loadkit: {message}"})
    response.status_code = 403
    return response
