"""The registry: the one list of scenarios and profiles, the files that must agree with it, and the
CONTRIBUTING.md checklists followed for real (a sixth scenario and profile, run end to end)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, kit_env, run_kit

from loadkit import registry
from loadkit.core.baselines import default_baseline_path, load_baseline
from loadkit.platform.launcher import RunningPlatform


def test_every_scenario_has_its_locustfile_and_baseline() -> None:
    for name, spec in registry.SCENARIOS.items():
        assert spec.locustfile.is_file(), f"scenario {name}: no {spec.locustfile}"
        baseline = load_baseline(default_baseline_path(name), name)
        for criterion in baseline.criteria:
            if criterion.request not in (None, "total"):
                assert criterion.request in spec.requests, (name, criterion.request)


def test_every_file_in_the_repository_belongs_to_the_registry() -> None:
    locustfiles = {p.stem for p in (REPO_ROOT / "locustfiles").glob("*.py")}
    assert locustfiles == set(registry.SCENARIOS), "a locustfile with no registry entry"
    baselines = {p.stem for p in (REPO_ROOT / "baselines").glob("*.toml")}
    assert baselines == set(registry.SCENARIOS), "a baseline with no registry entry"
    for shape in (REPO_ROOT / "shapes").glob("*.py"):
        text = shape.read_text(encoding="utf-8")
        if shape.stem == "custom":
            continue
        assert f'profile = "{shape.stem}"' in text, f"{shape}: name its registry profile"
        assert shape.stem in registry.PROFILES, f"{shape}: no registry profile {shape.stem!r}"


def test_profiles_are_data_with_a_purpose_and_a_k6_equivalent() -> None:
    for spec in registry.PROFILES.values():
        assert spec.stages and spec.purpose and spec.k6.startswith("k6 run"), spec.name
    assert list(registry.PROFILE_NAMES) == [*registry.PROFILES, "custom"]
    assert "custom" in registry.PROFILE_NAMES and "spiky" not in registry.PROFILE_NAMES


def test_unknown_names_are_one_line_with_a_suggestion() -> None:
    with pytest.raises(registry.UnknownScenarioError) as info:
        registry.get_scenario("helth")
    assert str(info.value).startswith("unknown scenario 'helth' (did you mean 'health'?")
    with pytest.raises(registry.UnknownProfileError, match="did you mean 'soak'"):
        registry.get_profile("soal")


# -- the checklists of CONTRIBUTING.md, followed --------------------------------------------------

ORDERS_LOCUSTFILE = '''"""Orders: a team's own scenario, added without touching the kit."""

from locust import constant, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json


class OrdersUser(PlatformUser):
    wait_time = constant(0.01)

    @task
    def health(self) -> None:
        with self.client.get(endpoints.HEALTH, catch_response=True) as response:
            expect_json(response, 200, equals={"status": "ok"})
'''

ORDERS_BASELINE = """scenario = "orders"

[[criteria]]
request = "GET /health"
metric = "error_rate"
op = "<"
value = "1%"

[[criteria]]
request = "total"
metric = "count"
op = ">="
value = 10
profiles = ["burst"]
"""

REGISTRY_FILE = """[[scenario]]
name = "orders"
purpose = "a team's own scenario"
users = 2
requests = ["GET /health"]
baseline = "orders.toml"

[[profile]]
name = "burst"
stages = ["0s:2", "5s:2", "5s:4"]
purpose = "two users, then four: a profile of our own"
"""


def test_a_sixth_scenario_and_profile_are_three_files_and_run_end_to_end(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    """CONTRIBUTING: a scenario = a locustfile + a baseline + a registry entry; a profile = one
    entry. Done in a folder of our own (``LOADKIT_REGISTRY``), then run like any other."""
    own = tmp_path / "ours"
    own.mkdir()
    (own / "orders.py").write_text(ORDERS_LOCUSTFILE)
    (own / "orders.toml").write_text(ORDERS_BASELINE)
    (own / "registry.toml").write_text(REGISTRY_FILE)
    assert len(list(own.iterdir())) == 3
    env = kit_env(fresh_platform.url, LOADKIT_REGISTRY=str(own / "registry.toml"))
    listed = subprocess.run(
        [sys.executable, "-m", "loadkit.cli", "profiles"], env=env, capture_output=True,
        text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "burst" in listed.stdout and "two users, then four" in listed.stdout
    result = run_kit(
        ["orders", "--profile", "burst", "--time-scale", "0.3", "--skip-preflight"],
        env,
        tmp_path / "results",
    )
    assert result.exit_code == 0, result.output
    verdict = result.verdict()
    assert (verdict["scenario"], verdict["profile"], verdict["state"]) == (
        "orders",
        "burst",
        "complete",
    )
    assert [c["status"] for c in verdict["criteria"]] == ["passed", "passed"]
    served = fresh_platform.counters()["requests"]["GET /health"]
    assert verdict["totals"]["requests"] == served


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[scenario]]\nname = 'x'\n", "scenario[0]: give its default load as users or rate_per_s"),
        ("[[profile]]\nname = 'smoke'\nstages = ['1s:1']\npurpose = 'p'\n", "already a profile"),
        ("[[profile]]\nname = 'p'\nstages = ['1s']\npurpose = 'p'\n", "profile[0].stages"),
        ("[[scenaro]]\n", "unknown table(s) ['scenaro']"),
        ("not toml =", "not a TOML file"),
    ],
)
def test_a_bad_registry_file_is_one_line_and_exit_2(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "loadkit.cli", "scenarios"],
        env=kit_env(None, LOADKIT_REGISTRY=str(path)), capture_output=True, text=True,
        timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
