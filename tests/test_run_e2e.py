"""End to end: `loadkit run` drives real Locust against the real reference platform on loopback.

Counts are checked against the platform's own counters: the server saw every request Locust
reported, plus at most one in-flight request per user that the end of the run cut off.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TEST_API_KEY, kit_env, run_kit

from loadkit.platform.launcher import RunningPlatform, start_platform

pytestmark = pytest.mark.slow


#: Rows of Locust's table that are not requests the server saw: the kit's timings (JOB), the
#: arrival rate's from-intended-start latencies (INTENDED) and Locust's total of everything.
NOT_HTTP_ROWS = ("JOB ", "INTENDED ", "Aggregated")


def locust_counts(run_dir: Path) -> dict[str, tuple[int, int]]:
    """``"METHOD name" -> (requests, failures)`` from Locust's own stats CSV."""
    with (run_dir / "stats_stats.csv").open() as f:
        return {
            f"{row['Type']} {row['Name']}".strip(): (
                int(row["Request Count"]),
                int(row["Failure Count"]),
            )
            for row in csv.DictReader(f)
        }


def assert_server_saw_what_locust_counted(
    platform: RunningPlatform, run_dir: Path, users: int
) -> dict[str, tuple[int, int]]:
    seen = dict(platform.counters()["requests"])
    seen.pop("GET /api/queue/stats", None)  # the kit's queue sampler, not load
    counted = locust_counts(run_dir)
    http_rows = {k: v for k, v in counted.items() if not k.startswith(NOT_HTTP_ROWS)}
    assert http_rows, "Locust recorded no requests"
    for key, (requests, _failures) in http_rows.items():
        assert requests > 0
        assert requests <= seen.get(key, 0) <= requests + users, (key, requests, seen)
    assert set(seen) == set(http_rows), (seen, http_rows)
    return counted


# --skip-preflight: the preflight's own GET /health would be one more request than Locust made.
SCENARIO_RUNS = [
    ("health", ["-u", "4", "-t", "3s", "--skip-preflight"], 4),
    ("analytics", ["-u", "10", "-t", "3s", "--skip-preflight"], 10),
    ("scheduling", ["-u", "5", "-t", "3s", "--skip-preflight"], 5),
    ("full_system", ["-u", "20", "-r", "20", "-t", "4s", "--skip-preflight"], 20),
]


@pytest.mark.parametrize(("scenario", "args", "users"), SCENARIO_RUNS)
def test_scenario_runs_clean_and_counts_match_the_server(
    fresh_platform: RunningPlatform, tmp_path: Path, scenario: str, args: list[str], users: int
) -> None:
    result = run_kit([scenario, *args], kit_env(fresh_platform.url), tmp_path)
    assert result.exit_code == 0, result.output
    counted = assert_server_saw_what_locust_counted(fresh_platform, result.run_dir, users)
    assert all(failures == 0 for _, failures in counted.values()), counted
    verdict = result.verdict()
    assert verdict["passed"] is True
    # The kit's own recorder and Locust agree on every request that completed.
    http_total = sum(n for key, (n, _) in counted.items() if not key.startswith(NOT_HTTP_ROWS))
    assert verdict["totals"]["requests"] == http_total
    # Locust's own total counts requests only, not the kit's JOB or INTENDED rows.
    assert counted["Aggregated"][0] == http_total
    assert (result.run_dir / "report.html").stat().st_size > 10_000
    assert (result.run_dir / "stats_stats_history.csv").exists()


def test_bulk_import_follows_jobs_to_completion(tmp_path: Path) -> None:
    # A fast import worker so that 200-row jobs finish within the short run.
    with start_platform(TEST_API_KEY, extra_args=["--import-rows-per-s", "2000"]) as platform:
        env = kit_env(platform.url, LOADKIT_IMPORT_ROWS="200")
        args = ["bulk_import", "-u", "3", "-r", "3", "-t", "5s", "--skip-preflight"]
        result = run_kit(args, env, tmp_path)
        assert result.exit_code == 0, result.output
        counted = assert_server_saw_what_locust_counted(platform, result.run_dir, 3)
    jobs, job_failures = counted["JOB bulk import: upload to completed"]
    uploads, _ = counted["POST /api/contacts/import"]
    assert job_failures == 0
    assert 1 <= jobs <= uploads <= jobs + 3
    # The JOB row is a timing, not an HTTP request: both totals leave it out.
    http_requests = sum(n for key, (n, _) in counted.items() if not key.startswith(NOT_HTTP_ROWS))
    assert result.verdict()["totals"]["requests"] == counted["Aggregated"][0] == http_requests


def test_wrong_key_shows_as_failures_and_fails_the_run(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    env = kit_env(fresh_platform.url, api_key="not-the-right-key")
    args = ["scheduling", "-u", "2", "-t", "2s", "--skip-preflight"]
    result = run_kit(args, env, tmp_path)
    assert result.exit_code == 1, result.output
    responses = fresh_platform.counters()["responses"]
    assert responses.get("POST /api/calls 403", 0) > 0
    assert "POST /api/calls 201" not in responses
    requests, failures = locust_counts(result.run_dir)["POST /api/calls"]
    assert requests == failures > 0
    assert "HTTP 403" in (result.run_dir / "stats_failures.csv").read_text()
    assert "not-the-right-key" not in result.output
    # The queue (read with the same key) never answered: its failures are counted and said once,
    # and it is not followed after the load (it drained 30 s for nothing: ~34 failed readings).
    queue = result.verdict()["queue"]
    assert queue["samples"] == 0 and queue["drain"] is None
    assert 1 <= queue["failed_samples"] <= 6, queue  # one a second over 2 s of load, and the end
    failed = f"{queue['failed_samples']} of {queue['failed_samples']} queue depth samples failed"
    assert failed in (result.run_dir / "locust.log").read_text()


def test_preflight_stops_a_run_with_a_rejected_key_before_any_load(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    env = kit_env(fresh_platform.url, api_key="not-the-right-key")
    result = run_kit(["scheduling", "-u", "2", "-t", "2s"], env, tmp_path)
    assert result.exit_code == 2, result.output
    assert "✗ API key rejected (HTTP 403)" in result.output
    assert "not-the-right-key" not in result.output
    assert "POST /api/calls" not in fresh_platform.counters()["requests"]
    assert result.run_dir is None


def test_api_key_never_appears_in_output_or_results(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    # Failures (injected by the wrong route below) exercise the error report paths too.
    env = kit_env(fresh_platform.url, LOADKIT_REQUEST_TIMEOUT_S="5")
    result = run_kit(
        ["full_system", "-u", "5", "-r", "5", "-t", "3s", "--", "--loglevel", "DEBUG"],
        env,
        tmp_path,
    )
    assert result.run_dir is not None
    assert TEST_API_KEY not in result.output
    files = [p for p in result.run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"report.html", "verdict.json", "junit.xml", "locust.log"}
    for path in files:
        assert TEST_API_KEY not in path.read_text(errors="replace"), path


@pytest.mark.parametrize(
    ("args", "env_extra", "message"),
    [
        (["health"], {"LOADKIT_REQUEST_TIMEOUT_S": "soon"}, "LOADKIT_REQUEST_TIMEOUT_S='soon'"),
        (["health"], {"API_URL": "127.0.0.1:1"}, "invalid setting API_URL='127.0.0.1:1'"),
        (
            ["healthz"],
            {},
            "unknown scenario 'healthz' (did you mean 'health'? choose from: health,",
        ),
        (["health", "--profile", "spiky"], {}, "unknown profile 'spiky'"),
        (["health", "--stage", "30s"], {}, "'30s'"),
    ],
)
def test_bad_input_exits_2_before_any_request(
    fresh_platform: RunningPlatform,
    tmp_path: Path,
    args: list[str],
    env_extra: dict[str, str],
    message: str,
) -> None:
    env = kit_env(fresh_platform.url, **env_extra)
    result = run_kit(args, env, tmp_path, timeout_s=30)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert fresh_platform.counters()["total"] == 0


def test_missing_key_with_api_url_exits_2(fresh_platform: RunningPlatform, tmp_path: Path) -> None:
    result = run_kit(["health"], kit_env(fresh_platform.url, api_key=None), tmp_path, timeout_s=30)
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"loadkit: API_KEY is not set (needed to call {fresh_platform.url})"
    )
    assert fresh_platform.counters()["total"] == 0


def test_embedded_platform_when_no_api_url(tmp_path: Path) -> None:
    result = run_kit(["health", "-u", "2", "-t", "2s"], kit_env(None, api_key=None), tmp_path)
    assert result.exit_code == 0, result.output
    assert "started the embedded reference platform at http://127.0.0.1:" in result.output
    assert result.verdict()["totals"]["requests"] > 100


def test_plain_locust_runs_a_locustfile_on_its_own(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "locust", "-f", "locustfiles/health.py", "--headless",
        "-u", "2", "-t", "2s", "--results-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(
        command, env=kit_env(fresh_platform.url), cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "loadkit verdict: scenario health" in done.stdout
    assert (tmp_path / "verdict.json").exists()
    assert fresh_platform.counters()["requests"]["GET /health"] > 100


def test_sigterm_still_writes_results_and_an_interrupted_verdict(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "loadkit.cli.main", "run", "health", "-u", "2", "-t", "60s",
        "--results", str(tmp_path),
    ]  # fmt: skip
    child = subprocess.Popen(
        command, env=kit_env(fresh_platform.url), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while fresh_platform.counters()["total"] < 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode not in (0, None), output
    run_dir = next(tmp_path.glob("*/"))
    import json

    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["interrupted"] is True
    assert verdict["passed"] is False
    assert verdict["totals"]["requests"] > 0


def test_a_target_that_stops_answering_ends_the_run_with_a_verdict_saying_so(
    tmp_path: Path,
) -> None:
    """The platform dies mid-run: instead of sending thousands of refused requests a second
    until -t runs out, the run ends (aborted) once nothing answered for the configured time."""
    with start_platform(TEST_API_KEY) as platform:
        env = kit_env(platform.url, LOADKIT_ABORT_WHEN_UNREACHABLE_S="2")
        command = [sys.executable, "-m", "loadkit.cli.main", "run", "health", "-u", "2",
                   "-t", "60s", "--skip-preflight", "--results", str(tmp_path)]  # fmt: skip
        run = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            deadline_s = time.monotonic() + 20
            while platform.counters()["total"] < 200:
                assert time.monotonic() < deadline_s, "no load reached the platform"
                time.sleep(0.1)
            platform.process.kill()
            killed_at_s = time.monotonic()
            output, _ = run.communicate(timeout=40)
            ended_after_s = time.monotonic() - killed_at_s
        finally:
            run.kill()
    assert run.returncode == 1, output
    assert ended_after_s < 15, f"the run went on for {ended_after_s:.1f} s after the target died"
    verdict = json.loads(next(tmp_path.glob("*/verdict.json")).read_text())
    assert verdict["state"] == "aborted"
    assert verdict["state_reason"].startswith("the target stopped answering: no response for")
    assert "connection refused" in verdict["state_reason"]
