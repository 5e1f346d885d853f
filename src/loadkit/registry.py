"""Every scenario and every load profile, once.

The CLI and its help, the baseline checker, the verdict, the shapes, the web UI's class picker and
the CI matrix all read these two tables, so adding a scenario is a locustfile, a baseline file and
one ``ScenarioSpec`` here, and adding a profile is one ``ProfileSpec`` here (CONTRIBUTING.md).
No Locust in this module: the parent process reads it too.

Default loads come from the load-testing guide's "Expected Performance" (10 concurrent uploads,
100 concurrent users for the full system, 50 calls/s of scheduling ...); profile stages from its
k6 profiles.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from loadkit import endpoints
from loadkit.core.profiles import Stage, constant

REPO_ROOT: Final = Path(__file__).resolve().parents[2]

#: The profile name of a run whose stages came from ``--stage``: judged as ``custom``.
CUSTOM_PROFILE: Final = "custom"


class UnknownNameError(ValueError):
    """An unknown scenario or profile; the message is one line with the known names."""


class UnknownScenarioError(UnknownNameError):
    pass


class UnknownProfileError(UnknownNameError):
    pass


def unknown_name(what: str, got: object, known: list[str] | tuple[str, ...]) -> str:
    """``unknown scenario 'helth' (did you mean 'health'? choose from: ...)``."""
    close = difflib.get_close_matches(str(got), list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {what} {got!r} ({hint}choose from: {', '.join(known)})"


# -- scenarios ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Users:
    """A closed model: this many concurrent users, each waiting for its reply."""

    users: int

    def describe(self) -> str:
        return f"{self.users} users"


@dataclass(frozen=True)
class Rate:
    """An open model: iterations started per second whatever the replies do (``--rate``)."""

    rate_per_s: float
    unit: str = "iterations"

    def describe(self) -> str:
        return f"{self.rate_per_s:g} {self.unit}/s"


@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario: a locustfile, what it proves, its default load and its request names."""

    name: str
    purpose: str
    load: Users | Rate
    requests: tuple[str, ...]
    """Stats names the scenario records: the only request names its baseline may judge."""

    @property
    def locustfile(self) -> Path:
        """``locustfiles/<name>.py``, or the same name under ``LOADKIT_LOCUSTFILES_DIR``."""
        return locustfiles_dir() / f"{self.name}.py"

    @property
    def is_arrival_rate(self) -> bool:
        return isinstance(self.load, Rate)

    @property
    def default_users(self) -> int:
        """Users a run starts when nothing else is said (one per process hosts a rate)."""
        return self.load.users if isinstance(self.load, Users) else 1

    @property
    def default_rate_per_s(self) -> float | None:
        return self.load.rate_per_s if isinstance(self.load, Rate) else None


SCENARIOS: Final[Mapping[str, ScenarioSpec]] = MappingProxyType(
    {
        s.name: s
        for s in (
            ScenarioSpec(
                "health",
                "liveness endpoint at the highest rate the generator can drive",
                Users(20),
                (endpoints.HEALTH_CHECK,),
            ),
            ScenarioSpec(
                "bulk_import",
                "concurrent CSV uploads of 1000 contacts, each followed to completion",
                Users(10),
                (
                    endpoints.CONTACTS_IMPORT_REQUEST,
                    endpoints.IMPORT_STATUS_REQUEST,
                    endpoints.IMPORT_PROCESSING_ROW,
                ),
            ),
            ScenarioSpec(
                "analytics",
                "dashboard queries over varied ranges and campaigns (~100 rps)",
                Users(20),
                (endpoints.ANALYTICS_DASHBOARD_REQUEST,),
            ),
            ScenarioSpec(
                "scheduling",
                "calls scheduled at a steady arrival rate; the platform's queue must keep up",
                Rate(50, "calls"),
                (endpoints.SCHEDULE_CALL, endpoints.intended(endpoints.SCHEDULE_CALL)),
            ),
            ScenarioSpec(
                "full_system",
                "schedule, retry and dashboard mix with think time",
                Users(100),
                (
                    endpoints.SCHEDULE_CALL,
                    endpoints.RETRY_CALL,
                    endpoints.ANALYTICS_DASHBOARD_REQUEST,
                ),
            ),
        )
    }
)


def get_scenario(name: str) -> ScenarioSpec:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(unknown_name("scenario", name, tuple(SCENARIOS))) from None


def scenario_of_locustfile(path: str | os.PathLike[str]) -> str | None:
    """The scenario a locustfile plays, from its file name (``locustfiles/health.py``)."""
    stem = Path(path).stem
    return stem if stem in SCENARIOS else None


def locustfiles_dir() -> Path:
    """``LOADKIT_LOCUSTFILES_DIR`` if set (your own copies), else the kit's ``locustfiles/``."""
    return Path(os.environ.get("LOADKIT_LOCUSTFILES_DIR") or REPO_ROOT / "locustfiles")


def shapes_dir() -> Path:
    """``LOADKIT_SHAPES_DIR`` if set, else the kit's ``shapes/`` (one file per profile, for
    plain ``locust -f locustfiles/health.py,shapes/spike.py``)."""
    return Path(os.environ.get("LOADKIT_SHAPES_DIR") or REPO_ROOT / "shapes")


# -- profiles -------------------------------------------------------------------------------------

#: The end-of-run question a profile exists to answer (``cli.profile_summary``).
ReportKind = Literal["spike", "soak", "stress"]


@dataclass(frozen=True)
class ProfileSpec:
    """One load profile: k6-style stages, what a run with it proves, and its k6 equivalent."""

    name: str
    guide_stages: tuple[Stage, ...]
    """The stages as the load-testing guide gives them."""
    purpose: str
    k6: str
    report: ReportKind | None = None
    recovery_s: float = 0.0
    """The kit's addition to the guide's stages: a steady tail this long at the load the
    profile ends on, so a spike has an "after" in which recovery can be measured (the guide's
    spike ends on a ramp down). ``--recovery`` changes it; 0 plays the guide's stages alone."""

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages a run plays by default: the guide's, then the recovery hold."""
        return self.played_stages()

    def played_stages(self, recovery_s: float | None = None) -> tuple[Stage, ...]:
        """The guide's stages plus a hold of ``recovery_s`` (default: the profile's own) at the
        last stage's load; ``ValueError`` for a hold on a profile that has none, or < 0."""
        hold_s = self.recovery_s if recovery_s is None else recovery_s
        if hold_s < 0:
            raise ValueError(f"--recovery must be >= 0 s, got {hold_s:g}")
        if recovery_s and not self.recovery_s:
            raise ValueError(
                f"--recovery applies to profiles with a recovery hold "
                f"({', '.join(p.name for p in PROFILES.values() if p.recovery_s)}), "
                f"not {self.name}"
            )
        if not hold_s or not self.guide_stages:
            return self.guide_stages
        return (*self.guide_stages, Stage(hold_s, self.guide_stages[-1].target_users))

    @property
    def shape_class_name(self) -> str:
        """The class name the web UI's class picker shows: ``SpikeShape``."""
        return "".join(part.capitalize() for part in self.name.split("_")) + "Shape"


PROFILES: Final[Mapping[str, ProfileSpec]] = MappingProxyType(
    {
        p.name: p
        for p in (
            ProfileSpec(
                "smoke",
                constant(1, 30.0),
                "One user for 30 s: the scenario runs end to end without errors.",
                "k6 run --vus 1 --duration 30s",
            ),
            ProfileSpec(
                "average",
                constant(10, 300.0),
                "Ten users for 5 min: latency and errors under normal daily load.",
                "k6 run --vus 10 --duration 5m",
            ),
            ProfileSpec(
                "stress",
                constant(50, 600.0),
                "Fifty users for 10 min: where latency or errors break down under heavy load.",
                "k6 run --vus 50 --duration 10m",
                report="stress",
            ),
            ProfileSpec(
                "spike",
                (Stage(30.0, 1), Stage(30.0, 100), Stage(30.0, 1)),
                "1 -> 100 -> 1 users in 90 s, then 30 s held at 1 user: the system survives a "
                "sudden burst and recovers (the hold is the kit's: --recovery 0s drops it).",
                "k6 run --stage 30s:1 --stage 30s:100 --stage 30s:1 --stage 30s:1",
                report="spike",
                recovery_s=30.0,
            ),
            ProfileSpec(
                "soak",
                constant(20, 3600.0),
                "Twenty users for 1 h: no drift in latency, errors or memory over time.",
                "k6 run --vus 20 --duration 1h",
                report="soak",
            ),
        )
    }
)

#: Every name a baseline's ``profiles`` list may use: the named profiles and ``custom``.
PROFILE_NAMES: Final = (*PROFILES, CUSTOM_PROFILE)


def get_profile(name: str) -> ProfileSpec:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfileError(unknown_name("profile", name, tuple(PROFILES))) from None
