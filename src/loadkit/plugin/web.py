"""The kit's web UI, set up in one place and in the order its checks must run.

Flask runs ``before_request`` hooks in the order they were added: the guard (``web_guard``:
Host and Origin, added first, in ``init``), then the login (nobody reaches a route without it),
then the start checks (a form is judged only for someone logged in). Every kit route sits under
Locust's ``--web-base-path`` and behind the login (``web_routes``):

* ``/loadkit/status``: live or final, the run's state, window, totals (``web_status``);
* ``/loadkit/verdict``: the current run's ``verdict.json`` document, for scripts;
* ``/loadkit/runs`` and the runs' files (``web_runs``);
* the page's script, its stylesheet and the form's help (``web_page``);
* ``/loadkit/queue`` and ``/loadkit/queue.csv`` (``queue_web``, with the Queue depth tab).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify
from locust.env import Environment

from loadkit.plugin.run_control import RunControl
from loadkit.plugin.web_login import install_web_login
from loadkit.plugin.web_page import install_page
from loadkit.plugin.web_routes import add_kit_route
from loadkit.plugin.web_runs import register_runs
from loadkit.plugin.web_start import install_start_checks
from loadkit.plugin.web_status import STATUS_ROUTE, VERDICT_ROUTE, WebSession
from loadkit.results.verdict_files import verdict_to_dict
from loadkit.settings import Settings


def install_web(
    environment: Environment, control: RunControl, settings: Settings, scenario: str | None
) -> WebSession | None:
    """Everything the kit adds to this process's web UI, if it has one."""
    web_ui = environment.web_ui
    if web_ui is None:
        return None
    install_web_login(environment, settings)
    session = WebSession(environment, control)
    install_start_checks(environment, control, session)

    def status() -> Any:
        return jsonify({**session.status(), "generation": session.generation})

    def verdict() -> Any:
        current = session.verdict()
        if current is None:
            return jsonify({"verdict": None, "phase": session.phase(), "refused": session.refused})
        return jsonify(verdict_to_dict(current))

    add_kit_route(web_ui, STATUS_ROUTE, "loadkit_status", status)
    add_kit_route(web_ui, VERDICT_ROUTE, "loadkit_verdict", verdict)
    register_runs(environment)
    install_page(environment, scenario)
    return session
