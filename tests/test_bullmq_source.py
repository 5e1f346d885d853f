"""The kit's queue source and preflight against queues written by real BullMQ: the Redis
source's reading (depth = waiting + overdue), the HTTP source's default depth on a
``getJobCounts()`` answer, and preflight naming the version, a pause, and a wrong prefix."""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import pytest
from conftest import TEST_API_KEY, kit_env, run_kit
from fixtures_bullmq import bullmq_queue, bullmq_stats_server
from fixtures_redis import RedisServer, redis_server  # noqa: F401 (fixture)

from loadkit.cli.preflight import run_preflight
from loadkit.endpoints import HEALTH, IMPORT_STATUS_REQUEST
from loadkit.observe.queue_sources import BullQueueSource, HttpQueueSource, source_from_settings
from loadkit.platform.launcher import RunningPlatform
from loadkit.settings import Settings

QUEUE = "calls"
KEY_PROBE = IMPORT_STATUS_REQUEST
_prefixes = itertools.count(1)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["REDIS_URL", "API_URL", "API_KEY", *(n for n in os.environ if "LOADKIT_" in n)]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prefix() -> str:
    return f"src{next(_prefixes)}"


def settings_for(url: str | None, **extra: object) -> Settings:
    return Settings(_env_file=None, api_url=url, api_key=TEST_API_KEY, **extra)  # type: ignore[arg-type]


def test_redis_and_http_sources_agree_on_depth_with_prioritized_jobs(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    plan = {"waiting": 2, "priorities": [1, 2, 3], "delays_ms": [60_000]}
    with bullmq_queue(6, redis_server.url, prefix, QUEUE, **plan) as built:
        built.bullmq_counts()
    with bullmq_stats_server(6, redis_server.url, prefix, QUEUE) as stats_url:
        http = source_from_settings(settings_for(stats_url, queue_source="http"))
        assert isinstance(http, HttpQueueSource)
        http_reading = http.read()
        http.close()
    from_redis = source_from_settings(
        settings_for(None, redis_url=redis_server.url, bull_prefix=prefix)
    )
    assert isinstance(from_redis, BullQueueSource)
    redis_reading = from_redis.read()
    from_redis.close()
    # BullMQ's own `waiting` is the wait list alone; its prioritized jobs wait just the same.
    assert (http_reading["waiting"], http_reading["prioritized"]) == (2, 3)
    assert http_reading["depth"] == redis_reading["depth"] == 5
    assert redis_reading["waiting"] == 5 and redis_reading["delayed"] == 1
    assert list(redis_reading)[:3] == ["depth", "waiting", "overdue"]


def test_overdue_jobs_make_the_depth_and_named_fields_replace_it(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    with bullmq_queue(5, redis_server.url, prefix, QUEUE, waiting=1, overdue=3) as built:
        built.bullmq_counts()
    settings = settings_for(None, redis_url=redis_server.url, bull_prefix=prefix)
    source = source_from_settings(settings)
    assert source is not None
    assert (source.read()["depth"], source.read()["overdue"]) == (4, 3)
    waiting_only = source_from_settings(settings.model_copy(update={"queue_depth_fields": "wait"}))
    assert waiting_only is not None and waiting_only.read()["depth"] == 1
    with pytest.raises(Exception, match="depth field 'backlog' is not one of the BullMQ gauges"):
        source_from_settings(settings.model_copy(update={"queue_depth_fields": "backlog"}))


def test_preflight_names_version_and_pause(
    fresh_platform: RunningPlatform,
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    plan = {"paused": True, "waiting": 2, "overdue": 1}
    with bullmq_queue(6, redis_server.url, prefix, QUEUE, **plan) as built:
        built.bullmq_counts()
    out = io.StringIO()
    settings = settings_for(fresh_platform.url, redis_url=redis_server.url, bull_prefix=prefix)
    assert run_preflight(settings, out=out) is True, out.getvalue()
    line = out.getvalue().splitlines()[-1]
    assert line == (
        f"✓ queue depth readable: Redis {redis_server.url} {prefix}:calls:* (bullmq:6.7.6; "
        "depth 3: waiting 2 + overdue 1; active 0, delayed 0, waiting-children 0, completed 0, "
        "failed 0); PAUSED (meta.paused is set): no worker takes its jobs until it is resumed"
    )


def test_preflight_fails_naming_the_prefix_that_holds_the_queue(
    fresh_platform: RunningPlatform,
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    with bullmq_queue(6, redis_server.url, prefix, "dialer", waiting=1) as built:
        built.bullmq_counts()
    out = io.StringIO()
    wrong = settings_for(
        fresh_platform.url, redis_url=redis_server.url, bull_prefix="myapp", bull_queue="dialer"
    )
    assert run_preflight(wrong, out=out) is False
    assert out.getvalue().splitlines()[-1] == (
        f"✗ queue not found: Redis {redis_server.url} myapp:dialer:*: Redis holds this queue "
        f"under prefix {prefix} (set LOADKIT_BULL_PREFIX={prefix})"
    )
    wrong_name = wrong.model_copy(update={"bull_prefix": prefix, "bull_queue": "dialler"})
    out = io.StringIO()
    assert run_preflight(wrong_name, out=out) is False
    assert (
        out.getvalue()
        .splitlines()[-1]
        .endswith(":dialler:*: other queues under this prefix: dialer (set LOADKIT_BULL_QUEUE)")
    )


def test_run_stops_with_exit_2_before_any_load_on_a_wrong_prefix(
    fresh_platform: RunningPlatform,
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
    tmp_path: Path,
) -> None:
    with bullmq_queue(5, redis_server.url, prefix, "outbound", waiting=1) as built:
        built.bullmq_counts()
    env = kit_env(
        fresh_platform.url,
        REDIS_URL=redis_server.url,
        LOADKIT_BULL_PREFIX="myapp",
        LOADKIT_BULL_QUEUE="outbound",
    )
    # scheduling average is judged on the queue (queue_depth, queue_stalled_jobs): it needs it
    result = run_kit(["scheduling", "--profile", "average"], env, tmp_path)
    assert result.exit_code == 2, result.output
    assert (
        f"✗ queue not found: Redis {redis_server.url} myapp:outbound:*: Redis holds this queue "
        f"under prefix {prefix} (set LOADKIT_BULL_PREFIX={prefix})"
    ) in result.output
    assert "preflight failed: nothing was sent" in result.output  # only preflight asked:
    assert fresh_platform.counters()["requests"] == {f"GET {HEALTH}": 1, KEY_PROBE: 1}
    # health is judged on no queue figure: the same mistake is one warning, and the run goes on
    # without sampling (no series file, no failed samples all through the run)
    fresh_platform.reset_counters()
    result = run_kit(["health", "-u", "1", "-t", "1s"], env, tmp_path / "health")
    assert result.exit_code == 0, result.output
    warning = (
        f"- queue not found: Redis {redis_server.url} myapp:outbound:*: Redis holds this queue "
        f"under prefix {prefix} (set LOADKIT_BULL_PREFIX={prefix}); no criterion of health "
        "custom reads the queue: the run goes on without sampling it"
    )
    assert result.output.count(warning) == 1, result.output
    assert result.run_dir is not None and not (result.run_dir / "queue_depth.jsonl").exists()
    assert "queue depth sample failed" not in result.output
