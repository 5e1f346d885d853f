"""The end-of-run profile report reads the kit's per-second time series (or Locust's history)."""

from __future__ import annotations

import json
from pathlib import Path

from loadkit import registry
from loadkit.cli.profile_summary import generator_rss, history_rows, profile_summary, stress_limits
from loadkit.core.baselines import parse_baseline
from loadkit.core.plan import RunPlan


def plan_of(profile: str) -> RunPlan:
    return RunPlan("health", profile, registry.PROFILES[profile].stages)


def write_series(run_dir: Path, seconds: list[tuple[int, int, float, int]]) -> None:
    """(users, requests, p95_ms, rss of the one worker) per second, plus a master's RSS line."""
    lines = []
    for i, (users, requests, p95_ms, rss) in enumerate(seconds):
        t = 1_000 + i
        lines.append({"kind": "requests", "t": t, "elapsed_s": i, "users": users,
                      "name": "Aggregated", "method": "", "requests": requests, "failures": 0,
                      "rps": float(requests), "p95_ms": p95_ms})  # fmt: skip
        lines.append({"kind": "requests", "t": t, "elapsed_s": i, "users": users,
                      "name": "/health", "method": "GET", "requests": requests, "failures": 0,
                      "rps": float(requests), "p95_ms": p95_ms})  # fmt: skip
        lines.append({"kind": "process", "t": t, "elapsed_s": i, "process": "w1",
                      "role": "worker", "generator_rss_bytes": rss})  # fmt: skip
        lines.append({"kind": "process", "t": t, "elapsed_s": i, "process": "master",
                      "role": "master", "generator_rss_bytes": 10**9})  # fmt: skip
    # Data that reached the master after its second was written: added, not replacing.
    lines.append({"kind": "requests", "t": 1_000, "elapsed_s": 0, "users": 0, "late": True,
                  "name": "Aggregated", "method": "", "requests": 5, "failures": 1,
                  "rps": 5.0, "p95_ms": 99.0})  # fmt: skip
    (run_dir / "timeseries.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")


def test_history_rows_come_from_the_per_second_aggregate(tmp_path: Path) -> None:
    write_series(tmp_path, [(1, 10, 2.0, 100), (5, 50, 4.0, 110), (1, 10, 2.5, 120)])
    rows = history_rows(tmp_path)
    assert [(r.users, r.rps, r.p95_ms) for r in rows] == [
        (1, 15.0, 2.0),
        (5, 50.0, 4.0),
        (1, 10.0, 2.5),
    ]
    assert [r.total_requests for r in rows] == [15, 65, 75]
    assert rows[-1].total_failures == 1
    # Generator memory: workers only, the master (which sends nothing) left out.
    assert generator_rss(tmp_path) == [(0.0, 100), (1.0, 110), (2.0, 120)]


def test_soak_report_shows_generator_memory_growth(tmp_path: Path) -> None:
    write_series(tmp_path, [(2, 100, 1.0, 100_000_000 + i * 1_000_000) for i in range(12)])
    lines = profile_summary(plan_of("soak"), tmp_path)
    assert lines[0].startswith("soak (first vs last")
    # 100 requests every second: both windows must say exactly 100 rps, no drift.
    assert lines[1].endswith(", 100.0 rps") and lines[2].endswith(", 100.0 rps")
    assert "rps +0.0%" in lines[3]
    assert lines[4] == "  generator memory: 95.4 -> 105.9 MiB over 11 s (+3433.2 MiB/h)"


def test_profiles_without_a_report_and_stress_limits_from_the_baseline(tmp_path: Path) -> None:
    write_series(tmp_path, [(1, 10, 1.0, 1)])
    assert profile_summary(plan_of("average"), tmp_path) == []
    baseline = parse_baseline(
        """
        scenario = "health"
        [[criteria]]
        request = "GET /health"
        metric = "p95"
        op = "<"
        value = "20ms"
        [[criteria]]
        request = "total"
        metric = "p95"
        op = "<"
        value = "50ms"
        profiles = ["stress"]
        [[criteria]]
        request = "total"
        metric = "error_rate"
        op = "<"
        value = "0.1%"
        """,
        "health",
    )
    assert stress_limits(baseline) == (50.0, 0.001)
    assert stress_limits(None) is None
