"""A BullMQ (or Bull 3) queue's state, read straight from its Redis keys at one instant.

Why not only key lengths: BullMQ leaves a delayed job in the ``delayed`` sorted set until a
worker asks for its next job, even long after the job's due time. With no worker consuming (a
stalled dialer), due work piles up in ``delayed`` while ``wait`` stays empty, so a queue judged by
``LLEN wait`` looks idle. The due time is in each member's score, so one ``ZCOUNT`` tells the
jobs that are overdue from those that are delayed until later.

**Depth** is the work that is due and not being processed: jobs waiting for a worker (``wait``,
``prioritized``, ``paused``) plus delayed jobs whose due time has passed (``overdue``).

Every count comes from one Lua script, so all of them describe the same instant (a script runs
atomically), and "now" is the Redis server's clock (``TIME``) unless the caller gives one.

The delayed set's score, in every version read here, is ``due_ms * 0x1000 + n`` with
``0 <= n < 0x1000`` (so ``due_ms = score // 0x1000``):

* Bull 3 (``bull``): ``lib/commands/addJob-6.lua`` (OptimalBits/bull), ``n`` = the job counter's
  low 12 bits.
* BullMQ 4 (checked in 4.18.3): ``src/commands/addDelayedJob-7.lua`` — ``delayedTimestamp *
  0x1000 + bit.band(jobCounter, 0xfff)``.
* BullMQ 5 and 6 (checked in 5.81.5 and 6.7.6): ``src/commands/includes/getDelayedScore.lua``
  (taskforcesh/bullmq) — ``n`` is a sequence number among the jobs due in the same millisecond.
  BullMQ 6's own ``Queue.getDelayedCount(timestamp)`` counts ``ZCOUNT delayed -inf
  timestamp*0x1000-1`` (``src/commands/getCounts-1.lua``): the same rule as ``overdue`` here.

BullMQ promotes a job once ``due_ms <= now`` (``includes/promoteDelayedJobs.lua``), so a job due
in this very millisecond is not yet counted as overdue; it will be a millisecond later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

#: The delayed set's score is ``due_ms * DELAY_SCORE_FACTOR`` plus 12 bits of ordering.
DELAY_SCORE_FACTOR: Final = 0x1000
#: The keys read, under ``<prefix>:<queue>:``, and the Redis types each may have. ``paused`` is
#: BullMQ 4/5's (and Bull's) list of jobs added while the queue was paused (BullMQ 6 keeps them
#: in ``wait``); completed/failed were plain sets in Bull 2.
STATE_KEYS: Final = {
    "wait": ("list",),
    "paused": ("list",),
    "prioritized": ("zset",),
    "active": ("list",),
    "delayed": ("zset",),
    "waiting-children": ("zset",),
    "completed": ("zset", "set"),
    "failed": ("zset", "set"),
}
#: Keys that only say the queue exists: BullMQ's ``meta`` hash, Bull 3's ``meta-paused`` flag,
#: the job id counter.
OTHER_KEYS: Final = ("meta", "meta-paused", "id")
#: Hashes whose ``count`` field is every job ever completed/failed, kept by workers started with
#: BullMQ's ``metrics`` option (``includes/collectMetrics.lua``). Unlike the ``completed`` set,
#: they are not trimmed by ``removeOnComplete``/``removeOnFail``.
METRICS_KEYS: Final = ("metrics:completed", "metrics:failed")
#: Queue discovery scans at most this many keys (``SCAN`` calls × ``SCAN_COUNT``) and this long.
SCAN_COUNT: Final = 1000
MAX_SCAN_CALLS: Final = 100
MAX_SCAN_S: Final = 1.0

# KEYS: STATE_KEYS, OTHER_KEYS, METRICS_KEYS, in order. ARGV[1]: now in ms, or "" for TIME.
# Returns {now_ms, overdue, version or nil, paused 0/1, keys that exist, completed total or nil,
# failed total or nil, type1, n1, type2, n2...}.
_READ_LUA: Final = """
local now_ms = tonumber(ARGV[1])
if not now_ms then
  local t = redis.call("TIME")
  now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function kind(key)
  local reply = redis.call("TYPE", key)
  return reply["ok"] or reply
end
local function is_marker(item)
  return string.sub(item, 1, 2) == "0:"
end
local function list_jobs(key)
  -- BullMQ 4 keeps one marker ("0:<ms>") in wait/paused to wake its workers: not a job.
  local len = redis.call("LLEN", key)
  local jobs = len
  if len > 0 and is_marker(redis.call("LINDEX", key, -1)) then jobs = jobs - 1 end
  if len > 1 and is_marker(redis.call("LINDEX", key, 0)) then jobs = jobs - 1 end
  return jobs
end
local sizes = {}
for i = 1, 8 do
  local key_type = kind(KEYS[i])
  local n = 0
  if key_type == "list" then n = list_jobs(KEYS[i])
  elseif key_type == "zset" then n = redis.call("ZCARD", KEYS[i])
  elseif key_type == "set" then n = redis.call("SCARD", KEYS[i]) end
  sizes[#sizes + 1] = key_type
  sizes[#sizes + 1] = n
end
local overdue = 0
if kind(KEYS[5]) == "zset" then
  overdue = redis.call("ZCOUNT", KEYS[5], "-inf", now_ms * 0x1000 - 1)
end
local version = false
local paused = 0
if kind(KEYS[9]) == "hash" then
  local meta = redis.call("HMGET", KEYS[9], "version", "paused")
  version = meta[1]
  if meta[2] then paused = 1 end
end
if redis.call("EXISTS", KEYS[10]) == 1 then paused = 1 end
local function total(key)
  if kind(key) ~= "hash" then return false end
  return redis.call("HGET", key, "count")
end
local found = redis.call("EXISTS", unpack(KEYS))
return {now_ms, overdue, version, paused, found, total(KEYS[12]), total(KEYS[13]), unpack(sizes)}
"""


class QueueLayoutError(ValueError):
    """A key of the queue has a type no Bull/BullMQ version gives it (not a Bull queue)."""


@dataclass(frozen=True)
class QueueAddress:
    """Where a queue lives: BullMQ's ``prefix`` option (default ``bull``) and the queue name."""

    prefix: str
    queue: str

    @property
    def namespace(self) -> str:
        return f"{self.prefix}:{self.queue}:"

    def key(self, name: str) -> str:
        return self.namespace + name

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key the reading looks at, in the script's order."""
        return tuple(self.key(name) for name in (*STATE_KEYS, *OTHER_KEYS, *METRICS_KEYS))

    def __str__(self) -> str:
        return self.namespace + "*"


@dataclass(frozen=True)
class QueueMeta:
    """BullMQ's ``meta`` hash: who wrote the queue, and whether it is paused."""

    version: str | None
    """``meta.version`` (``bullmq:6.7.6``); None without a meta hash (Bull 3, or no queue)."""
    paused: bool
    """``meta.paused`` (BullMQ) or the ``meta-paused`` key (Bull 3): no job will be processed."""


@dataclass(frozen=True)
class QueueState:
    """The jobs of one queue in each state, all counted at the instant ``now_ms``."""

    now_ms: int
    """The instant of the reading (ms since the epoch) that ``overdue`` is measured against."""
    wait: int
    """Jobs in the ``wait`` list (markers excluded): BullMQ's ``getJobCounts().waiting``."""
    paused: int
    """Jobs in the ``paused`` list (BullMQ 4/5 and Bull, added while paused)."""
    prioritized: int
    """Jobs with a priority, waiting in the ``prioritized`` sorted set (BullMQ 4+)."""
    active: int
    """Jobs a worker has taken and not finished."""
    overdue: int
    """Delayed jobs whose due time is before ``now_ms``: due, but nobody moved them to wait."""
    delayed: int
    """Delayed jobs not due yet (BullMQ's delayed count is ``delayed + overdue``)."""
    waiting_children: int
    """Flow parents waiting for their children to finish."""
    completed: int
    """Finished jobs still kept (cumulative: BullMQ trims them only by ``removeOnComplete``)."""
    failed: int
    """Failed jobs still kept (cumulative, like ``completed``)."""
    meta: QueueMeta
    keys_found: int
    """How many of the queue's keys exist; 0 means no queue here (or an idle one, trimmed)."""
    completed_total: int | None = None
    """Every job ever completed, from BullMQ's metrics (None unless workers run with the
    ``metrics`` option): the counter to take a processing rate from when ``removeOnComplete``
    trims ``completed``."""
    failed_total: int | None = None
    """Every job ever failed, from BullMQ's metrics (None without them)."""

    @property
    def waiting(self) -> int:
        """Jobs ready for a worker: ``wait`` + ``prioritized`` + ``paused``."""
        return self.wait + self.prioritized + self.paused

    @property
    def depth(self) -> int:
        """Work that is due and not being processed: ``waiting`` + ``overdue``."""
        return self.waiting + self.overdue

    def gauges(self) -> dict[str, float]:
        """The counts as a flat reading; names follow BullMQ's ``getJobCounts()`` where they can
        (``waiting-children``), except ``waiting``, which here includes prioritized and paused
        jobs (BullMQ's ``waiting`` is the ``wait`` list alone, reported here as ``wait``).
        ``completed_total``/``failed_total`` are there only when BullMQ keeps metrics."""
        totals = {"completed_total": self.completed_total, "failed_total": self.failed_total}
        return {
            "depth": self.depth,
            "waiting": self.waiting,
            "overdue": self.overdue,
            "active": self.active,
            "delayed": self.delayed,
            "waiting-children": self.waiting_children,
            "completed": self.completed,
            "failed": self.failed,
            "wait": self.wait,
            "prioritized": self.prioritized,
            "paused": self.paused,
            "queue_paused": int(self.meta.paused),
            **{name: value for name, value in totals.items() if value is not None},
        }


#: The names of :meth:`QueueState.gauges`, in order.
GAUGE_NAMES: Final = tuple(
    QueueState(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, QueueMeta(None, False), 0, 0, 0).gauges()
)


class QueueReader:
    """Reads one queue's :class:`QueueState` with one script call per reading."""

    def __init__(self, client: Any, address: QueueAddress) -> None:
        self.client = client
        self.address = address
        self._script = client.register_script(_READ_LUA)

    def read(self, *, now_ms: int | None = None) -> QueueState:
        """The state now (the Redis server's clock), or at ``now_ms`` as far as ``overdue`` goes.

        Raises redis-py's errors, and :class:`QueueLayoutError` for a key of the wrong type.
        """
        reply = self._script(keys=list(self.address.keys), args=["" if now_ms is None else now_ms])
        return parse_reply(reply, self.address)


def parse_reply(reply: list[Any], address: QueueAddress) -> QueueState:
    """The script's answer as a :class:`QueueState`; checks each key's type."""
    at_ms, overdue, version, paused, found, completed_total, failed_total, *sizes = reply
    counts: dict[str, int] = {}
    for name, key_type, size in zip(STATE_KEYS, sizes[0::2], sizes[1::2], strict=True):
        kind = _text(key_type)
        if kind != "none" and kind not in STATE_KEYS[name]:
            wanted = " or ".join(STATE_KEYS[name])
            raise QueueLayoutError(
                f"Redis key {address.key(name)!r} is a {kind}, not a {wanted}: "
                "not a Bull/BullMQ queue"
            )
        counts[name] = int(size)
    return QueueState(
        now_ms=int(at_ms),
        wait=counts["wait"],
        paused=counts["paused"],
        prioritized=counts["prioritized"],
        active=counts["active"],
        overdue=int(overdue),
        delayed=counts["delayed"] - int(overdue),
        waiting_children=counts["waiting-children"],
        completed=counts["completed"],
        failed=counts["failed"],
        meta=QueueMeta(version=_text(version) if version is not None else None, paused=paused == 1),
        keys_found=int(found),
        completed_total=None if completed_total is None else int(completed_total),
        failed_total=None if failed_total is None else int(failed_total),
    )


@dataclass(frozen=True)
class Discovery:
    """Other Bull/BullMQ queues found by their ``meta`` keys."""

    same_queue: tuple[str, ...]
    """Prefixes under which a queue of the configured name exists (``myapp`` for
    ``myapp:calls:meta``)."""
    same_prefix: tuple[str, ...]
    """Other queue names under the configured prefix (``sms`` for ``bull:sms:meta``)."""
    complete: bool
    """False when the scan stopped at its bound before seeing the whole keyspace."""


def discover(
    client: Any,
    address: QueueAddress,
    *,
    max_calls: int = MAX_SCAN_CALLS,
    max_s: float = MAX_SCAN_S,
) -> Discovery:
    """Look for ``*:<queue>:meta`` and ``<prefix>:*:meta`` keys with one bounded ``SCAN`` pass.

    For a preflight that found no key at ``address``: a wrong prefix or queue name is then
    named instead of being taken for an idle queue. At most ``max_calls`` SCAN calls of
    ``SCAN_COUNT`` keys each, and about ``max_s`` seconds.
    """
    queue_suffix = f":{address.queue}:meta"
    prefix_head = f"{address.prefix}:"
    prefixes: dict[str, None] = {}
    queues: dict[str, None] = {}
    complete = True
    for key in _scan(client, "*:meta", max_calls=max_calls, max_s=max_s):
        if key is None:
            complete = False
            break
        if key.endswith(queue_suffix) and len(key) > len(queue_suffix):
            prefixes[key[: -len(queue_suffix)]] = None
        if key.startswith(prefix_head) and len(key) > len(prefix_head) + len(":meta"):
            queues[key[len(prefix_head) : -len(":meta")]] = None
    prefixes.pop(address.prefix, None)
    queues.pop(address.queue, None)
    return Discovery(tuple(sorted(prefixes)), tuple(sorted(queues)), complete)


def _scan(client: Any, pattern: str, *, max_calls: int, max_s: float) -> Iterator[str | None]:
    """Keys matching ``pattern``; a final None when the bound stopped the scan early."""
    deadline_s = time.monotonic() + max_s
    cursor = 0
    for _ in range(max_calls):
        cursor, keys = client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        yield from (_text(key) for key in keys)
        if int(cursor) == 0:
            return
        if time.monotonic() > deadline_s:
            break
    yield None


def due_ms(score: float) -> int:
    """The due time (ms since the epoch) encoded in a delayed job's score."""
    return int(score) // DELAY_SCORE_FACTOR


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
