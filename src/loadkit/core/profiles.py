"""Load profiles as data: named sequences of k6-style stages, and the pure arithmetic on them.

A profile is a tuple of :class:`Stage`. The semantics are k6's ``stages`` exactly: each stage
ramps the user count linearly from the previous stage's target (0 before the first stage) to its
own target over its duration; a zero-length stage is an instant jump. Keeping profiles as data
(and this module free of Locust) lets the shape, the CLI, the baseline windows and the end-of-run
reports all agree on one timeline, and lets that timeline be tested without running anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loadkit.core.durations import DurationError, parse_duration

#: Slack when comparing a time with a stage boundary: scaled durations carry float noise
#: (0.3 + 0.3 + 0.3 = 0.8999999999999999), which must not end a profile early.
BOUNDARY_EPSILON_S = 1e-9


class ProfileError(ValueError):
    """A profile, stage, duration or scale factor that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Stage:
    """One k6 stage: ramp linearly to ``target_users`` over ``duration_s`` seconds.

    Validated on construction so a bad stage fails where it is written, not mid-run.
    """

    duration_s: float
    target_users: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.duration_s) or self.duration_s < 0:
            raise ProfileError(
                f"stage duration must be a finite number >= 0 s, got {self.duration_s}"
            )
        if isinstance(self.target_users, bool) or not isinstance(self.target_users, int):
            raise ProfileError(
                f"stage target must be a whole number of users, got {self.target_users!r}"
            )
        if self.target_users < 0:
            raise ProfileError(f"stage target must be >= 0 users, got {self.target_users}")


def constant(users: int, duration_s: float) -> tuple[Stage, ...]:
    """k6's ``--vus N --duration D``: N users from the first instant, held for D seconds.

    Modelled as a zero-length jump to N followed by a plateau at N, so the plateau is the whole
    run and :func:`steady_windows` measures all of it.
    """
    return (Stage(0.0, users), Stage(duration_s, users))


def parse_stage(spec: str) -> Stage:
    """A :class:`Stage` from k6's ``--stage`` syntax ``DURATION:TARGET`` (``30s:10``)."""
    text = spec.strip()
    if ":" not in text:
        raise ProfileError(
            f"invalid stage {spec!r}: missing ':' (expected DURATION:USERS, e.g. 30s:10)"
        )
    duration_text, _, users_text = text.partition(":")
    try:
        duration_s = parse_duration(duration_text)
    except DurationError as exc:
        raise ProfileError(f"invalid stage {spec!r}: {exc}") from None
    users_text = users_text.strip()
    if not re.fullmatch(r"[+-]?\d+", users_text):
        raise ProfileError(
            f"invalid stage {spec!r}: target {users_text!r} is not a whole number of users"
        )
    users = int(users_text)
    if users < 0:
        raise ProfileError(f"invalid stage {spec!r}: target users must be >= 0, got {users}")
    return Stage(duration_s, users)


def split_stage_specs(specs: Iterable[str]) -> list[str]:
    """Stage specs from repeated options and/or comma-separated lists (``LOADKIT_STAGES``).

    Empty items are dropped, so an empty web-UI field or env var means "no custom stages".
    """
    return [part.strip() for spec in specs for part in spec.split(",") if part.strip()]


def _round_half_up(value: float) -> int:
    """Nearest integer, halves up (Python's ``round`` is banker's rounding: 0.5 -> 0)."""
    return math.floor(value + 0.5)


def scale(
    stages: Sequence[Stage], *, time_scale: float = 1.0, user_scale: float = 1.0
) -> tuple[Stage, ...]:
    """The profile with every duration multiplied by ``time_scale`` and target by ``user_scale``.

    Targets are rounded to the nearest user, but a non-zero target never becomes 0, so a scaled
    smoke test still sends traffic. This is how CI runs a 1 h profile in a minute.
    """
    for name, factor in (("time_scale", time_scale), ("user_scale", user_scale)):
        if not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
            raise ProfileError(f"{name} must be a finite number > 0, got {factor!r}")
    return tuple(
        Stage(
            stage.duration_s * time_scale,
            max(1, _round_half_up(stage.target_users * user_scale)) if stage.target_users else 0,
        )
        for stage in stages
    )


def total_duration_s(stages: Sequence[Stage]) -> float:
    """Length of the profile in seconds (summed in stage order, like :func:`users_at`)."""
    total_s = 0.0
    for stage in stages:
        total_s += stage.duration_s
    return total_s


def stage_ends_s(stages: Sequence[Stage]) -> list[float]:
    """The time at which each stage ends, in seconds from the start (same float arithmetic
    as :func:`users_at`, so boundaries compare exactly)."""
    ends: list[float] = []
    end_s = 0.0
    for stage in stages:
        end_s += stage.duration_s
        ends.append(end_s)
    return ends


def users_at(stages: Sequence[Stage], elapsed_s: float) -> int | None:
    """Target user count ``elapsed_s`` seconds into the profile; None once the profile is over.

    Linear interpolation within a stage, rounded to the nearest user (halves up). At a stage
    boundary the stage that ends there wins, except that a zero-length stage takes effect at its
    own instant (so ``constant()`` profiles are at N from t = 0). The end of the last stage still
    counts as inside the profile. Boundaries are compared with ``BOUNDARY_EPSILON_S`` of slack
    so scaled durations' float noise does not move them. Negative times are read as 0.
    """
    elapsed_s = max(0.0, elapsed_s)
    previous = 0
    start_s = 0.0
    for stage in stages:
        end_s = start_s + stage.duration_s
        if elapsed_s <= end_s + BOUNDARY_EPSILON_S:
            if stage.duration_s == 0:
                return stage.target_users
            fraction = min(1.0, (elapsed_s - start_s) / stage.duration_s)
            return _round_half_up(previous + (stage.target_users - previous) * fraction)
        previous = stage.target_users
        start_s = end_s
    return None


def _plateaus(stages: Sequence[Stage]) -> list[tuple[float, float, int]]:
    """(start_s, end_s, users) of each maximal stretch at a constant, non-zero target."""
    windows: list[tuple[float, float, int]] = []
    previous = 0
    start_s = 0.0
    for stage in stages:
        end_s = start_s + stage.duration_s
        flat = stage.target_users == previous and stage.target_users > 0
        if flat and stage.duration_s > 0:
            if windows and windows[-1][1] == start_s and windows[-1][2] == stage.target_users:
                windows[-1] = (windows[-1][0], end_s, stage.target_users)
            else:
                windows.append((start_s, end_s, stage.target_users))
        previous = stage.target_users
        start_s = end_s
    return windows


def steady_windows(stages: Sequence[Stage]) -> list[tuple[float, float]]:
    """The (start_s, end_s) windows where the target is constant and non-zero; ramps excluded.

    These are the spans over which a throughput or latency number means "at N users". The
    windows are in profile time: the runner still needs a moment to spawn users after a jump.
    """
    return [(start_s, end_s) for start_s, end_s, _ in _plateaus(stages)]


def main_steady_window(stages: Sequence[Stage]) -> tuple[float, float] | None:
    """The longest plateau at the highest plateau user count (earliest on a tie).

    None when the profile never holds a level (a pure ramp, or the guide's spike).
    """
    windows = _plateaus(stages)
    if not windows:
        return None
    start_s, end_s, _ = max(windows, key=lambda w: (w[2], w[1] - w[0], -w[0]))
    return (start_s, end_s)


def effective_stages(
    base: Sequence[Stage],
    stage_specs: Sequence[str] = (),
    *,
    time_scale: float = 1.0,
    user_scale: float = 1.0,
) -> tuple[Stage, ...]:
    """The stages a run actually uses: custom ``--stage`` specs replace ``base``, then scaling.

    Scaling applies to custom stages too, so one code path serves every way a profile is given.
    """
    specs = split_stage_specs(stage_specs)
    stages = tuple(parse_stage(spec) for spec in specs) if specs else tuple(base)
    return scale(stages, time_scale=time_scale, user_scale=user_scale)
