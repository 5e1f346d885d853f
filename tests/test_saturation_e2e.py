"""A load generator that runs out of CPU is named in the verdict and in the web UI.

The generator is saturated for real: a scenario whose users burn 20 ms of CPU after each request,
with no wait, keeps its one Locust process at ~100% of a core whatever the machine. A calm twin
(one request every 100 ms, nothing burnt) is the control: same code path, no note. Both are a
team's own scenarios (``LOADKIT_REGISTRY``), run like any other.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import kit_env, run_kit
from web_ui_session import ui_session, wait_for

from loadkit.platform.launcher import RunningPlatform

#: serial: its rates, timings or CPU readings need the machine to itself (scripts/test.sh).
pytestmark = [pytest.mark.slow, pytest.mark.serial]

LOCUSTFILE = '''"""A generator-bound scenario (Busy) and its calm control (Calm)."""

import time

from locust import constant, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json


def burn_cpu(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


class BusyUser(PlatformUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        with self.client.get(endpoints.HEALTH, catch_response=True) as response:
            expect_json(response, 200, equals={"status": "ok"})
        burn_cpu(0.02)
'''

CALM_LOCUSTFILE = '''"""The calm control: one request every 100 ms."""

from locust import constant, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json


class CalmUser(PlatformUser):
    wait_time = constant(0.1)

    @task
    def health(self) -> None:
        with self.client.get(endpoints.HEALTH, catch_response=True) as response:
            expect_json(response, 200, equals={"status": "ok"})
'''

#: The opt-in criterion: the busiest generator's CPU, P95 over the measured window.
BASELINE = """scenario = "{name}"

[[criteria]]
gauge = "generator_cpu_percent"
metric = "p95"
op = "<"
value = "80%"
source = "guide: CPU should stay below 80% (here: the load generator's own)"
"""

REGISTRY = """[[scenario]]
name = "busy"
purpose = "a generator that runs out of CPU"
users = 2
requests = ["GET /health"]
baseline = "busy.toml"

[[scenario]]
name = "calm"
purpose = "the control"
users = 1
requests = ["GET /health"]
baseline = "calm.toml"
"""


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    own = tmp_path / "ours"
    own.mkdir()
    (own / "busy.py").write_text(LOCUSTFILE)
    (own / "calm.py").write_text(CALM_LOCUSTFILE)
    for name in ("busy", "calm"):
        (own / f"{name}.toml").write_text(BASELINE.format(name=name))
    (own / "registry.toml").write_text(REGISTRY)
    return own / "registry.toml"


def _run(platform: RunningPlatform, registry_file: Path, scenario: str, results: Path):
    env = kit_env(platform.url, LOADKIT_REGISTRY=str(registry_file), LOADKIT_QUEUE_SOURCE="off")
    return run_kit([scenario, "-t", "6s", "--skip-preflight"], env, results)


def test_a_saturated_generator_is_named_in_the_verdict_and_fails_the_opt_in_criterion(
    fresh_platform: RunningPlatform, registry_file: Path, tmp_path: Path
) -> None:
    busy = _run(fresh_platform, registry_file, "busy", tmp_path / "busy")
    assert busy.exit_code == 1, busy.output
    verdict = busy.verdict()
    notes = [n for n in verdict["notes"] if n.startswith("load generator saturated")]
    assert len(notes) == 1, verdict["notes"]
    assert "(local: CPU above 80% in " in notes[0] and "add workers" in notes[0]
    (criterion,) = verdict["criteria"]
    assert criterion["status"] == "failed" and criterion["measured"] > 80, criterion
    assert verdict["gauges"]["generator_cpu_percent"]["max"] > 80
    assert verdict["totals"]["requests"] > 0
    assert "load generator saturated" in (busy.run_dir / "summary.txt").read_text()

    calm = _run(fresh_platform, registry_file, "calm", tmp_path / "calm")
    assert calm.exit_code == 0, calm.output
    verdict = calm.verdict()
    assert not any("saturated" in n for n in verdict["notes"]), verdict["notes"]
    (criterion,) = verdict["criteria"]
    assert criterion["status"] == "passed" and 0 <= criterion["measured"] < 80, criterion


def test_the_web_ui_strip_names_the_saturated_generator(
    fresh_platform: RunningPlatform, registry_file: Path, tmp_path: Path
) -> None:
    env = kit_env(fresh_platform.url, LOADKIT_REGISTRY=str(registry_file))
    with ui_session("busy", env, tmp_path / "results") as ui:
        form = {"user_count": 2, "spawn_rate": 2, "user_classes": "BusyUser",
                "host": fresh_platform.url, "shape_class": "Default", "run_time": "6s"}  # fmt: skip
        assert ui.post("swarm", data=form).json()["success"]
        live = wait_for(
            lambda: (s := ui.status())["phase"] == "running" and s["generator"] and s,
            timeout_s=15,
            what="a live saturation report",
        )
        assert live["generator"][0].startswith("local: CPU above 80% in ")
        final = wait_for(lambda: (s := ui.status())["phase"] == "final" and s, what="the end")
        assert final["generator"] and final["verdict"]["passed"] is False
        assert any(n.startswith("load generator saturated") for n in final["verdict"]["notes"])
