"""The verdict end to end: a slow or failing platform turns a run red, and only where it should."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TEST_API_KEY, kit_env, run_kit

from loadkit.platform.launcher import RunningPlatform, start_platform

pytestmark = pytest.mark.slow

TWO_ROUTES_P95 = """
scenario = "full_system"

[[criteria]]
request = "POST /api/calls"
metric = "p95"
op = "<"
value = "200ms"

[[criteria]]
request = "GET /api/analytics/dashboard"
metric = "p95"
op = "<"
value = "200ms"

[[criteria]]
request = "total"
metric = "error_rate"
op = "<"
value = "2%"
"""


def by_request(verdict: dict, metric: str) -> dict[str, dict]:
    """The first criterion on ``metric`` per request (abort guards come later in the files)."""
    found: dict[str, dict] = {}
    for criterion in verdict["criteria"]:
        if criterion["metric"] == metric:
            found.setdefault(criterion["request"], criterion)
    return found


def test_added_latency_fails_the_p95_of_that_route_only(tmp_path: Path) -> None:
    baseline = tmp_path / "two_routes.toml"
    baseline.write_text(TWO_ROUTES_P95)
    slow = ["--latency", "GET /api/analytics/dashboard=300"]
    with start_platform(TEST_API_KEY, extra_args=slow) as platform:
        args = ["full_system", "-u", "20", "-r", "20", "-t", "6s", "--baseline", str(baseline)]
        result = run_kit(args, kit_env(platform.url), tmp_path / "results")
    assert result.exit_code == 1, result.output
    verdict = result.verdict()
    p95 = by_request(verdict, "p95")
    assert p95["GET /api/analytics/dashboard"]["status"] == "failed"
    assert 300 <= p95["GET /api/analytics/dashboard"]["measured"] < 400
    assert p95["POST /api/calls"]["status"] == "passed"
    assert p95["POST /api/calls"]["measured"] < 200
    assert by_request(verdict, "error_rate")["total"]["status"] == "passed"
    assert "✗ p95" in result.output


def test_failure_ratio_fails_the_error_rate_with_the_right_figure(tmp_path: Path) -> None:
    with start_platform(TEST_API_KEY, extra_args=["--fail", "POST /api/calls=0.3"]) as platform:
        result = run_kit(["scheduling", "-u", "5", "-t", "4s"], kit_env(platform.url), tmp_path)
        responses = platform.counters()["responses"]
    assert result.exit_code == 1, result.output
    verdict = result.verdict()
    total = by_request(verdict, "error_rate")["POST /api/calls"]
    assert total["status"] == "failed"
    served_503 = responses.get("POST /api/calls 503", 0)
    served_201 = responses.get("POST /api/calls 201", 0)
    # The verdict's error rate is the platform's own 503 share, within the requests cut off at
    # the end of the run (at most one per user).
    assert verdict["totals"]["failures"] <= served_503 <= verdict["totals"]["failures"] + 5
    assert abs(total["measured"] - served_503 / (served_503 + served_201)) < 0.02
    assert 0.2 < total["measured"] < 0.4


def test_malformed_baseline_exits_2_with_no_request_sent(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TWO_ROUTES_P95.replace('value = "200ms"', 'value = "200kg"', 1))
    args = ["full_system", "-t", "5s", "--baseline", str(bad)]
    result = run_kit(args, kit_env(fresh_platform.url), tmp_path)
    assert result.exit_code == 2
    assert f"{bad}:8: criteria[0].value: bad unit 'kg'" in result.output
    # Plain Locust with the same plugin refuses it the same way.
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "locustfiles/full_system.py", "--headless",
         "-u", "1", "-t", "5s", "--baseline", str(bad)],
        env=kit_env(fresh_platform.url), cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "criteria[0].value: bad unit 'kg'" in done.stderr
    assert fresh_platform.counters()["total"] == 0


ABORT_ON_ERRORS = """
scenario = "health"

[[criteria]]
request = "total"
metric = "error_rate"
op = "<"
value = "50%"
abort_on_fail = true
delay_abort_eval = "2s"
"""


def test_abort_on_fail_stops_a_failing_run_early_and_still_writes_results(
    tmp_path: Path,
) -> None:
    baseline = tmp_path / "abort.toml"
    baseline.write_text(ABORT_ON_ERRORS)
    with start_platform(TEST_API_KEY, extra_args=["--fail", "GET /health=1.0"]) as platform:
        started = time.monotonic()
        # --skip-preflight: the preflight would refuse a platform whose /health fails.
        args = ["health", "-u", "2", "-t", "60s", "--baseline", str(baseline), "--skip-preflight"]
        result = run_kit(args, kit_env(platform.url), tmp_path / "results")
        elapsed_s = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert elapsed_s < 20
    verdict = result.verdict()
    assert verdict["aborted"].startswith("criteria[0] total error_rate < 50% failed for")
    assert verdict["criteria"][0]["status"] == "failed"
    assert (result.run_dir / "report.html").exists()
    assert (result.run_dir / "junit.xml").exists()
