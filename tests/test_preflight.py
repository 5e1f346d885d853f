"""Preflight against the real platform: all checks pass; a wrong or missing key, a platform that
is down or unhealthy each give one clear line; the key never appears."""

from __future__ import annotations

import io
import os

import pytest
from conftest import TEST_API_KEY
from fixtures_redis import free_port

from loadkit.cli.preflight import preflight_lines, run_preflight
from loadkit.platform.launcher import RunningPlatform, start_platform
from loadkit.settings import Settings

WRONG_KEY = "lk-wrong-key-5d1e8a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["REDIS_URL", "API_URL", "API_KEY", *(n for n in os.environ if "LOADKIT_" in n)]:
        monkeypatch.delenv(name, raising=False)


def settings_for(url: str | None, key: str | None = TEST_API_KEY, **extra: object) -> Settings:
    return Settings(_env_file=None, api_url=url, api_key=key, **extra)  # type: ignore[arg-type]


def preflight(settings: Settings) -> tuple[bool, list[str], str]:
    out = io.StringIO()
    passed = run_preflight(settings, out=out)
    return passed, out.getvalue().splitlines(), out.getvalue()


def test_all_checks_pass_against_the_platform(fresh_platform: RunningPlatform) -> None:
    passed, lines, text = preflight(settings_for(fresh_platform.url))
    assert passed, text
    assert len(lines) == 3
    assert lines[0].startswith(f"✓ API reachable: {fresh_platform.url} (GET /health 200 in ")
    assert lines[1].startswith("✓ API key accepted (GET /api/queue/stats 200 in ")
    assert lines[2].startswith("✓ queue depth readable: GET /api/queue/stats (depth 0; waiting 0")
    assert TEST_API_KEY not in text


def test_wrong_key_is_rejected_without_showing_it(fresh_platform: RunningPlatform) -> None:
    passed, lines, text = preflight(settings_for(fresh_platform.url, key=WRONG_KEY))
    assert not passed
    assert lines[1] == "✗ API key rejected (HTTP 403): GET /api/queue/stats"
    assert lines[2] == "- queue depth not checked: the API did not accept the key"
    assert WRONG_KEY not in text and TEST_API_KEY not in text


def test_missing_key(fresh_platform: RunningPlatform) -> None:
    passed, lines, _ = preflight(settings_for(fresh_platform.url, key=None))
    assert not passed
    assert lines[1] == "✗ API key missing: set API_KEY"


def test_nothing_listening_is_api_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    passed, lines, text = preflight(settings_for(url))
    assert not passed
    assert lines[0] == f"✗ API unreachable: {url} (GET /health: Connection refused)"
    assert lines[1] == "- API key not checked: the API did not answer"
    assert TEST_API_KEY not in text


def test_unhealthy_platform() -> None:
    with start_platform(TEST_API_KEY, extra_args=["--fail", "GET /health=1:503"]) as platform:
        lines = [str(line) for line in preflight_lines(settings_for(platform.url))]
    assert lines[0].startswith(f"✗ API unhealthy: {platform.url} (GET /health 503 in ")
    assert lines[1] == "- API key not checked: the API did not answer"


def test_no_api_url() -> None:
    passed, lines, _ = preflight(settings_for(None))
    assert not passed
    assert lines[0] == "✗ API_URL is not set: no platform to check"


def test_api_url_override_and_password_masked(fresh_platform: RunningPlatform) -> None:
    host = fresh_platform.url.removeprefix("http://")
    settings = settings_for("http://127.0.0.1:9", queue_source="off")
    lines = [str(line) for line in preflight_lines(settings, api_url=f"http://u:pw-9f3@{host}")]
    assert lines[0].startswith(f"✓ API reachable: http://u:***@{host} (")
    assert len(lines) == 2  # sampling off: no queue check
    assert all("pw-9f3" not in line for line in lines)
