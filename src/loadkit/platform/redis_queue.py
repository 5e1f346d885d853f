"""The dialer's queue kept in Redis, in the key layout Bull and BullMQ use.

The real platform queues its dial jobs with Bull on Redis, and the kit can sample queue depth
straight from those keys. With ``--redis-url`` the reference platform keeps its queue the same
way, so that sampler is tested against a real Redis and reads exactly what
``GET /api/queue/stats`` reports (that endpoint counts the keys too).

Keys, under ``<prefix>:<queue>:`` (``bull:calls:`` by default); the types are Bull's (Bull 3 and
BullMQ agree on them):

=============  ======  ==========================================================================
``wait``       list    jobs due and waiting for an agent: ``LPUSH`` in, ``RPOPLPUSH`` out (FIFO)
``active``     list    jobs an agent is dialling
``delayed``    zset    jobs due later; score ``due_ms * 4096 + (job id & 0xfff)``, as Bull scores
``completed``  zset    finished dials (outcomes completed, no_answer, busy); score = end, in ms
``failed``     zset    dials that ended ``failed``; score = end, in ms
``id``         string  the last job id given out (Bull's counter)
``<job id>``   hash    the job: ``name``, ``data`` (JSON: call_id, phone_number, campaign_id),
                       ``opts``, ``timestamp``, ``delay``, ``priority``, ``attemptsMade``,
                       ``processedOn``, ``finishedOn``, ``returnvalue`` / ``failedReason``
=============  ======  ==========================================================================

Every (re)schedule of a call is a new job; a schedule that replaces one still delayed or waiting
removes that job (as Bull's ``job.remove()`` would), so lengths are exact. Calls themselves, and
the analytics counters, stay in the process (``store``); this process is the only writer of its
namespace. The platform refuses to start on a namespace that already holds queue keys unless
told to reset it, deletes its keys when it stops, and never touches other keys (no FLUSHDB).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import time
from typing import Any, Final

import gevent
import redis
from gevent.event import Event
from gevent.pool import Pool
from redis.backoff import NoBackoff
from redis.retry import Retry

from loadkit.core.reasons import short_reason
from loadkit.platform import store as st
from loadkit.platform.call_queue import DialerSettings, RateWindow, SimulatedDial
from loadkit.platform.queue_backend import QueueBackendError, RedisQueueSettings
from loadkit.platform.wsgi_io import HttpError

logger = logging.getLogger("loadkit.platform.redis_queue")

#: Bull packs a sequence number into the low 12 bits of a delayed job's score.
DELAY_SCORE_FACTOR: Final = 0x1000
JOB_NAME: Final = "call"
SOCKET_TIMEOUT_S: Final = 5.0
CONNECT_TIMEOUT_S: Final = 2.0
#: How long the dispatcher blocks on an empty ``wait`` list before looking again.
BLOCK_TIMEOUT_S: Final = 1
#: The timer looks at ``delayed`` at least this often, even when nothing woke it.
MAX_TIMER_SLEEP_S: Final = 1.0
PROMOTE_BATCH: Final = 1000
RETRY_AFTER_ERROR_S: Final = 1.0
WARN_EVERY_S: Final = 10.0
SCAN_COUNT: Final = 1000
#: Keys whose presence shows that a Bull queue (or an earlier run) uses the namespace.
QUEUE_KEYS: Final = ("wait", "active", "delayed", "completed", "failed", "paused", "id", "meta")

# Move due jobs from ``delayed`` to ``wait`` atomically (Bull's updateDelaySet does the same),
# and return them with the score of the next delayed job, so the timer knows how long to sleep.
_PROMOTE_LUA: Final = """
local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
for i = 1, #due do
  redis.call("ZREM", KEYS[1], due[i])
  redis.call("LPUSH", KEYS[2], due[i])
end
local head = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
return {due, head[2] or false}
"""


class RedisQueue:
    """The dialer with its queue state in Redis; same behaviour as ``MemoryQueue``."""

    def __init__(
        self,
        store: st.CallStore,
        dialer: DialerSettings,
        settings: RedisQueueSettings,
        rng: random.Random,
    ) -> None:
        self._store = store
        self._dialer = dialer
        self._settings = settings
        self._dial = SimulatedDial(dialer, rng)
        ns = settings.namespace
        self._ns = ns
        self._wait, self._active, self._delayed = ns + "wait", ns + "active", ns + "delayed"
        self._completed, self._failed, self._id_key = ns + "completed", ns + "failed", ns + "id"
        self._ids = itertools.count(1)
        self._job_call: dict[str, str] = {}
        """Job id → call id, for every job still delayed, waiting or active."""
        self._call_job: dict[str, str] = {}
        """Call id → its current job (absent once the dial ended)."""
        self._redis: redis.Redis | None = None
        self._blocking: redis.Redis | None = None
        self._promote: Any = None
        self._wake = Event()
        self._timer_wakes_at_s = math.inf
        """When the sleeping timer looks again (epoch s); infinity while it is busy."""
        self._agents = Pool(dialer.agents)
        self._greenlets: list[gevent.Greenlet] = []
        self._finished = RateWindow()
        self._last_warning_s = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        ensure_cooperative_sockets()
        self._redis = _client(self._settings.url, max_connections=None)
        self._blocking = _client(self._settings.url, max_connections=1)
        try:
            self._redis.ping()
            self._claim_namespace()
        except redis.RedisError as exc:
            self._close_clients()
            raise QueueBackendError(
                f"Redis unreachable at {self._settings.display_url}: {short_reason(exc)}"
            ) from None
        except QueueBackendError:
            self._close_clients()
            raise
        self._promote = self._redis.register_script(_PROMOTE_LUA)
        self._greenlets = [gevent.spawn(self._timer), gevent.spawn(self._dispatcher)]

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=True, timeout=2)
        self._greenlets.clear()
        self._agents.kill(block=True, timeout=2)
        try:
            self._delete_namespace()
        except redis.RedisError as exc:
            logger.warning(
                "loadkit platform: could not delete queue keys %s* at %s: %s",
                self._ns,
                self._settings.display_url,
                short_reason(exc),
            )
        self._close_clients()

    # -- the interface -------------------------------------------------------------------------

    def enqueue(self, call: st.Call, due_s: float, delayed_status: str) -> None:
        """New job for ``call``; its previous job, if still delayed or waiting, is removed.

        The process's view changes first (no yield before the Redis write), so an agent that
        pops the old job meanwhile sees that it is no longer the call's job and drops it.
        """
        old_job = self._call_job.pop(call.id, None)
        if old_job is not None:
            self._job_call.pop(old_job, None)
        job_id = str(next(self._ids))
        self._job_call[job_id] = call.id
        self._call_job[call.id] = job_id
        now_s = time.time()
        due_now = due_s <= now_s
        self._store.set_status(call, st.QUEUED if due_now else delayed_status)
        delay_ms = 0 if due_now else round((due_s - now_s) * 1000)
        pipe = self._client().pipeline(transaction=True)
        if old_job is not None:
            pipe.zrem(self._delayed, old_job)
            pipe.lrem(self._wait, 0, old_job)
            pipe.delete(self._ns + old_job)
        pipe.hset(self._ns + job_id, mapping=_job_hash(call, now_s, delay_ms))
        pipe.set(self._id_key, job_id)
        if due_now:
            pipe.lpush(self._wait, job_id)
        else:
            pipe.zadd(self._delayed, {job_id: delay_score(due_s, int(job_id))})
        self._execute(pipe)
        if not due_now and due_s < self._timer_wakes_at_s:
            self._wake.set()  # due before the timer would look again

    def stats(self) -> dict[str, float | int]:
        """Counted in Redis, as a sampler reading the keys counts them."""
        pipe = self._client().pipeline(transaction=True)
        pipe.llen(self._wait)
        pipe.llen(self._active)
        pipe.zcard(self._delayed)
        pipe.zcard(self._completed)
        pipe.zcard(self._failed)
        waiting, active, delayed, completed, failed = self._execute(pipe)
        return {
            "waiting": waiting,
            "active": active,
            "delayed": delayed,
            "completed": completed,
            "failed": failed,
            "processing_rate_per_s": round(self._finished.rate_per_s(), 3),
        }

    # -- greenlets -----------------------------------------------------------------------------

    def _timer(self) -> None:
        """Promote due delayed jobs to ``wait``; sleep until the next one is due (or woken)."""
        while True:
            # Before reading Redis: any job added from now on wakes the timer again.
            self._timer_wakes_at_s = math.inf
            self._wake.clear()
            try:
                now_ms = time.time() * 1000
                due, next_score = self._promote(
                    keys=[self._delayed, self._wait],
                    args=[int(now_ms) * DELAY_SCORE_FACTOR + 0xFFF, PROMOTE_BATCH],
                )
            except redis.RedisError as exc:
                self._warn("moving due calls to wait", exc)
                gevent.sleep(RETRY_AFTER_ERROR_S)
                continue
            for job_id in due:
                self._mark_queued(job_id.decode())
            if len(due) >= PROMOTE_BATCH:
                continue
            timeout_s = MAX_TIMER_SLEEP_S
            if next_score is not None:
                next_due_ms = int(float(next_score)) // DELAY_SCORE_FACTOR
                timeout_s = min(timeout_s, max(0.0, next_due_ms / 1000 - time.time()))
            self._timer_wakes_at_s = time.time() + timeout_s
            self._wake.wait(timeout_s)

    def _dispatcher(self) -> None:
        """Hand waiting jobs to free agents: one blocking connection however many agents."""
        assert self._blocking is not None
        while True:
            self._agents.wait_available()
            try:
                job_id = self._blocking.brpoplpush(self._wait, self._active, BLOCK_TIMEOUT_S)
            except redis.RedisError as exc:
                self._warn("taking a call from wait", exc)
                gevent.sleep(RETRY_AFTER_ERROR_S)
                continue
            if job_id is not None:
                self._agents.spawn(self._run_job, job_id.decode())

    def _run_job(self, job_id: str) -> None:
        call_id = self._job_call.get(job_id)
        call = self._store.get(call_id) if call_id is not None else None
        if call is None:  # rescheduled after the dispatcher took it: that job is void
            self._safely("dropping a replaced job", self._client().lrem, self._active, -1, job_id)
            return
        self._store.set_status(call, st.IN_PROGRESS)
        self._safely(
            "marking a call active", self._client().hset, self._ns + job_id, "processedOn", _ms()
        )
        gevent.sleep(self._dial.duration_s())
        outcome = self._dial.outcome()
        self._store.set_status(call, outcome)
        del self._job_call[job_id]
        if self._call_job.get(call.id) == job_id:
            del self._call_job[call.id]
        finished_ms = _ms()
        pipe = self._client().pipeline(transaction=True)
        pipe.lrem(self._active, -1, job_id)
        fields: dict[str, Any] = {"finishedOn": finished_ms, "attemptsMade": 1}
        if outcome == st.FAILED:
            pipe.zadd(self._failed, {job_id: finished_ms})
            fields["failedReason"] = "call failed"
        else:
            pipe.zadd(self._completed, {job_id: finished_ms})
            fields["returnvalue"] = json.dumps({"outcome": outcome})
        pipe.hset(self._ns + job_id, mapping=fields)
        self._safely("recording a finished call", pipe.execute)
        self._finished.record()

    def _mark_queued(self, job_id: str) -> None:
        call_id = self._job_call.get(job_id)
        call = self._store.get(call_id) if call_id is not None else None
        # An agent may already have taken it (its reply can arrive before the timer's).
        if call is not None and call.status in st.DELAYED_STATUSES:
            self._store.set_status(call, st.QUEUED)

    # -- Redis plumbing ------------------------------------------------------------------------

    def _claim_namespace(self) -> None:
        """Refuse a namespace that holds a queue already, unless told to reset it."""
        client = self._client()
        found = [name for name in QUEUE_KEYS if client.exists(self._ns + name)]
        if not found:
            return
        if not self._settings.reset:
            raise QueueBackendError(
                f"Redis at {self._settings.display_url} already holds queue keys "
                f"{self._ns}{{{','.join(found)}}}: pass --redis-reset to delete every "
                f"{self._ns}* key first, or pick another --redis-prefix"
            )
        self._delete_namespace()

    def _delete_namespace(self) -> None:
        """Delete this queue's keys (``<prefix>:<queue>:*``), and no other."""
        client = self._client()
        batch: list[bytes] = []
        for key in client.scan_iter(match=glob_escape(self._ns) + "*", count=SCAN_COUNT):
            batch.append(key)
            if len(batch) >= SCAN_COUNT:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)

    def _client(self) -> redis.Redis:
        if self._redis is None:
            raise QueueBackendError("the Redis queue is not started")
        return self._redis

    def _execute(self, pipe: Any) -> list[Any]:
        """Run a pipeline for a request handler: a Redis failure is a 503, not a crash."""
        try:
            result: list[Any] = pipe.execute()
        except redis.RedisError as exc:
            self._warn("serving a request", exc)
            raise HttpError(503, "queue store unavailable") from None
        return result

    def _safely(self, doing: str, command: Any, *args: Any) -> None:
        try:
            command(*args)
        except redis.RedisError as exc:
            self._warn(doing, exc)

    def _warn(self, doing: str, exc: BaseException) -> None:
        now_s = time.monotonic()
        if now_s - self._last_warning_s >= WARN_EVERY_S:
            self._last_warning_s = now_s
            logger.warning(
                "loadkit platform: Redis error while %s (%s): %s",
                doing,
                self._settings.display_url,
                short_reason(exc),
            )

    def _close_clients(self) -> None:
        for client in (self._redis, self._blocking):
            if client is not None:
                client.close()
                client.connection_pool.disconnect()
        self._redis = self._blocking = None


def delay_score(due_s: float, job_number: int) -> int:
    """Bull's score for a delayed job: due time in ms, times 4096, plus 12 bits of the id."""
    return int(due_s * 1000) * DELAY_SCORE_FACTOR + (job_number & 0xFFF)


def ensure_cooperative_sockets() -> None:
    """redis-py uses the ``socket`` module: unless gevent patched it, each Redis call would stall
    every greenlet of the server. ``python -m loadkit.platform`` patches at start; another entry
    point (``loadkit target``) gets the socket module patched here."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_socket()


def _client(url: str, max_connections: int | None) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),  # fail fast: callers decide whether to try again
        max_connections=max_connections,
    )


def _job_hash(call: st.Call, now_s: float, delay_ms: int) -> dict[str, str | int]:
    data = {"call_id": call.id, "phone_number": call.phone_number, "campaign_id": call.campaign_id}
    return {
        "name": JOB_NAME,
        "data": json.dumps(data, separators=(",", ":")),
        "opts": json.dumps({"attempts": 1, "delay": delay_ms}, separators=(",", ":")),
        "timestamp": int(now_s * 1000),
        "delay": delay_ms,
        "priority": 0,
        "attemptsMade": 0,
    }


def _ms() -> int:
    return int(time.time() * 1000)


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
