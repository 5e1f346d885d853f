"""The secrets never leave: every scenario, the web UI's routes and every output run with canary
secrets -- the API key (with characters JSON, HTML and CSV escape), a password in API_URL's
user part, a Redis password and an InfluxDB password -- and nothing written under the results
folder, printed on the console or served by the UI holds any of them, in any escaped form."""

from __future__ import annotations

import html
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from conftest import REPO_ROOT, kit_env, run_kit_command
from fixtures_redis import RedisServer, free_port, start_redis, stop_redis

from loadkit.cli.topology import free_loopback_port
from loadkit.platform.launcher import RunningPlatform, start_platform
from loadkit.registry import SCENARIOS

pytestmark = pytest.mark.slow

CANARY_KEY = 'lk-CANARY"key&<x>-5d1e9b7a'
CANARY_URL_PASSWORD = "CANARY-url-pw-31c8"
CANARY_REDIS_PASSWORD = "CANARY-redis-pw-77e1"
CANARY_INFLUX_PASSWORD = "CANARY-influx-pw-4b0d"
SECRETS = (CANARY_KEY, CANARY_URL_PASSWORD, CANARY_REDIS_PASSWORD, CANARY_INFLUX_PASSWORD)
#: Each secret as it would read once escaped by JSON, HTML, CSV or a URL.
FORMS = sorted(
    {form for s in SECRETS for form in
     (s, json.dumps(s)[1:-1], html.escape(s), html.escape(s, quote=False), s.replace('"', '""'),
      quote(s, safe=""))}
)  # fmt: skip
#: A fragment of the key no escaping changes (catches a partial leak).
KEY_CORE = "5d1e9b7a"


def leaks(text: str) -> list[str]:
    return [form for form in (*FORMS, KEY_CORE, "CANARY") if form in text]


@pytest.fixture(scope="module")
def canary_platform() -> Iterator[RunningPlatform]:
    with start_platform(api_key=CANARY_KEY) as platform:
        yield platform


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        client = server.client()
        client.config_set("requirepass", CANARY_REDIS_PASSWORD)
        client.close()
        yield server
    finally:
        stop_redis(server)


def canary_env(platform: RunningPlatform, redis: RedisServer) -> dict[str, str]:
    url = platform.url.replace("http://", f"http://canary-user:{CANARY_URL_PASSWORD}@")
    return kit_env(
        url,
        api_key=CANARY_KEY,
        REDIS_URL=f"redis://:{CANARY_REDIS_PASSWORD}@127.0.0.1:{redis.port}/0",
    )


def test_no_secret_in_any_file_or_console_line_of_every_scenario(
    canary_platform: RunningPlatform, redis_with_password: RedisServer, tmp_path: Path
) -> None:
    closed_port = free_port()  # nothing listens: the InfluxDB output fails, and says so
    influx = f"influxdb=http://canary:{CANARY_INFLUX_PASSWORD}@127.0.0.1:{closed_port}/k6"
    result = run_kit_command(
        ["run-all", "--profiles", "smoke", "--time-scale", "0.05", "--keep-going",
         "--", "--out", influx],
        canary_env(canary_platform, redis_with_password), tmp_path, timeout_s=240,
    )  # fmt: skip
    run_dirs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert [d.name.split("-")[0] for d in run_dirs] == sorted(SCENARIOS), result.output[-3000:]
    assert "✓ Redis reachable: redis://:***@127.0.0.1" in result.output  # the password was used
    assert canary_platform.counters()["total"] > 50  # the key was used
    assert leaks(result.output) == [], result.output[-3000:]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"report.html", "locust.log", "stats_failures.csv", "stats_exceptions.csv"} <= {
        p.name for p in written
    }
    for path in written:
        assert leaks(path.read_bytes().decode("utf-8", "replace")) == [], path
    # The failing output said so once per run, on the console, without its password.
    problem = f"output problem: InfluxDB at http://127.0.0.1:{closed_port}/k6 is unreachable"
    assert result.output.count(problem) == len(SCENARIOS), result.output[-3000:]


UI_ROUTES = (
    "/", "/stats/requests", "/stats/report", "/stats/requests/csv", "/stats/failures/csv",
    "/exceptions", "/exceptions/csv", "/tasks", "/logs", "/worker-count", "/loadkit/verdict",
    "/loadkit/status", "/loadkit/runs", "/loadkit/form",
)  # fmt: skip


def test_no_secret_in_anything_the_web_ui_serves(
    canary_platform: RunningPlatform, redis_with_password: RedisServer, tmp_path: Path
) -> None:
    port = free_loopback_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "loadkit.cli.main", "ui", "health", "--web-port", str(port),
         "--results", str(tmp_path)],
        env=canary_env(canary_platform, redis_with_password), cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    served: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and ui.poll() is None, "the web UI did not start"
            time.sleep(0.3)
        host = canary_platform.url.replace("http://", f"http://canary-user:{CANARY_URL_PASSWORD}@")
        form = {"user_count": 2, "spawn_rate": 2, "host": host, "shape_class": "Default",
                "user_classes": "HealthUser"}  # fmt: skip
        started = requests.post(base + "/swarm", data=form, headers={"Origin": base}, timeout=5)
        assert started.status_code == 200, started.text
        served["POST /swarm"] = started.text
        time.sleep(3)
        for route in UI_ROUTES:
            response = requests.get(base + route, timeout=10)
            assert response.status_code == 200, (route, response.status_code)
            served[route] = response.text
        served["POST /stop"] = requests.post(base + "/stop", headers={"Origin": base}).text
    finally:
        ui.terminate()
        try:
            console, _ = ui.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
            console, _ = ui.communicate()
    assert "canary-user:***@127.0.0.1" in served["POST /swarm"]  # the host is shown...
    for route, body in served.items():
        assert leaks(body) == [], route  # ... without its password
    assert leaks(console) == [], console[-3000:]
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert leaks(path.read_bytes().decode("utf-8", "replace")) == [], path
