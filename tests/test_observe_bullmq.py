"""The BullMQ reader against keys written by real BullMQ 4, 5 and 6: each gauge equals BullMQ's
own ``getJobCounts()``/``getDelayedCount()`` of the same static state (no worker moves a job
between the two readings), overdue jobs of a stalled consumer, priorities, pauses and flows."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import redis
from fixtures_bullmq import MAJORS, bullmq_queue
from fixtures_redis import RedisServer, redis_server  # noqa: F401 (fixture)

from loadkit.observe.bullmq import (
    QueueAddress,
    QueueLayoutError,
    QueueReader,
    QueueState,
    discover,
)
from loadkit.observe.queue_metrics import Sample, drain, find_stall, run_jobs
from loadkit.observe.queue_sources import BullQueueSource

QUEUE = "calls"
_prefixes = itertools.count(1)


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own per test, so tests sharing the server never collide."""
    return f"bmq{next(_prefixes)}"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    connection = redis_server.client()
    yield connection
    connection.close()


def read(client: redis.Redis, prefix: str, now_ms: int | None = None) -> QueueState:
    return QueueReader(client, QueueAddress(prefix, QUEUE)).read(now_ms=now_ms)


@pytest.mark.parametrize("major", MAJORS)
def test_every_gauge_equals_bullmq_own_counts(
    major: int,
    redis_server: RedisServer,  # noqa: F811
    client: redis.Redis,
    prefix: str,
) -> None:
    plan = {
        "completed": 2,
        "failed": 1,
        "active": 1,
        "waiting": 3,
        "priorities": [1, 5, 5],
        "delays_ms": [60_000, 60_000],
        "overdue": 4,
        "flow_children": 2,
    }
    with bullmq_queue(major, redis_server.url, prefix, QUEUE, **plan) as built:
        state = read(client, prefix)
        bullmq = built.bullmq_counts(at_ms=state.now_ms)
    counts = bullmq["counts"]
    assert state.wait == counts["waiting"] == 3 + 2  # the plain jobs and the flow's children
    assert state.prioritized == counts["prioritized"] == 3
    assert state.paused == counts.get("paused", 0) == 0  # BullMQ 6 has no paused list
    assert state.waiting == counts["waiting"] + counts["prioritized"] == 8
    assert state.active == counts["active"] == 1
    assert state.completed == counts["completed"] == 2
    assert state.failed == counts["failed"] == 1
    assert state.waiting_children == counts["waiting-children"] == 1
    assert state.overdue + state.delayed == counts["delayed"] == bullmq["delayed"] == 6
    assert (state.overdue, state.delayed) == (4, 2)
    if major >= 6:  # BullMQ 6 counts the overdue jobs itself
        assert bullmq["delayed_before_at"] == state.overdue
    assert state.depth == 8 + 4
    assert (
        state.meta.version
        == built.ready["version"]
        == {4: "bullmq:4.18.3", 5: "bullmq:5.81.5", 6: "bullmq:6.7.6"}[major]
    )
    assert state.meta.paused is bullmq["paused"] is False
    assert state.completed_total is None and "completed_total" not in state.gauges()  # no metrics
    # The due time each delayed job got from BullMQ (timestamp + delay) decodes from its score:
    # a job due at t is overdue from t + 1 ms on.
    for due_ms in built.ready["due_ms"]:
        earlier = sum(1 for other in built.ready["due_ms"] if other < due_ms)
        assert read(client, prefix, now_ms=due_ms).overdue == earlier
        assert read(client, prefix, now_ms=due_ms + 1).overdue > earlier


@pytest.mark.parametrize("major", MAJORS)
def test_bullmq_metrics_count_finished_jobs_that_were_removed(
    major: int,
    redis_server: RedisServer,  # noqa: F811
    client: redis.Redis,
    prefix: str,
) -> None:
    # removeOnComplete empties `completed`: only the metrics counter still shows the work done.
    plan = {"completed": 3, "failed": 2, "metrics": True, "remove_on_finish": True}
    with bullmq_queue(major, redis_server.url, prefix, QUEUE, **plan) as built:
        state = read(client, prefix)
        bullmq = built.bullmq_counts(at_ms=state.now_ms)
    assert state.completed == bullmq["counts"]["completed"] == 0
    assert state.failed == bullmq["counts"]["failed"] == 0
    assert state.completed_total == bullmq["metrics_completed"] == 3
    assert state.failed_total == bullmq["metrics_failed"] == 2
    assert (state.gauges()["completed_total"], state.gauges()["failed_total"]) == (3, 2)


@pytest.mark.parametrize("major", MAJORS)
def test_a_paused_queue_is_reported_and_its_jobs_still_wait(
    major: int,
    redis_server: RedisServer,  # noqa: F811
    client: redis.Redis,
    prefix: str,
) -> None:
    plan = {"active": 1, "paused": True, "waiting": 2, "priorities": [3], "overdue": 1}
    with bullmq_queue(major, redis_server.url, prefix, QUEUE, **plan) as built:
        state = read(client, prefix)
        bullmq = built.bullmq_counts(at_ms=state.now_ms)
    counts = bullmq["counts"]
    assert state.meta.paused is bullmq["paused"] is True
    assert state.gauges()["queue_paused"] == 1
    # BullMQ 4/5 move waiting jobs to the paused list; 6 leaves them in wait.
    assert (state.wait, state.paused) == ((0, 2) if major < 6 else (2, 0))
    assert (state.wait, state.paused) == (counts["waiting"], counts.get("paused", 0))
    assert state.waiting == bullmq["waiting"] + counts["prioritized"] == 3
    assert state.active == counts["active"] == 1
    assert state.overdue == counts["delayed"] == 1
    assert state.depth == 4


@pytest.mark.parametrize("major", MAJORS)
def test_due_jobs_with_no_worker_are_overdue_not_idle(
    major: int,
    redis_server: RedisServer,  # noqa: F811
    client: redis.Redis,
    prefix: str,
) -> None:
    # The stalled dialer: calls scheduled, due, and no worker to promote them out of `delayed`.
    with bullmq_queue(major, redis_server.url, prefix, QUEUE, overdue=5) as built:
        raw_wait = client.lrange(f"{prefix}:{QUEUE}:wait", 0, -1)
        state = read(client, prefix)
        bullmq = built.bullmq_counts(at_ms=state.now_ms)
    # BullMQ 4 wakes its workers with a marker job in `wait`; it is not a job.
    assert raw_wait == ([b"0:" + str(min(built.ready["due_ms"])).encode()] if major == 4 else [])
    assert state.wait == bullmq["counts"]["waiting"] == 0
    assert state.overdue == bullmq["counts"]["delayed"] == 5
    assert state.delayed == 0
    assert state.depth == 5
    if major >= 6:
        assert bullmq["delayed_before_at"] == 5


def test_a_queue_that_does_not_exist_reads_zero_and_discovery_names_the_real_one(
    redis_server: RedisServer,  # noqa: F811
    client: redis.Redis,
    prefix: str,
) -> None:
    with bullmq_queue(6, redis_server.url, prefix, QUEUE, waiting=1) as built:
        built.bullmq_counts()
    client.hset(f"{prefix}:sms:meta", "version", "bullmq:6.7.6")
    wrong = read(client, "bull")
    assert wrong.keys_found == 0 and wrong.depth == 0 and wrong.meta.version is None
    assert read(client, prefix).keys_found >= 2  # meta, id, wait...
    found = discover(client, QueueAddress("bull", QUEUE))
    assert prefix in found.same_queue and found.complete
    assert discover(client, QueueAddress(prefix, "dialer")).same_prefix == ("calls", "sms")


def test_discovery_stops_at_its_bound(client: redis.Redis, prefix: str) -> None:
    client.mset({f"{prefix}:filler:{i}": 1 for i in range(3000)})
    found = discover(client, QueueAddress("bull", QUEUE), max_calls=1)
    assert not found.complete


def test_bull3_layout_and_a_foreign_key_type(client: redis.Redis, prefix: str) -> None:
    # Bull 3 (the `bull` package): no meta hash, a `meta-paused` flag, the same delayed scores.
    ns = f"{prefix}:{QUEUE}:"
    now_ms = 1_700_000_000_000
    client.rpush(ns + "paused", "1", "2")
    client.zadd(ns + "delayed", {"3": (now_ms - 5) * 0x1000 + 3, "4": (now_ms + 5) * 0x1000 + 4})
    client.set(ns + "meta-paused", 1)
    state = read(client, prefix, now_ms=now_ms)
    assert (state.waiting, state.overdue, state.delayed, state.depth) == (2, 1, 1, 3)
    assert state.meta.paused and state.meta.version is None
    client.set(ns + "active", "not a list")
    with pytest.raises(QueueLayoutError, match=r"'bmq\d+:calls:active' is a string, not a list"):
        read(client, prefix)


def sample_for(source: BullQueueSource, duration_s: float, interval_s: float) -> list[Sample]:
    """Read ``source`` every ``interval_s`` for ``duration_s``: the series a sampler keeps."""
    started_s = time.monotonic()
    samples: list[Sample] = []
    while (t_s := time.monotonic() - started_s) <= duration_s:
        samples.append((round(t_s, 3), source.read()))
        time.sleep(interval_s)
    return samples


@pytest.mark.parametrize("major", [4, 6])
@pytest.mark.parametrize("consumer", [False, True], ids=["stalled", "healthy"])
def test_a_stalled_consumer_is_found_and_a_healthy_one_is_not(
    major: int,
    consumer: bool,
    redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    # 15 calls falling due over 0.1-0.8 s; a worker consuming them, or none at all.
    plan: dict[str, object] = {"delays_ms": [100 + 50 * i for i in range(15)]}
    if consumer:
        plan["consumer"] = {"concurrency": 5, "work_ms": 20}
    source = BullQueueSource(redis_server.url, QueueAddress(prefix, QUEUE))
    with bullmq_queue(major, redis_server.url, prefix, QUEUE, **plan) as built:
        samples = sample_for(source, duration_s=1.3, interval_s=0.1)
        built.bullmq_counts()
    source.close()
    stall = find_stall(samples, window_s=0.4)
    jobs = run_jobs(samples)
    after_last_due = drain(samples, load_stopped_s=0.9)
    assert after_last_due is not None
    if consumer:
        assert stall is None, stall
        assert jobs.completed == 15 and jobs.failed == 0
        assert after_last_due.drained and after_last_due.remaining == 0
    else:
        assert stall is not None
        assert stall.at_s <= 0.4 + 0.9  # seen within a window of the jobs falling due
        assert "with no job finished, 0 active" in stall.describe()
        assert jobs.completed == 0
        assert not after_last_due.drained and after_last_due.remaining == 15
        assert samples[-1][1]["overdue"] == 15 and samples[-1][1]["waiting"] == 0
