"""One LoadTestShape that plays any profile (a tuple of stages), plus its command-line options.

Each file in ``shapes/`` subclasses :class:`StagedShape` and only sets ``stages``; the tick logic
lives here once. The run's effective stages honour ``--time-scale``, ``--user-scale`` and
``--stage`` (or ``LOADKIT_TIME_SCALE``, ``LOADKIT_USER_SCALE``, ``LOADKIT_STAGES``), read from the
runner's parsed options when the test starts, so CI and people scale profiles the same way.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import configargparse
from locust import LoadTestShape
from locust.argument_parser import LocustArgumentParser

from loadkit import registry
from loadkit.core.durations import DurationError, parse_duration
from loadkit.core.plan import hosting_stages
from loadkit.core.profiles import (
    BOUNDARY_EPSILON_S,
    ProfileError,
    Stage,
    effective_stages,
    parse_stage,
    split_stage_specs,
    stage_ends_s,
    total_duration_s,
    users_at,
)
from loadkit.plugin.context import planned_run
from loadkit.plugin.locust_adapter import has_option

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileOptions:
    """The profile knobs of one run, as read from Locust's parsed options (defaults: no change)."""

    time_scale: float = 1.0
    user_scale: float = 1.0
    stage_specs: tuple[str, ...] = ()
    recovery_s: float | None = None
    """``--recovery``: the profile's recovery hold in seconds (None: the profile's own)."""


def _scale_factor(value: Any, name: str) -> float:
    """A scale factor from the CLI, env or the web UI form (which may hand over a string)."""
    if value is None or value == "":
        return 1.0
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise ProfileError(f"{name} must be a number > 0, got {value!r}") from None
    if not factor > 0 or factor == float("inf"):
        raise ProfileError(f"{name} must be a finite number > 0, got {value!r}")
    return factor


def read_profile_options(parsed_options: Any) -> ProfileOptions:
    """The profile knobs from Locust's ``parsed_options`` (None or missing attributes = defaults).

    ``stage`` may be a list (``--stage`` repeated), a comma-separated string (the web UI form
    sends one when no stage was given on the command line) or None.
    """
    stage = getattr(parsed_options, "stage", None)
    if stage is None:
        raw_specs: list[str] = []
    elif isinstance(stage, str):
        raw_specs = [stage]
    else:
        raw_specs = [str(item) for item in stage]
    recovery = getattr(parsed_options, "recovery", None)
    try:
        recovery_s = parse_duration(recovery) if recovery not in (None, "") else None
    except DurationError as exc:
        raise ProfileError(f"recovery: {exc}") from None
    return ProfileOptions(
        time_scale=_scale_factor(getattr(parsed_options, "time_scale", None), "time_scale"),
        user_scale=_scale_factor(getattr(parsed_options, "user_scale", None), "user_scale"),
        stage_specs=tuple(split_stage_specs(raw_specs)),
        recovery_s=recovery_s,
    )


def _positive_float(text: str) -> float:
    """argparse type: a scale factor, rejected at parse time so a typo never reaches the run."""
    try:
        return _scale_factor(text, "scale factor")
    except ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _stage_specs(text: str) -> str:
    """argparse type: validate ``30s:10`` (or a comma-separated list) but keep it as text,
    so the web UI can show and edit it like any other string option."""
    try:
        for spec in split_stage_specs([text]):
            parse_stage(spec)
    except ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--time-scale``, ``--user-scale`` and ``--stage`` on a Locust parser.

    Call it from an ``@events.init_command_line_parser`` listener. Safe to call twice (the kit's
    plugin and a locustfile may both do it). On a LocustArgumentParser the options also appear in
    the web UI; on a configargparse parser they read ``LOADKIT_*`` environment variables; a plain
    argparse parser gets the bare options.
    """
    if has_option(parser, "--time-scale"):
        return
    is_configargparse = isinstance(parser, configargparse.ArgumentParser)

    def extras(env_var: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if isinstance(parser, LocustArgumentParser):
            kwargs["include_in_web_ui"] = True
        if is_configargparse:
            kwargs["env_var"] = env_var
        return kwargs

    parser.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="FACTOR",
        help="Multiply every stage duration of the load profile (0.1 = ten times shorter). "
        "[env var: LOADKIT_TIME_SCALE]",
        **extras("LOADKIT_TIME_SCALE"),
    )
    parser.add_argument(
        "--user-scale",
        type=_positive_float,
        default=1.0,
        metavar="FACTOR",
        help="Multiply every stage's target user count (a non-zero target stays >= 1). "
        "[env var: LOADKIT_USER_SCALE]",
        **extras("LOADKIT_USER_SCALE"),
    )
    parser.add_argument(
        "--recovery",
        default=None,
        metavar="DURATION",
        help="spike: seconds held at the pre-spike load after the surge, where recovery is "
        "judged (default 30s; 0s: the guide's stages only). [env var: LOADKIT_RECOVERY]",
        **extras("LOADKIT_RECOVERY"),
    )
    parser.add_argument(
        "--stage",
        action="append",
        type=_stage_specs,
        default=None,
        metavar="DURATION:USERS",
        help="k6-style stage, repeatable or comma-separated (30s:10); replaces the profile's "
        "stages. [env var: LOADKIT_STAGES, comma separated]",
        **extras("LOADKIT_STAGES"),
    )


class StagedShape(LoadTestShape):
    """Plays a profile's stages with k6 semantics; subclasses name the profile and say why.

    ``profile`` names a registry profile (the verdict judges the run as that profile, by this
    name, never by the class name); ``stages``, when set, replaces the registry's stages (a
    profile of your own, judged as ``custom``). A run of ``loadkit run`` plays the stages of its
    plan instead (``uses_plan``), so the parent's decision is never recomputed here.

    Abstract, because Locust instantiates every non-abstract shape visible in a locustfile's
    namespace, and every file in ``shapes/`` imports this class.

    Locust calls :meth:`tick` about once per second (on the master only, in distributed runs).
    Each tick asks for ``users_at(stages, elapsed)`` users, with two additions that make the run
    follow the profile rather than a coarse sampling of it:

    * a stage's end target is never skipped: if a tick lands after a stage boundary that the
      previous tick had not reached, and that boundary's target is not the count last requested,
      the tick requests the boundary's target instead of the interpolated count (a spike's peak
      of 100 is requested even when no tick falls on its exact instant; the ramp after it starts
      one tick later). The profile's final target is sent the same way, so a run may last up to
      one tick past the profile's end. With ticks that fall on the stage boundaries this changes
      nothing: the timeline is then exactly ``users_at``;
    * the spawn rate is the gap to close (at least 1/s): the change from the count last
      requested, or the runner's actual distance from the target if that is larger (a lagging
      runner). Locust's dispatcher starts ``floor(rate)`` users per iteration, so the whole gap
      goes in one batch and the target is reached within the tick. Above 100/s Locust logs a
      "very high spawn rate" warning, which is what the profile asked for.

    Stages shorter than a tick (about 1 s) cannot be reproduced: keep scaled stages >= 1 s.
    """

    abstract = True
    profile: ClassVar[str | None] = None
    stages: ClassVar[tuple[Stage, ...]] = ()
    uses_plan: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._effective: tuple[Stage, ...] | None = None
        self._boundaries_s: list[tuple[float, int]] = []
        self._last_elapsed_s: float | None = None
        self._last_tick: tuple[int, float] | None = None

    def reset_time(self) -> None:
        """Called by Locust when a test starts: restart the clock and resolve the stages once."""
        super().reset_time()
        self._resolve()

    @property
    def effective_stages(self) -> tuple[Stage, ...]:
        """The stages this run plays: custom ``--stage`` or the class's, then scaled."""
        return self._effective if self._effective is not None else self._resolve()

    def _resolve(self) -> tuple[Stage, ...]:
        """Read the options and cache the effective stages and their boundaries.

        A bad value (only possible from the web UI form; the CLI validates at parse time) is
        logged and gives an empty profile, which stops the test at the first tick.
        """
        environment = getattr(self.runner, "environment", None)
        parsed = getattr(environment, "parsed_options", None)
        planned = planned_run(environment)
        try:
            if self.uses_plan and planned is not None:
                stages = planned.stages
            else:
                options = read_profile_options(parsed)
                stages = effective_stages(
                    self.base_stages(options.recovery_s),
                    options.stage_specs,
                    time_scale=options.time_scale,
                    user_scale=options.user_scale,
                )
                stages = _hosting_if_arrival_rate(environment, stages)
        except ProfileError as exc:
            logger.error("%s: %s; stopping the test", type(self).__name__, exc)
            stages = ()
        self._effective = stages
        # The value that holds right after each boundary: a jump's new target, a ramp's end.
        ends_s = stage_ends_s(stages)
        self._boundaries_s = [
            (end_s, stage.target_users)
            for i, (end_s, stage) in enumerate(zip(ends_s, stages, strict=True))
            if i + 1 == len(stages) or ends_s[i + 1] != end_s
        ]
        self._last_elapsed_s = None
        self._last_tick = None
        if stages:
            logger.info(
                "%s: %d stages, %.1f s, peak %d users",
                type(self).__name__,
                len(stages),
                total_duration_s(stages),
                max(stage.target_users for stage in stages),
            )
        return stages

    @classmethod
    def base_stages(cls, recovery_s: float | None = None) -> tuple[Stage, ...]:
        """The class's own stages, else its registry profile's (with ``recovery_s``'s hold)."""
        if cls.stages or cls.profile is None:
            return cls.stages
        try:
            return registry.get_profile(cls.profile).played_stages(recovery_s)
        except ValueError as exc:
            raise ProfileError(str(exc)) from None

    def run_profile_name(self, options: ProfileOptions) -> str:
        """The profile this run is judged as: the registry name, or ``custom`` when ``--stage``
        or the class's own stages replaced the registry's."""
        planned = planned_run(getattr(self.runner, "environment", None))
        if self.uses_plan and planned is not None:
            return planned.profile
        if options.stage_specs or self.stages or self.profile not in registry.PROFILES:
            return registry.CUSTOM_PROFILE
        return str(self.profile)

    def _skipped_boundary_target(self, elapsed_s: float) -> int | None:
        """Target of the latest stage boundary passed since the previous tick, if that target
        was not already the last count requested (then nothing was skipped); else None."""
        previous_s = self._last_elapsed_s
        last_users = self._last_tick[0] if self._last_tick is not None else None
        skipped = [
            target
            for end_s, target in self._boundaries_s
            if (previous_s is None or end_s > previous_s)
            and end_s < elapsed_s - BOUNDARY_EPSILON_S
            and target != last_users
        ]
        return skipped[-1] if skipped else None

    def _current_users(self) -> int | None:
        """The runner's actual user count, when there is a runner (None in unit tests)."""
        runner = self.runner
        if runner is None:
            return None
        count = getattr(runner, "user_count", None)
        return count if isinstance(count, int) else None

    def tick(self) -> tuple[int, float] | None:
        """``(users, spawn_rate_per_s)`` for now, or None once the profile is over."""
        stages = self.effective_stages
        elapsed_s = self.get_run_time()
        target = self._skipped_boundary_target(elapsed_s)
        if target is None:
            target = users_at(stages, elapsed_s)
        self._last_elapsed_s = elapsed_s
        if target is None:
            return None
        if self._last_tick is not None and self._last_tick[0] == target:
            # An unchanged tuple makes Locust skip start(): no extra "spawning complete" events.
            return self._last_tick
        gap = abs(target - (self._last_tick[0] if self._last_tick is not None else 0))
        current = self._current_users()
        if current is not None:
            gap = max(gap, abs(target - current))
        self._last_tick = (target, float(max(1, gap)))
        return self._last_tick


def _hosting_if_arrival_rate(environment: Any, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """An arrival-rate scenario's users only host its rate, as in ``loadkit run``: the profile
    gives the run's length, and one user per load generator holds from the start (a spike's
    0 -> 1 user ramp would otherwise send nothing for 30 s, then the whole rate at once)."""
    runner = getattr(environment, "runner", None)
    if runner is None or not stages:
        return stages
    from loadkit.plugin.arrival import arrival_classes

    if not arrival_classes(environment):
        return stages
    hosts = max(1, int(getattr(runner, "worker_count", 0) or 0))
    return hosting_stages(stages, hosts)


def make_shape_class(profile: str | Sequence[Stage]) -> type[StagedShape]:
    """A concrete StagedShape subclass for a registry profile name, or for stages of your own.

    For runners that use Locust as a library (``Environment(shape_class=cls())``) and for the
    web UI's class picker (one class per registry profile). Raises UnknownNameError for an
    unknown name.
    """
    if isinstance(profile, str):
        spec = registry.get_profile(profile)
        namespace: dict[str, Any] = {"profile": spec.name, "__doc__": spec.purpose}
        class_name = spec.shape_class_name
    else:
        stages = tuple(profile)
        class_name = "CustomStagesShape"
        doc = "Custom stages: " + ", ".join(f"{s.duration_s:g}s:{s.target_users}" for s in stages)
        namespace = {"stages": stages, "__doc__": doc}
    namespace.update({"abstract": False, "__module__": __name__})
    return type(class_name, (StagedShape,), namespace)
