"""The queue's section of the verdict: lines for the console summary, an object for verdict.json.

Kept apart from ``verdict_files`` so the queue's presentation changes in one place. The section
always states what depth means (one sentence), so a reader never takes ``depth 0`` for "the
``wait`` list was empty" when due jobs sat in ``delayed``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from loadkit.core.baselines import format_number
from loadkit.core.queue_report import QueueDrain, QueueReport


def render_queue(report: QueueReport) -> list[str]:
    """The console lines (indented like the criteria), starting with a blank line."""
    version = f" ({report.version})" if report.version else ""
    lines = [
        "",
        f"  queue: {report.source}{version}, {report.samples} readings during the load",
        f"    {report.depth_meaning}",
        "    " + _gauges_line(report),
        "    " + _jobs_line(report),
    ]
    if report.drain is not None:
        lines.append("    " + drain_text(report.drain))
    if report.stall is not None:
        lines.append(f"    ✗ {report.stall}")
    elif report.stall_window_s is not None:
        window = format_number(report.stall_window_s)
        lines.append(f"    no stall: due work never grew for {window} s with no job finished")
    if report.paused:
        lines.append("    PAUSED: the queue was paused (meta.paused): no worker takes its jobs")
    if report.failed_samples:
        lines.append(f"    {report.failed_samples} readings failed")
    return lines


def _gauges_line(report: QueueReport) -> str:
    if report.depth_max is None or report.depth_final is None:
        return "depth: no reading"
    text = (
        f"depth: max {format_number(report.depth_max)}, "
        f"{format_number(report.depth_final)} when the load stopped"
    )
    if report.overdue_max is not None and report.overdue_final is not None:
        text += (
            f"; overdue: max {format_number(report.overdue_max)}, "
            f"{format_number(report.overdue_final)} when the load stopped"
        )
    return text


def _jobs_line(report: QueueReport) -> str:
    if report.jobs_completed is None:
        return "processing rate: unknown (the source reports no completed jobs)"
    rate = report.processing_rate_per_s
    rate_text = "no rate (under two readings)" if rate is None else f"{format_number(rate)}/s"
    failed = "?" if report.jobs_failed is None else format_number(report.jobs_failed)
    return (
        f"processing rate: {rate_text} ({format_number(report.jobs_completed)} jobs completed, "
        f"{failed} failed during the run, from `{report.completed_from}`)"
    )


def drain_text(drain: QueueDrain) -> str:
    """``drain: 40 jobs due when the load stopped; drained after 4.2 s (bound 30 s)``, and
    ``; 3 jobs still running (not waited for)`` when workers held jobs at the last reading."""
    return f"drain: {_drain_outcome(drain)}{_running(drain)}"


def _drain_outcome(drain: QueueDrain) -> str:
    backlog = f"{format_number(drain.backlog_at_stop)} jobs due when the load stopped"
    if drain.skipped:
        return f"{backlog}; not followed: {drain.skipped}"
    bound = format_number(drain.max_s)
    if drain.drained_after_s is not None:
        if drain.drained_after_s == 0:
            return f"{backlog}: nothing to drain"
        after = format_number(round(drain.drained_after_s, 1))
        return f"{backlog}; drained after {after} s (bound {bound} s)"
    remaining = format_number(drain.remaining)
    return f"{backlog}; ✗ NOT drained within {bound} s: {remaining} still due"


def _running(drain: QueueDrain) -> str:
    if not drain.still_running:
        return ""
    return f"; {format_number(drain.still_running)} jobs still running (not waited for)"


def queue_to_dict(report: QueueReport | None) -> dict[str, Any] | None:
    """The ``queue`` object of verdict.json (null when the queue was not sampled)."""
    if report is None:
        return None
    data = asdict(report)
    if report.drain is not None:
        data["drain"]["drained"] = report.drain.drained
    return {key: _finite(value) for key, value in data.items()}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
