"""The web UI over HTTP: a folder and a verdict per start, the state at every moment, refusals
worded as the command line words them. The same session in a real browser:
tests/test_web_ui_browser.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, kit_env
from web_ui_session import ui_session, wait_for

from loadkit.cli.topology import free_loopback_port
from loadkit.platform.launcher import RunningPlatform
from loadkit.results.history import HistoryStore

pytestmark = pytest.mark.slow

HEALTH_FORM = {"user_count": 1, "spawn_rate": 1, "user_classes": "HealthUser"}


def health_requests(platform: RunningPlatform) -> int:
    return int(platform.counters()["responses"].get("GET /health 200", 0))


def test_every_start_has_its_folder_its_plan_and_its_verdict(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    with ui_session("health", kit_env(fresh_platform.url), tmp_path) as ui:
        assert ui.url.endswith("/")
        index = ui.get("").text
        for shape in ("SmokeShape", "AverageShape", "StressShape", "SpikeShape", "SoakShape"):
            assert shape in index
        assert 'src="/loadkit/ui.js"' in index
        assert ui.status()["phase"] == "idle"

        # 1. Smoke, scaled to 3 s: LIVE while it runs, then its own final verdict.
        form = {**HEALTH_FORM, "host": fresh_platform.url, "shape_class": "SmokeShape",
                "time_scale": "0.1", "run_time": ""}  # fmt: skip
        assert ui.post("swarm", data=form).json()["success"]
        right_after = ui.status()
        assert right_after["phase"] in ("starting", "running"), right_after
        assert right_after["verdict"] is None or right_after["verdict"]["live"]
        live = wait_for(lambda: (s := ui.status())["phase"] == "running" and s["verdict"] and s)
        assert live["marker"] == "LIVE" and live["verdict"]["state"] == "running"
        assert live["run"]["folder"] == "1-smoke" and live["run"]["planned_s"] == 3.0
        final = wait_for(lambda: (s := ui.status())["phase"] == "final" and s, what="smoke end")
        assert final["marker"] == "FINAL"
        first = ui.run_verdict("1-smoke")
        assert first["state"] == "complete" and first["passed"] is True
        assert final["verdict"] == first
        # The verdict's count is the platform's count of the same requests.
        assert first["totals"]["requests"] == health_requests(fresh_platform) > 0

        # 2. Spike with the form's Run time of 6 s (shorter than its 9 s), stopped at ~1.5 s:
        # stopped early, by the web UI, before the run time the form gave. Started the moment
        # the smoke's verdict is final: its shape is still stopping then, and Locust would drop
        # the start (the kit waits for it: locust_adapter.shape_test_still_ending).
        form |= {"shape_class": "SpikeShape", "run_time": "6s"}
        assert ui.post("swarm", data=form).json()["success"]
        wait_for(lambda: (s := ui.status())["phase"] == "running" and s["run"]["number"] == 2)
        time.sleep(1.5)
        assert ui.post("stop").json()["success"]
        final = wait_for(lambda: (s := ui.status())["phase"] == "final" and s, what="spike end")
        second = final["verdict"]
        assert second["profile"] == "spike" and second["state"] == "stopped early"
        assert second["state_reason"].startswith("stopped from the web UI at ")
        assert second["state_reason"].endswith(" of 6 s"), second["state_reason"]
        assert second["passed"] is False and second["summary"].startswith("STOPPED EARLY: ")
        assert ui.run_verdict("2-spike") == second

        # 3. No shape, Run time 2 s: the form's run time is the planned end, reached.
        form |= {"shape_class": "Default", "run_time": "2s"}
        assert ui.post("swarm", data=form).json()["success"]
        wait_for(lambda: (s := ui.status())["phase"] == "running" and s["run"]["number"] == 3)
        third = wait_for(lambda: (s := ui.status())["phase"] == "final" and s["verdict"])
        assert third["state"] == "complete", third["state_reason"]
        assert third["window"]["end_s"] == pytest.approx(2.0, abs=0.3)

        # Every run keeps its folder; the list links each file, served as written.
        assert ui.run_verdict("1-smoke") == first
        runs = ui.get("loadkit/runs").json()["runs"]
        assert [r["folder"] for r in runs] == ["3-custom", "2-spike", "1-smoke"]
        assert [r["state"] for r in runs] == ["complete", "stopped early", "complete"]
        smoke_files = {f["name"]: f["url"] for f in runs[2]["files"]}
        assert {"verdict.json", "junit.xml", "summary.txt", "timeseries.jsonl", "report.html",
                "queue_depth.jsonl"} <= set(smoke_files)  # fmt: skip
        served = ui.get(smoke_files["verdict.json"].removeprefix("/"))
        assert served.status_code == 200 and served.json() == first
        assert "sandbox" in served.headers["Content-Security-Policy"]
        outside = ("1-smoke/..%2F..%2Fhealth.toml", "x/verdict.json", "1-smoke/.hidden",
                   "1-smoke/nothing.txt", "1-smoke/")  # fmt: skip
        for path in outside:
            assert ui.get("loadkit/runs/" + path).status_code == 404, path
        # Each run is recorded once, by the Locust process (no parent waits for a UI run).
        records = HistoryStore(tmp_path / "history.sqlite").records()
        assert [(r["profile"], r["state"]) for r in records] == [
            ("smoke", "complete"), ("spike", "stopped early"), ("custom", "complete"),
        ]  # fmt: skip
        assert records[1]["totals"] == second["totals"]


CLI_EQUIVALENTS = {
    # form fields: the `loadkit run health` arguments that mean the same
    "time scale 0": ({"shape_class": "SmokeShape", "time_scale": "0"},
                     ["--profile", "smoke", "--time-scale", "0"]),
    "time scale abc": ({"shape_class": "SmokeShape", "time_scale": "abc"},
                       ["--profile", "smoke", "--time-scale", "abc"]),
    "custom, no stage": ({"shape_class": "CustomShape", "stage": ""}, ["--stage="]),
    "bad stage": ({"shape_class": "CustomShape", "stage": "10s"}, ["--stage", "10s"]),
    "bad run time": ({"shape_class": "Default", "run_time": "abc"}, ["-t", "abc"]),
}  # fmt: skip


def test_a_refused_start_says_why_in_the_clis_words_and_takes_the_old_verdict_down(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    env = kit_env(fresh_platform.url)
    cli = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadkit.cli.main",
                "run",
                "health",
                *args,
                "--results",
                str(tmp_path / "cli"),
            ],
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, (_, args) in CLI_EQUIVALENTS.items()
    }
    with ui_session("health", env, tmp_path / "ui") as ui:
        base = {**HEALTH_FORM, "host": fresh_platform.url, "time_scale": "0.05", "stage": "",
                "run_time": ""}  # fmt: skip
        assert ui.post("swarm", data={**base, "shape_class": "SmokeShape"}).json()["success"]
        wait_for(lambda: ui.status()["phase"] == "final", what="a first, passed run")
        assert ui.get("loadkit/verdict").json()["passed"] is True
        sent = health_requests(fresh_platform)
        for name, (fields, _) in CLI_EQUIVALENTS.items():
            answer = ui.post("swarm", data={**base, **fields})
            assert answer.status_code == 200, (name, answer.text)  # never 500
            message = answer.json()["message"]
            assert answer.json()["success"] is False, name
            printed = cli[name].communicate(timeout=60)[0].strip().splitlines()[-1]
            assert cli[name].returncode == 2, (name, printed)
            assert printed.startswith(message), (name, message, printed)
            # The previous PASSED is gone from every place that showed it.
            status = ui.status()
            assert status["phase"] == "refused" and status["refused"] == message
            assert status["verdict"] is None and status["marker"] is None
            assert ui.get("loadkit/verdict").json() == {
                "verdict": None, "phase": "refused", "refused": message,
            }  # fmt: skip
        time.sleep(1.5)  # a start that slipped through would have sent by now
        assert health_requests(fresh_platform) == sent
        assert [p.name for p in ui.session_dir().iterdir()] == ["1-smoke"]
        assert json.loads((ui.session_dir() / "1-smoke" / "verdict.json").read_text())["passed"]


def test_web_login_without_a_password_is_refused_instead_of_locking_everyone_out(
    tmp_path: Path,
) -> None:
    port = free_loopback_port()
    done = subprocess.run(
        [sys.executable, "-m", "loadkit.cli.main", "ui", "health", "--web-port", str(port),
         "--results", str(tmp_path), "--", "--web-login"],
        env=kit_env(None), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--web-login needs LOADKIT_WEB_PASSWORD" in done.stdout + done.stderr
