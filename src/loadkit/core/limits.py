"""How long, how many and how fast a run may be: the kit's safety limits, and Locust's run time.

A typo in a load test is an incident: ``-u 1000000000`` killed the generator (exit 250, no
verdict), ``--workers 1000`` launched a thousand processes, ``--run-time 0`` ran with no end.
Every run is therefore bounded, and the bounds below are checked before anything starts. They
sit well above what one generator process can use, so a real test never meets them; a test
that needs more says so with ``--exceed-limits`` (``LOADKIT_EXCEED_LIMITS=1`` inside Locust).
The run time always has an end: ``--exceed-limits`` lifts its 24 h cap, never the need for one.

Measured on this kit's reference machine (2 cores, Locust 2.47, FastHttpUser):

* an idle user costs ~31 KB (5,000 users: +144 MB, 20,000: +624 MB); one core spawns ~10,000
  users/s, and Locust itself warns above a spawn rate of 100;
* one core sends at most ~10,000 requests/s to a fast loopback server (LOCUST_NOTES: 10.5k).

The limits scale with the number of load-generating processes (local or remote workers): the
cluster's limit is the per-process limit times the processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from loadkit.core.durations import DurationError, parse_duration

USERS_MAX_PER_PROCESS: Final = 10_000
"""Concurrent users (or in-flight iterations) per generator process: ~300 MB of idle users;
well past the point where one core only schedules greenlets instead of sending requests."""
SPAWN_RATE_MAX_PER_PROCESS: Final = 1_000
"""Users started per second per process: a tenth of what one core can spawn at all."""
RATE_MAX_PER_S_PER_PROCESS: Final = 10_000
"""Arrival rate (iterations/s) per process: about what one core can send, so a typo (an extra
zero) is caught rather than turned into dropped iterations at a target's expense."""
RUN_TIME_MAX_S: Final = 24 * 3600
"""Longest run, profile or rate stages (the soak profile is 1 h)."""
EXPECT_WORKERS_MAX: Final = 1_000
"""Remote workers a ``--master`` may wait for."""
DEFAULT_RUN_TIME: Final = "1m"
"""Run time of ``loadkit run`` when neither ``-t``, ``--profile`` nor ``--stage`` ends the run."""
OVERRIDE_FLAG: Final = "--exceed-limits"
OVERRIDE_ENV: Final = "LOADKIT_EXCEED_LIMITS"
"""Set to 1 by ``loadkit ... --exceed-limits`` for the Locust processes (web UI checks)."""


class LimitError(ValueError):
    """An input above a safety limit or without an end; the message is one line."""


def local_workers_max(cpu_count: int | None) -> int:
    """Local worker processes: twice the cores (at least 4); each Locust worker uses one core,
    so more only share them (a 1,000-worker typo launched 1,000 interpreters)."""
    return max(4, 2 * (cpu_count or 1))


def parse_run_time(text: str) -> float:
    """Seconds of a run time (``20``, ``20s``, ``3m``, ``1h20m``, ``2.5s``): the kit's one
    duration grammar (``core.durations``), with the refusal Locust's lacks: 0 means "no limit"
    to Locust, and a run must end by itself."""
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise LimitError(f"--run-time: {exc}") from None
    if seconds <= 0:
        raise LimitError(f"--run-time {text!r} has no end: give at least 1s")
    return seconds


@dataclass(frozen=True)
class LoadSize:
    """What a run asks for, reduced to the numbers the limits bound (None: not asked)."""

    processes: int = 1
    """Load-generating processes: 1, the local workers, or the workers a master expects."""
    users: int | None = None
    spawn_rate_per_s: float | None = None
    run_time_s: float | None = None
    profile_duration_s: float | None = None
    rate_per_s: float | None = None
    max_in_flight: int | None = None


def check_numbers(size: LoadSize) -> None:
    """The checks no override lifts: counts >= 1, rates > 0, everything finite."""
    if size.users is not None and size.users < 1:
        raise LimitError(f"--users {size.users}: a run needs at least 1 user")
    if size.spawn_rate_per_s is not None and not (
        math.isfinite(size.spawn_rate_per_s) and size.spawn_rate_per_s > 0
    ):
        raise LimitError(f"--spawn-rate {size.spawn_rate_per_s:g}: must be a number > 0")
    if size.max_in_flight is not None and size.max_in_flight < 1:
        raise LimitError(f"--max-in-flight {size.max_in_flight}: must be at least 1")


def check_limits(size: LoadSize) -> None:
    """The safety limits (lifted by ``--exceed-limits``); raises the first one exceeded."""
    n = max(1, size.processes)
    where = "" if n == 1 else f" for {n} load-generating processes"
    hint = f"{OVERRIDE_FLAG} if you mean it"
    if size.users is not None and size.users > USERS_MAX_PER_PROCESS * n:
        raise LimitError(
            f"{size.users:,} users is above the limit of {USERS_MAX_PER_PROCESS * n:,}{where} "
            f"({USERS_MAX_PER_PROCESS:,} per process; add --workers, or {hint})"
        )
    if size.spawn_rate_per_s is not None and size.spawn_rate_per_s > SPAWN_RATE_MAX_PER_PROCESS * n:
        raise LimitError(
            f"spawn rate {size.spawn_rate_per_s:g}/s is above the limit of "
            f"{SPAWN_RATE_MAX_PER_PROCESS * n:,}/s{where} ({hint})"
        )
    if size.rate_per_s is not None and size.rate_per_s > RATE_MAX_PER_S_PER_PROCESS * n:
        raise LimitError(
            f"rate {size.rate_per_s:g}/s is above the limit of "
            f"{RATE_MAX_PER_S_PER_PROCESS * n:,}/s{where} ({RATE_MAX_PER_S_PER_PROCESS:,}/s per "
            f"process; add --workers, or {hint})"
        )
    if size.max_in_flight is not None and size.max_in_flight > USERS_MAX_PER_PROCESS * n:
        raise LimitError(
            f"--max-in-flight {size.max_in_flight:,} is above the limit of "
            f"{USERS_MAX_PER_PROCESS * n:,}{where} ({hint})"
        )
    for what, seconds in (
        ("--run-time", size.run_time_s),
        ("the profile", size.profile_duration_s),
    ):
        if seconds is not None and seconds > RUN_TIME_MAX_S:
            raise LimitError(
                f"{what} lasts {seconds / 3600:.4g} h, above the limit of "
                f"{RUN_TIME_MAX_S // 3600} h ({hint})"
            )


def check_workers(local_workers: int, expect_workers: int | None, cpu_count: int | None) -> None:
    """``--workers`` and ``--expect-workers`` within their limits (lifted by the override)."""
    most = local_workers_max(cpu_count)
    if local_workers > most:
        raise LimitError(
            f"--workers {local_workers} is above the limit of {most} local worker processes "
            f"(twice the {cpu_count or 1} cores; {OVERRIDE_FLAG} if you mean it)"
        )
    if expect_workers is not None and expect_workers > EXPECT_WORKERS_MAX:
        raise LimitError(
            f"--expect-workers {expect_workers} is above the limit of {EXPECT_WORKERS_MAX} "
            f"({OVERRIDE_FLAG} if you mean it)"
        )
