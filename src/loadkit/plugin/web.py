"""A "Baseline" tab in Locust's web UI: each criterion's live status, then the final verdict.

Uses Locust's documented extension points (``extended_tabs`` / ``extended_tables`` in the
template arguments, rows added to ``/stats/requests`` as ``extended_stats``), so the tab is
refreshed with the rest of the UI every two seconds. ``/loadkit/verdict`` serves the same
verdict as ``verdict.json`` for scripts. While a test runs, the criteria are judged on what has
been recorded so far (at most once a second); after it stops, the final verdict is shown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from locust.env import Environment

from loadkit.core.verdict import Verdict
from loadkit.results.verdict_files import verdict_to_dict

TAB_KEY = "loadkit-baseline"
VERDICT_ROUTE = "/loadkit/verdict"
STATS_ROUTE = "/stats/requests"
MIN_EVALUATION_INTERVAL_S = 1.0
_MARKS = {
    "passed": "✓ passed",
    "failed": "✗ failed",
    "no data": "✗ no data",
    "skipped": "– skipped",
}


def verdict_rows(verdict: Verdict) -> list[dict[str, str]]:
    """One table row per criterion, plus the overall line."""
    rows = []
    for result in verdict.results:
        criterion = result.criterion
        measured = "" if result.measured is None else criterion.format(result.measured)
        rows.append(
            {
                "criterion": f"{criterion.subject} {criterion.metric}",
                "threshold": f"{criterion.op} {criterion.format(criterion.threshold)}",
                "measured": measured,
                "status": _MARKS.get(result.status, result.status),
            }
        )
    rows.append(
        {"criterion": "verdict", "threshold": "", "measured": "", "status": verdict.summary}
    )
    return rows


class BaselineTab:
    """Keeps the last evaluation and hands it to the UI."""

    def __init__(self, current: Callable[[], Verdict | None]) -> None:
        self._current = current
        self._cached: Verdict | None = None
        self._cached_at_s = float("-inf")

    def verdict(self) -> Verdict | None:
        now_s = time.monotonic()
        if now_s - self._cached_at_s >= MIN_EVALUATION_INTERVAL_S:
            self._cached = self._current()
            self._cached_at_s = now_s
        return self._cached


def register_baseline_tab(environment: Environment, current: Callable[[], Verdict | None]) -> None:
    """Add the tab and the JSON route to the web UI, if this process has one."""
    web_ui = environment.web_ui
    if web_ui is None:
        return
    tab = BaselineTab(current)
    args = web_ui.template_args
    args.setdefault("extended_tabs", []).append({"title": "Baseline", "key": TAB_KEY})
    args.setdefault("extended_tables", []).append(
        {
            "key": TAB_KEY,
            "structure": [
                {"key": "criterion", "title": "Criterion"},
                {"key": "threshold", "title": "Threshold"},
                {"key": "measured", "title": "Measured"},
                {"key": "status", "title": "Status"},
            ],
        }
    )
    app = web_ui.app

    @app.after_request
    def _add_baseline_rows(response: Any) -> Any:
        from flask import request

        if request.path != STATS_ROUTE or not response.is_json:
            return response
        verdict = tab.verdict()
        rows = verdict_rows(verdict) if verdict else []
        body = response.get_json()
        body["extended_stats"] = [
            *[s for s in body.get("extended_stats", []) if s.get("key") != TAB_KEY],
            {"key": TAB_KEY, "data": rows},
        ]
        response.set_data(json.dumps(body))
        return response

    @app.route(VERDICT_ROUTE)
    @web_ui.auth_required_if_enabled
    def _verdict() -> Any:
        from flask import jsonify

        verdict = tab.verdict()
        return jsonify(verdict_to_dict(verdict) if verdict else {"verdict": None})
