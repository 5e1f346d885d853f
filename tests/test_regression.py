"""Regression criteria and the change rule, from constructed numbers (no Locust, no I/O)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from loadkit.core.baselines import Baseline, BaselineError, parse_baseline
from loadkit.core.metrics import EndpointMetrics
from loadkit.core.plan import RunPlan
from loadkit.core.profiles import Stage
from loadkit.core.reference import (
    ReferenceLookup,
    ReferenceRun,
    Spread,
    request_row,
    rows_by_request,
    spread_of,
)
from loadkit.core.regression import (
    IMPROVEMENT,
    REGRESSION,
    WITHIN,
    judge_change,
    worst_accepted,
)
from loadkit.core.verdict import EXIT_FAILED, EXIT_PASSED, evaluate
from loadkit.results.verdict_files import render_console, verdict_to_dict, write_junit_xml

BASELINE = """
scenario = "health"

[[criteria]]
request = "total"
metric = "p95"
op = "<"
value = "500ms"

[[regression]]
request = "total"
metric = "p95"
max_increase = "20%"

[[regression]]
request = "GET /health"
metric = "rps"
max_decrease = "10%"
profiles = ["average"]
"""


def health_rows(p95_ms: float, rps: float, count: int = 1000) -> dict[str, EndpointMetrics]:
    rows = {}
    for key, method, name in (("Aggregated", "", "Aggregated"), ("GET /health", "GET", "/health")):
        rows[key] = EndpointMetrics(
            method, name, count, 0, 1.0, p95_ms * 2, p95_ms / 2, p95_ms / 2, p95_ms * 0.9,
            p95_ms, p95_ms * 1.2, rps, 10.0,
        )  # fmt: skip
    return rows


def reference_of(
    p95_ms: float, rps: float, spread: dict[str, dict[str, Spread]] | None = None
) -> ReferenceLookup:
    rows = rows_by_request(request_row(m) for m in health_rows(p95_ms, rps).values())
    run = ReferenceRun("3f2a1c9e" + "0" * 24, rows, "the last passing run", spread=spread or {})
    return ReferenceLookup(run, "history.sqlite: passing runs of health/average with this load")


def baseline(extra: str = "") -> Baseline:
    return parse_baseline(BASELINE + extra, "health", source="health.toml")


# -- the rule ---------------------------------------------------------------------------------


def test_a_rise_beyond_the_tolerance_is_a_regression_and_within_it_is_not() -> None:
    assert judge_change("p95", 100.0, 130.0, 0.2).judgement == REGRESSION
    assert judge_change("p95", 100.0, 119.9, 0.2).judgement == WITHIN
    assert judge_change("p95", 100.0, 120.0, 0.2).judgement == WITHIN  # the limit itself is fine
    assert judge_change("p95", 100.0, 75.0, 0.2).judgement == IMPROVEMENT
    change = judge_change("p95", 100.0, 130.0, 0.2)
    assert change.limit == pytest.approx(120.0)
    assert change.describe_change() == "+30 ms (+30.0%)"


def test_the_request_rate_regresses_by_falling() -> None:
    assert judge_change("rps", 100.0, 89.0, 0.1).judgement == REGRESSION
    assert judge_change("rps", 100.0, 91.0, 0.1).judgement == WITHIN
    assert judge_change("rps", 100.0, 130.0, 0.1).judgement == IMPROVEMENT


def test_the_error_rate_tolerance_is_in_points_so_a_clean_reference_still_allows_some() -> None:
    assert judge_change("error_rate", 0.0, 0.004, 0.005).judgement == WITHIN
    assert judge_change("error_rate", 0.0, 0.006, 0.005).judgement == REGRESSION
    assert judge_change("error_rate", 0.0, 0.006, 0.005).describe_change() == "+0.6 points"


def test_a_latency_change_under_one_millisecond_never_counts() -> None:
    # +50% of 1.2 ms is 0.6 ms: scheduling noise, not a regression.
    assert judge_change("p95", 1.2, 1.8, 0.2).judgement == WITHIN
    assert judge_change("p95", 1.2, 2.3, 0.2).judgement == REGRESSION


def test_the_spread_of_three_or_more_earlier_runs_widens_the_limit() -> None:
    noisy = Spread(90.0, 140.0, runs=5)
    # 130 ms is +30% against 100 ms but inside what the last five passing runs showed.
    assert judge_change("p95", 100.0, 130.0, 0.2, noisy).judgement == WITHIN
    assert judge_change("p95", 100.0, 141.0, 0.2, noisy).judgement == REGRESSION
    # A quiet history does not tighten the tolerance: both rules must be exceeded.
    quiet = Spread(99.0, 101.0, runs=5)
    assert judge_change("p95", 100.0, 119.0, 0.2, quiet).judgement == WITHIN
    # Two runs are not a spread: the tolerance alone decides.
    assert judge_change("p95", 100.0, 130.0, 0.2, Spread(90.0, 140.0, runs=2)).judgement == (
        REGRESSION
    )
    assert worst_accepted("rps", 100.0, 0.1, Spread(80.0, 105.0, 4)) == 80.0


def test_spread_of_reads_each_run_once_and_needs_two_values() -> None:
    runs = [
        rows_by_request(request_row(m) for m in health_rows(p95, 100).values())
        for p95 in (40, 44, 38)
    ]
    assert spread_of(runs, "total", "p95") == Spread(38.0, 44.0, 3)
    assert spread_of(runs[:1], "total", "p95") is None


# -- in the verdict ---------------------------------------------------------------------------


def test_a_run_30_percent_slower_fails_the_regression_and_passes_the_fixed_threshold() -> None:
    verdict = evaluate(
        health_rows(52.0, 95.0), baseline(), profile="average", reference=reference_of(40.0, 100.0)
    )
    fixed, p95, rps = verdict.results
    assert (fixed.status, fixed.label) == ("passed", "criteria[0]")
    assert (p95.status, p95.label) == ("failed", "regression[0]")
    assert p95.criterion.threshold == pytest.approx(48.0)
    assert p95.reason == "+12 ms (+30.0%) against the reference's 40 ms: more than +20%"
    assert rps.status == "passed"  # -5% of the rate is inside -10%
    assert verdict.exit_code == EXIT_FAILED
    assert "total p95 <= 48 ms (reference 40 ms +20%)" in verdict.summary
    assert any("judged against run 3f2a1c9e" in note for note in verdict.notes)


def test_an_equal_run_passes() -> None:
    verdict = evaluate(
        health_rows(40.0, 100.0), baseline(), profile="average", reference=reference_of(40.0, 100.0)
    )
    assert [r.status for r in verdict.results] == ["passed"] * 3
    assert verdict.exit_code == EXIT_PASSED


def test_regression_criteria_are_profile_aware() -> None:
    verdict = evaluate(
        health_rows(40.0, 50.0), baseline(), profile="smoke", reference=reference_of(40.0, 100.0)
    )
    rps = verdict.results[2]
    assert (rps.status, rps.reason) == ("skipped", "applies to average, not smoke")
    assert verdict.passed


def test_no_reference_passes_with_a_note_by_default_and_fails_when_configured() -> None:
    lookup = ReferenceLookup(None, "history.sqlite: no passing run of health/average")
    passing = evaluate(health_rows(40.0, 100.0), baseline(), profile="average", reference=lookup)
    assert [r.status for r in passing.results] == ["passed", "skipped", "skipped"]
    assert passing.exit_code == EXIT_PASSED
    (note,) = passing.notes
    assert "no reference run for the regression criteria" in note and "skipped" in note
    assert "no passing run of health/average" in note

    strict = baseline('\n[regression_policy]\nno_reference = "fail"\n')
    failing = evaluate(health_rows(40.0, 100.0), strict, profile="average", reference=lookup)
    assert [r.status for r in failing.results] == ["passed", "no data", "no data"]
    assert failing.exit_code == EXIT_FAILED
    assert "they fail the run" in failing.notes[0]


def test_the_outputs_show_what_a_regression_was_judged_against(tmp_path: Path) -> None:
    spread = {"total": {"p95": Spread(38.0, 45.0, 4)}}
    verdict = evaluate(
        health_rows(52.0, 100.0),
        baseline(),
        profile="average",
        reference=reference_of(40.0, 100.0, spread),
    )
    data = json.loads(json.dumps(verdict_to_dict(verdict)))
    regression = data["criteria"][1]
    assert regression["table"] == "regression" and regression["label"] == "regression[0]"
    assert regression["threshold"] == pytest.approx(48.0)
    assert regression["threshold_text"] == "+20%"
    assert regression["reference_value"] == 40.0
    assert regression["spread"] == {"low": 38.0, "high": 45.0, "runs": 4}
    assert data["reference"]["run"]["run_id"].startswith("3f2a1c9e")
    assert (
        data["criteria"][0]["table"] == "criteria" and "reference_value" not in data["criteria"][0]
    )
    total = next(r for r in data["requests"] if r["request"] == "total")
    assert (total["count"], total["p95_ms"], total["rps"]) == (1000, 52.0, 100.0)
    console = render_console(verdict)
    assert "more than +20% and the 38 ms–45 ms of 4 earlier runs" in console
    junit = ET.parse(write_junit_xml(verdict, tmp_path / "junit.xml"))
    names = [case.get("name") for case in junit.iter("testcase")]
    assert "regression[0] total p95 <= 48 ms (reference 40 ms +20%)" in names


@pytest.mark.parametrize(
    ("theirs", "ours", "noted"),
    [("lean", "fast", True), ("fast", "lean", True), ("fast", "fast", False),
     (None, "lean", False), ("lean", None, False)],
)  # fmt: skip
def test_a_reference_on_another_http_client_is_noted(
    theirs: str | None, ours: str | None, noted: bool
) -> None:
    found = reference_of(40.0, 100.0).run
    assert found is not None
    lookup = ReferenceLookup(replace(found, http_client=theirs), "history.sqlite", ours)
    verdict = evaluate(health_rows(52.0, 95.0), baseline(), profile="average", reference=lookup)
    changed = [note for note in verdict.notes if "HTTP client" in note]
    if noted:
        assert changed == [
            f"the reference ran on the {theirs} HTTP client and this run on the {ours} one: the "
            "generator changed too, so a change in latency or rate is not the platform's alone"
        ]
    else:
        assert changed == []
    assert verdict.exit_code == EXIT_FAILED  # a note, not a verdict: the regression still fails


def test_a_plan_carries_the_reference_to_the_locust_process(tmp_path: Path) -> None:
    found = reference_of(40.0, 100.0, {"total": {"p95": Spread(38.0, 45.0, 4)}}).run
    assert found is not None
    lookup = ReferenceLookup(replace(found, http_client="lean"), "history.sqlite", "fast")
    plan = RunPlan("health", "average", (Stage(1.0, 1),), baseline=baseline(), reference=lookup)
    again = RunPlan.read(plan.write(tmp_path / "plan.json"))
    assert again.reference == lookup
    assert again.baseline is not None and again.baseline.regression == plan.baseline.regression


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ('metric = "p96"\nmax_increase = "20%"', "regression[0].metric: unknown metric 'p96'"),
        ('metric = "rps"\nmax_increase = "10%"', "use max_decrease"),
        ('metric = "p95"', "regression[0].max_increase: missing"),
        ('metric = "p95"\nmax_increase = "20ms"', "bad unit 'ms'"),
        ('metric = "rps"\nmax_decrease = "100%"', "cannot fall by 100%"),
        ('metric = "p95"\nmax_increase = "5%"\nprofiles = "smoke"', "must be a list"),
    ],
)
def test_a_bad_regression_rule_is_one_line_naming_the_key(rule: str, problem: str) -> None:
    text = 'scenario = "health"\n[[criteria]]\nrequest = "total"\nmetric = "p95"\nop = "<"\n'
    text += f'value = "5ms"\n[[regression]]\nrequest = "total"\n{rule}\n'
    with pytest.raises(BaselineError) as caught:
        parse_baseline(text, "health", source="h.toml")
    assert problem in str(caught.value)
    assert str(caught.value).startswith("h.toml:")


def test_a_regression_rule_names_a_request_of_the_scenario() -> None:
    text = BASELINE.replace('request = "GET /health"', 'request = "GET /healthz"')
    with pytest.raises(BaselineError, match=r"regression\[1\]\.request: unknown request"):
        parse_baseline(text, "health", source="h.toml")
