"""End to end: the arrival-rate executor delivers its rate whatever the platform's latency.

Real Locust against the reference platform on loopback, with ``POST /api/calls`` slowed to
500 ms. Rates are the platform's own counts (it counts a request when it arrives), read twice
while the run is going: the difference over the time between the readings leaves out start-up
and shutdown. A 3 s window at 50/s holds 150 arrivals; each reading is off by at most one or two
arrivals (the reading takes a few ms), so the measured rate is within ~3% of the delivered one:
the 5% tolerance below is that plus scheduling jitter on a busy machine.
"""

from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TEST_API_KEY, kit_env

from loadkit.platform.launcher import RunningPlatform, start_platform

#: serial: its rates, timings or CPU readings need the machine to itself (scripts/test.sh).
pytestmark = [pytest.mark.slow, pytest.mark.serial]

CALLS = "POST /api/calls"
LATENCY_MS = 500
RATE_PER_S = 50
SUMMARY_RE = re.compile(r"(\d+) iterations started, (\d+) dropped")


@pytest.fixture(scope="module")
def slow_platform() -> Iterator[RunningPlatform]:
    with start_platform(TEST_API_KEY, extra_args=["--latency", f"{CALLS}={LATENCY_MS}"]) as running:
        yield running


@pytest.fixture
def platform(slow_platform: RunningPlatform) -> RunningPlatform:
    slow_platform.reset_counters()
    return slow_platform


def calls_seen(platform: RunningPlatform) -> int:
    return int(platform.counters()["requests"].get(CALLS, 0))


def _reading(platform: RunningPlatform) -> tuple[int, float]:
    before = time.monotonic()
    count = calls_seen(platform)
    return count, (before + time.monotonic()) / 2


class Run:
    """A load-generator subprocess whose output goes to a file (no pipe to fill up)."""

    def __init__(self, command: Sequence[str], env: dict[str, str], out: Path) -> None:
        self.out = out
        with out.open("w") as sink:
            self.child = subprocess.Popen(
                list(command), env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def rate_per_s(
        self, platform: RunningPlatform, settle_s: float = 1.5, window_s: float = 3.0
    ) -> float:
        """Calls per second the platform received from ``settle_s`` after the first call on."""
        deadline = time.monotonic() + 30
        while calls_seen(platform) == 0:
            assert self.child.poll() is None, self.out.read_text()
            assert time.monotonic() < deadline, "no call arrived"
            time.sleep(0.02)
        time.sleep(settle_s)
        first, first_at = _reading(platform)
        time.sleep(window_s)
        last, last_at = _reading(platform)
        return (last - first) / (last_at - first_at)

    def finish(self, timeout_s: float = 60) -> tuple[int, str]:
        try:
            code = self.child.wait(timeout=timeout_s)
        finally:
            self.child.kill()
        return code, self.out.read_text()


def loadkit_run(args: Sequence[str], platform: RunningPlatform, tmp_path: Path) -> Run:
    command = [sys.executable, "-m", "loadkit.cli.main", "run", "scheduling", *args]
    command[5:5] = ["--results", str(tmp_path / "results")]
    return Run(command, kit_env(platform.url), tmp_path / "output.txt")


def plain_locust(args: Sequence[str], platform: RunningPlatform, tmp_path: Path) -> Run:
    command = [sys.executable, "-m", "locust", "--headless", "--no-baseline", *args]
    return Run(command, kit_env(platform.url), tmp_path / "output.txt")


def summary(output: str) -> tuple[int, int]:
    match = SUMMARY_RE.search(output)
    assert match, output
    return int(match[1]), int(match[2])


def stats_rows(tmp_path: Path) -> dict[str, dict[str, str]]:
    (run_dir,) = (tmp_path / "results").glob("*/")
    with (run_dir / "stats_stats.csv").open() as f:
        return {f"{row['Type']} {row['Name']}".strip(): row for row in csv.DictReader(f)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_open_model_delivers_the_rate_that_closed_users_cannot(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    run = loadkit_run(["--rate", str(RATE_PER_S), "-t", "6s"], platform, tmp_path)
    open_rate = run.rate_per_s(platform)
    code, output = run.finish()
    assert code == 0, output
    assert open_rate == pytest.approx(RATE_PER_S, rel=0.05), output
    started, dropped = summary(output)
    assert dropped == 0
    # Every started iteration reached the platform (but for one or two the end of the run cut
    # off between start and send), and no more than 6 s at 50/s were started.
    seen = calls_seen(platform)
    assert seen <= started <= seen + 2
    assert started <= 6 * RATE_PER_S + 1

    # The intended-start row: one per call, never faster than the send-time row.
    rows = stats_rows(tmp_path)
    sent, intended = rows[CALLS], rows[f"INTENDED {CALLS}"]
    assert sent["Request Count"] == intended["Request Count"]
    assert LATENCY_MS <= float(sent["50%"]) <= float(intended["50%"]) < LATENCY_MS * 1.2
    assert float(intended["Average Response Time"]) >= float(sent["Average Response Time"])
    # ... and the kit's HTTP total leaves it out.
    (run_dir,) = (tmp_path / "results").glob("*/")
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["totals"]["requests"] == int(sent["Request Count"])

    # The same number of users (loadkit's default, 10) in a closed loop with no wait: each
    # user's next call waits for its 500 ms reply, so about 10 x 2 = 20 calls/s.
    platform.reset_counters()
    closed = plain_locust(
        ["-f", "tests/locustfiles/closed_scheduling.py", "-u", "10", "-r", "10", "-t", "6s"],
        platform,
        tmp_path,
    )
    closed_rate = closed.rate_per_s(platform, window_s=2.5)
    code, output = closed.finish()
    assert code == 0, output
    assert 0 < closed_rate <= 10 * 1000 / LATENCY_MS * 1.05, output
    assert closed_rate < RATE_PER_S / 2


def test_in_flight_cap_drops_and_counts_iterations(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    # 5 in flight x 500 ms = at most 10 calls/s start; the other ~40/s are dropped.
    run = loadkit_run(
        ["--rate", str(RATE_PER_S), "-t", "3s", "--max-in-flight", "5"], platform, tmp_path
    )
    code, output = run.finish()
    assert code == 0, output
    started, dropped = summary(output)
    assert "in-flight cap 5" in output
    assert 5 <= started <= 5 + 3 * 10 + 5, output
    # At 50/s against a 10/s capacity, four of every five due iterations are dropped.
    assert dropped >= 2 * started, output
    assert started - 5 <= calls_seen(platform) <= started


def test_two_workers_share_the_rate(platform: RunningPlatform, tmp_path: Path) -> None:
    port = str(free_port())
    run = plain_locust(
        [
            "-f", "locustfiles/scheduling.py", "-u", "2", "-r", "2", "-t", "6s",
            "--processes", "2", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", port, "--master-port", port,
        ],
        platform,
        tmp_path,
    )  # fmt: skip
    rate = run.rate_per_s(platform)
    code, output = run.finish()
    assert code == 0, output
    # The locustfile's default rate (50/s) for the whole cluster, not 50/s per worker.
    assert rate == pytest.approx(RATE_PER_S, rel=0.05), output
    started, dropped = summary(output)
    assert dropped == 0
    seen = calls_seen(platform)
    assert seen <= started <= seen + 2  # the end of the run may cut one off before it is sent


@pytest.fixture(scope="module")
def fast_platform() -> Iterator[RunningPlatform]:
    with start_platform(TEST_API_KEY) as running:
        yield running


def test_a_saturated_generator_sends_every_iteration_it_counts_as_started(
    fast_platform: RunningPlatform, tmp_path: Path
) -> None:
    # 2,000/s of iterations that cost 2 ms of CPU each: the generator can start ~400/s. It
    # starts what it can and counts the rest as dropped; an iteration counted as started is one
    # that began, so it reaches the platform -- none waits in a queue to be killed at the end
    # (the old executor counted ~2,000/s as started and the platform saw ~400/s of them).
    fast_platform.reset_counters()
    run = plain_locust(
        ["-f", "tests/locustfiles/busy_scheduling.py", "-u", "1", "-r", "1", "-t", "3s"],
        fast_platform,
        tmp_path,
    )
    code, output = run.finish()
    assert code == 0, output
    started, dropped = summary(output)
    assert dropped > started > 0, output
    seen = calls_seen(fast_platform)
    # The end of the run may cut off the few iterations that began but had not sent yet.
    assert seen <= started <= seen + 5, output
