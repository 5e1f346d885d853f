"""The five scenarios: where their locustfiles are and how they run when nothing else is said.

The default user counts come from the load-testing guide's "Expected Performance" (10 concurrent
uploads, 100 concurrent users for the full system, 10 users x 5 calls/s = 50 calls/s ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    purpose: str

    @property
    def locustfile(self) -> Path:
        return locustfiles_dir() / f"{self.name}.py"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("health", 20, "liveness endpoint at the highest rate the generator can drive"),
        Scenario(
            "bulk_import", 10, "10 concurrent CSV uploads of 1000 contacts, followed to completion"
        ),
        Scenario("analytics", 20, "dashboard queries over varied ranges and campaigns (~100 rps)"),
        Scenario("scheduling", 10, "scheduling calls at 50 calls/s"),
        Scenario("full_system", 100, "schedule, retry and dashboard mix with think time"),
    )
}


class UnknownScenarioError(ValueError):
    pass


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        choices = ", ".join(SCENARIOS)
        raise UnknownScenarioError(f"unknown scenario '{name}' (choose from: {choices})") from None


def locustfiles_dir() -> Path:
    """``LOADKIT_LOCUSTFILES_DIR`` if set (your own copies), else the kit's ``locustfiles/``."""
    return Path(os.environ.get("LOADKIT_LOCUSTFILES_DIR") or REPO_ROOT / "locustfiles")


def shapes_dir() -> Path:
    return Path(os.environ.get("LOADKIT_SHAPES_DIR") or REPO_ROOT / "shapes")
