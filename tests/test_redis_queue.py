"""The reference platform with its queue in a real Redis (Bull's key layout), read back by the
kit's Redis source, compared with ``GET /api/queue/stats``; and Redis down, said in one line."""

from __future__ import annotations

import io
import itertools
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
import redis
import requests
from conftest import TEST_API_KEY, schedule_calls
from fixtures_redis import RedisServer, free_port, redis_server  # noqa: F401 (fixture)

from loadkit.cli.preflight import run_preflight
from loadkit.endpoints import CALL_RETRY
from loadkit.observe.queue_sources import (
    BullQueueSource,
    HttpQueueSource,
    QueueSourceError,
    RedisQueueSource,
    bull_keys,
    source_from_settings,
)
from loadkit.platform.launcher import PlatformStartError, RunningPlatform, start_platform
from loadkit.platform.redis_queue import DELAY_SCORE_FACTOR
from loadkit.settings import Settings

STATES = ("waiting", "active", "delayed", "completed", "failed")
_prefixes = itertools.count(1)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["REDIS_URL", "API_URL", "API_KEY", *(n for n in os.environ if "LOADKIT_" in n)]:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own per test, so tests sharing the server never collide."""
    return f"lktest{next(_prefixes)}"


def settings_for(url: str | None, **extra: object) -> Settings:
    return Settings(_env_file=None, api_url=url, api_key=TEST_API_KEY, **extra)  # type: ignore[arg-type]


def redis_platform(
    server: RedisServer, prefix: str, *args: str
) -> AbstractContextManager[RunningPlatform]:
    return start_platform(
        TEST_API_KEY,
        extra_args=["--redis-url", server.url, "--redis-prefix", prefix, *args],
    )


def schedule(platform: RunningPlatform, count: int, due_in_s: float = 0.0) -> list[str]:
    return schedule_calls(platform, count, due_in_s, campaign_id="redis-test")


def retry(platform: RunningPlatform, call_id: str, delay_s: float) -> None:
    response = requests.post(
        platform.url + CALL_RETRY.format(call_id=call_id),
        json={"delay_s": delay_s},
        headers={"X-API-Key": TEST_API_KEY},
        timeout=5,
    )
    assert response.status_code == 202, response.text


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline_s, f"timed out waiting for {what}"
        time.sleep(0.05)


def key_lengths(client: redis.Redis, prefix: str) -> dict[str, tuple[str, int]]:
    """Each Bull key's type and length, read with plain Redis commands."""
    out = {}
    for name in ("wait", "active", "delayed", "completed", "failed"):
        key = f"{prefix}:calls:{name}"
        kind = client.type(key).decode()
        length = {"list": client.llen, "zset": client.zcard, "none": lambda _k: 0}[kind](key)
        out[name] = (kind, length)
    return out


def test_bull_keys_hold_the_queue_and_every_view_agrees(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    client = redis_server.client()
    args = ["--agents", "1", "--call-duration-ms", "3000", "--call-jitter-ms", "0"]
    with redis_platform(redis_server, prefix, *args) as platform:
        now_ids = schedule(platform, 6)
        later_ids = schedule(platform, 4, due_in_s=60)
        wait_for(lambda: client.llen(f"{prefix}:calls:active") == 1, 2, "an agent to take a call")
        # One agent, 3 s calls: nothing moves for the next couple of seconds.
        assert key_lengths(client, prefix) == {
            "wait": ("list", 5),
            "active": ("list", 1),
            "delayed": ("zset", 4),
            "completed": ("none", 0),
            "failed": ("none", 0),
        }
        due_ms = (time.time() + 60) * 1000
        for job_id, score in client.zrange(f"{prefix}:calls:delayed", 0, -1, withscores=True):
            assert int(score) // DELAY_SCORE_FACTOR == pytest.approx(due_ms, abs=3000)
            assert int(score) % DELAY_SCORE_FACTOR == int(job_id) & 0xFFF
        job = client.hgetall(f"{prefix}:calls:1")
        assert job[b"name"] == b"call" and b"processedOn" in job
        assert now_ids[0].encode() in job[b"data"]

        # Retrying a waiting call and a delayed one replaces their jobs: lengths stay exact.
        retry(platform, now_ids[-1], delay_s=0)
        retry(platform, later_ids[0], delay_s=120)
        assert key_lengths(client, prefix)["wait"] == ("list", 5)
        assert key_lengths(client, prefix)["delayed"] == ("zset", 4)

        stats = platform.queue_stats()
        http = source_from_settings(settings_for(platform.url))
        from_redis = source_from_settings(
            settings_for(platform.url, redis_url=redis_server.url, bull_prefix=prefix)
        )
        assert isinstance(http, HttpQueueSource) and isinstance(from_redis, BullQueueSource)
        http_reading, redis_reading = http.read(), from_redis.read()
        http.close()
        from_redis.close()
    expected = {"waiting": 5, "active": 1, "delayed": 4, "completed": 0, "failed": 0}
    assert {state: stats[state] for state in STATES} == expected
    assert {state: redis_reading[state] for state in STATES} == expected
    assert {state: http_reading[state] for state in STATES} == expected
    assert redis_reading["depth"] == http_reading["depth"] == 5
    assert redis_reading["overdue"] == 0  # the platform's timer moves due jobs to wait


def test_calls_flow_through_delayed_wait_active_to_finished_sets(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    client = redis_server.client()
    args = ["--agents", "4", "--call-duration-ms", "50", "--call-jitter-ms", "0"]
    args += ["--outcome-weights", "completed=1,failed=1", "--seed", "7"]
    with redis_platform(redis_server, prefix, *args) as platform:
        schedule(platform, 3, due_in_s=0.8)
        assert key_lengths(client, prefix)["delayed"] == ("zset", 3)
        schedule(platform, 20)

        def drained() -> bool:
            stats = platform.queue_stats()
            return stats["completed"] + stats["failed"] == 23

        wait_for(drained, 4, "all 23 calls to be dialled")
        lengths = key_lengths(client, prefix)
        stats = platform.queue_stats()
    assert lengths["completed"][0] == lengths["failed"][0] == "zset"
    assert lengths["completed"][1] + lengths["failed"][1] == 23
    assert lengths["completed"][1] > 0 and lengths["failed"][1] > 0
    assert (stats["completed"], stats["failed"]) == (lengths["completed"][1], lengths["failed"][1])
    assert stats["waiting"] == stats["active"] == stats["delayed"] == 0


def test_namespace_is_claimed_reset_on_request_and_cleaned_up(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    client = redis_server.client()
    client.lpush(f"{prefix}:calls:wait", "left-behind")
    client.set("someone-else:key", "keep me")
    refused = pytest.raises(PlatformStartError, match="already holds queue keys")
    with refused as caught, redis_platform(redis_server, prefix):
        pass
    assert "--redis-reset" in str(caught.value)
    with redis_platform(redis_server, prefix, "--redis-reset") as platform:
        assert platform.queue_stats()["waiting"] == 0
        schedule(platform, 2, due_in_s=60)
        assert client.zcard(f"{prefix}:calls:delayed") == 2
    assert list(client.scan_iter(f"{prefix}:*")) == []  # its keys go when it stops
    assert client.get("someone-else:key") == b"keep me"  # no other key is touched


def test_server_stays_responsive_while_agents_wait_on_redis(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    # An idle queue: the dispatcher sits in a blocking BRPOPLPUSH. Unless the socket module is
    # gevent's, that call would hold the whole server for its 1 s timeout, again and again.
    with redis_platform(redis_server, prefix) as platform, requests.Session() as session:
        slowest_s = 0.0
        for _ in range(15):
            started_s = time.perf_counter()
            assert session.get(platform.url + "/health", timeout=5).status_code == 200
            slowest_s = max(slowest_s, time.perf_counter() - started_s)
            time.sleep(0.05)
    assert slowest_s < 0.3


def test_platform_with_redis_down_exits_with_one_line() -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    refused = pytest.raises(PlatformStartError)
    with refused as caught, start_platform(TEST_API_KEY, extra_args=["--redis-url", url]):
        pass
    message = str(caught.value)
    assert "Redis unreachable at redis://:***@127.0.0.1:" in message
    assert "Connection refused" in message
    assert "hunter2secret" not in message
    assert "Traceback" not in message


def test_redis_source_counts_every_bull_and_bullmq_key_type(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    client = redis_server.client()
    ns = f"{prefix}:calls:"
    client.rpush(ns + "wait", "1", "2")
    client.rpush(ns + "paused", "3")
    client.zadd(ns + "prioritized", {"4": 1, "5": 2})  # BullMQ >= 4
    client.rpush(ns + "active", "6")
    client.zadd(ns + "delayed", {"7": 1})
    client.sadd(ns + "completed", "8", "9")  # Bull 2 kept finished jobs in plain sets
    client.xadd(ns + "failed", {"job": "10"})  # any countable type is counted
    source = RedisQueueSource(
        redis_server.url, bull_keys(prefix, "calls"), depth_fields=["waiting", "delayed"]
    )
    reading = source.read()
    assert reading == {
        "depth": 6,
        "waiting": 5,
        "active": 1,
        "delayed": 1,
        "completed": 2,
        "failed": 1,
    }
    client.set(ns + "active", "not a queue")
    with pytest.raises(QueueSourceError, match="is a string, not a list"):
        source.read()
    source.close()


def test_custom_queue_keys_without_bull(
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    client = redis_server.client()
    client.rpush(f"{prefix}:q:pending", "a", "b", "c")
    client.rpush(f"{prefix}:q:retry", "d")
    settings = settings_for(
        None,
        redis_url=redis_server.url,
        queue_keys=f"waiting={prefix}:q:pending+{prefix}:q:retry,active={prefix}:q:active",
    )
    source = source_from_settings(settings)
    assert source is not None
    assert source.read() == {"depth": 4, "waiting": 4, "active": 0}
    source.close()


def test_preflight_says_redis_is_down_in_one_line(fresh_platform: RunningPlatform) -> None:
    port = free_port()
    settings = settings_for(
        fresh_platform.url, redis_url=f"redis://:hunter2secret@127.0.0.1:{port}/0"
    )
    out = io.StringIO()
    assert run_preflight(settings, out=out) is False
    lines = out.getvalue().splitlines()
    redis_lines = [line for line in lines if "Redis" in line]
    assert redis_lines[0] == (
        f"✗ Redis unreachable at redis://:***@127.0.0.1:{port}/0: Connection refused"
    )
    assert lines[-1].startswith("- queue depth not checked")
    assert lines[0].startswith("✓ API reachable")
    assert "hunter2secret" not in out.getvalue()


def test_preflight_passes_with_redis(
    fresh_platform: RunningPlatform,
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    settings = settings_for(fresh_platform.url, redis_url=redis_server.url, bull_prefix=prefix)
    out = io.StringIO()
    assert run_preflight(settings, out=out) is True, out.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[2].startswith(f"✓ Redis reachable: {redis_server.url} (PING in ")
    assert lines[3].startswith(f"✓ queue depth readable: Redis {redis_server.url} {prefix}:calls:*")
    assert "none of its keys exist yet" in lines[3]
