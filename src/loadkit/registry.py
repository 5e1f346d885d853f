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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

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
    locustfile_path: Path | None = None
    """A locustfile of its own (a registry file's entry); None: ``locustfiles/<name>.py``."""
    baseline_path: Path | None = None
    """A baseline of its own (a registry file's entry); None: ``baselines/<name>.toml``."""

    @property
    def locustfile(self) -> Path:
        """Its own file, else ``locustfiles/<name>.py`` (or under ``LOADKIT_LOCUSTFILES_DIR``)."""
        if self.locustfile_path is not None:
            return self.locustfile_path
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


_scenarios: dict[str, ScenarioSpec] = {
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
SCENARIOS: Final[Mapping[str, ScenarioSpec]] = MappingProxyType(_scenarios)


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


_profiles: dict[str, ProfileSpec] = {
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
PROFILES: Final[Mapping[str, ProfileSpec]] = MappingProxyType(_profiles)


class _ProfileNames(Sequence[str]):
    """Every name a baseline's ``profiles`` list may use: the named profiles and ``custom``
    (a live view: profiles added by a registry file count too)."""

    def _names(self) -> tuple[str, ...]:
        return (*_profiles, CUSTOM_PROFILE)

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(_profiles) + 1

    def __contains__(self, name: object) -> bool:
        return name == CUSTOM_PROFILE or name in _profiles


PROFILE_NAMES: Final = _ProfileNames()


def get_profile(name: str) -> ProfileSpec:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfileError(unknown_name("profile", name, tuple(PROFILES))) from None


# -- your own scenarios and profiles: a registry file ---------------------------------------------

#: A TOML file (or several, separated by ``os.pathsep``) adding scenarios and profiles, so a team
#: adds its own without editing the kit: ``[[scenario]]`` and ``[[profile]]`` tables with the
#: same fields as the entries above (CONTRIBUTING.md shows one).
REGISTRY_ENV: Final = "LOADKIT_REGISTRY"


class RegistryFileError(ValueError):
    """A registry file that cannot be used; the message is one line: ``file: key: problem``."""


def load_registry_files(paths: str | None = None) -> list[Path]:
    """Add the scenarios and profiles of ``LOADKIT_REGISTRY`` (or ``paths``); returns the files.

    Called once by the ``loadkit`` command and by the kit's Locust plugin, before anything
    reads the tables. Names may not repeat one the kit or another file already has.
    """
    text = os.environ.get(REGISTRY_ENV, "") if paths is None else paths
    files = [Path(part) for part in text.split(os.pathsep) if part.strip()]
    for path in files:
        _load_registry_file(path)
    return files


def _load_registry_file(path: Path) -> None:
    import tomllib

    from loadkit.core.durations import DurationError
    from loadkit.core.profiles import ProfileError, parse_stage

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryFileError(f"{path}: cannot read the registry file: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RegistryFileError(f"{path}: not a TOML file: {exc}") from None
    unknown = set(data) - {"scenario", "profile"}
    if unknown:
        raise RegistryFileError(
            f"{path}: unknown table(s) {sorted(unknown)}: use [[scenario]], [[profile]]"
        )
    for i, entry in enumerate(data.get("scenario", [])):
        where = f"{path}: scenario[{i}]"
        spec = _scenario_entry(entry, path.parent, where)
        if spec.name in _scenarios:
            raise RegistryFileError(f"{where}.name: {spec.name!r} is already a scenario")
        _scenarios[spec.name] = spec
    for i, entry in enumerate(data.get("profile", [])):
        where = f"{path}: profile[{i}]"
        name = _text(entry, "name", where)
        if name in _profiles or name == CUSTOM_PROFILE:
            raise RegistryFileError(f"{where}.name: {name!r} is already a profile")
        stages_text = entry.get("stages")
        if not isinstance(stages_text, list) or not stages_text:
            raise RegistryFileError(f'{where}.stages: a list of k6 stages, e.g. ["30s:10"]')
        try:
            stages = tuple(parse_stage(str(spec)) for spec in stages_text)
        except (ProfileError, DurationError) as exc:
            raise RegistryFileError(f"{where}.stages: {exc}") from None
        report = entry.get("report")
        if report not in (None, "spike", "soak", "stress"):
            raise RegistryFileError(f"{where}.report: one of spike, soak, stress, not {report!r}")
        k6 = " ".join(f"--stage {spec}" for spec in stages_text)
        _profiles[name] = ProfileSpec(
            name, stages, _text(entry, "purpose", where), str(entry.get("k6") or f"k6 run {k6}"),
            report,
        )  # fmt: skip


def _scenario_entry(entry: dict[str, Any], folder: Path, where: str) -> ScenarioSpec:
    name = _text(entry, "name", where)
    if ("users" in entry) == ("rate_per_s" in entry):
        raise RegistryFileError(f"{where}: give its default load as users or rate_per_s (one)")
    load: Users | Rate
    if "users" in entry:
        users = entry["users"]
        if not isinstance(users, int) or isinstance(users, bool) or users < 1:
            raise RegistryFileError(f"{where}.users: a whole number >= 1, not {users!r}")
        load = Users(users)
    else:
        rate = entry["rate_per_s"]
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
            raise RegistryFileError(f"{where}.rate_per_s: a number > 0, not {rate!r}")
        load = Rate(float(rate), str(entry.get("unit") or "iterations"))
    requests = entry.get("requests")
    if not isinstance(requests, list) or not all(isinstance(r, str) and r for r in requests):
        raise RegistryFileError(f'{where}.requests: the stats names it records, e.g. ["GET /x"]')
    locustfile = folder / str(entry.get("locustfile") or f"{name}.py")
    if not locustfile.is_file():
        raise RegistryFileError(f"{where}.locustfile: {locustfile} does not exist")
    baseline = entry.get("baseline")
    return ScenarioSpec(
        name, _text(entry, "purpose", where), load, tuple(requests),
        locustfile_path=locustfile,
        baseline_path=folder / str(baseline) if baseline else None,
    )  # fmt: skip


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RegistryFileError(f"{where}.{key}: missing (a non-empty string)")
    return value.strip()


#: Why ``LOADKIT_REGISTRY`` could not be loaded, if it could not: the command and the plugin
#: report it in one line (exit 2) before anything runs. The files are read when this module is
#: first imported, so every process of a run (the parent, the master, each worker, the web UI's
#: class picker) sees the same tables.
LOAD_ERROR: RegistryFileError | None = None
try:
    load_registry_files()
except RegistryFileError as _exc:
    LOAD_ERROR = _exc
