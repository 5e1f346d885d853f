"""Preflight against the real platform: all checks pass; a wrong or missing key, a platform that
is down or unhealthy each give one clear line; the key never appears."""

from __future__ import annotations

import io
import os

import pytest
from conftest import TEST_API_KEY
from fixtures_redis import free_port

from loadkit.cli.preflight import (
    KEY_PROBE_PATH,
    PreflightNeeds,
    check_platform,
    needs_of,
    preflight_lines,
    run_preflight,
)
from loadkit.core.baselines import default_baseline_path, load_baseline
from loadkit.core.plan import RunPlan
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


# -- only what the run needs -------------------------------------------------------------------

NO_STATS = "/api/no-such-stats"  # a platform without a queue stats endpoint (HTTP 404)


def plan(scenario: str, profile: str, baseline: bool = True) -> RunPlan:
    spec = load_baseline(default_baseline_path(scenario), scenario) if baseline else None
    return RunPlan(scenario=scenario, profile=profile, stages=(), baseline=spec)


def test_what_each_run_needs() -> None:
    health = needs_of(plan("health", "smoke"))
    assert (health.api_key, health.queue, health.run) == (False, False, "health smoke")
    assert (
        needs_of(plan("scheduling", "average")).queue,
        needs_of(plan("scheduling", "spike")).queue,
    ) == (True, True)
    # the queue criteria apply to average, stress, spike and soak; not to ad-hoc runs
    assert needs_of(plan("scheduling", "custom")).queue is False
    assert needs_of(plan("scheduling", "average", baseline=False)).queue is False
    assert needs_of(plan("analytics", "average")) == PreflightNeeds(
        True, False, "analytics average"
    )


def test_a_run_that_reads_no_queue_goes_on_without_one(fresh_platform: RunningPlatform) -> None:
    settings = settings_for(fresh_platform.url, queue_stats_path=NO_STATS)
    out = io.StringIO()
    needs = PreflightNeeds(api_key=True, queue=False, run="scheduling custom")
    outcome = check_platform(settings, out=out, needs=needs)
    assert (outcome.passed, outcome.sample_queue) == (True, False), out.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[1].startswith(f"✓ API key accepted (GET {KEY_PROBE_PATH} 404 in ")
    assert lines[2] == (
        f"- queue depth unreadable: GET {NO_STATS}: HTTP 404; no criterion of scheduling custom "
        "reads the queue: the run goes on without sampling it"
    )
    assert len(lines) == 3
    requests_seen = fresh_platform.counters()["requests"]
    assert (
        requests_seen["GET /api/imports/[id]"] == 1 and "GET /api/queue/stats" not in requests_seen
    )


def test_a_run_judged_on_the_queue_or_a_named_source_needs_it(
    fresh_platform: RunningPlatform,
) -> None:
    needed = PreflightNeeds(api_key=True, queue=True, run="scheduling average")
    settings = settings_for(fresh_platform.url, queue_stats_path=NO_STATS)
    out = io.StringIO()
    assert check_platform(settings, out=out, needs=needed).passed is False
    # the key is checked on the path the run will read, which is missing here
    assert f"✗ API key not confirmed: GET {NO_STATS} answered HTTP 404" in out.getvalue()
    named = settings_for(fresh_platform.url, queue_stats_path=NO_STATS, queue_source="http")
    out = io.StringIO()
    optional = PreflightNeeds(api_key=True, queue=False, run="scheduling custom")
    assert check_platform(named, out=out, needs=optional).passed is False
    assert out.getvalue().splitlines()[-1] == f"✗ queue depth unreadable: GET {NO_STATS}: HTTP 404"


def test_health_asks_for_no_key_and_a_wrong_key_fails_the_probe(
    fresh_platform: RunningPlatform,
) -> None:
    out = io.StringIO()
    health = PreflightNeeds(api_key=False, queue=False, run="health smoke")
    assert check_platform(
        settings_for(fresh_platform.url, key=WRONG_KEY), out=out, needs=health
    ).passed
    assert out.getvalue().splitlines()[1] == (
        "- API key not checked: health smoke sends no request that needs it"
    )
    out = io.StringIO()
    custom = PreflightNeeds(api_key=True, queue=False, run="scheduling custom")
    wrong = settings_for(fresh_platform.url, key=WRONG_KEY, queue_source="off")
    assert check_platform(wrong, out=out, needs=custom).passed is False
    assert out.getvalue().splitlines()[1] == f"✗ API key rejected (HTTP 403): GET {KEY_PROBE_PATH}"
