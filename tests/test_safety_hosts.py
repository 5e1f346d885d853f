"""Load goes only to hosts on the allow-list: refusals are tested against a platform on
127.0.0.2 (loopback, but off the default list), which must receive nothing; and the web UI
refuses cross-origin requests, foreign Host headers and off-list hosts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT, TEST_API_KEY, kit_env, run_kit_command

from loadkit.cli.topology import free_loopback_port
from loadkit.platform.launcher import RunningPlatform, start_platform

HEALTH_LOCUSTFILE = str(REPO_ROOT / "locustfiles" / "health.py")


@pytest.fixture(scope="module")
def off_list() -> Iterator[RunningPlatform]:
    """A platform on 127.0.0.2: loopback, so tests may aim at it, but not on the list."""
    with start_platform(TEST_API_KEY, extra_args=["--host", "127.0.0.2"]) as platform:
        assert platform.url.startswith("http://127.0.0.2:")
        yield platform


@pytest.fixture
def fresh_off_list(off_list: RunningPlatform) -> RunningPlatform:
    off_list.reset_counters()
    return off_list


@pytest.mark.parametrize(
    "command",
    [["run", "health", "-t", "5s"], ["run-all", "health", "--profiles", "smoke"],
     ["preflight"], ["ui", "health"]],
    ids=["run", "run-all", "preflight", "ui"],
)  # fmt: skip
def test_every_command_refuses_an_off_list_target_before_sending(
    fresh_off_list: RunningPlatform, tmp_path: Path, command: list[str]
) -> None:
    if command == ["preflight"]:
        done = subprocess.run(
            [sys.executable, "-m", "loadkit.cli.main", "preflight"], capture_output=True,
            text=True, timeout=60, env=kit_env(fresh_off_list.url), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        code, output = done.returncode, done.stdout + done.stderr
    else:
        result = run_kit_command(command, kit_env(fresh_off_list.url), tmp_path, timeout_s=60)
        code, output = result.exit_code, result.output
    host = fresh_off_list.url.removeprefix("http://").split(":")[0]
    assert code == 2, output
    assert output.strip().splitlines() == [
        f"loadkit: API_URL host '{host}' is not on the allow-list (localhost, 127.0.0.1, ::1): "
        f"add it with --allow-host {host} or LOADKIT_ALLOWED_HOSTS={host}"
    ]
    assert fresh_off_list.counters()["total"] == 0
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_named_host_is_allowed(fresh_off_list: RunningPlatform) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadkit.cli.main", "preflight", "--allow-host", "127.0.0.2"],
        capture_output=True, text=True, timeout=60, env=kit_env(fresh_off_list.url),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert fresh_off_list.counters()["total"] >= 2  # the health check and the key check


def test_plain_locust_refuses_an_off_list_host(
    fresh_off_list: RunningPlatform, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", HEALTH_LOCUSTFILE, "--headless", "-u", "2",
         "-t", "3s", "--host", fresh_off_list.url, "--no-baseline"],
        capture_output=True, text=True, timeout=60, env=kit_env(None), cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "loadkit: --host '127.0.0.2' is not on the allow-list" in done.stderr
    assert fresh_off_list.counters()["total"] == 0


def test_a_worker_refuses_an_off_list_host_its_master_sends(
    fresh_off_list: RunningPlatform, tmp_path: Path
) -> None:
    """A master that allows 127.0.0.2 (say, another team's setup) cannot aim a worker whose
    own list does not have it. (The master's queue sampler would call 127.0.0.2 itself,
    as its list allows: it is off here, so every request would be the worker's.)"""
    port = str(free_loopback_port())
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", HEALTH_LOCUSTFILE, "--headless", "--master",
         "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--expect-workers", "1",
         "-u", "2", "-r", "2", "-t", "5s", "--host", fresh_off_list.url, "--no-baseline"],
        env=kit_env(None, LOADKIT_ALLOWED_HOSTS="127.0.0.2", LOADKIT_QUEUE_SOURCE="off"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        worker = subprocess.run(
            [sys.executable, "-m", "locust", "-f", HEALTH_LOCUSTFILE, "--worker",
             "--master-host", "127.0.0.1", "--master-port", port],
            capture_output=True, text=True, timeout=60, env=kit_env(None), cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        master.kill()
        master.wait()
    assert worker.returncode == 2, worker.stderr[-2000:]
    assert "loadkit: --host '127.0.0.2' is not on the allow-list" in worker.stderr
    assert fresh_off_list.counters()["total"] == 0


# -- the web UI -----------------------------------------------------------------------------------


@pytest.fixture
def web_ui(fresh_platform: RunningPlatform, tmp_path: Path) -> Iterator[str]:
    port = free_loopback_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "loadkit.cli.main", "ui", "health", "--web-port", str(port),
         "--results", str(tmp_path)],
        env=kit_env(fresh_platform.url), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the web UI did not start"
            time.sleep(0.3)
        yield base
    finally:
        ui.terminate()
        try:
            ui.wait(timeout=20)
        except subprocess.TimeoutExpired:
            ui.kill()


def swarm_form(host: str, users: int = 1) -> dict[str, object]:
    return {"user_count": users, "spawn_rate": 1, "host": host, "shape_class": "Default",
            "user_classes": "HealthUser"}  # fmt: skip


def test_web_ui_refuses_cross_origin_foreign_hosts_and_off_list_targets(
    web_ui: str, fresh_platform: RunningPlatform, fresh_off_list: RunningPlatform
) -> None:
    own = {"Origin": web_ui}
    allowed = swarm_form(fresh_platform.url)

    refused = [
        requests.post(web_ui + "/swarm", data=allowed, headers={"Origin": "http://evil.test"},
                      timeout=5),
        requests.post(web_ui + "/swarm", data=allowed, headers={"Origin": "null"}, timeout=5),
        requests.post(web_ui + "/swarm", data=allowed, headers={"Sec-Fetch-Site": "cross-site"},
                      timeout=5),
        requests.post(web_ui + "/swarm", data=allowed,
                      headers={"Referer": "http://evil.test/page"}, timeout=5),
        requests.post(web_ui + "/swarm", data=swarm_form(fresh_off_list.url), headers=own,
                      timeout=5),
        requests.post(web_ui + "/swarm", data=swarm_form(fresh_platform.url, users=1_000_000),
                      headers=own, timeout=5),
        requests.get(web_ui + "/", headers={"Host": "evil.test"}, timeout=5),
    ]  # fmt: skip
    assert [r.status_code for r in refused] == [403] * len(refused)
    messages = [r.json()["message"] for r in refused]
    assert "Origin 'http://evil.test' is not the UI's own" in messages[0]
    assert "'127.0.0.2' is not on the allow-list" in messages[4]
    assert "1,000,000 users is above the limit" in messages[5]
    assert "Host 'evil.test' is not this machine's name" in messages[6]
    time.sleep(1.5)
    assert fresh_platform.counters()["total"] == 0
    assert fresh_off_list.counters()["total"] == 0

    # The UI's own page may start and stop a test; a foreign page may not stop it.
    started = requests.post(web_ui + "/swarm", data=allowed, headers=own, timeout=5)
    assert started.status_code == 200 and started.json()["success"], started.text
    deadline = time.monotonic() + 15
    while fresh_platform.counters()["total"] == 0:
        assert time.monotonic() < deadline, "the allowed test sent nothing"
        time.sleep(0.2)
    foreign_stop = requests.post(
        web_ui + "/stop", headers={"Origin": "http://evil.test"}, timeout=5
    )
    assert foreign_stop.status_code == 403
    assert requests.get(web_ui + "/stats/requests", timeout=5).json()["state"] == "running"
    assert requests.post(web_ui + "/stop", headers=own, timeout=5).status_code == 200
