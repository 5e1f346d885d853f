"""What the platform asks of its dialer queue, wherever the queue keeps its state.

Two backends implement it: :class:`~loadkit.platform.call_queue.MemoryQueue` (the default: a
heap and a FIFO in the process, as fast as the platform can serve) and
:class:`~loadkit.platform.redis_queue.RedisQueue` (the same behaviour with the state in Redis, in
Bull's key layout, so that a tool reading Redis sees what ``GET /api/queue/stats`` reports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

from loadkit.core.redis_url import display_url
from loadkit.platform import store as st

DEFAULT_BULL_PREFIX: Final = "bull"
DEFAULT_BULL_QUEUE: Final = "calls"


class QueueBackendError(RuntimeError):
    """The queue's store cannot be used (e.g. Redis unreachable); the message is one line."""


class QueueBackend(Protocol):
    """Moves calls through delayed → waiting → active → outcome."""

    def start(self) -> None:
        """Connect (if needed) and start the timer and agents; raises QueueBackendError."""

    def stop(self) -> None:
        """Stop the agents and release what ``start`` took."""

    def enqueue(self, call: st.Call, due_s: float, delayed_status: str) -> None:
        """(Re)schedule ``call`` at epoch ``due_s``, replacing any earlier schedule of it."""

    def stats(self) -> dict[str, float | int]:
        """``waiting``, ``active``, ``delayed``, ``completed``, ``failed`` (jobs) and
        ``processing_rate_per_s`` (jobs finished per second, last 10 s)."""


@dataclass(frozen=True)
class RedisQueueSettings:
    """Where the Redis backend keeps the queue: ``<prefix>:<queue>:wait`` and so on."""

    url: str = field(repr=False)
    """``redis://[:password@]host:port/db``; may hold a password, so it stays out of ``repr``."""
    prefix: str = DEFAULT_BULL_PREFIX
    queue: str = DEFAULT_BULL_QUEUE
    reset: bool = False
    """Delete keys left under the namespace by an earlier run instead of refusing to start."""

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for messages."""
        return display_url(self.url)

    @property
    def namespace(self) -> str:
        """The common key prefix, ``bull:calls:``."""
        return f"{self.prefix}:{self.queue}:"
