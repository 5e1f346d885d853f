"""The run plan: everything decided before any load is sent, in one checked, serialisable object.

``loadkit run`` builds the plan in the parent process, where every input is checked and a bad one
is refused in one line, and writes it to ``plan.json`` in the run folder; the Locust process reads
that file and never recomputes what the parent decided (stages, profile, baseline, rate). Plain
``locust -f`` runs and web UI starts build the same object from Locust's options through the same
functions, so every way of starting a run ends up judged by the same plan.

The plan holds nothing secret: the API key travels in the child's environment only.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from loadkit import registry
from loadkit.core.arrival_schedule import ArrivalPlan, RateStage
from loadkit.core.baselines import Baseline, parse_baseline_data
from loadkit.core.profiles import (
    ProfileError,
    Stage,
    effective_stages,
    split_stage_specs,
    total_duration_s,
)
from loadkit.core.reference import ReferenceLookup

PLAN_SCHEMA: Final = "loadkit.plan/1"
PLAN_FILE: Final = "plan.json"
#: Environment variable that points the Locust process at the plan file.
PLAN_ENV: Final = "LOADKIT_PLAN"
#: How long requests in flight at the end of the load may take to finish (k6's gracefulStop):
#: long enough that the verdict's totals equal the server's count, short enough to bound a run.
DEFAULT_GRACEFUL_STOP_S: Final = 5.0


class PlanError(ProfileError):
    """A run that cannot be planned; the message is one line naming the culprit."""


@dataclass(frozen=True)
class ArrivalSpec:
    """The open-model rate of an arrival-rate scenario, resolved for the whole cluster."""

    rate_stages: tuple[RateStage, ...] = ()
    """k6-style ramping stages (durations already scaled); empty for a constant rate."""
    rate_per_s: float | None = None
    """The constant rate when there are no rate stages."""
    max_in_flight: int | None = None
    """Iterations allowed at once across the cluster; None: the default for the peak rate."""

    def arrival_plan(self, default_rate_per_s: float) -> ArrivalPlan:
        """The schedule's plan; ``default_rate_per_s`` applies when no rate was resolved."""
        return ArrivalPlan.from_stages(
            self.rate_stages,
            rate_per_s=self.rate_per_s if self.rate_per_s is not None else default_rate_per_s,
            max_in_flight=self.max_in_flight,
        )

    @property
    def duration_s(self) -> float | None:
        """Length of the rate stages; None for a constant (open-ended) rate."""
        return sum(s.duration_s for s in self.rate_stages) if self.rate_stages else None


@dataclass(frozen=True)
class RunPlan:
    """One run, decided: what runs, how long, how hard, judged against what, written where."""

    scenario: str | None
    """Registry name; None for a locustfile the registry does not know (then no baseline)."""
    profile: str
    """A registry profile name, or ``custom`` (``--stage``, or users and a run time)."""
    stages: tuple[Stage, ...]
    """The effective stages the shape plays (scaled); every kit run has some."""
    time_scale: float = 1.0
    user_scale: float = 1.0
    run_time_s: float | None = None
    """``-t``: ends the run earlier than the stages would; None: the stages' length."""
    arrival: ArrivalSpec | None = None
    baseline: Baseline | None = None
    results_dir: str | None = None
    graceful_stop_s: float = DEFAULT_GRACEFUL_STOP_S
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reference: ReferenceLookup | None = None
    """The run the baseline's ``[[regression]]`` criteria compare with, numbers included (the
    parent looks it up in the history); None when nobody looked."""

    @property
    def planned_duration_s(self) -> float | None:
        """Seconds of load the run is planned for: the stages, cut short by ``-t``."""
        lengths = [total_duration_s(self.stages)] if self.stages else []
        if self.run_time_s is not None:
            lengths.append(self.run_time_s)
        return min(lengths) if lengths else None

    # -- serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [[s.duration_s, s.target_users] for s in self.stages]
        if self.arrival is not None:
            data["arrival"] = {
                "rate_stages": [
                    [s.duration_s, s.target_rate_per_s] for s in self.arrival.rate_stages
                ],
                "rate_per_s": self.arrival.rate_per_s,
                "max_in_flight": self.arrival.max_in_flight,
            }
        if self.reference is not None:
            data["reference"] = self.reference.to_dict()
        if self.baseline is not None:
            data["baseline"] = {
                "path": self.baseline.path,
                "data": self.baseline.model_dump(mode="json", exclude_none=True),
            }
        return {"schema": PLAN_SCHEMA, "planned_duration_s": self.planned_duration_s, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunPlan:
        if data.get("schema") != PLAN_SCHEMA:
            raise PlanError(f"not a {PLAN_SCHEMA} document (schema {data.get('schema')!r})")
        arrival = data.get("arrival")
        baseline = data.get("baseline")
        reference = data.get("reference")
        return cls(
            scenario=data["scenario"],
            profile=str(data["profile"]),
            stages=tuple(Stage(float(d), int(u)) for d, u in data["stages"]),
            time_scale=float(data["time_scale"]),
            user_scale=float(data["user_scale"]),
            run_time_s=data["run_time_s"],
            arrival=None
            if arrival is None
            else ArrivalSpec(
                tuple(RateStage(float(d), float(r)) for d, r in arrival["rate_stages"]),
                arrival["rate_per_s"],
                arrival["max_in_flight"],
            ),
            baseline=None
            if baseline is None
            else parse_baseline_data(baseline["data"], str(data["scenario"]), baseline["path"]),
            results_dir=data["results_dir"],
            graceful_stop_s=float(data["graceful_stop_s"]),
            run_id=str(data["run_id"]),
            reference=None if reference is None else ReferenceLookup.from_dict(reference),
        )

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> RunPlan:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def with_results_dir(self, results_dir: Path | str) -> RunPlan:
        return replace(self, results_dir=str(results_dir))


# -- planning -------------------------------------------------------------------------------------


def resolve_stages(
    profile: str | None,
    stage_specs: Sequence[str] = (),
    *,
    time_scale: float = 1.0,
    user_scale: float = 1.0,
    recovery_s: float | None = None,
) -> tuple[str, tuple[Stage, ...]]:
    """``(profile name, effective stages)`` for a named profile and/or ``--stage`` specs.

    Custom specs replace the named profile's stages (the run is then judged as ``custom``); a
    name is still checked, so a typo never passes silently. One of the two must be given.
    ``recovery_s`` replaces the profile's recovery hold (``--recovery``; unscaled seconds).
    """
    if profile is not None and profile not in registry.PROFILES:
        raise PlanError(registry.unknown_name("profile", profile, tuple(registry.PROFILES)))
    specs = split_stage_specs(stage_specs)
    if profile is None and not specs:
        names = ", ".join(registry.PROFILES)
        raise PlanError(f"no profile given: name one of {names} or pass --stage")
    try:
        base = registry.PROFILES[profile].played_stages(recovery_s) if profile is not None else ()
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    stages = effective_stages(base, specs, time_scale=time_scale, user_scale=user_scale)
    return (registry.CUSTOM_PROFILE if specs else str(profile)), stages


def hosting_stages(stages: tuple[Stage, ...], hosts: int) -> tuple[Stage, ...]:
    """An arrival-rate run's users only host the rate: hold ``hosts`` of them for the profile's
    whole length (the rate, not the user count, sets the load; ``--rate-stage`` shapes it)."""
    length_s = sum(stage.duration_s for stage in stages)
    return (Stage(0.0, hosts), Stage(length_s, hosts))


def closed_stages(
    users: int, run_time_s: float, spawn_rate_per_s: float | None = None
) -> tuple[Stage, ...]:
    """``-u N -t D [-r R]`` as stages: a ramp at ``R`` users/s (none without it), then hold.

    The kit plays every run through its shape, so ``-u``/``-t`` runs get the same timeline, the
    same steady window and the same exact end as profile runs.
    """
    if spawn_rate_per_s is None or spawn_rate_per_s <= 0 or users <= 0:
        return (Stage(0.0, users), Stage(run_time_s, users))
    ramp_s = min(run_time_s, users / spawn_rate_per_s)
    return (Stage(ramp_s, users), Stage(run_time_s - ramp_s, users))


def check_duration(run_time_s: float | None, what: str = "--run-time") -> float | None:
    """A run time must be finite and > 0: a run always stops by itself."""
    if run_time_s is None:
        return None
    if not math.isfinite(run_time_s) or run_time_s <= 0:
        raise PlanError(f"{what} must be a duration > 0 (a run always ends by itself)")
    return run_time_s


def scenario_baseline_path(scenario: str | None, explicit: Path | None) -> Path | None:
    """The baseline file a run is judged against: the one given, else the scenario's default."""
    if explicit is not None:
        return explicit
    if scenario is None:
        return None
    from loadkit.core.baselines import default_baseline_path

    return default_baseline_path(scenario)
