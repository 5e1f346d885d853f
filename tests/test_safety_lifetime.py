"""Load dies with its owner: a SIGKILLed ``loadkit`` (or whatever started Locust for it) stops the
load within 2 s, as counted by the platform receiving it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, kit_env, run_kit

from loadkit.core.exit_codes import EXIT_NO_WORKERS
from loadkit.platform.launcher import RunningPlatform
from loadkit.process_lifetime import OWNER_PID_ENV

STOPPED_WITHIN_S = 2.0


def wait_for_load(platform: RunningPlatform, at_least: int = 200, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while platform.counters()["total"] < at_least:
        assert time.monotonic() < deadline, "the load never reached the platform"
        time.sleep(0.2)


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; it no longer runs.
    state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    return state != "Z"


def assert_load_stopped_after_kill(platform: RunningPlatform, owner: subprocess.Popen) -> None:
    """SIGKILL ``owner``; the platform's counter must stop growing within 2 s."""
    descendants = children_of(owner.pid)
    descendants += [g for c in descendants for g in children_of(c)]
    assert descendants, "the owner started no child"
    owner.send_signal(signal.SIGKILL)
    owner.wait(timeout=5)
    killed_at_s = time.monotonic()
    try:
        time.sleep(STOPPED_WITHIN_S)
        settled = platform.counters()["total"]
        time.sleep(1.0)
        later = platform.counters()["total"]
        assert later == settled, f"{later - settled} requests arrived 2-3 s after the kill"
        deadline_s = killed_at_s + 15
        while any(alive(pid) for pid in descendants) and time.monotonic() < deadline_s:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in descendants), "a child outlived its owner"
    finally:
        for pid in descendants:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("workers", [[], ["--workers", "1"]], ids=["standalone", "local-worker"])
def test_sigkill_of_loadkit_stops_the_load(
    fresh_platform: RunningPlatform, tmp_path: Path, workers: list[str]
) -> None:
    command = [
        sys.executable, "-m", "loadkit.cli.main", "run", "health", "-u", "4", "-t", "60s",
        "--skip-preflight", "--results", str(tmp_path), *workers,
    ]  # fmt: skip
    owner = subprocess.Popen(
        command, env=kit_env(fresh_platform.url), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_load(fresh_platform)
        assert_load_stopped_after_kill(fresh_platform, owner)
    finally:
        owner.kill()
    run_dir = next(tmp_path.glob("health-*"))
    # SIGTERM, not SIGKILL, reached Locust: it stopped the users and still wrote its stats.
    assert (run_dir / "stats_stats.csv").exists(), sorted(p.name for p in run_dir.iterdir())


def test_watchdog_stops_locust_whose_owner_died_without_a_parent_death_signal(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    """An owner that starts Locust without ``prctl`` (another OS, a wrapper script): the
    plugin's watchdog notices the re-parenting and stops the process."""
    locust = [
        sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "locustfiles" / "health.py"),
        "--headless", "-u", "4", "-r", "4", "-t", "60s", "--host", fresh_platform.url,
        "--no-baseline", "--logfile", str(tmp_path / "locust.log"),
    ]  # fmt: skip
    wrapper = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        env = dict(os.environ, {OWNER_PID_ENV}=str(os.getpid()))
        subprocess.Popen({locust!r}, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(120)
        """
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", wrapper], env=kit_env(fresh_platform.url), cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_load(fresh_platform)
        assert_load_stopped_after_kill(fresh_platform, owner)
    finally:
        owner.kill()
    assert "its parent process" in (tmp_path / "locust.log").read_text()


def test_a_master_whose_workers_never_connect_ends_with_exit_3_and_one_console_line(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    result = run_kit(
        ["health", "--master", "--expect-workers", "2", "-t", "30s", "--skip-preflight",
         "--", "--expect-workers-max-wait", "2"],
        kit_env(fresh_platform.url), tmp_path, timeout_s=60,
    )  # fmt: skip
    assert result.exit_code == EXIT_NO_WORKERS, result.output[-2000:]
    assert result.output.count("loadkit: the master gave up: its workers did not all") == 1
    assert fresh_platform.counters()["total"] == 0
    assert result.run_dir is not None
    log = (result.run_dir / "locust.log").read_text()
    assert "0 of 2 workers connected within 2 s; nothing was sent" in log
    assert "Gave up waiting for workers" not in log  # Locust's own exit 1 did not race ours
