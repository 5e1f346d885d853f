"""The verdict from constructed numbers: boundaries, no data, profiles, outputs, abort watch."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loadkit import registry
from loadkit.core.baselines import (
    PROFILES,
    SCENARIOS,
    Baseline,
    default_baseline_path,
    load_baseline,
    parse_baseline,
)
from loadkit.core.histogram import LatencyHistogram
from loadkit.core.metrics import EndpointMetrics
from loadkit.core.purposes import PurposeFigures, spike_windows
from loadkit.core.verdict import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_PASSED,
    AbortWatch,
    GaugeSummary,
    RunState,
    Verdict,
    evaluate,
)
from loadkit.measure.timeline import Tally
from loadkit.results.verdict_files import (
    VERDICT_SCHEMA,
    render_console,
    verdict_to_dict,
    write_junit_xml,
    write_verdict_json,
)


def row(
    key: str,
    *,
    count: int = 1000,
    failures: int = 0,
    p95_ms: float = 10.0,
    rps: float = 100.0,
    window_s: float = 300.0,
) -> EndpointMetrics:
    """A stats row; latencies other than p95 are plausible values around it."""
    method, _, name = key.partition(" ")
    if key == "Aggregated":
        method, name = "", "Aggregated"
    return EndpointMetrics(
        method=method,
        name=name,
        count=count,
        failures=failures,
        min_ms=p95_ms / 10,
        max_ms=p95_ms * 2,
        avg_ms=p95_ms / 2,
        p50_ms=p95_ms / 2,
        p90_ms=p95_ms * 0.9,
        p95_ms=p95_ms,
        p99_ms=p95_ms * 1.5,
        rps=rps,
        window_s=window_s,
    )


def metrics(*rows: EndpointMetrics) -> dict[str, EndpointMetrics]:
    return {r.key: r for r in rows}


def baseline(criteria: str, scenario: str = "health") -> Baseline:
    text = f'scenario = "{scenario}"\n{textwrap.dedent(criteria)}'
    return parse_baseline(text, scenario, source=f"{scenario}.toml")


def single(request: str, metric: str, op: str, value: str, profiles: str = "") -> Baseline:
    lines = [
        "[[criteria]]",
        f'request = "{request}"',
        f'metric = "{metric}"',
        f'op = "{op}"',
        f"value = {value}",
    ]
    if profiles:
        lines.append(f"profiles = {profiles}")
    return baseline("\n".join(lines))


# --- boundaries -----------------------------------------------------------------------------

# measured below, at and above the threshold, for each operator
BOUNDARY = {
    "<": (True, False, False),
    "<=": (True, True, False),
    ">": (False, False, True),
    ">=": (False, True, True),
}


@pytest.mark.parametrize("op", BOUNDARY)
@pytest.mark.parametrize("value", ['"20ms"', '"0.02s"', '"0.020 s"'])
def test_latency_boundaries_are_exact(op: str, value: str) -> None:
    b = single("GET /health", "p95", op, value)
    for p95_ms, expected in zip((19.0, 20.0, 21.0), BOUNDARY[op], strict=True):
        verdict = evaluate(metrics(row("GET /health", p95_ms=p95_ms)), b, profile="average")
        assert verdict.results[0].status == ("passed" if expected else "failed"), (op, p95_ms)
        assert verdict.results[0].measured == p95_ms


@pytest.mark.parametrize("op", BOUNDARY)
@pytest.mark.parametrize("value", ['"0.1%"', "0.001"])
def test_error_rate_boundaries_are_exact(op: str, value: str) -> None:
    b = single("GET /health", "error_rate", op, value)
    # 0.1% of 10000 requests is 10 failures
    for failures, expected in zip((9, 10, 11), BOUNDARY[op], strict=True):
        m = metrics(row("GET /health", count=10_000, failures=failures))
        assert evaluate(m, b, profile="smoke").results[0].status == (
            "passed" if expected else "failed"
        ), (op, failures)


@pytest.mark.parametrize("op", BOUNDARY)
def test_rps_and_count_boundaries(op: str) -> None:
    b = single("GET /health", "rps", op, '"1000/s"')
    for rps, expected in zip((999.9, 1000.0, 1000.1), BOUNDARY[op], strict=True):
        result = evaluate(metrics(row("GET /health", rps=rps)), b, profile="stress").results[0]
        assert (result.status == "passed") is expected
    b = single("GET /health", "count", op, "500")
    for count, expected in zip((499, 500, 501), BOUNDARY[op], strict=True):
        result = evaluate(metrics(row("GET /health", count=count)), b, profile="stress").results[0]
        assert (result.status == "passed") is expected


def test_percent_error_rate_of_a_third() -> None:
    b = single("GET /health", "error_rate", "<=", '"33.34%"')
    m = metrics(row("GET /health", count=3, failures=1))
    assert evaluate(m, b, profile="average").passed


# --- missing data, profiles, totals ---------------------------------------------------------


def test_missing_request_is_no_data_and_fails() -> None:
    b = single("GET /health", "p95", "<", '"20ms"')
    verdict = evaluate({}, b, profile="average")
    result = verdict.results[0]
    assert (result.status, result.measured) == ("no data", None)
    assert "no 'GET /health' requests" in result.reason
    assert not verdict.passed and verdict.exit_code == EXIT_FAILED
    assert "had no data" in verdict.summary


def test_zero_requests_is_no_data_even_for_error_rate() -> None:
    b = single("GET /health", "error_rate", "<", '"1%"')
    verdict = evaluate(metrics(row("GET /health", count=0)), b, profile="average")
    assert verdict.results[0].status == "no data"
    assert verdict.exit_code == EXIT_FAILED


def test_total_uses_the_aggregated_row() -> None:
    b = single("total", "p95", "<", '"50ms"')
    verdict = evaluate(
        metrics(row("GET /health", p95_ms=10), row("Aggregated", p95_ms=60)), b, profile="average"
    )
    assert verdict.results[0].status == "failed"
    assert verdict.results[0].measured == 60.0
    assert verdict.results[0].reason == "60 ms, needs < 50 ms"


def test_skipped_by_profile_is_reported_never_passed() -> None:
    b = baseline(
        """
        [[criteria]]
        request = "GET /health"
        metric = "error_rate"
        op = "<"
        value = "1%"

        [[criteria]]
        request = "GET /health"
        metric = "rps"
        op = ">="
        value = "2000/s"
        profiles = ["stress"]
        """
    )
    verdict = evaluate(metrics(row("GET /health", rps=5)), b, profile="smoke")
    assert [r.status for r in verdict.results] == ["passed", "skipped"]
    assert verdict.results[1].measured is None
    assert verdict.results[1].reason == "applies to stress, not smoke"
    assert verdict.passed and verdict.exit_code == EXIT_PASSED
    assert verdict.summary == "PASSED: 1 of 1 criteria met, 1 skipped"
    stress = evaluate(metrics(row("GET /health", rps=5)), b, profile="stress")
    assert [r.status for r in stress.results] == ["passed", "failed"]


def test_nothing_judged_passes_but_says_so() -> None:
    b = single("GET /health", "rps", ">=", '"1/s"', profiles='["stress"]')
    verdict = evaluate({}, b, profile="custom")
    assert verdict.passed
    assert "nothing was judged" in verdict.summary


def test_unknown_profile_is_refused() -> None:
    b = single("GET /health", "p95", "<", '"20ms"')
    with pytest.raises(ValueError, match="unknown profile 'load'"):
        evaluate({}, b, profile="load")


def test_totals_from_aggregated_or_summed_without_jobs() -> None:
    b = single("GET /health", "p95", "<", '"20ms"')
    agg = row("Aggregated", count=200, failures=2, rps=20.0)
    totals = evaluate(metrics(agg), b, profile="average").totals
    assert (totals.requests, totals.failures, totals.error_rate, totals.rps) == (200, 2, 0.01, 20.0)
    rows = metrics(
        row("GET /health", count=100, failures=1, rps=10.0),
        row("POST /api/calls", count=300, failures=3, rps=30.0),
        row("JOB bulk import: upload to completed", count=5, failures=5, rps=1.0),
    )
    totals = evaluate(rows, b, profile="average").totals
    assert (totals.requests, totals.failures, totals.error_rate, totals.rps) == (400, 4, 0.01, 40.0)


def test_window_description() -> None:
    b = single("GET /health", "p95", "<", '"20ms"')
    m = metrics(row("GET /health"), row("Aggregated", window_s=90))
    assert evaluate(m, b, profile="spike").window.description == "whole run (90 s)"
    steady = evaluate(
        m, b, profile="average", window=(60, 360), window_description="steady part of the profile"
    ).window
    assert (steady.start_s, steady.end_s) == (60.0, 360.0)
    assert steady.description == "t=60–360 s (300 s): steady part of the profile"
    with pytest.raises(ValueError, match="window"):
        evaluate(m, b, profile="average", window=(10, 5))


def test_runs_that_did_not_complete_never_pass() -> None:
    b = single("GET /health", "p95", "<", '"20ms"')
    m = metrics(row("GET /health", p95_ms=5))
    reason = "criteria[3] total error_rate < 50% failed for 30 s"
    aborted = evaluate(m, b, profile="soak", state=RunState.ABORTED, state_reason=reason)
    assert aborted.results[0].status == "passed" and aborted.criteria_held
    assert not aborted.passed and aborted.exit_code == EXIT_FAILED
    assert aborted.summary.startswith(f"ABORTED: {reason} (on what was measured: 1 of 1")
    for state in (RunState.INTERRUPTED, RunState.STOPPED_EARLY, RunState.LOST_WORKER):
        verdict = evaluate(m, b, profile="soak", state=state, state_reason="why")
        assert not verdict.passed and verdict.exit_code == EXIT_INCOMPLETE, state
        assert verdict.headline == state.value.upper()
        assert verdict.summary.startswith(f"{state.value.upper()}: why"), verdict.summary
    failing = evaluate(
        metrics(row("GET /health", p95_ms=50)), b, profile="soak", state=RunState.STOPPED_EARLY
    )
    assert failing.exit_code == EXIT_FAILED  # a failure wins over "did not complete"
    live = evaluate(m, b, profile="soak", state=RunState.RUNNING, live=True)
    assert live.headline == "RUNNING" and live.summary.startswith("RUNNING: so far")


def test_job_entries_are_judged_like_endpoints() -> None:
    b = baseline(
        """
        [[criteria]]
        request = "JOB bulk import: upload to completed"
        metric = "p95"
        op = "<"
        value = "60s"
        """,
        scenario="bulk_import",
    )
    job = row("JOB bulk import: upload to completed", count=10, p95_ms=60_000)
    result = evaluate(metrics(job), b, profile="average").results[0]
    assert result.status == "failed"
    assert result.reason == "60 s, needs < 60 s"


GAUGE_AND_COUNTER = """
[[criteria]]
gauge = "queue_depth"
metric = "max"
op = "<"
value = 1000

[[criteria]]
gauge = "queue_depth"
metric = "final"
op = "<="
value = 0

[[criteria]]
counter = "dropped_iterations"
metric = "count"
op = "<="
value = 0
"""


def test_gauges_and_counters() -> None:
    b = baseline(GAUGE_AND_COUNTER, scenario="scheduling")
    gauges = {"queue_depth": GaugeSummary(samples=60, min=0, max=999, avg=300, p95=900, final=0)}
    verdict = evaluate({}, b, profile="stress", gauges=gauges, counters={"dropped_iterations": 0})
    assert [r.status for r in verdict.results] == ["passed", "passed", "passed"]
    assert verdict.results[0].reason == "999 jobs < 1000 jobs"
    gauges = {"queue_depth": GaugeSummary(samples=60, min=0, max=1000, avg=300, p95=900, final=3)}
    verdict = evaluate({}, b, profile="stress", gauges=gauges, counters={"dropped_iterations": 7})
    assert [r.status for r in verdict.results] == ["failed", "failed", "failed"]
    assert verdict.results[2].measured == 7.0


def test_unsampled_gauge_and_missing_counter_are_no_data() -> None:
    b = baseline(GAUGE_AND_COUNTER, scenario="scheduling")
    verdict = evaluate({}, b, profile="stress")
    assert [r.status for r in verdict.results] == ["no data"] * 3
    assert verdict.results[0].reason == "gauge 'queue_depth' was not sampled"
    assert verdict.results[2].reason == "counter 'dropped_iterations' was not reported"
    empty = {"queue_depth": GaugeSummary(samples=0, min=0, max=0, avg=0, p95=0, final=0)}
    assert evaluate({}, b, profile="stress", gauges=empty).results[0].status == "no data"


QUEUE_RUN = """
[[criteria]]
counter = "queue_jobs_completed"
metric = "rate"
op = ">="
value = "40/s"

[[criteria]]
counter = "queue_jobs_failed"
metric = "count"
op = "<="
value = 0

[[criteria]]
gauge = "queue_overdue"
metric = "growth_per_s"
op = "<="
value = "0.5/s"

[[criteria]]
counter = "queue_stalled_jobs"
metric = "count"
op = "<"
value = 1
abort_on_fail = true
"""

STALL = "stalled consumer: 21 jobs due and not processed (21 overdue, 0 waiting) at 6 s"


def test_queue_rates_counts_growth_and_the_stall_explained() -> None:
    b = baseline(QUEUE_RUN, scenario="scheduling")
    overdue = GaugeSummary(samples=7, min=0, max=21, avg=9, p95=21, final=21, growth_per_s=3.5)
    counters = {
        "queue_jobs_completed": 0.0, "queue_jobs_completed.rate": 0.0,
        "queue_jobs_failed": 2.0, "queue_stalled_jobs": 21.0,
    }  # fmt: skip
    verdict = evaluate(
        {}, b, profile="average", gauges={"queue_overdue": overdue}, counters=counters,
        explanations={"counter queue_stalled_jobs": STALL},
    )  # fmt: skip
    assert [r.status for r in verdict.results] == ["failed"] * 4
    assert verdict.results[0].reason == "0/s, needs >= 40/s"
    assert verdict.results[2].reason == "3.5/s, needs <= 0.5/s"
    assert verdict.results[3].reason == f"21 jobs, needs < 1 jobs: {STALL}"
    healthy = {**counters, "queue_jobs_completed.rate": 48.0, "queue_jobs_failed": 0.0}
    healthy["queue_stalled_jobs"] = 0.0
    calm = GaugeSummary(samples=7, min=0, max=1, avg=0, p95=1, final=0, growth_per_s=0.0)
    verdict = evaluate(
        {}, b, profile="average", gauges={"queue_overdue": calm}, counters=healthy,
        explanations={"counter queue_stalled_jobs": STALL},  # only a failure shows it
    )  # fmt: skip
    assert [r.status for r in verdict.results] == ["passed"] * 4
    assert verdict.results[3].reason == "0 jobs < 1 jobs"


def test_queue_rate_or_growth_without_data() -> None:
    b = baseline(QUEUE_RUN, scenario="scheduling")
    one = GaugeSummary(samples=1, min=0, max=0, avg=0, p95=0, final=0, growth_per_s=None)
    verdict = evaluate(
        {}, b, profile="average", gauges={"queue_overdue": one}, counters={"queue_jobs_failed": 0}
    )
    assert [r.status for r in verdict.results] == ["no data", "passed", "no data", "no data"]
    assert verdict.results[0].reason == "counter 'queue_jobs_completed' has no rate reported"
    assert verdict.results[2].reason == "gauge 'queue_overdue' has no two samples apart in time"


def test_a_stall_aborts_at_once_with_the_overdue_jobs_in_the_reason() -> None:
    watch = AbortWatch(baseline(QUEUE_RUN, scenario="scheduling"), "average")
    assert watch.observe(4.0, {}, counters={"queue_stalled_jobs": 0}) is None
    reason = watch.observe(
        6.0, {}, counters={"queue_stalled_jobs": 21},
        explanations={"counter queue_stalled_jobs": STALL},
    )  # fmt: skip
    assert reason == (
        "criteria[3] counter queue_stalled_jobs count < 1 jobs failed for 0 s "
        f"(measured 21 jobs): {STALL}"
    )


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_baselines_pass_a_healthy_run(scenario: str, profile: str) -> None:
    """Numbers comfortably inside every shipped threshold pass: the files are consistent."""
    b = load_baseline(default_baseline_path(scenario), scenario)
    rows = [row(name, p95_ms=5, rps=5000) for name in registry.SCENARIOS[scenario].requests]
    rows.append(row("Aggregated", p95_ms=5, rps=5000))
    gauges = {"queue_depth": GaugeSummary(samples=10, min=0, max=10, avg=5, p95=9, final=0)}
    steady = GaugeSummary(10, 1e8, 1e8, 1e8, 1e8, 1e8, growth=0.0, rate=0.3)
    gauges |= {
        "generator_rss_bytes": steady,
        "platform process_resident_memory_bytes": steady,
        "platform process_cpu_seconds_total": steady,
    }
    verdict = evaluate(
        metrics(*rows),
        b,
        profile=profile,
        gauges=gauges,
        counters={"held_users": 50, "queue_stalled_jobs": 0.0},
        figures=healthy_figures([r.key for r in rows]),
    )
    assert verdict.passed, render_console(verdict)


def healthy_figures(keys: list[str]) -> PurposeFigures:
    """5 ms everywhere, no errors: before, surge and hold of a spike, first and last windows."""

    def tally() -> Tally:
        hist = LatencyHistogram()
        for _ in range(100):
            hist.record(5.0)
        return Tally(hist, 100, 0, 10)

    windows = {
        **spike_windows(registry.PROFILES["spike"].stages),
        "first": (0.0, 10.0),
        "last": (50.0, 60.0),
    }
    by_window = {name: {key: tally() for key in keys} for name in windows}
    hold = {90.0 + k: dict.fromkeys(keys, 5.0) for k in range(30)}
    return PurposeFigures(windows, by_window, hold)


# --- outputs --------------------------------------------------------------------------------

MIXED = """
[[criteria]]
request = "GET /health"
metric = "p95"
op = "<="
value = "20ms"
source = "guide: Performance Baselines"

[[criteria]]
request = "GET /health"
metric = "error_rate"
op = "<"
value = "0.01%"

[[criteria]]
request = "total"
metric = "rps"
op = ">="
value = "1000/s"
profiles = ["stress"]

[[criteria]]
gauge = "queue_depth"
metric = "max"
op = "<"
value = 1000
profiles = ["average"]

[[criteria]]
request = "total"
metric = "error_rate"
op = "<"
value = "50%"
abort_on_fail = true
"""

REFERENCE = """
[[reference]]
name = "Concurrent calls"
target = 100
maximum = 150
unit = "calls"
note = "counted by the platform"
"""


def mixed_verdict(**kwargs: object) -> Verdict:
    b = parse_baseline(
        f'scenario = "health"\n{MIXED}\n{REFERENCE}', "health", source="baselines/health.toml"
    )
    m = metrics(
        row("GET /health", count=10_000, failures=2, p95_ms=12),
        row("Aggregated", count=10_000, failures=2, p95_ms=12, rps=41.5),
    )
    return evaluate(m, b, profile="average", window=(60, 360), **kwargs)  # type: ignore[arg-type]


def test_console_summary() -> None:
    text = render_console(mixed_verdict())
    assert "scenario health, profile average (baselines/health.toml)" in text
    assert "t=60–360 s (300 s)" in text
    assert "✓ p95 " in text and "12 ms" in text and "<= 20 ms" in text
    assert "✗ error_rate " in text and "0.02%" in text and "< 0.01%" in text
    assert "– rps " in text and "applies to stress, not average" in text
    assert "✗ max " in text and "no data" in text
    assert "aborts the run" in text
    assert "totals: 10000 requests, 2 failed (0.02%), 41.5/s" in text
    assert "Concurrent calls: target 100, maximum 150 calls — counted by the platform" in text
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith("FAILED: 1 of 4 criteria failed: GET /health error_rate < 0.01%")
    assert "1 had no data: gauge queue_depth max < 1000 jobs" in last


def test_console_passed_line() -> None:
    b = single("GET /health", "p95", "<", '"20ms"')
    text = render_console(evaluate(metrics(row("GET /health")), b, profile="smoke"))
    assert text.rstrip().splitlines()[-1] == "PASSED: 1 of 1 criteria met"
    assert "rates measured over: whole run" in text


DOCUMENTED_KEYS = {
    "schema",
    "scenario",
    "profile",
    "baseline",
    "window",
    "criteria",
    "totals",
    "references",
    "queue",
    "data",
    "state",
    "state_reason",
    "live",
    "criteria_held",
    "aborted",
    "interrupted",
    "notes",
    "passed",
    "exit_code",
    "summary",
    "started_at",
    "requests",
    "gauges",
    "counters",
    "reference",
}
CRITERION_KEYS = {
    "index",
    "request",
    "gauge",
    "counter",
    "platform",
    "labels",
    "during",
    "tolerance",
    "metric",
    "op",
    "threshold",
    "unit",
    "threshold_text",
    "profiles",
    "abort_on_fail",
    "source",
    "measured",
    "status",
    "reason",
    "table",
    "label",
    "describe",
}


def test_verdict_json_round_trip(tmp_path: Path) -> None:
    verdict = mixed_verdict(state=RunState.ABORTED, state_reason="criteria[4] failed for 30 s")
    path = write_verdict_json(verdict, tmp_path / "run" / "verdict.json")
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == verdict_to_dict(verdict)
    assert set(loaded) == DOCUMENTED_KEYS
    assert loaded["schema"] == VERDICT_SCHEMA == "loadkit.verdict/1"
    assert (loaded["scenario"], loaded["profile"]) == ("health", "average")
    assert loaded["window"]["start_s"] == 60.0 and loaded["window"]["end_s"] == 360.0
    assert (loaded["passed"], loaded["exit_code"], loaded["interrupted"]) == (False, 1, False)
    assert loaded["aborted"] == "criteria[4] failed for 30 s"
    assert (loaded["state"], loaded["live"], loaded["criteria_held"]) == ("aborted", False, False)
    assert loaded["totals"] == {
        "requests": 10000, "failures": 2, "error_rate": 0.0002, "rps": 41.5, "p95_ms": 12,
    }  # fmt: skip
    assert loaded["notes"] == []
    assert loaded["references"][0]["maximum"] == 150
    criteria = loaded["criteria"]
    assert all(set(c) == CRITERION_KEYS for c in criteria)
    assert [c["status"] for c in criteria] == ["passed", "failed", "skipped", "no data", "passed"]
    first = criteria[0]
    assert (first["request"], first["metric"], first["op"]) == ("GET /health", "p95", "<=")
    assert (first["threshold"], first["unit"], first["threshold_text"]) == (20.0, "ms", "20ms")
    assert first["measured"] == 12.0 and first["source"] == "guide: Performance Baselines"
    assert (criteria[1]["threshold"], criteria[1]["unit"]) == (0.0001, "fraction")
    assert criteria[3]["gauge"] == "queue_depth" and criteria[3]["request"] is None
    assert criteria[3]["measured"] is None
    assert criteria[2]["profiles"] == ["stress"] and criteria[0]["profiles"] is None


def test_junit_counts_and_kinds(tmp_path: Path) -> None:
    path = write_junit_xml(mixed_verdict(), tmp_path / "junit.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "loadkit.health.average"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "2", "1")
    cases = suite.findall("testcase")
    assert cases[0].get("name") == "criteria[0] GET /health p95 <= 20 ms"
    kinds = [[child.tag for child in c] for c in cases]
    assert kinds == [[], ["failure"], ["skipped"], ["failure"], [], []]
    assert cases[-1].get("name") == "run completed"  # it did: no failure
    no_data = cases[3].find("failure")
    assert no_data is not None and no_data.get("type") == "no data"


def test_junit_reports_an_interrupted_run(tmp_path: Path) -> None:
    interrupted = mixed_verdict(state=RunState.INTERRUPTED, state_reason="Ctrl-C at 12.0 s")
    path = write_junit_xml(interrupted, tmp_path / "junit.xml")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("6", "3")
    last = suite.findall("testcase")[-1]
    assert last.get("name") == "run completed"
    failure = last.find("failure")
    assert failure is not None and failure.get("message") == "interrupted — Ctrl-C at 12.0 s"
    assert failure.get("type") == "interrupted"


# --- abort watch ----------------------------------------------------------------------------

ABORT = """
[[criteria]]
request = "total"
metric = "error_rate"
op = "<"
value = "50%"
abort_on_fail = true
delay_abort_eval = "30s"
profiles = ["average", "soak"]

[[criteria]]
request = "total"
metric = "p95"
op = "<"
value = "1ms"
"""

BAD = metrics(row("Aggregated", count=100, failures=60))
GOOD = metrics(row("Aggregated", count=100, failures=10))


def test_abort_after_failing_continuously_for_the_delay() -> None:
    watch = AbortWatch(baseline(ABORT), "soak")
    assert watch.active
    assert watch.observe(0.0, BAD) is None
    assert watch.observe(10.0, BAD) is None
    assert watch.observe(29.9, BAD) is None
    reason = watch.observe(30.0, BAD)
    assert reason == "criteria[0] total error_rate < 50% failed for 30 s (measured 60%)"
    assert watch.reason == reason
    assert watch.observe(31.0, GOOD) == reason  # an abort stays decided


def test_a_passing_observation_restarts_the_delay() -> None:
    watch = AbortWatch(baseline(ABORT), "average")
    assert watch.observe(100.0, BAD) is None
    assert watch.observe(125.0, BAD) is None
    assert watch.observe(126.0, GOOD) is None
    assert watch.observe(127.0, BAD) is None
    assert watch.observe(156.0, BAD) is None
    assert watch.observe(157.0, BAD) is not None


def test_no_data_is_not_a_failure_for_the_watch() -> None:
    watch = AbortWatch(baseline(ABORT), "soak")
    assert watch.observe(0.0, BAD) is None
    assert watch.observe(20.0, {}) is None
    assert watch.observe(40.0, BAD) is None
    assert watch.observe(69.0, BAD) is None
    assert watch.observe(70.0, BAD) is not None


def test_watch_ignores_criteria_of_other_profiles_and_non_abort_ones() -> None:
    watch = AbortWatch(baseline(ABORT), "stress")
    assert not watch.active
    for t_s in range(0, 600, 10):
        assert watch.observe(float(t_s), BAD) is None


def test_without_delay_the_first_failure_aborts() -> None:
    b = baseline(
        """
        [[criteria]]
        request = "total"
        metric = "error_rate"
        op = "<"
        value = "50%"
        abort_on_fail = true
        """
    )
    watch = AbortWatch(b, "custom")
    assert watch.observe(0.0, GOOD) is None
    assert (
        watch.observe(3.0, BAD)
        == "criteria[0] total error_rate < 50% failed for 0 s (measured 60%)"
    )


def test_watch_refuses_unknown_profile() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        AbortWatch(baseline(ABORT), "average-ish")


def test_notes_are_shown_and_kept_without_changing_the_outcome() -> None:
    verdict = mixed_verdict(notes=("lost worker w1 during the run",))
    assert "  note: lost worker w1 during the run" in render_console(verdict)
    assert verdict_to_dict(verdict)["notes"] == ["lost worker w1 during the run"]
    assert verdict.exit_code == mixed_verdict().exit_code
