"""What the spike, soak and stress profiles exist to show, read from a finished run's files.

Runs after Locust has exited, when its per-second history CSV is complete (Locust flushes it
only every ten seconds while running). The spike report says whether P95 recovered, the soak
report shows drift and the generator's memory growth, the stress report finds the highest load
that stayed within the baseline's limits. The lines are printed and kept in
``profile_report.txt`` next to the other results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadkit import registry
from loadkit.core.baselines import AGGREGATED_KEY, TOTAL, Baseline
from loadkit.core.plan import RunPlan
from loadkit.core.profile_report import (
    HistoryRow,
    load_history,
    soak_report,
    spike_report,
    stress_report,
)
from loadkit.core.profiles import total_duration_s
from loadkit.results.timeseries import FILE_NAME as TIMESERIES_FILE
from loadkit.results.timeseries import read_records

HISTORY_FILE = "stats_stats_history.csv"
VERDICT_FILE = "verdict.json"
REPORT_FILE = "profile_report.txt"
#: A soak compares its first and last sixth: 10 min of a 1 h soak, 6 s of a 36 s scaled one.
SOAK_WINDOW_FRACTION = 1 / 6


def profile_summary(plan: RunPlan, run_dir: Path) -> list[str]:
    """The report lines for the plan's profile (none for profiles without a question of their
    own: the registry says which report a profile has)."""
    spec = registry.PROFILES.get(plan.profile)
    report = spec.report if spec is not None else None
    if report is None:
        return []
    stages = plan.stages
    rows = history_rows(run_dir)
    if not rows:
        return [f"{plan.profile} report: no history recorded"]
    if report == "spike":
        return with_judged_recovery(spike_report(rows, stages).summary_lines(), run_dir)
    if report == "soak":
        window_s = max(2.0, total_duration_s(stages) * SOAK_WINDOW_FRACTION)
        return soak_report(rows, window_s, generator_rss(run_dir)).summary_lines()
    limits = stress_limits(plan.baseline)
    if limits is None:
        return ["stress report: the baseline has no P95 and error-rate limits for stress"]
    return stress_report(rows, *limits).summary_lines()


def with_judged_recovery(lines: list[str], run_dir: Path) -> list[str]:
    """The spike report, its own recovery line replaced by the verdict's recovery criteria when
    the baseline judged recovery: one answer to "did it recover", the verdict's."""
    path = run_dir / VERDICT_FILE
    if not path.exists():
        return lines
    judged = [
        c
        for c in json.loads(path.read_text(encoding="utf-8")).get("criteria", [])
        if c.get("metric") == "recovery" and c.get("status") != "skipped"
    ]
    if not judged:
        return lines
    return [*lines[:-1], *(f"  recovery ({c['status']}): {c['reason']}" for c in judged)]


def history_rows(run_dir: Path) -> list[HistoryRow]:
    """Per-second rows of the whole run: exact ones from ``timeseries.jsonl`` when present.

    The kit's time series has each second's own P95 and request count; Locust's history CSV
    (the fallback) has a P95 over a sliding ~10 s window, which a time-scaled spike of a few
    seconds cannot recover within.
    """
    path = run_dir / TIMESERIES_FILE
    if not path.exists():
        history = run_dir / HISTORY_FILE
        return load_history(history) if history.exists() else []
    seconds: dict[int, dict[str, Any]] = {}
    for record in read_records(path):
        if record.get("kind") != "requests" or record.get("name") != AGGREGATED_KEY:
            continue
        second = seconds.setdefault(int(record["t"]), {"requests": 0, "failures": 0})
        second["requests"] += int(record["requests"])
        second["failures"] += int(record["failures"])
        if not record.get("late"):
            second["users"] = int(record.get("users") or 0)
            second["p95_ms"] = record.get("p95_ms")
    rows, total, failed = [], 0, 0
    for t in sorted(seconds):
        second = seconds[t]
        total += second["requests"]
        failed += second["failures"]
        rows.append(
            HistoryRow(
                timestamp_s=float(t),
                users=second.get("users", 0),
                rps=float(second["requests"]),
                failures_per_s=float(second["failures"]),
                p95_ms=second.get("p95_ms"),
                total_requests=total,
                total_failures=failed,
            )
        )
    return rows


def stress_limits(baseline: Baseline | None) -> tuple[float, float] | None:
    """(p95 ms, error rate) of the baseline's stress criteria, the scenario total's first."""
    if baseline is None:
        return None
    criteria = sorted(
        baseline.criteria_for("stress"),
        key=lambda c: c.request != TOTAL,  # the scenario's total before single endpoints
    )
    p95 = next((c.threshold for c in criteria if c.request and c.metric == "p95"), None)
    errors = next(
        (
            c.threshold
            for c in criteria
            if c.request and c.metric == "error_rate" and not c.abort_on_fail
        ),
        None,
    )
    return None if p95 is None or errors is None else (p95, errors)


def generator_rss(run_dir: Path) -> list[tuple[float, int]] | None:
    """(elapsed s, RSS bytes) of the load generators (summed over workers), from the time series."""
    path = run_dir / TIMESERIES_FILE
    if not path.exists():
        return None
    per_second: dict[float, int] = {}
    for record in read_records(path):
        # Load generators only: the master of a distributed run sends no requests.
        if "generator_rss_bytes" in record and record.get("role") != "master":
            elapsed_s = float(record["elapsed_s"])
            per_second[elapsed_s] = per_second.get(elapsed_s, 0) + int(
                record["generator_rss_bytes"]
            )
    return sorted(per_second.items()) or None


def write_profile_report(run_dir: Path, lines: Sequence[str]) -> Path:
    path = run_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
