"""A "Queue depth" tab in Locust's web UI, and the series as JSON and CSV.

Locust 2.47's page builds extra tabs from ``template_args["extended_tabs"]`` and their tables
from ``["extended_tables"]``; the rows come from an ``extended_stats`` entry of the
``/stats/requests`` answer the page polls, which is added here after Locust built it. The series
itself is served at ``/loadkit/queue`` (JSON) and ``/loadkit/queue.csv``, behind the same login
as the rest of the UI.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Final

from flask import Response, jsonify, request

from loadkit.observe.queue_metrics import run_jobs
from loadkit.observe.queue_sampler import QueueSampler
from loadkit.observe.queue_sources import (
    DEPTH,
    FIELD_MEANINGS,
    BullQueueSource,
    depth_meaning_of,
)
from loadkit.plugin.web_routes import base_path

TAB_KEY: Final = "loadkit-queue"
TAB_TITLE: Final = "Queue depth"
JSON_ROUTE: Final = "/loadkit/queue"
CSV_ROUTE: Final = "/loadkit/queue.csv"
STATS_ROUTE_SUFFIX: Final = "/stats/requests"
TABLE_STRUCTURE: Final = (
    {"key": "name", "title": "Field"},
    {"key": "meaning", "title": "Meaning"},
    {"key": "current", "title": "Current"},
    {"key": "max", "title": "Max"},
    {"key": "p95", "title": "P95"},
    {"key": "avg", "title": "Average"},
    {"key": "min", "title": "Min"},
    {"key": "samples", "title": "Samples"},
    {"key": "errors", "title": "Failed samples"},
)


def register_queue_tab(web_ui: Any, sampler: QueueSampler) -> None:
    """Add the tab, its table rows, a CSV download and the JSON/CSV routes to ``web_ui``."""
    prefix = base_path(web_ui)
    args = web_ui.template_args
    args.setdefault("extended_tabs", []).append({"title": TAB_TITLE, "key": TAB_KEY})
    args.setdefault("extended_tables", []).append(
        {"key": TAB_KEY, "structure": [dict(column) for column in TABLE_STRUCTURE]}
    )
    args.setdefault("extended_csv_files", []).append(
        {"href": "." + CSV_ROUTE, "title": "Download queue depth CSV"}
    )
    app = web_ui.app
    guard = web_ui.auth_required_if_enabled

    def queue_json() -> Response:
        return jsonify(sampler.snapshot())

    def queue_csv() -> Response:
        return Response(
            series_csv(sampler),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment;filename=queue_depth.csv"},
        )

    app.add_url_rule(prefix + JSON_ROUTE, "loadkit_queue", guard(queue_json))
    app.add_url_rule(prefix + CSV_ROUTE, "loadkit_queue_csv", guard(queue_csv))

    @app.after_request
    def add_queue_rows(response: Response) -> Response:
        if not request.path.endswith(STATS_ROUTE_SUFFIX) or response.status_code != 200:
            return response
        payload = response.get_json(silent=True)
        if not isinstance(payload, dict):
            return response
        extended = [e for e in payload.get("extended_stats", []) if e.get("key") != TAB_KEY]
        extended.append({"key": TAB_KEY, "data": table_rows(sampler)})
        response.set_data(json.dumps({**payload, "extended_stats": extended}))
        return response


def table_rows(sampler: QueueSampler) -> list[dict[str, Any]]:
    """One row per field of the series (``depth`` first, saying what it counts): current, max,
    p95, average, min; then this run's jobs (deltas, unlike the queue's lifetime ``completed``
    and ``failed``) and processing rate."""
    latest = sampler.samples[-1][1] if sampler.samples else {}
    meanings = {DEPTH: depth_meaning_of(sampler.source)}
    if isinstance(sampler.source, BullQueueSource):  # other sources' fields are theirs to name
        meanings = {**FIELD_MEANINGS, **meanings}
    rows = []
    for name in sampler.fields():
        summary = sampler.summary(name)
        has_data = summary.samples > 0
        rows.append(
            {
                "name": name,
                "meaning": meanings.get(name, ""),
                "current": latest.get(name, ""),
                "max": summary.max if has_data else "",
                "p95": summary.p95 if has_data else "",
                "avg": round(summary.avg, 2) if has_data else "",
                "min": summary.min if has_data else "",
                "samples": summary.samples,
                "errors": sampler.errors,
            }
        )
    return rows + run_rows(sampler)


def run_rows(sampler: QueueSampler) -> list[dict[str, Any]]:
    """This run's completed and failed jobs and processing rate, in the ``current`` column."""
    jobs = run_jobs(sampler.samples)
    rate = jobs.processing_rate_per_s
    figures = (
        (
            "jobs completed this run",
            jobs.completed,
            f"delta of `{jobs.completed_from}` since the start",
        ),
        ("jobs failed this run", jobs.failed, "delta of the failed count since the start"),
        (
            "processing rate (jobs/s)",
            None if rate is None else round(rate, 2),
            "completed this run per second",
        ),
    )
    return [
        {"name": name, "meaning": meaning, "current": "" if value is None else value,
         "samples": len(sampler.samples), "errors": sampler.errors}
        for name, value, meaning in figures
    ]  # fmt: skip


def series_csv(sampler: QueueSampler) -> str:
    """The series as CSV: ``t_s`` then every field, empty where a sample lacks one."""
    fields = sampler.fields()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["t_s", *fields])
    for t_s, reading in sampler.samples:
        writer.writerow([t_s, *(reading.get(name, "") for name in fields)])
    return out.getvalue()
