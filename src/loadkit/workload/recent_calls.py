"""The calls a user scheduled recently, for it to retry the way a dialer would.

A call is offered for retry only while it is surely still retryable on the platform: young
enough not to have been dialled yet (calls are scheduled at least a minute ahead) and retried
fewer times than the platform's attempt limit.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    call_id: str
    added_s: float
    retries: int = 0


class RecentCalls:
    def __init__(
        self,
        *,
        max_age_s: float = 45.0,
        max_retries: int = 3,
        capacity: int = 50,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._entries: deque[_Entry] = deque(maxlen=capacity)
        self._max_age_s = max_age_s
        self._max_retries = max_retries
        self._clock = clock
        self._rng = rng or random.Random()

    def add(self, call_id: str) -> None:
        self._entries.append(_Entry(call_id, self._clock()))

    def pick(self) -> str | None:
        """A retryable call id (counted as retried once more), or None when there is none."""
        oldest_allowed_s = self._clock() - self._max_age_s
        while self._entries and self._entries[0].added_s < oldest_allowed_s:
            self._entries.popleft()
        if not self._entries:
            return None
        entry = self._entries[self._rng.randrange(len(self._entries))]
        entry.retries += 1
        if entry.retries >= self._max_retries:
            self._entries.remove(entry)
        return entry.call_id

    def __len__(self) -> int:
        return len(self._entries)
