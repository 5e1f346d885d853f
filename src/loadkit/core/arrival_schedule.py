"""Open-model arrival rates as data: when each iteration should start, and which process starts it.

Why: a closed-model user waits for its reply before its next request, so a slow platform slows
the load down and hides its own slowness (coordinated omission). An open model starts
iterations at a *rate* whatever the replies do, like k6's ``constant-arrival-rate`` and
``ramping-arrival-rate`` executors. This module is the pure arithmetic of that (no Locust, no
gevent, no clock of its own), so it can be tested with a fake clock:

* :class:`RateProfile` -- the target rate over time: a constant, or k6-style rate stages
  (each ramps linearly from the previous target, 0 before the first), and the cumulative number
  of iterations ``N(t)`` it asks for. Iteration ``j`` (0, 1, 2 ...) of the whole cluster is due
  at the first instant at which ``N(t)`` exceeds ``j``: computed from the profile, never from
  sleeps that accumulate drift.
* :class:`Share` -- which of those iterations one load-generator process starts: process ``i``
  of ``n`` takes ``j = i, i + n, i + 2n ...``, so the cluster delivers the target rate once
  and the processes' start times interleave evenly.
* :class:`ArrivalSchedule` -- one process's due start times, driven by a clock reading.
* :class:`Admission` -- the in-flight cap (k6's ``maxVUs``): an iteration due while the cap is
  reached is dropped and counted, never started late.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from loadkit.core.durations import DurationError, parse_duration
from loadkit.core.profiles import ProfileError, split_stage_specs

#: The default in-flight cap is this many seconds of the peak rate (k6 users size ``maxVUs``
#: the same way: rate x the slowest iteration they want to tolerate) ...
DEFAULT_IN_FLIGHT_S: Final = 10.0
#: ... but never fewer than this many iterations.
MIN_DEFAULT_IN_FLIGHT: Final = 100

_RATE_RE: Final = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/s)?\s*$")


class ArrivalError(ProfileError):
    """A rate, rate stage, share or cap that cannot be used; the message is one line.

    A ``ProfileError``: a rate profile is a profile, and callers that report those already
    report these.
    """


# -- parsing ------------------------------------------------------------------------------------


def parse_rate(text: str | float, *, allow_zero: bool = False) -> float:
    """Iterations per second from ``"50"``, ``"12.5"`` or ``"50/s"``; > 0 unless ``allow_zero``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _RATE_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise ArrivalError(f"invalid rate {text!r}: expected iterations per second, e.g. 50")
        value = float(match[1])
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ArrivalError(f"invalid rate {text!r}: must be a finite number {bound} per second")
    return value


@dataclass(frozen=True)
class RateStage:
    """One k6 arrival-rate stage: ramp linearly to ``target_rate_per_s`` over ``duration_s``."""

    duration_s: float
    target_rate_per_s: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.duration_s) or self.duration_s < 0:
            raise ArrivalError(f"stage duration must be finite and >= 0 s, got {self.duration_s}")
        if not math.isfinite(self.target_rate_per_s) or self.target_rate_per_s < 0:
            raise ArrivalError(
                f"stage rate must be finite and >= 0/s, got {self.target_rate_per_s}"
            )


def parse_rate_stage(spec: str) -> RateStage:
    """A :class:`RateStage` from ``DURATION:RATE`` (``30s:10``, ``1m:50``, ``10s:2.5``)."""
    text = spec.strip()
    if ":" not in text:
        raise ArrivalError(
            f"invalid rate stage {spec!r}: missing ':' (expected DURATION:RATE, e.g. 30s:10)"
        )
    duration_text, _, rate_text = text.partition(":")
    try:
        return RateStage(parse_duration(duration_text), parse_rate(rate_text, allow_zero=True))
    except (ProfileError, DurationError) as exc:
        raise ArrivalError(f"invalid rate stage {spec!r}: {exc}") from None


def parse_rate_stages(specs: Iterable[str], *, time_scale: float = 1.0) -> tuple[RateStage, ...]:
    """Stages from repeated options and/or comma-separated lists, durations x ``time_scale``."""
    if not math.isfinite(time_scale) or time_scale <= 0:
        raise ArrivalError(f"time_scale must be a finite number > 0, got {time_scale!r}")
    stages = [parse_rate_stage(spec) for spec in split_stage_specs(specs)]
    return tuple(RateStage(s.duration_s * time_scale, s.target_rate_per_s) for s in stages)


def parse_max_in_flight(text: str | int) -> int:
    """The in-flight cap: a whole number >= 1."""
    raw = str(text).strip()
    if not re.fullmatch(r"\+?\d+", raw) or int(raw) < 1:
        raise ArrivalError(f"invalid max in flight {text!r}: must be a whole number >= 1")
    return int(raw)


# -- the rate over time ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    start_s: float
    duration_s: float  # math.inf for an open-ended constant rate
    start_rate_per_s: float
    end_rate_per_s: float
    iterations_before: float  # N(start_s)

    @property
    def iterations(self) -> float:
        if math.isinf(self.duration_s):
            return math.inf if self.start_rate_per_s > 0 else 0.0
        return (self.start_rate_per_s + self.end_rate_per_s) / 2 * self.duration_s

    def rate_at(self, offset_s: float) -> float:
        if math.isinf(self.duration_s) or self.duration_s == 0:
            return self.end_rate_per_s
        slope = (self.end_rate_per_s - self.start_rate_per_s) / self.duration_s
        return self.start_rate_per_s + slope * offset_s

    def iterations_by(self, offset_s: float) -> float:
        return self.iterations_before + (self.start_rate_per_s + self.rate_at(offset_s)) / 2 * (
            offset_s
        )

    def offset_of(self, iterations: float) -> float:
        """Offset in the segment at which N reaches ``iterations`` (within this segment).

        Solves ``r0*t + a*t**2 = x`` in the form ``t = 2x / (r0 + sqrt(r0**2 + 4ax))``, which
        stays accurate for ramps up, ramps down and constant rates (a = 0) alike.
        """
        x = max(0.0, iterations - self.iterations_before)
        if x == 0:
            return 0.0
        r0 = self.start_rate_per_s
        if math.isinf(self.duration_s) or self.duration_s == 0:
            return x / r0
        a = (self.end_rate_per_s - r0) / (2 * self.duration_s)
        root = math.sqrt(max(0.0, r0 * r0 + 4 * a * x))
        return min(self.duration_s, 2 * x / (r0 + root))


class RateProfile:
    """The target arrival rate over time (seconds from the executor's start) and its integral.

    Build one with :meth:`constant` (open-ended) or :meth:`ramping` (k6 stages; the profile
    ends with its last stage). All methods are pure and cheap: ``start_time_s`` is a bisection
    over the stages plus one square root.
    """

    def __init__(self, segments: Sequence[_Segment], *, description: str) -> None:
        self._segments = tuple(segments)
        self._ends = [s.iterations_before + s.iterations for s in self._segments]
        self.description = description

    @classmethod
    def constant(cls, rate_per_s: float) -> RateProfile:
        """``rate_per_s`` iterations per second from t = 0, for as long as the test runs."""
        rate = parse_rate(rate_per_s)
        return cls([_Segment(0.0, math.inf, rate, rate, 0.0)], description=f"{rate:g}/s")

    @classmethod
    def ramping(cls, stages: Sequence[RateStage]) -> RateProfile:
        """k6 ``ramping-arrival-rate``: each stage ramps linearly from the previous target (0
        before the first) to its own over its duration; a zero-length stage is a jump."""
        if not stages:
            raise ArrivalError("no rate stages given")
        segments: list[_Segment] = []
        start_s, previous, done = 0.0, 0.0, 0.0
        for stage in stages:
            segment = _Segment(start_s, stage.duration_s, previous, stage.target_rate_per_s, done)
            segments.append(segment)
            done += segment.iterations
            start_s += stage.duration_s
            previous = stage.target_rate_per_s
        text = ", ".join(f"{s.duration_s:g}s:{s.target_rate_per_s:g}" for s in stages)
        return cls(segments, description=f"stages {text}")

    @property
    def duration_s(self) -> float:
        """When the profile ends (``math.inf`` for a constant rate)."""
        last = self._segments[-1]
        return last.start_s + last.duration_s

    @property
    def peak_rate_per_s(self) -> float:
        return max(max(s.start_rate_per_s, s.end_rate_per_s) for s in self._segments)

    @property
    def total_iterations(self) -> float:
        """Iterations the whole profile asks for (``math.inf`` for a constant rate)."""
        return self._ends[-1]

    def _segment_at(self, elapsed_s: float) -> _Segment | None:
        for segment in self._segments:
            if elapsed_s < segment.start_s + segment.duration_s:
                return segment
        return None

    def rate_at(self, elapsed_s: float) -> float:
        """Target iterations per second at ``elapsed_s`` (0 before the start and after the end)."""
        segment = self._segment_at(elapsed_s) if elapsed_s >= 0 else None
        return 0.0 if segment is None else segment.rate_at(elapsed_s - segment.start_s)

    def iterations_by(self, elapsed_s: float) -> float:
        """``N(t)``: how many iterations the profile has asked for by ``elapsed_s``."""
        if elapsed_s <= 0:
            return 0.0
        segment = self._segment_at(elapsed_s)
        if segment is None:
            return self.total_iterations
        return segment.iterations_by(elapsed_s - segment.start_s)

    def start_time_s(self, iteration: int) -> float | None:
        """When the cluster's iteration ``iteration`` (from 0) is due: the first instant at
        which ``N(t)`` exceeds it; None if the profile never gets there."""
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        index = bisect.bisect_right(self._ends, iteration)
        if index >= len(self._segments):
            return None
        segment = self._segments[index]
        return segment.start_s + segment.offset_of(iteration)


# -- splitting across processes -------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """Process ``index`` of ``count`` load generators: it starts every ``count``-th iteration."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ArrivalError(f"invalid share {self.index} of {self.count}")

    @classmethod
    def of_worker(cls, worker_index: int, worker_count: int) -> Share:
        """The share of a Locust worker; indexes past the count (a worker that reconnected got
        a fresh index) wrap around, which keeps the rate right though not evenly interleaved."""
        count = max(1, worker_count)
        return cls(max(0, worker_index) % count, count)

    def portion(self, total: int) -> int:
        """This process's part of a cluster-wide whole number, at least 1 (parts sum to
        ``total`` whenever ``total >= count``)."""
        return max(1, total // self.count + (1 if self.index < total % self.count else 0))


def default_max_in_flight(peak_rate_per_s: float) -> int:
    """k6-like sizing of the cluster's in-flight cap: 10 s of the peak rate, at least 100."""
    return max(MIN_DEFAULT_IN_FLIGHT, math.ceil(peak_rate_per_s * DEFAULT_IN_FLIGHT_S))


@dataclass(frozen=True)
class ArrivalPlan:
    """What the whole cluster should do: the rate profile and the in-flight cap."""

    profile: RateProfile
    max_in_flight: int

    @classmethod
    def build(
        cls,
        *,
        default_rate_per_s: float,
        rate_per_s: float | None = None,
        rate_stage_specs: Sequence[str] = (),
        max_in_flight: int | None = None,
        time_scale: float = 1.0,
    ) -> ArrivalPlan:
        """Rate stages, else ``rate_per_s``, else the user class's ``default_rate_per_s``."""
        stages = parse_rate_stages(rate_stage_specs, time_scale=time_scale)
        if stages and rate_per_s is not None:
            raise ArrivalError("give a rate or rate stages, not both")
        if stages:
            profile = RateProfile.ramping(stages)
        else:
            profile = RateProfile.constant(
                rate_per_s if rate_per_s is not None else default_rate_per_s
            )
        cap = (
            parse_max_in_flight(max_in_flight)
            if max_in_flight is not None
            else default_max_in_flight(profile.peak_rate_per_s)
        )
        return cls(profile, cap)

    @classmethod
    def from_stages(
        cls,
        stages: Sequence[RateStage],
        *,
        rate_per_s: float,
        max_in_flight: int | None = None,
    ) -> ArrivalPlan:
        """The plan for already-parsed (and scaled) rate stages, else a constant rate."""
        profile = RateProfile.ramping(stages) if stages else RateProfile.constant(rate_per_s)
        cap = (
            parse_max_in_flight(max_in_flight)
            if max_in_flight is not None
            else default_max_in_flight(profile.peak_rate_per_s)
        )
        return cls(profile, cap)


# -- one process's timeline -----------------------------------------------------------------------


class ArrivalSchedule:
    """One process's intended start times, in order, read against a clock the caller owns.

    Times are seconds from the executor's start. Nothing here sleeps: the caller asks for what
    is ``due`` at its clock reading and sleeps until ``next_start_s``.
    """

    def __init__(self, profile: RateProfile, share: Share | None = None) -> None:
        self.profile = profile
        self.share = share or Share()
        self._next_iteration = self.share.index
        self._next_start_s = profile.start_time_s(self._next_iteration)
        #: How many start times ``due`` has returned: every one must end up started or dropped.
        self.issued = 0

    @property
    def next_start_s(self) -> float | None:
        """When this process's next iteration is due; None once the profile has ended."""
        return self._next_start_s

    def _advance(self) -> None:
        self._next_iteration += self.share.count
        self._next_start_s = self.profile.start_time_s(self._next_iteration)

    def due(self, now_s: float) -> list[float]:
        """The intended start times at or before ``now_s`` not returned before (oldest first).

        A late caller gets every iteration it missed: they are still due, and the in-flight cap
        (not lateness) decides whether they start.
        """
        out: list[float] = []
        while self._next_start_s is not None and self._next_start_s <= now_s:
            out.append(self._next_start_s)
            self._advance()
        self.issued += len(out)
        return out

    def skip_until(self, now_s: float) -> int:
        """Forget the iterations due before ``now_s`` (nobody was there to start them: the
        run had no user for this class); returns how many were skipped."""
        skipped = 0
        while self._next_start_s is not None and self._next_start_s < now_s:
            self._advance()
            skipped += 1
        return skipped


class Admission:
    """The in-flight cap and its bookkeeping: started, dropped, in flight.

    k6 semantics: an iteration that is due while ``max_in_flight`` iterations are running is
    dropped (counted in ``dropped``), not queued -- queueing would make the load closed again.

    Two steps for an executor whose iterations begin a moment after they are admitted (on the
    event loop's next turn): ``admit`` reserves a seat, ``begin`` counts the iteration as
    started. Every due iteration ends up counted exactly once, in ``started`` or ``dropped``:
    ``drop_late`` counts one the generator reached too late to start, and ``abandon_in_flight``
    counts the admitted ones that never began (the test stopped first) as dropped.
    ``try_start`` is both steps at once.
    """

    def __init__(self, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ArrivalError(f"max in flight must be >= 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        #: Admitted and not finished: waiting to begin, or running.
        self.in_flight = 0
        #: Admitted, not begun yet.
        self.pending = 0
        self.started = 0
        #: Every due iteration that was not started, for whatever reason.
        self.dropped = 0
        #: The part of ``dropped`` that was due too long ago when the generator got to it: the
        #: load generator, not the in-flight cap (nor the platform), was the limit.
        self.dropped_late = 0
        #: The part of ``dropped`` that was admitted but cut off by the end of the test before
        #: it began.
        self.abandoned = 0

    def admit(self) -> bool:
        """Reserve a seat for one due iteration (True), or drop it at the cap (False, counted)."""
        if self.in_flight >= self.max_in_flight:
            self.dropped += 1
            return False
        self.in_flight += 1
        self.pending += 1
        return True

    def begin(self) -> None:
        """An admitted iteration began running."""
        self.pending = max(0, self.pending - 1)
        self.started += 1

    def try_start(self) -> bool:
        """Admit one due iteration and count it as started at once (True), or drop it (False)."""
        if not self.admit():
            return False
        self.begin()
        return True

    def drop_late(self) -> None:
        """Drop one due iteration the generator reached too late to start it (counted)."""
        self.dropped += 1
        self.dropped_late += 1

    def finish(self) -> None:
        """One begun iteration ended (normally, with an error, or killed)."""
        self.in_flight = max(0, self.in_flight - 1)

    def abandon_in_flight(self) -> None:
        """All iterations were killed at once (the test stopped); those admitted that never
        began are counted as dropped."""
        self.dropped += self.pending
        self.abandoned += self.pending
        self.pending = 0
        self.in_flight = 0
