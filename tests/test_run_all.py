"""`loadkit run-all`: profiles in order per scenario, stop at the first failure, one table."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TEST_API_KEY, kit_env, run_kit_command

from loadkit.cli.run_all import StepOutcome, render_steps
from loadkit.platform.launcher import RunningPlatform, start_platform
from loadkit.results.history import HistoryStore

SCALED = ["--time-scale", "0.01", "--user-scale", "0.1", "--", "--only-summary"]


def test_table_lists_every_step_and_what_was_not_run(tmp_path: Path) -> None:
    (tmp_path / "verdict.json").write_text(
        '{"totals": {"rps": 12.5, "p95_ms": 3.25, "error_rate": 0.001}}'
    )
    outcomes = [
        StepOutcome.read("health", "smoke", 0, tmp_path),
        StepOutcome.read("health", "average", 1, tmp_path / "missing"),
    ]
    table = render_steps(outcomes, planned=3).splitlines()
    assert table[0].split() == ["scenario", "profile", "result", "rps", "p95", "errors", "results"]
    assert table[2].split()[:6] == ["health", "smoke", "pass", "12.5", "3.25", "ms"]
    assert table[3].split()[:6] == ["health", "average", "fail", "-", "-", "-"]
    assert table[-1] == "1 of 3 steps passed, 1 not run"


@pytest.mark.slow
def test_runs_profiles_in_order(fresh_platform: RunningPlatform, tmp_path: Path) -> None:
    args = ["run-all", "health", "--profiles", "smoke,average", *SCALED]
    result = run_kit_command(args, kit_env(fresh_platform.url), tmp_path)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if line.startswith("health ")]
    assert [(r[1], r[2]) for r in rows] == [("smoke", "pass"), ("average", "pass")]
    assert "2 of 2 steps passed" in result.output
    assert len(list(tmp_path.glob("health-*/verdict.json"))) == 2
    # Each step is a run of its own in the history, recorded by the parent.
    records = HistoryStore(tmp_path / "history.sqlite").records("health")
    assert [r["profile"] for r in records] == ["smoke", "average"]


@pytest.mark.slow
def test_stops_at_the_first_failure_unless_keep_going(tmp_path: Path) -> None:
    with start_platform(TEST_API_KEY, extra_args=["--fail", "GET /health=1.0"]) as platform:
        env = kit_env(platform.url)
        args = ["run-all", "health", "--profiles", "smoke,average", "--skip-preflight", *SCALED]
        stopped = run_kit_command(args, env, tmp_path / "a")
        kept_going = run_kit_command([*args[:5], "--keep-going", *args[5:]], env, tmp_path / "b")
    assert stopped.exit_code == 1
    assert "1 of 2 steps passed" not in stopped.output
    assert "0 of 2 steps passed, 1 not run" in stopped.output
    assert kept_going.exit_code == 1
    assert "0 of 2 steps passed" in kept_going.output
    assert "not run" not in kept_going.output.splitlines()[-1]
