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

from loadkit.baselines import TOTAL, Baseline
from loadkit.profile_report import load_history, soak_report, spike_report, stress_report
from loadkit.profiles import Stage, total_duration_s

HISTORY_FILE = "stats_stats_history.csv"
TIMESERIES_FILE = "timeseries.jsonl"
REPORT_FILE = "profile_report.txt"
#: A soak compares its first and last sixth: 10 min of a 1 h soak, 6 s of a 36 s scaled one.
SOAK_WINDOW_FRACTION = 1 / 6


def profile_summary(
    profile: str | None, stages: Sequence[Stage], run_dir: Path, baseline: Baseline | None
) -> list[str]:
    """The report lines for ``profile`` (none for profiles without a question of their own)."""
    history = run_dir / HISTORY_FILE
    if profile not in ("spike", "soak", "stress") or not history.exists():
        return []
    rows = load_history(history)
    if not rows:
        return [f"{profile} report: no history recorded"]
    if profile == "spike":
        return spike_report(rows, stages).summary_lines()
    if profile == "soak":
        window_s = max(2.0, total_duration_s(stages) * SOAK_WINDOW_FRACTION)
        return soak_report(rows, window_s, generator_rss(run_dir)).summary_lines()
    limits = stress_limits(baseline)
    if limits is None:
        return ["stress report: the baseline has no P95 and error-rate limits for stress"]
    return stress_report(rows, *limits).summary_lines()


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
    """(elapsed s, RSS bytes) of the load generator, from the run's time series if it has one."""
    path = run_dir / TIMESERIES_FILE
    if not path.exists():
        return None
    samples: list[tuple[float, int]] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if "generator_rss_bytes" in record:
                samples.append((float(record["elapsed_s"]), int(record["generator_rss_bytes"])))
    return samples or None


def write_profile_report(run_dir: Path, lines: Sequence[str]) -> Path:
    path = run_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
