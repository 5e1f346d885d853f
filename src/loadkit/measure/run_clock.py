"""A run's clock: monotonic readings mapped to wall-clock epoch seconds.

Intervals are measured on the monotonic clock, but per-second counts from several processes are
added up by epoch second, because workers' monotonic clocks differ while their wall clocks agree
(as far as the machines' clocks do). One (wall, monotonic) pair taken when the run starts maps
every later monotonic reading to the epoch: no wall-clock jumps inside a run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RunClock:
    start_epoch_s: float
    """Wall-clock time of the run's start (epoch seconds)."""
    epoch_offset_s: float
    """Added to a monotonic reading, gives its epoch time."""

    @classmethod
    def started(
        cls, start_epoch_s: float | None = None, start_mono_s: float | None = None
    ) -> RunClock:
        """The clock of a run starting now, or at the given pair (tests pass a fake one)."""
        epoch_s = time.time() if start_epoch_s is None else start_epoch_s
        mono_s = time.monotonic() if start_mono_s is None else start_mono_s
        return cls(epoch_s, epoch_s - mono_s)

    @property
    def start_second(self) -> int:
        """The epoch second the run started in."""
        return math.floor(self.start_epoch_s)

    def epoch_s(self, now_mono_s: float) -> float:
        return now_mono_s + self.epoch_offset_s

    def second_of(self, now_mono_s: float) -> int:
        """The epoch second that monotonic reading ``now_mono_s`` falls in."""
        return math.floor(now_mono_s + self.epoch_offset_s)
