"""Where the kit's web routes live: under Locust's ``--web-base-path``, behind its login.

Locust moves its own routes under ``--web-base-path /locust``; routes a plugin adds with
``app.route`` stay at the root, where a proxy that forwards only ``/locust/`` never sends them
(the Baseline tab then polled a route that did not exist). Every kit route is added here, under
the same prefix and with Locust's ``auth_required_if_enabled``, so no route of the kit's is ever
outside the prefix or the login.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def base_path(web_ui: Any) -> str:
    """Locust's ``--web-base-path`` (its blueprint's prefix), without a trailing slash."""
    blueprint = web_ui.app.blueprints.get("locust")
    return (getattr(blueprint, "url_prefix", None) or "").rstrip("/")


def kit_path(web_ui: Any, path: str) -> str:
    """``path`` (``/loadkit/status``) as served: under the base path."""
    return base_path(web_ui) + path


def add_kit_route(
    web_ui: Any,
    path: str,
    endpoint: str,
    view: Callable[..., Any],
    methods: Sequence[str] = ("GET",),
    *,
    login: bool = True,
) -> str:
    """Serve ``view`` at ``path`` under the base path, behind the login; returns the full path."""
    full = kit_path(web_ui, path)
    guarded = web_ui.auth_required_if_enabled(view) if login else view
    web_ui.app.add_url_rule(full, endpoint, guarded, methods=list(methods))
    return full
