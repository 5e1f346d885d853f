"""The capacity plan: its arithmetic on made-up figures, `loadkit plan` on the shipped ones."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from typing import Any

import pytest
from conftest import REPO_ROOT, kit_env

from loadkit.core.capacity import (
    CapacityError,
    figures_from_data,
    plan_capacity,
    render_plan,
)
from loadkit.registry import SCENARIOS

SHIPPED = REPO_ROOT / "src" / "loadkit" / "capacity_figures.json"


def measured(median: float, low: float | None = None, high: float | None = None) -> dict:
    return {"median": median, "min": low or median, "max": high or median, "n": 3}


def figures_data(**master_ms: float) -> dict[str, Any]:
    return {
        "generator": {
            "measured_on": "2026-12-03",
            "machine": "2 cores (test CPU)",
            "command": "python bench/generator_cost.py",
            "scenarios": {
                "health": {"cpu_ms_per_request": measured(0.5, 0.4, 0.7)},
                "bulk_import": {"cpu_ms_per_request": measured(2.0)},
            },
        },
        "master": {
            "replay": {
                workers: {"cpu_ms_per_report": measured(ms)} for workers, ms in master_ms.items()
            }
        },
    }


def test_workers_are_the_rate_over_what_one_core_drives_at_the_target_utilisation() -> None:
    figures = figures_from_data(figures_data())
    # 0.5 ms CPU per request: 2000 requests/s per core, 1400 at 70 %.
    assert plan_capacity(figures, "health", 1400).workers == 1
    assert plan_capacity(figures, "health", 1401).workers == 2
    assert plan_capacity(figures, "health", 2800).workers == 2
    plan = plan_capacity(figures, "health", 10_000)
    assert plan.workers == math.ceil(10_000 / 1400) == 8
    assert plan.rate_per_worker_per_s == pytest.approx(1400)
    # The spread of the measurement: 0.4 ms -> 1750/s per worker, 0.7 ms -> 1000/s.
    assert plan.workers_range == (math.ceil(10_000 / 1750), 10)
    assert plan_capacity(figures, "bulk_import", 10_000).workers == math.ceil(10_000 / 350)


def test_master_cost_is_reports_per_second_times_cpu_per_report() -> None:
    figures = figures_from_data(figures_data(**{"100": 0.6, "500": 0.9}))
    plan = plan_capacity(figures, "health", 140_000)  # 100 workers
    assert plan.workers == 100
    assert plan.master_cores == pytest.approx(100 / 3 * 0.6 / 1000 / 0.7)
    assert not plan.master_extrapolated
    plan = plan_capacity(figures, "health", 140_001)  # 101 workers: the 500-worker figure
    assert plan.master_cores == pytest.approx(101 / 3 * 0.9 / 1000 / 0.7)
    plan = plan_capacity(figures, "health", 1400 * 600)
    assert plan.workers == 600 and plan.master_extrapolated
    assert plan.master_millicores == 250 + math.ceil(plan.master_cores * 1000 / 50) * 50


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf")])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(CapacityError, match="rate"):
        plan_capacity(figures_from_data(figures_data()), "health", rate)


def test_unmeasured_scenario_and_broken_figures_are_one_line_errors() -> None:
    with pytest.raises(CapacityError, match="no measured figures for scenario 'analytics'"):
        plan_capacity(figures_from_data(figures_data()), "analytics", 10)
    broken = figures_data()
    broken["generator"]["scenarios"]["health"]["cpu_ms_per_request"]["min"] = 0
    with pytest.raises(CapacityError, match="malformed"):
        figures_from_data(broken)
    broken = figures_data()
    del broken["generator"]["machine"]
    with pytest.raises(CapacityError, match="machine"):
        figures_from_data(broken)


def test_the_plan_states_its_assumption_and_the_kubernetes_sizes() -> None:
    figures = figures_from_data(figures_data(**{"500": 0.9}))
    text = "\n".join(render_plan(plan_capacity(figures, "health", 2000), figures))
    assert "2 Locust worker processes" in text
    assert "replicas 2" in text and "cpu 1000m" in text
    assert "assumes: one worker process uses at most one core, planned at 70%" in text
    assert "2 cores (test CPU)" in text and "2026-12-03" in text


# -- `loadkit plan` on the figures the kit ships -----------------------------------------------


def loadkit_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadkit.cli", "plan", *args], capture_output=True, text=True,
        timeout=30, cwd=REPO_ROOT, env=kit_env(None), stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_shipped_figures_cover_every_scenario_and_are_package_data() -> None:
    data = json.loads(SHIPPED.read_text())
    assert set(figures_from_data(data).scenarios) == set(SCENARIOS)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]["loadkit"]
    assert SHIPPED.name in package_data  # `pip install .` (the image) ships it


def test_plan_command_matches_the_arithmetic_on_the_shipped_figures() -> None:
    done = loadkit_plan("health", "2000")
    assert done.returncode == 0, done.stderr
    cost = json.loads(SHIPPED.read_text())["generator"]["scenarios"]["health"]
    workers = math.ceil(2000 / (1000 / cost["cpu_ms_per_request"]["median"] * 0.7))
    assert f"  workers  {workers} Locust worker process" in done.stdout
    assert "assumes:" in done.stdout
    table = loadkit_plan()
    assert table.returncode == 0
    assert all(name in table.stdout for name in SCENARIOS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "10"), "unknown scenario 'nope'"),
        (("health", "0"), "above 0"),
        (("health", "-5"), "above 0"),
        (("health", "lots"), "number of requests/s"),
        (("health",), "give a rate"),
    ],
)
def test_plan_command_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    done = loadkit_plan(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert message in line and line.startswith("loadkit: ")
