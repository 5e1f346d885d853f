"""The web UI: every profile selectable, start, stop, restart, a live Baseline tab, verdicts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT, kit_env

from loadkit.cli.topology import free_loopback_port
from loadkit.platform.launcher import RunningPlatform
from loadkit.results.history import HistoryStore

pytestmark = pytest.mark.slow


def wait_for(predicate, timeout_s: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def reachable(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_profiles_in_the_class_picker_start_stop_restart_and_a_verdict_each_time(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    port = free_loopback_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "loadkit.cli.main", "ui", "health", "--web-port", str(port),
         "--results", str(tmp_path)],
        env=kit_env(fresh_platform.url), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: reachable(base + "/"), what="the web UI")
        index = requests.get(base + "/", timeout=5).text
        for shape in ("SmokeShape", "AverageShape", "StressShape", "SpikeShape", "SoakShape"):
            assert shape in index
        assert "loadkit-baseline" in index

        # 1. The smoke profile, scaled to 3 s, runs to its end by itself.
        form = {
            "user_count": 1, "spawn_rate": 1, "host": fresh_platform.url,
            "shape_class": "SmokeShape", "user_classes": "HealthUser", "time_scale": "0.1",
        }  # fmt: skip
        assert requests.post(base + "/swarm", data=form, timeout=5).json()["success"]
        live = wait_for(
            lambda: next(
                (s["data"] for s in requests.get(base + "/stats/requests", timeout=5).json()
                 .get("extended_stats", []) if s["key"] == "loadkit-baseline" and s["data"]),
                None,
            ),
            what="live baseline rows",
        )  # fmt: skip
        assert any(row["criterion"] == "GET /health p95" for row in live)
        wait_for(
            lambda: requests.get(base + "/stats/requests", timeout=5).json()["state"] == "stopped",
            what="the smoke profile to end",
        )
        verdict = wait_for(
            lambda: requests.get(base + "/loadkit/verdict", timeout=5).json().get("profile"),
            what="the verdict",
        )
        assert verdict == "smoke"
        first_path = next(tmp_path.glob("health-ui-*/1-smoke/verdict.json"))
        first = json.loads(first_path.read_text())
        assert first["profile"] == "smoke" and first["passed"] is True
        assert first["state"] == "complete"

        # 2. Restart with the spike profile, stop it by hand: judged again, as that profile.
        form |= {"shape_class": "SpikeShape", "user_count": 1}
        assert requests.post(base + "/swarm", data=form, timeout=5).json()["success"]
        wait_for(
            lambda: requests.get(base + "/stats/requests", timeout=5).json()["user_count"] > 0,
            what="the spike to start",
        )
        time.sleep(1.5)
        assert requests.post(base + "/stop", timeout=5).json()["success"]
        second = wait_for(
            lambda: (
                (v := requests.get(base + "/loadkit/verdict", timeout=5).json()).get("profile")
                == "spike"
                and v.get("live") is False
                and v
            ),
            what="the spike verdict",
        )
        assert second["totals"]["requests"] > 0
        # Stopped by hand before the spike's planned end: never a bare PASSED.
        assert second["state"] == "stopped early" and second["passed"] is False
        assert second["summary"].startswith("STOPPED EARLY: ")
        # Each run keeps its own folder: the first verdict is still there, unchanged.
        assert json.loads(first_path.read_text()) == first
        assert (first_path.parent.parent / "2-spike" / "verdict.json").exists()
        # Each run is recorded once, by the Locust process (no parent waits for a UI run).
        records = HistoryStore(tmp_path / "history.sqlite").records()
        assert [(r["profile"], r["state"]) for r in records] == [
            ("smoke", "complete"), ("spike", "stopped early"),
        ]  # fmt: skip
        assert records[0]["run_dir"] == str(first_path.parent.relative_to(tmp_path))
        assert records[1]["totals"] == second["totals"]
    finally:
        ui.send_signal(signal.SIGTERM)
        try:
            ui.wait(timeout=20)
        finally:
            ui.kill()
