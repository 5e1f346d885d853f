"""The dialer: a delayed heap, a waiting queue and a pool of agent greenlets.

A load test of the real platform watches its queue fill under load and drain afterwards, so the
stand-in has a real queue with a finite number of agents rather than instant outcomes: calls
due in the future wait in a heap (``delayed``) until a timer greenlet moves them to the FIFO
``waiting`` queue, and ``agents`` greenlets take them one at a time, spend a simulated call
duration ``active`` and record an outcome. Counts by state come from the store's status
counters, so they are always consistent with the analytics.

That is :class:`MemoryQueue`, the default. With ``DialerSettings.redis`` set, :class:`CallQueue`
runs :class:`~loadkit.platform.redis_queue.RedisQueue` instead: the same behaviour, with the
queue's state in Redis (see ``queue_backend``).
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import gevent
from gevent.event import Event
from gevent.queue import SimpleQueue

from loadkit.platform import store as st
from loadkit.platform.queue_backend import QueueBackend, RedisQueueSettings

RATE_WINDOW_S = 10


@dataclass(frozen=True)
class DialerSettings:
    """How the simulated agents behave."""

    agents: int = 50
    call_duration_ms: float = 200.0
    call_jitter_ms: float = 50.0
    """A call lasts ``call_duration_ms`` ± this, uniformly (never below 0)."""
    outcome_weights: Mapping[str, float] | None = None
    """Relative weights of the outcomes; ``None`` means :data:`DEFAULT_OUTCOME_WEIGHTS`."""
    redis: RedisQueueSettings | None = None
    """Keep the queue in Redis (Bull's key layout) instead of in the process."""


DEFAULT_OUTCOME_WEIGHTS: Mapping[str, float] = {
    st.COMPLETED: 70.0,
    st.NO_ANSWER: 15.0,
    st.BUSY: 10.0,
    st.FAILED: 5.0,
}


class RateWindow:
    """Events per second over the last ``window_s`` seconds, in one-second buckets.

    Buckets rather than timestamps keep memory constant at any rate.
    """

    def __init__(self, window_s: int = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._buckets: dict[int, int] = {}
        self._started_s = time.monotonic()

    def record(self, count: int = 1) -> None:
        second = int(time.monotonic())
        self._buckets[second] = self._buckets.get(second, 0) + count
        if len(self._buckets) > 2 * self._window_s:
            self._prune(second)

    def rate_per_s(self) -> float:
        now_s = time.monotonic()
        second = int(now_s)
        self._prune(second)
        total = sum(n for s, n in self._buckets.items() if s > second - self._window_s)
        # Early on, divide by the time actually observed, not the full window.
        span_s = min(float(self._window_s), max(now_s - self._started_s, 1.0))
        return total / span_s

    def _prune(self, second: int) -> None:
        for old in [s for s in self._buckets if s <= second - self._window_s]:
            del self._buckets[old]


class SimulatedDial:
    """How long a simulated call lasts and how it ends: shared by both queue backends."""

    def __init__(self, settings: DialerSettings, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        weights = settings.outcome_weights or DEFAULT_OUTCOME_WEIGHTS
        self._outcomes = list(weights)
        self._weights = [weights[o] for o in self._outcomes]

    def duration_s(self) -> float:
        """``call_duration_ms`` ± ``call_jitter_ms`` (uniform, never below 0), in seconds."""
        settings = self._settings
        jitter_ms = self._rng.uniform(-settings.call_jitter_ms, settings.call_jitter_ms)
        return max(0.0, settings.call_duration_ms + jitter_ms) / 1000.0

    def outcome(self) -> str:
        """One of the store's outcomes, drawn by the configured weights."""
        return self._rng.choices(self._outcomes, self._weights)[0]


class CallQueue:
    """The dialer queue the app talks to: in the process, or in Redis when configured.

    A thin front so the app and handlers need not know which backend runs.
    """

    def __init__(self, store: st.CallStore, settings: DialerSettings, rng: random.Random) -> None:
        backend: QueueBackend
        if settings.redis is None:
            backend = MemoryQueue(store, settings, rng)
        else:
            from loadkit.platform.redis_queue import RedisQueue  # imports redis only when used

            backend = RedisQueue(store, settings, settings.redis, rng)
        self.backend = backend

    def start(self) -> None:
        self.backend.start()

    def stop(self) -> None:
        self.backend.stop()

    def enqueue(self, call: st.Call, due_s: float, delayed_status: str) -> None:
        """(Re)schedule ``call`` at epoch ``due_s``; an earlier schedule of it is dropped."""
        self.backend.enqueue(call, due_s, delayed_status)

    def stats(self) -> dict[str, float | int]:
        return self.backend.stats()


class MemoryQueue:
    """Moves calls through delayed → waiting → active → outcome, driven by greenlets."""

    def __init__(self, store: st.CallStore, settings: DialerSettings, rng: random.Random) -> None:
        self._store = store
        self._settings = settings
        self._dial = SimulatedDial(settings, rng)
        self._delayed: list[tuple[float, int, str, int]] = []  # (due_s, seq, call id, ticket)
        self._seq = 0
        self._waiting: SimpleQueue[tuple[str, int]] = SimpleQueue()
        self._wake = Event()
        self._greenlets: list[gevent.Greenlet] = []
        self.completed_jobs = 0
        """Dials that ended (completed, no_answer or busy): the queue's "completed" jobs."""
        self.failed_jobs = 0
        """Dials that ended ``failed``."""
        self._finished = RateWindow()

    def start(self) -> None:
        self._greenlets.append(gevent.spawn(self._timer))
        self._greenlets.extend(gevent.spawn(self._agent) for _ in range(self._settings.agents))

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=True, timeout=2)
        self._greenlets.clear()

    def enqueue(self, call: st.Call, due_s: float, delayed_status: str) -> None:
        """(Re)schedule ``call`` at epoch ``due_s``; earlier queue entries for it become stale."""
        call.ticket += 1
        if due_s <= time.time():
            self._store.set_status(call, st.QUEUED)
            self._waiting.put((call.id, call.ticket))
            return
        self._store.set_status(call, delayed_status)
        self._seq += 1
        heapq.heappush(self._delayed, (due_s, self._seq, call.id, call.ticket))
        if self._delayed[0][1] == self._seq:
            self._wake.set()  # the new call is due before the one the timer sleeps for

    def stats(self) -> dict[str, float | int]:
        counts = self._store.status_counts
        return {
            "waiting": counts[st.QUEUED],
            "active": counts[st.IN_PROGRESS],
            "delayed": counts[st.SCHEDULED] + counts[st.RETRY_SCHEDULED],
            "completed": self.completed_jobs,
            "failed": self.failed_jobs,
            "processing_rate_per_s": round(self._finished.rate_per_s(), 3),
        }

    def _timer(self) -> None:
        while True:
            now_s = time.time()
            while self._delayed and self._delayed[0][0] <= now_s:
                _, _, call_id, ticket = heapq.heappop(self._delayed)
                call = self._store.get(call_id)
                if call is None or call.ticket != ticket or call.status not in st.DELAYED_STATUSES:
                    continue
                self._store.set_status(call, st.QUEUED)
                self._waiting.put((call_id, ticket))
            timeout_s = self._delayed[0][0] - now_s if self._delayed else None
            self._wake.clear()
            self._wake.wait(timeout_s)

    def _agent(self) -> None:
        while True:
            call_id, ticket = self._waiting.get()
            call = self._store.get(call_id)
            if call is None or call.ticket != ticket or call.status != st.QUEUED:
                continue  # retried (rescheduled) while it waited
            self._store.set_status(call, st.IN_PROGRESS)
            gevent.sleep(self._dial.duration_s())
            outcome = self._dial.outcome()
            self._store.set_status(call, outcome)
            if outcome == st.FAILED:
                self.failed_jobs += 1
            else:
                self.completed_jobs += 1
            self._finished.record()
