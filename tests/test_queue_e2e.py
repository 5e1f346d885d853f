"""`loadkit run scheduling` against a platform built on the real stack: Node's http server
adding each scheduled call to a real BullMQ 6 queue in Redis
(``fixtures/bullmq/platform_server.mjs``).

Why that platform and not the kit's reference platform in its Redis mode: the reference platform
promotes due jobs with its own timer, so its queue never stalls the way BullMQ's does. BullMQ
moves a due job out of ``delayed`` only when a worker asks for work; with no worker (a stalled
dialer) the calls fall due and stay there. Here BullMQ itself writes every key the kit reads.

* no worker: the shipped scheduling baseline aborts the run within seconds, the reason naming
  the overdue jobs;
* a worker slower than the calls fall due: the run passes, the backlog drains after the load,
  and the drain time and the processing rate are in the verdict, the job count equal to BullMQ's.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import TEST_API_KEY, kit_env, run_kit
from fixtures_bullmq import bullmq_platform
from fixtures_redis import RedisServer, redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

QUEUE = "calls"
#: average is 5 min at 10 users; 0.04 makes it 12 s (50 calls/s, the scenario's rate, all along;
#: shorter runs start to miss the 47.5/s floor by the first second's ramp).
SHORT_AVERAGE = ["--profile", "average", "--time-scale", "0.04"]
_prefixes = itertools.count(1)


def run_against(platform_url: str, redis_url: str, prefix: str, tmp_path: Path, **env: str):
    settings = kit_env(
        platform_url, REDIS_URL=redis_url, LOADKIT_BULL_PREFIX=prefix, LOADKIT_BULL_QUEUE=QUEUE,
        **env,
    )  # fmt: skip
    return run_kit(["scheduling", *SHORT_AVERAGE], settings, tmp_path, timeout_s=120)


def posted_calls(output: str) -> int:
    """Calls the platform accepted, from the arrival executor's last line."""
    marker = "iterations started"
    line = next(line for line in output.splitlines() if marker in line)
    return int(line.split(":")[-1].split(marker)[0].strip())


def test_a_stalled_dialer_aborts_the_scheduling_run_naming_the_overdue_jobs(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = f"stall{next(_prefixes)}"
    with bullmq_platform(6, redis_server.url, prefix, QUEUE, TEST_API_KEY) as platform:
        result = run_against(platform.url, redis_server.url, prefix, tmp_path)
        bullmq = platform.bullmq_counts()["counts"]
    assert result.exit_code == 1, result.output
    verdict = result.verdict()
    assert verdict["state"] == "aborted"
    reason = verdict["state_reason"]
    assert reason.startswith("criteria[5] counter queue_stalled_jobs count < 1 jobs failed for")
    assert "stalled consumer: " in reason and " overdue, " in reason, reason
    # within seconds: the 5 s stall window after the first reading, not the 9 s profile's end
    assert verdict["window"]["end_s"] < 8.0, verdict["window"]
    queue = verdict["queue"]
    assert queue["version"] == platform.version == "bullmq:6.7.6"
    assert queue["paused"] is False
    assert (queue["jobs_completed"], queue["processing_rate_per_s"]) == (0, 0)
    assert queue["overdue_final"] >= 1
    assert queue["drain"]["skipped"] == "the run was aborted"
    # Nothing was processed: every call the platform accepted is still in BullMQ's queue.
    assert bullmq["completed"] == bullmq["active"] == 0
    assert bullmq["delayed"] + bullmq["waiting"] == posted_calls(result.output)
    assert bullmq["delayed"] >= queue["overdue_final"]
    assert "ABORTED: criteria[5] counter queue_stalled_jobs" in result.output


def test_a_slow_dialer_passes_and_its_backlog_drains_after_the_load(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = f"drain{next(_prefixes)}"
    # One agent, 25 ms a call: ~35 calls/s against 50 falling due each second (delays cut to a
    # tenth: all due within 3 s), so a backlog builds while jobs keep finishing: no stall.
    slow = {"worker": {"concurrency": 1, "work_ms": 25}, "delay_scale": 0.1}
    with bullmq_platform(6, redis_server.url, prefix, QUEUE, TEST_API_KEY, **slow) as platform:
        result = run_against(platform.url, redis_server.url, prefix, tmp_path)
        bullmq = platform.bullmq_counts()["counts"]
    assert result.exit_code == 0, result.output
    verdict = result.verdict()
    assert verdict["passed"] and verdict["state"] == "complete"
    stalled = next(c for c in verdict["criteria"] if c["counter"] == "queue_stalled_jobs")
    assert (stalled["status"], stalled["measured"]) == ("passed", 0)
    queue = verdict["queue"]
    drain = queue["drain"]
    assert drain["backlog_at_stop"] > 0, queue
    assert drain["drained"] and 0 < drain["drained_after_s"] <= drain["max_s"] == 30, drain
    assert drain["remaining"] == 0
    # The job count is BullMQ's: every call was taken by the end of the drain (its last calls,
    # due within 3 s of the stop, came due while it was followed), none failed. The drain ends
    # when nothing is due; the one worker may still hold a job then (read in the same instant,
    # by one script), which is reported, not waited for, and completes after.
    calls = posted_calls(result.output)
    assert drain["still_running"] in (0, 1), drain
    finished = queue["jobs_completed"] + drain["still_running"]
    assert finished == bullmq["completed"] == calls, (queue, bullmq)
    assert queue["jobs_failed"] == 0
    assert 10 < queue["processing_rate_per_s"] < 50
    assert "drained after" in result.output and queue["depth_meaning"] in result.output
