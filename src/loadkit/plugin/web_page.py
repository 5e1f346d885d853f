"""The kit's part of Locust's page: a status strip, the Baseline tab's content, the form's help.

Locust 2.47's page is a built React bundle whose only extension points are tables of plain text
(``extended_tabs``/``extended_tables``) refreshed every two seconds: no links, no state of its
own, no way to react to START the moment it is pressed. The kit adds one small script
(``webui/loadkit.js``, plain DOM, no build step) to the index page instead. It polls
``/loadkit/status`` and ``/loadkit/runs`` once a second and shows:

* a strip above Locust's header, on every tab: LIVE / STOPPING / FINAL / STARTING / REFUSED,
  the run's state, elapsed and planned seconds, the measured window, totals and the verdict line;
* the Baseline tab: the same, each criterion (with why it was skipped), the notes, and every run
  of the session with its verdict and links to its files;
* beside the class picker: the chosen profile's purpose, stages and length (with the Time Scale
  applied), and for an arrival-rate scenario, that its load is the rate.

The script is added to Locust's ``index.html`` on its way out (``inject_script``), under the
base path; everything it reads is served behind the same login as the page.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any, Final

from flask import Response, jsonify, request
from locust.env import Environment

from loadkit import registry
from loadkit.core.profiles import total_duration_s
from loadkit.plugin.staged_shape import StagedShape
from loadkit.plugin.web_routes import add_kit_route, kit_path

BASELINE_TAB_KEY: Final = "loadkit-baseline"
FORM_ROUTE: Final = "/loadkit/form"
ASSETS: Final = {"/loadkit/ui.js": "application/javascript", "/loadkit/ui.css": "text/css"}
ASSET_FILES: Final = {"/loadkit/ui.js": "loadkit.js", "/loadkit/ui.css": "loadkit.css"}


def install_page(environment: Environment, scenario: str | None) -> None:
    """Add the Baseline tab, the script and what it reads to this process's web UI."""
    web_ui = environment.web_ui
    assert web_ui is not None
    # The tab's content is drawn by the script: no table structure, so Locust draws nothing.
    web_ui.template_args.setdefault("extended_tabs", []).append(
        {"title": "Baseline", "key": BASELINE_TAB_KEY}
    )
    for route, mimetype in ASSETS.items():
        add_kit_route(
            web_ui, route, "loadkit_asset_" + route.rsplit(".", 1)[1], _asset(route, mimetype)
        )
    add_kit_route(
        web_ui, FORM_ROUTE, "loadkit_form", lambda: jsonify(form_info(environment, scenario))
    )
    index_path = kit_path(web_ui, "/")
    tag = script_tag(kit_path(web_ui, ""))

    @web_ui.app.after_request
    def _add_script(response: Any) -> Any:
        if request.path != index_path or response.mimetype != "text/html":
            return response
        response.set_data(inject_script(response.get_data(as_text=True), tag))
        return response


def script_tag(base: str) -> str:
    """The stylesheet and script of the kit, told the base path they run under."""
    base_attr = html.escape(base, quote=True)
    return (
        f'<link rel="stylesheet" href="{base_attr}/loadkit/ui.css">'
        f'<script src="{base_attr}/loadkit/ui.js" data-base="{base_attr}" defer></script>'
    )


def inject_script(page: str, tag: str) -> str:
    """``page`` with ``tag`` before its ``</body>`` (Locust's index.html has one)."""
    at = page.rfind("</body>")
    if at < 0:
        return page + tag
    return page[:at] + tag + page[at:]


def form_info(environment: Environment, scenario: str | None) -> dict[str, Any]:
    """What the form's help shows: the scenario, and what each shape class in the picker plays."""
    spec = registry.SCENARIOS.get(scenario or "")
    shapes: dict[str, Any] = {
        "Default": {"kind": "default"},
    }
    for name, shape in (environment.available_shape_classes or {}).items():
        shapes[name] = _shape_info(shape)
    return {
        "scenario": scenario,
        "purpose": spec.purpose if spec else None,
        "load": spec.load.describe() if spec else None,
        "arrival": bool(spec and spec.is_arrival_rate),
        "default_rate_per_s": spec.default_rate_per_s if spec else None,
        "shapes": shapes,
    }


def _shape_info(shape: Any) -> dict[str, Any]:
    if not isinstance(shape, StagedShape):
        return {"kind": "own", "purpose": (type(shape).__doc__ or "").strip()}
    cls = type(shape)
    stages = cls.base_stages()
    if not stages:
        return {"kind": "custom"}
    profile = registry.PROFILES.get(cls.profile or "") if not cls.stages else None
    return {
        "kind": "profile" if profile else "own",
        "profile": profile.name if profile else None,
        "purpose": profile.purpose if profile else (cls.__doc__ or "").strip(),
        "k6": profile.k6 if profile else None,
        "stages": [[stage.duration_s, stage.target_users] for stage in stages],
        "duration_s": total_duration_s(stages),
    }


def _asset(route: str, mimetype: str) -> Any:
    text = (
        resources.files("loadkit.plugin")
        .joinpath("webui", ASSET_FILES[route])
        .read_text(encoding="utf-8")
    )

    def serve() -> Response:
        return Response(text, mimetype=mimetype, headers={"Cache-Control": "no-cache"})

    return serve
