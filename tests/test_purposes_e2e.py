"""Each profile judged on what it exists to find, against the real platform and its /metrics.

A spike whose surge leaves latency behind fails its recovery criterion, and the same spike
without that damage passes; a soak against a platform that leaks fails platform memory growth,
and the same soak without the leak passes; the platform's CPU share the kit reports agrees with
the platform's CPU time read from /proc by the test. Profiles are scaled with --time-scale and
--user-scale, as a user would.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from conftest import TEST_API_KEY, RunResult, kit_env, run_kit

from loadkit.endpoints import PLATFORM_METRICS
from loadkit.platform.launcher import RunningPlatform, start_platform

#: serial: its rates, timings or CPU readings need the machine to itself (scripts/test.sh).
pytestmark = [pytest.mark.slow, pytest.mark.serial]

SPIKE_BASELINE = """
scenario = "health"

# Loose, for a shared 2-core machine: P95 back within 5x the pre-spike P95 before the hold's
# last second (the hold is 3 s). A surge's lasting damage never gets there.
[[criteria]]
request = "total"
metric = "recovery"
tolerance = "400%"
op = "<="
value = "2.5s"

[[criteria]]
request = "total"
during = "surge"
metric = "error_rate"
op = "<"
value = "1%"
"""

SOAK_BASELINE = """
scenario = "health"

[[criteria]]
platform = "process_resident_memory_bytes"
metric = "growth"
op = "<"
value = "2GiB/h"

[[criteria]]
platform = "process_cpu_seconds_total"
metric = "rate"
op = "<="
value = "100%"

[[criteria]]
gauge = "generator_rss_bytes"
metric = "growth"
op = "<"
value = "20GiB/h"
"""
# 12 s: 3 s to 1 user, 3 s up to 20, 3 s down to 1, then the 3 s recovery hold at 1 user.
SPIKE_ARGS = ["health", "--profile", "spike", "--time-scale", "0.1", "--user-scale", "0.2"]
# 7.2 s at 5 users.
SOAK_ARGS = ["health", "--profile", "soak", "--time-scale", "0.002", "--user-scale", "0.25"]


def run_against(extra_args: list[str], args: list[str], baseline: str, tmp: Path) -> RunResult:
    path = tmp / "baseline.toml"
    path.write_text(baseline)
    with start_platform(TEST_API_KEY, extra_args=extra_args) as platform:
        env = kit_env(platform.url, LOADKIT_METRICS_URL=platform.url + PLATFORM_METRICS)
        return run_kit([*args, "--baseline", str(path)], env, tmp / "results")


@pytest.mark.parametrize("damaged", [True, False], ids=["surge-leaves-latency", "clean"])
def test_spike_recovery_fails_only_when_latency_stays_after_the_surge(
    tmp_path: Path, damaged: bool
) -> None:
    # Once more than 8 connections were open at once (the surge opens 20), every later request
    # takes 150 ms longer: the hold at 1 user never gets back to the pre-spike P95.
    extra = ["--surge-latency", "8=150"] if damaged else []
    result = run_against(extra, SPIKE_ARGS, SPIKE_BASELINE, tmp_path)
    verdict = result.verdict()
    recovery, surge_errors = verdict["criteria"]
    assert surge_errors["status"] == "passed", surge_errors
    if damaged:
        assert result.exit_code == 1, result.output
        assert recovery["status"] == "failed" and recovery["measured"] is None  # never: inf
        assert "never back within it" in recovery["reason"]
        last = float(re.search(r"last second of the hold ([\d.]+) ms", recovery["reason"])[1])
        assert last >= 150
        assert "FAILED: 1 of 2 criteria failed: total recovery <= 2.5 s" in result.output
        assert "never back within it" in result.output  # the console shows why
    else:
        assert result.exit_code == 0, result.output
        assert recovery["status"] == "passed" and recovery["measured"] <= 2.5
    assert verdict["window"]["start_s"] == pytest.approx(9.0)  # the hold is the steady part


def test_soak_finds_a_platform_memory_leak(tmp_path: Path) -> None:
    # 20 kB kept per request: at ~1000 requests a second that is tens of GB an hour.
    result = run_against(["--leak-bytes-per-request", "20000"], SOAK_ARGS, SOAK_BASELINE, tmp_path)
    assert result.exit_code == 1, result.output
    growth, cpu, generator = result.verdict()["criteria"]
    assert growth["status"] == "failed", growth
    assert growth["measured"] > 10 * 1024**3
    assert cpu["status"] == "passed" and generator["status"] == "passed"
    assert (result.run_dir / "platform_metrics.jsonl").exists()


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def cpu_readings(pid: int) -> Iterator[list[tuple[float, float]]]:
    """(epoch s, CPU seconds of ``pid``) every 0.1 s, read from /proc by the test."""
    readings: list[tuple[float, float]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            readings.append((time.time(), proc_cpu_s(pid)))
            done.wait(0.1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        yield readings
    finally:
        done.set()
        reader.join()


def cpu_at(readings: list[tuple[float, float]], at_s: float) -> float:
    """CPU seconds at ``at_s``, interpolated between the two readings around it."""
    for (t0, c0), (t1, c1) in itertools.pairwise(readings):
        if t0 <= at_s <= t1:
            return c0 + (c1 - c0) * (at_s - t0) / (t1 - t0)
    raise AssertionError(f"no /proc reading around {at_s}")


def test_platform_cpu_share_agrees_with_proc(tmp_path: Path) -> None:
    path = tmp_path / "baseline.toml"
    path.write_text(SOAK_BASELINE)
    with start_platform(TEST_API_KEY) as platform, cpu_readings(platform.process.pid) as readings:
        env = kit_env(platform.url, LOADKIT_METRICS_URL=PLATFORM_METRICS)  # a path under API_URL
        result = run_kit([*SOAK_ARGS, "--baseline", str(path)], env, tmp_path / "results")
    assert result.exit_code == 0, result.output
    verdict = result.verdict()
    growth, cpu, _ = verdict["criteria"]
    assert growth["status"] == "passed", growth  # no leak: the same soak passes
    # The run's start, from the run control's log line (ms), places the window on the clock.
    log = (result.run_dir / "locust.log").read_text()
    stamp = re.search(r"^\[([\d\- :,]+)\] .*loadkit: run [0-9a-f]+:", log, re.M)[1]
    started = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    start_s, end_s = verdict["window"]["start_s"], verdict["window"]["end_s"]
    proc_share = (cpu_at(readings, started + end_s) - cpu_at(readings, started + start_s)) / (
        end_s - start_s
    )
    assert proc_share > 0.05  # the platform did work: the comparison means something
    assert cpu["measured"] == pytest.approx(proc_share, abs=0.05, rel=0.15)


def test_platform_criteria_need_a_metrics_source_before_any_load(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    env = kit_env(fresh_platform.url)
    result = run_kit([*SOAK_ARGS, "--skip-preflight"], env, tmp_path)  # the shipped baseline
    assert result.exit_code == 2, result.output
    assert "judges the platform's own metrics in a soak run: set LOADKIT_METRICS_URL" in (
        result.output
    )
    off_list = kit_env(fresh_platform.url, LOADKIT_METRICS_URL="http://127.0.0.2:9/metrics")
    result = run_kit([*SOAK_ARGS, "--skip-preflight"], off_list, tmp_path)
    assert result.exit_code == 2 and "LOADKIT_METRICS_URL host '127.0.0.2'" in result.output
    result = run_kit(["health", "--profile", "soak", "--recovery", "5s"], env, tmp_path)
    assert result.exit_code == 2
    assert "--recovery applies to profiles with a recovery hold (spike), not soak" in result.output
    assert fresh_platform.counters()["total"] == 0


LEAK_ABORT_BASELINE = """
scenario = "health"

[[criteria]]
platform = "process_resident_memory_bytes"
metric = "max"
op = "<"
value = "300MiB"
abort_on_fail = true
delay_abort_eval = "1s"
"""


def test_a_platform_criterion_can_abort_a_run(tmp_path: Path) -> None:
    # 100 kB kept per request passes 300 MiB within seconds; the run is planned for 60 s.
    started = time.monotonic()
    result = run_against(
        ["--leak-bytes-per-request", "100000"],
        ["health", "-u", "4", "-t", "60s", "--skip-preflight"],
        LEAK_ABORT_BASELINE,
        tmp_path,
    )
    assert time.monotonic() - started < 40
    assert result.exit_code == 1, result.output
    verdict = result.verdict()
    assert verdict["aborted"].startswith(
        "criteria[0] platform process_resident_memory_bytes max < 300 MiB failed for"
    )
    assert verdict["criteria"][0]["measured"] >= 300 * 1024**2
