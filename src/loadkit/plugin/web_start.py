"""The web UI's START and STOP, seen by the kit before and after Locust handles them.

* ``POST /swarm``: the form is checked first (``core.start_form``, the command line's checks and
  words); a bad value is refused with ``{"success": false, "message": "loadkit: ..."}``, which
  Locust's page shows under the form, and nothing starts. After Locust answered, the session
  learns whether the start was accepted (a new run is coming: the old verdict goes at once) or
  refused (its reason is shown instead of any verdict), and the form's Run time becomes the run's
  planned end (the kit's timer ends it; Locust's own web timer, which runs on gevent's lagging
  loop clock and stopped runs early, is cancelled).
* ``POST /stop``: the run control learns the stop came from the web UI, so a stop before the
  planned end reads "stopped from the web UI at 12 s of 90 s".
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

from flask import g, jsonify, request
from flask_login import current_user
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from loadkit import registry
from loadkit.core.limits import OVERRIDE_ENV
from loadkit.core.start_form import (
    FIELDS,
    ShapeChoice,
    StartFormError,
    StartRequest,
    check_start_form,
)
from loadkit.plugin import locust_adapter
from loadkit.plugin.run_control import RunControl
from loadkit.plugin.staged_shape import StagedShape
from loadkit.plugin.web_routes import kit_path
from loadkit.plugin.web_status import WebSession

logger = logging.getLogger("loadkit")

STOP_SOURCE: Final = "from the web UI"


def install_start_checks(
    environment: Environment, control: RunControl, session: WebSession
) -> None:
    """Check every start before Locust sees it, and tell the session how it went."""
    web_ui = environment.web_ui
    assert web_ui is not None
    app = web_ui.app
    swarm_path, stop_path = kit_path(web_ui, "/swarm"), kit_path(web_ui, "/stop")

    @app.before_request
    def _before() -> Any:
        if request.method != "POST":
            return None
        if request.path == stop_path:
            control.stop_requested(STOP_SOURCE)
            return None
        if request.path != swarm_path:
            return None
        runner = environment.runner
        busy = _previous_shape_test(environment, control)
        if busy is not None:
            logger.warning("loadkit: web UI start refused: %s", busy)
            return jsonify(
                {"success": False, "message": f"loadkit: {busy}", "host": environment.host}
            )
        g.loadkit_was_running = runner is not None and runner.state in (
            STATE_RUNNING,
            STATE_SPAWNING,
        )
        try:
            g.loadkit_start = check_swarm_form(environment, request.form)
        except StartFormError as exc:
            logger.warning("loadkit: web UI start refused: %s", exc)
            message = f"loadkit: {exc}"
            return jsonify({"success": False, "message": message, "host": environment.host})
        return None

    @app.after_request
    def _after(response: Any) -> Any:
        if request.method != "POST" or request.path != swarm_path:
            return response
        payload = response.get_json(silent=True) if response.is_json else None
        if response.status_code == 200 and isinstance(payload, dict) and payload.get("success"):
            start: StartRequest | None = g.get("loadkit_start")
            locust_adapter.cancel_web_run_time(web_ui)
            control.start_requested(start.run_time_s if start is not None else None)
            session.start_accepted(was_running=bool(g.get("loadkit_was_running")))
        elif _from_the_ui_user(web_ui):
            message = payload.get("message") if isinstance(payload, dict) else None
            session.start_refused(str(message or f"HTTP {response.status_code}"))
        return response


#: Longest a START waits for the previous shape test to finish stopping, beyond its graceful stop.
SHAPE_END_WAIT_S: Final = 5.0


def _previous_shape_test(environment: Environment, control: RunControl) -> str | None:
    """Why a start cannot be taken now because of the previous shape test, or None.

    A START pressed while a profile's run is ending (its verdict may already show) waits for
    that run to finish stopping instead of being silently dropped by Locust; a START while a
    profile is still driving the load is refused in words (Locust would ignore it too).
    """
    runner = environment.runner
    if runner is None:
        return None
    if locust_adapter.shape_test_running(runner):
        return "a profile is running: stop it before starting another run"
    graceful_s = float(environment.stop_timeout or 0) or control.ctx.settings.graceful_stop_s
    wait_s = graceful_s + SHAPE_END_WAIT_S
    if locust_adapter.shape_test_still_ending(runner, wait_s):
        return f"the previous run is still stopping after {wait_s:g} s: press START again later"
    return None


def _from_the_ui_user(web_ui: Any) -> bool:
    """A refusal worth showing: from the UI's own pages (the guard let its Host and Origin
    through) and, with a login, from someone logged in. A page elsewhere or a stranger must not
    change what the UI's user sees."""
    if not g.get("loadkit_own_page", True):
        return False
    return not web_ui.web_login or bool(current_user.is_authenticated)


def check_swarm_form(environment: Environment, form: Any) -> StartRequest:
    """The start a ``/swarm`` form asks for, checked; :class:`StartFormError` if refused.

    A field the form leaves out keeps the option's current value (Locust only overwrites the
    fields it is sent), so that value is what gets checked.
    """
    options = environment.parsed_options
    fields = {name: _as_text(form[name] if name in form else getattr(options, name, None))
              for name in FIELDS}  # fmt: skip
    return check_start_form(
        fields,
        _shape_choice(environment, form),
        processes=max(1, int(getattr(environment.runner, "worker_count", 0) or 0)),
        exceed_limits=os.environ.get(OVERRIDE_ENV) == "1",
    )


def _shape_choice(environment: Environment, form: Any) -> ShapeChoice:
    """What the picked shape class plays (the form's choice, else the current shape)."""
    available = environment.available_shape_classes or {}
    name = form.get("shape_class") if available else None
    if name is None:
        shape = environment.shape_class
    elif name == "Default":
        return ShapeChoice("Default")
    elif name not in available:
        known = ("Default", *sorted(available))
        raise StartFormError(registry.unknown_name("shape class", name, known))
    else:
        shape = available[name]
    if shape is None:
        return ShapeChoice("Default")
    if not isinstance(shape, StagedShape):
        return ShapeChoice(type(shape).__name__)
    own = type(shape).stages
    return ShapeChoice(
        type(shape).__name__,
        staged=True,
        profile=None if own else type(shape).profile,
        stages=tuple(own),
    )


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)
