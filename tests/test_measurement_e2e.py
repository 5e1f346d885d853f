"""The measurement core and the run lifecycle, proved against counts the kit does not make.

Every number here is checked against the server: the reference platform's own counters
(``GET /_loadkit/counters``), or a counting server written below that also notes when each
request arrived, so the length of the load is measured where it lands, not by the kit's clock.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import REPO_ROOT, TEST_API_KEY, RunResult, kit_env, run_kit

from loadkit import registry
from loadkit.cli.topology import free_loopback_port
from loadkit.platform.launcher import RunningPlatform, start_platform

#: serial: its rates, timings or CPU readings need the machine to itself (scripts/test.sh).
pytestmark = [pytest.mark.slow, pytest.mark.serial]

#: The kit's queue sampler calls GET /api/queue/stats beside the load: off, so that the server's
#: count holds the load's requests only.
NO_QUEUE_PROBE = {"LOADKIT_QUEUE_SOURCE": "off"}


# -- an independent server: counts and arrival times ---------------------------------------------


class TimestampingServer(ThreadingHTTPServer):
    """Answers ``GET /health`` like the platform does; notes each request's arrival (monotonic)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TimestampingHandler)
        self.lock = threading.Lock()
        self.arrivals_s: list[float] = []
        self.others = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def load_period_s(self) -> float:
        with self.lock:
            return self.arrivals_s[-1] - self.arrivals_s[0]


class _TimestampingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the platform
    disable_nagle_algorithm = True  # without TCP_NODELAY loopback caps at ~225 rps
    server: TimestampingServer

    def do_GET(self) -> None:
        arrived_s = time.monotonic()
        with self.server.lock:
            if self.path == "/health":
                self.server.arrivals_s.append(arrived_s)
            else:
                self.server.others += 1
        body = b'{"status": "ok"}' if self.path == "/health" else b'{"detail": "not found"}'
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def timestamping_server() -> Iterator[TimestampingServer]:
    server = TimestampingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def served_load(platform: RunningPlatform) -> dict[str, int]:
    """The platform's count per route; the preflight is skipped and the queue probe off."""
    return dict(platform.counters()["requests"])


# -- exact totals, and the length of the load ------------------------------------------------------


@pytest.mark.parametrize(
    ("run_time_s", "workers"),
    [(15, 0), (4, 2)],
    ids=["local-15s", "workers-2-4s"],
)
def test_run_time_is_the_length_of_the_load_and_totals_are_exact_at_the_server(
    timestamping_server: TimestampingServer, tmp_path: Path, run_time_s: int, workers: int
) -> None:
    """``-t`` is measured where the load lands, from the first request's arrival to the last's
    (Locust's own run-time limit ended local runs 0.3-0.8 s early). The users send back to back,
    so each has a request in flight when the load stops: with default settings the graceful stop
    lets them finish, and the verdict counts exactly what the server received."""
    args = ["health", "-u", "2", "-t", f"{run_time_s}s", "--skip-preflight", "--no-baseline"]
    if workers:
        args += ["--workers", str(workers)]
    env = kit_env(timestamping_server.url, **NO_QUEUE_PROBE)
    result = run_kit(args, env, tmp_path)
    assert result.exit_code == 0, result.output
    assert timestamping_server.others == 0
    assert timestamping_server.load_period_s() == pytest.approx(run_time_s, abs=0.1)
    verdict = result.verdict()
    assert verdict["totals"]["requests"] == len(timestamping_server.arrivals_s) > 1000
    assert verdict["totals"]["failures"] == 0 and verdict["state"] == "complete"
    window = verdict["window"]
    assert window["end_s"] - window["start_s"] == pytest.approx(run_time_s, abs=0.1)


# -- a shape that ends a distributed run -----------------------------------------------------------

TWO_SECOND_SHAPE = '''
from locust import LoadTestShape


class TwoSecondShape(LoadTestShape):
    """Two users for two seconds, then the end: Locust quits a headless run itself."""

    def tick(self):
        return (2, 2) if self.get_run_time() < 2 else None
'''


def test_a_shape_that_ends_a_distributed_run_still_counts_every_request(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    """When a shape ends a headless run, Locust's master quits without telling its workers to
    stop; the kit must still stop them gracefully and merge their last measurements."""
    shape = tmp_path / "two_second_shape.py"
    shape.write_text(TWO_SECOND_SHAPE)
    port = str(free_loopback_port())
    command = [
        sys.executable, "-m", "locust", "-f", f"locustfiles/health.py,{shape}", "--headless",
        "--processes", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--master-host", "127.0.0.1", "--master-port", port,
        "--results-dir", str(tmp_path / "results"), "--no-baseline", "--only-summary",
    ]  # fmt: skip
    started_s = time.monotonic()
    done = subprocess.run(
        command, env=kit_env(fresh_platform.url, **NO_QUEUE_PROBE), cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    took_s = time.monotonic() - started_s
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    verdict = json.loads((tmp_path / "results" / "verdict.json").read_text())
    assert verdict["totals"]["requests"] == served_load(fresh_platform)["GET /health"] > 100
    assert not any("never arrived" in note for note in verdict["notes"]), verdict["notes"]
    assert took_s < 15, output[-3000:]  # no wait for final measurements that never come


# -- rates -----------------------------------------------------------------------------------------


def test_a_50_per_s_arrival_rate_reads_50_per_s_and_the_server_agrees(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    run_time_s = 6
    args = ["scheduling", "--rate", "50", "-t", f"{run_time_s}s", "--skip-preflight"]
    result = run_kit(args, kit_env(fresh_platform.url, **NO_QUEUE_PROBE), tmp_path)
    assert result.exit_code == 0, result.output
    totals = result.verdict()["totals"]
    assert totals["rps"] == pytest.approx(50, rel=0.02)
    served = served_load(fresh_platform)
    assert set(served) == {"POST /api/calls"}
    assert totals["requests"] == served["POST /api/calls"]
    assert served["POST /api/calls"] == pytest.approx(50 * run_time_s, rel=0.02)


def test_a_window_under_a_second_reads_no_rate_never_zero(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    args = ["health", "--profile", "smoke", "--time-scale", "0.03", "--skip-preflight"]
    result = run_kit(args, kit_env(fresh_platform.url, **NO_QUEUE_PROBE), tmp_path)
    assert result.exit_code == 0, result.output
    verdict = result.verdict()
    assert verdict["totals"]["rps"] is None
    assert verdict["totals"]["requests"] == served_load(fresh_platform)["GET /health"] > 0
    assert verdict["window"]["end_s"] - verdict["window"]["start_s"] == pytest.approx(0.9)
    totals_line = next(line for line in result.output.splitlines() if "totals:" in line)
    assert totals_line.endswith(", no rate (window under 1 s)"), totals_line
    assert "/s" not in totals_line


# -- the web UI: stop early, Reset -----------------------------------------------------------------


def wait_for(predicate: Any, timeout_s: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def reachable(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_reset_then_stop_in_the_web_ui_judges_what_the_statistics_tab_shows(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    """Started from the UI's HTTP API, reset after a second, stopped a second and a half later,
    well before the planned end: the verdict says "stopped early" (never PASSED) and counts
    exactly the requests the Statistics tab counts since the reset."""
    port = free_loopback_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "loadkit.cli.main", "ui", "health", "--web-port", str(port),
         "--results", str(tmp_path)],
        env=kit_env(fresh_platform.url, **NO_QUEUE_PROBE), cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: reachable(base + "/"), what="the web UI")
        form = {
            "user_count": 2, "spawn_rate": 2, "host": fresh_platform.url,
            "shape_class": "AverageShape", "user_classes": "HealthUser", "time_scale": "0.1",
        }  # fmt: skip  # average at 0.1: 30 s of load, stopped long before
        assert requests.post(base + "/swarm", data=form, timeout=5).json()["success"]
        wait_for(lambda: fresh_platform.counters()["total"] > 200, what="the load")
        time.sleep(1.0)
        assert requests.post(base + "/stats/reset", timeout=5).status_code == 200
        time.sleep(1.5)
        assert requests.post(base + "/stop", timeout=5).json()["success"]
        verdict = wait_for(
            lambda: (
                (v := requests.get(base + "/loadkit/verdict", timeout=5).json()).get("live")
                is False
                and v
            ),
            what="the verdict",
        )
        stats = requests.get(base + "/stats/requests", timeout=5).json()
        tab_total = next(s for s in stats["stats"] if s["name"] == "Aggregated")["num_requests"]
        served = fresh_platform.counters()["requests"]["GET /health"]
    finally:
        ui.send_signal(signal.SIGTERM)
        try:
            ui.wait(timeout=20)
        finally:
            ui.kill()
    assert verdict["state"] == "stopped early" and verdict["passed"] is False
    assert verdict["summary"].startswith("STOPPED EARLY: ")
    assert verdict["totals"]["requests"] == tab_total > 100
    assert served > tab_total  # the requests before the reset are in neither
    assert "since the statistics were reset" in verdict["window"]["description"]
    window_s = verdict["window"]["end_s"] - verdict["window"]["start_s"]
    assert window_s == pytest.approx(1.5, abs=0.4)


# -- smoke passes on the reference platform ------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunResult]:
    """``loadkit run <scenario> --profile smoke --time-scale 0.3`` for every scenario, with no
    API_URL: the README's first command, against an embedded reference platform each, preflight
    included. The five run side by side (one user each) to keep the suite short."""
    runs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for scenario in registry.SCENARIOS:
        results = tmp_path_factory.mktemp(f"smoke-{scenario}")
        command = [
            sys.executable, "-m", "loadkit.cli.main", "run", scenario, "--profile", "smoke",
            "--time-scale", "0.3", "--results", str(results / "runs"),
        ]  # fmt: skip
        with (results / "output.txt").open("w") as output:  # a file: no pipe fills up
            run = subprocess.Popen(
                command, env=kit_env(None, api_key=None), cwd=REPO_ROOT, text=True,
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        runs[scenario] = (run, results)
    done: dict[str, RunResult] = {}
    for scenario, (run, results) in runs.items():
        finish(run, timeout_s=120)
        folders = sorted((results / "runs").glob("*/"))
        output = (results / "output.txt").read_text()
        done[scenario] = RunResult(run.returncode, output, folders[-1] if folders else None)
    return done


@pytest.mark.parametrize("scenario", list(registry.SCENARIOS))
def test_smoke_passes_for_every_scenario_at_the_readmes_time_scale(
    scenario: str, smoke_runs: dict[str, RunResult]
) -> None:
    result = smoke_runs[scenario]
    verdict = result.verdict()
    not_held = [
        f"{c['request'] or c['gauge'] or c['counter']} {c['metric']}: {c['status']} ({c['reason']})"
        for c in verdict["criteria"]
        if c["status"] in ("failed", "no data")
    ]
    assert (result.exit_code, verdict["passed"], not_held) == (0, True, []), verdict["summary"]
    assert verdict["state"] == "complete"


# -- signals ---------------------------------------------------------------------------------------

#: Each GET /health takes this long, so a stop always finds requests in flight.
SLOW_HEALTH_MS = 1000


@pytest.fixture(scope="module")
def slow_platform() -> Iterator[RunningPlatform]:
    with start_platform(
        TEST_API_KEY, extra_args=["--latency", f"GET /health={SLOW_HEALTH_MS}"]
    ) as p:
        yield p


def start_run(platform: RunningPlatform, results: Path, *args: str) -> subprocess.Popen[str]:
    """``loadkit run ...`` in the background, as a terminal would start it."""
    command = [
        sys.executable, "-m", "loadkit.cli.main", "run", *args, "--results", str(results),
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=kit_env(platform.url, **NO_QUEUE_PROBE), cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def finish(run: subprocess.Popen[str], timeout_s: float = 40) -> str:
    try:
        output, _ = run.communicate(timeout=timeout_s)
    finally:
        run.kill()
    return output


def wait_for_requests(platform: RunningPlatform, count: int, timeout_s: float = 30) -> None:
    wait_for(lambda: platform.counters()["total"] >= count, timeout_s, f"{count} requests")


def test_ctrl_c_stops_gracefully_and_judges_the_run_as_interrupted(
    slow_platform: RunningPlatform, tmp_path: Path
) -> None:
    slow_platform.reset_counters()
    run = start_run(slow_platform, tmp_path, "health", "-u", "4", "-t", "60s", "--skip-preflight")
    wait_for_requests(slow_platform, 8)  # two rounds started: every user has one in flight
    run.send_signal(signal.SIGINT)
    output = finish(run)
    assert run.returncode == 3, output
    run_dir = next(tmp_path.glob("*/"))
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["state"] == "interrupted" and verdict["passed"] is False
    assert verdict["summary"].startswith("INTERRUPTED: Ctrl-C at ")
    # the requests in flight finished (graceful stop): counted exactly as the server did
    assert verdict["totals"]["requests"] == slow_platform.counters()["requests"]["GET /health"]
    for name in ("junit.xml", "summary.txt", "report.html", "stats_stats.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    assert "loadkit verdict: scenario health" in output


def test_a_second_ctrl_c_stops_at_once_and_still_leaves_a_verdict(
    slow_platform: RunningPlatform, tmp_path: Path
) -> None:
    slow_platform.reset_counters()
    run = start_run(slow_platform, tmp_path, "health", "-u", "4", "-t", "60s", "--skip-preflight")
    wait_for_requests(slow_platform, 8)
    run.send_signal(signal.SIGINT)
    time.sleep(0.2)
    stopped_s = time.monotonic()
    run.send_signal(signal.SIGINT)
    output = finish(run)
    took_s = time.monotonic() - stopped_s
    assert run.returncode == 3, output
    verdict = json.loads(next(tmp_path.glob("*/verdict.json")).read_text())
    assert verdict["state"] == "interrupted" and verdict["passed"] is False
    # the users were killed with their requests in flight: the server saw up to one more each
    served = slow_platform.counters()["requests"]["GET /health"]
    assert served - 4 <= verdict["totals"]["requests"] < served
    assert took_s < SLOW_HEALTH_MS / 1000 + 5, output


def test_sigterm_during_preflight_leaves_a_verdict_and_sends_no_load(
    slow_platform: RunningPlatform, tmp_path: Path
) -> None:
    slow_platform.reset_counters()
    run = start_run(slow_platform, tmp_path, "health", "-u", "4", "-t", "10s")
    wait_for_requests(slow_platform, 1)  # the preflight's GET /health, answered in 1 s
    run.send_signal(signal.SIGTERM)
    output = finish(run)
    assert run.returncode == 3, output
    run_dir = next(tmp_path.glob("*/"))
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["state"] == "interrupted" and verdict["passed"] is False
    assert verdict["state_reason"] == "SIGTERM during preflight: no load was sent"
    assert verdict["totals"]["requests"] == 0
    # the console says what happened, not that a window was short or a baseline missing
    assert "totals: 0 requests, 0 failed (0%), no rate (nothing was measured)" in output
    assert verdict["summary"] == (
        "INTERRUPTED: SIGTERM during preflight: no load was sent "
        "(on what was measured: nothing was judged: nothing was measured)"
    )
    assert not (run_dir / "locust.log").exists()
    time.sleep(1.0)  # anything sent late would have arrived by now
    assert slow_platform.counters()["requests"].get("GET /health") == 1  # the preflight's only
