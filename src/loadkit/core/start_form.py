"""A web UI start, checked before anything starts, with the words the command line uses.

Locust's ``POST /swarm`` copies the form's fields into the parsed options and starts: a Time Scale
of "abc" answered 500 ("An unknown error occurred."), a Time Scale of 0 or a CustomShape with an
empty Stage field started a run that stopped at its first tick, and the Baseline tab kept the
previous run's PASSED. Every field is checked here first, by the functions ``loadkit run`` uses
for the same input, so a refusal reads the same in both places (``--time-scale 0: must be a
finite number > 0``) and nothing is sent.

Pure: the caller passes the form's fields as text (a field the form did not send carries the
option's current value, since Locust keeps it for the next start) and what the picked shape plays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from loadkit import registry
from loadkit.core.arrival_schedule import (
    ArrivalError,
    RateStage,
    parse_max_in_flight,
    parse_rate,
    parse_rate_stages,
)
from loadkit.core.limits import LimitError, LoadSize, check_limits, check_numbers, parse_run_time
from loadkit.core.plan import resolve_stages
from loadkit.core.profiles import ProfileError, Stage, effective_stages, total_duration_s

#: The form fields this module reads (Locust's snake_case names of the kit's options).
FIELDS = ("time_scale", "user_scale", "stage", "run_time", "rate", "rate_stage", "max_in_flight")


class StartFormError(ValueError):
    """A start the kit refuses; the message is one line, as the command line would print it."""


@dataclass(frozen=True)
class ShapeChoice:
    """What the class picker's choice plays."""

    name: str
    """The class name shown in the picker (``Default`` for no shape)."""
    staged: bool = False
    """A kit shape that plays stages (every registry profile and CustomShape)."""
    profile: str | None = None
    """The registry profile it plays; None for CustomShape, a shape of your own, or Default."""
    stages: tuple[Stage, ...] = ()
    """A shape's own stages (not from the registry); empty otherwise."""


@dataclass(frozen=True)
class StartRequest:
    """What an accepted start asks for (the parts the run's plan reads from the form)."""

    run_time_s: float | None
    """The form's Run time: the run's planned end (None: the profile's end, or open-ended)."""
    stages: tuple[Stage, ...]
    """The stages the picked shape will play (empty for Default)."""


def check_scale_factor(option: str, value: float) -> float:
    """A ``--time-scale``/``--user-scale`` factor: finite and > 0 (the CLI's words)."""
    if not (math.isfinite(value) and value > 0):
        raise LimitError(f"{option} {value:g}: must be a finite number > 0")
    return value


def check_start_form(
    fields: Mapping[str, str],
    shape: ShapeChoice,
    *,
    processes: int = 1,
    exceed_limits: bool = False,
) -> StartRequest:
    """The start ``fields`` ask for, or :class:`StartFormError` naming the first bad value."""
    try:
        time_scale = _scale(fields, "time_scale")
        user_scale = _scale(fields, "user_scale")
        stages = _stages(fields, shape, time_scale, user_scale)
        run_time_text = fields.get("run_time", "").strip()
        run_time_s = float(parse_run_time(run_time_text)) if run_time_text else None
        rate_stages, rate, cap = _arrival(fields, time_scale)
        peak_rate = max([rate or 0.0, *(s.target_rate_per_s for s in rate_stages)]) or None
        size = LoadSize(
            processes=processes,
            users=max((s.target_users for s in stages), default=0) or None,
            run_time_s=run_time_s,
            profile_duration_s=max(
                total_duration_s(stages) if stages else 0.0,
                sum(s.duration_s for s in rate_stages),
            )
            or None,
            rate_per_s=peak_rate,
            max_in_flight=cap,
        )
        check_numbers(size)
        if not exceed_limits:
            check_limits(size)
    except (ProfileError, LimitError) as exc:
        raise StartFormError(str(exc)) from None
    return StartRequest(run_time_s=run_time_s, stages=stages)


def _scale(fields: Mapping[str, str], name: str) -> float:
    option = "--" + name.replace("_", "-")
    text = fields.get(name, "1")
    try:
        value = float(text)
    except ValueError:
        # argparse's words for the same value on the command line
        raise LimitError(f"argument {option}: invalid float value: {text!r}") from None
    return check_scale_factor(option, value)


def _stages(
    fields: Mapping[str, str], shape: ShapeChoice, time_scale: float, user_scale: float
) -> tuple[Stage, ...]:
    if not shape.staged:
        return ()
    specs = [fields.get("stage", "")]
    if shape.profile is None and shape.stages:
        return effective_stages(shape.stages, specs, time_scale=time_scale, user_scale=user_scale)
    profile = shape.profile if shape.profile in registry.PROFILES else None
    _, stages = resolve_stages(profile, specs, time_scale=time_scale, user_scale=user_scale)
    return stages


def _arrival(
    fields: Mapping[str, str], time_scale: float
) -> tuple[tuple[RateStage, ...], float | None, int | None]:
    rate_text = fields.get("rate", "").strip()
    cap_text = fields.get("max_in_flight", "").strip()
    rate_stages = parse_rate_stages([fields.get("rate_stage", "")], time_scale=time_scale)
    rate = parse_rate(rate_text) if rate_text else None
    cap = parse_max_in_flight(cap_text) if cap_text else None
    if rate_stages and rate is not None:
        raise ArrivalError("give --rate or --rate-stage, not both")
    return rate_stages, rate, cap
