"""Baseline files: the shipped ones load, and every kind of mistake fails at once, in one line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from loadkit import registry
from loadkit.core import baselines
from loadkit.core.baselines import (
    PROFILES,
    SCENARIOS,
    TOTAL,
    Baseline,
    BaselineError,
    Criterion,
    check_profile,
    default_baseline_path,
    load_baseline,
    parse_baseline,
)

REPO_BASELINES = Path(__file__).resolve().parents[1] / "baselines"


@pytest.fixture(autouse=True)
def _no_baselines_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOADKIT_BASELINES_DIR", raising=False)


# --- shipped files --------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_shipped_baseline_loads_for_its_scenario(scenario: str) -> None:
    baseline = load_baseline(default_baseline_path(scenario), scenario)
    assert baseline.scenario == scenario
    assert baseline.path == str(REPO_BASELINES / f"{scenario}.toml")
    known = {*registry.SCENARIOS[scenario].requests, TOTAL}
    assert {c.request for c in baseline.criteria if c.request} <= known


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_shipped_baseline_judges_something_in_every_profile(scenario: str) -> None:
    baseline = load_baseline(default_baseline_path(scenario), scenario)
    for profile in PROFILES:
        assert baseline.criteria_for(profile), f"{scenario}: nothing judged in {profile}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_shipped_throughput_floors_never_apply_to_smoke(scenario: str) -> None:
    baseline = load_baseline(default_baseline_path(scenario), scenario)
    floors = [c for c in baseline.criteria if c.metric == "rps" and c.op in (">", ">=")]
    assert all(c.profiles is not None and "smoke" not in c.profiles for c in floors)


def test_every_scenario_file_exists_and_no_stray_files() -> None:
    assert {p.stem for p in REPO_BASELINES.glob("*.toml")} == set(SCENARIOS)


def test_scenario_requests_use_grouped_names() -> None:
    assert registry.SCENARIOS["full_system"].requests == (
        "POST /api/calls",
        "POST /api/calls/[id]/retry",
        "GET /api/analytics/dashboard",
    )
    assert "JOB bulk import: upload to completed" in registry.SCENARIOS["bulk_import"].requests
    assert set(registry.SCENARIOS) == set(SCENARIOS)


def test_default_path_is_repo_baselines_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert default_baseline_path("health") == REPO_BASELINES / "health.toml"
    monkeypatch.setenv("LOADKIT_BASELINES_DIR", str(tmp_path))
    assert default_baseline_path("analytics") == tmp_path / "analytics.toml"


def test_default_path_rejects_unknown_scenario() -> None:
    with pytest.raises(BaselineError, match="unknown scenario 'helth'"):
        default_baseline_path("helth")


# --- units ----------------------------------------------------------------------------------


def _one(criterion: str, scenario: str = "health") -> Criterion:
    text = f'scenario = "{scenario}"\n[[criteria]]\n{textwrap.dedent(criterion)}'
    return parse_baseline(text, scenario).criteria[0]


@pytest.mark.parametrize(
    ("metric", "value", "threshold", "unit"),
    [
        ("p95", '"20ms"', 20.0, "ms"),
        ("p95", '"0.02s"', 20.0, "ms"),
        ("p99", '"1.5 s"', 1500.0, "ms"),
        ("max", '"0.15s"', 150.0, "ms"),
        ("error_rate", '"0.1%"', 1 / 1000, "fraction"),
        ("error_rate", "0.001", 1 / 1000, "fraction"),
        ("error_rate", '"0.01%"', 1 / 10000, "fraction"),
        ("rps", '"2000/s"', 2000.0, "/s"),
        ("rps", "75", 75.0, "/s"),
        ("count", "10", 10.0, "count"),
    ],
)
def test_thresholds_convert_exactly_to_canonical_units(
    metric: str, value: str, threshold: float, unit: str
) -> None:
    c = _one(f'request = "GET /health"\nmetric = "{metric}"\nop = "<"\nvalue = {value}\n')
    assert c.threshold == threshold
    assert c.unit == unit


def test_display_uses_the_unit_the_file_wrote() -> None:
    c = _one('request = "GET /health"\nmetric = "p95"\nop = "<"\nvalue = "1.5s"\n')
    assert c.describe() == "GET /health p95 < 1.5 s"
    c = _one('request = "total"\nmetric = "error_rate"\nop = "<"\nvalue = 0.001\n')
    assert c.describe() == "total error_rate < 0.1%"


def test_gauge_and_counter_criteria() -> None:
    gauge = _one('gauge = "queue_depth"\nmetric = "max"\nop = "<"\nvalue = 1000\n', "scheduling")
    assert (gauge.kind, gauge.subject, gauge.threshold) == ("gauge", "gauge queue_depth", 1000.0)
    counter = _one('counter = "dropped_iterations"\nmetric = "count"\nop = "<="\nvalue = 0\n')
    assert (counter.kind, counter.threshold) == ("counter", 0.0)


def test_queue_rates_and_growth_are_per_second() -> None:
    rate = _one(
        'counter = "queue_jobs_completed"\nmetric = "rate"\nop = ">="\nvalue = "45/s"\n',
        "scheduling",
    )
    assert (rate.threshold, rate.unit, rate.describe()) == (
        45.0, "/s", "counter queue_jobs_completed rate >= 45/s",
    )  # fmt: skip
    growth = _one('gauge = "queue_overdue"\nmetric = "growth_per_s"\nop = "<="\nvalue = 0\n')
    assert (growth.threshold, growth.unit) == (0.0, "/s")
    stalled = _one('counter = "queue_stalled_jobs"\nmetric = "count"\nop = "<"\nvalue = 1\n')
    assert (stalled.unit, stalled.describe()) == (
        "jobs",
        "counter queue_stalled_jobs count < 1 jobs",
    )


def test_a_counter_takes_only_its_own_metrics() -> None:
    with pytest.raises(BaselineError) as caught:
        _one('counter = "dropped_iterations"\nmetric = "rate"\nop = "<"\nvalue = 1\n')
    assert caught.value.key_path == "criteria[0].metric"
    assert "unknown metric 'rate' for a counter (known: count)" in caught.value.problem
    with pytest.raises(BaselineError) as caught:
        _one('counter = "queue_jobs_failed"\nmetric = "p95"\nop = "<"\nvalue = 1\n')
    assert "known: count, rate" in caught.value.problem
    with pytest.raises(BaselineError) as caught:
        _one('gauge = "queue_overdue"\nmetric = "growth_per_s"\nop = "<"\nvalue = "3 jobs"\n')
    assert "a rate is per second" in caught.value.problem


def test_abort_delay_in_seconds() -> None:
    c = _one(
        'request = "total"\nmetric = "error_rate"\nop = "<"\nvalue = "50%"\n'
        'abort_on_fail = true\ndelay_abort_eval = "2m"\n'
    )
    assert c.abort_on_fail and c.delay_abort_eval_s == 120.0


# --- profiles -------------------------------------------------------------------------------


def test_profiles_filter_criteria() -> None:
    baseline = parse_baseline(
        textwrap.dedent(
            """
            scenario = "health"
            [[criteria]]
            request = "total"
            metric = "error_rate"
            op = "<"
            value = "1%"
            [[criteria]]
            request = "GET /health"
            metric = "rps"
            op = ">="
            value = "1000/s"
            profiles = ["stress", "soak"]
            """
        ),
        "health",
    )
    everywhere, stress_only = baseline.criteria
    assert all(everywhere.applies_to(p) for p in PROFILES)
    assert baseline.criteria_for("stress") == (everywhere, stress_only)
    assert baseline.criteria_for("smoke") == (everywhere,)
    assert baseline.criteria_for("custom") == (everywhere,)


def test_check_profile() -> None:
    assert check_profile("soak") == "soak"
    with pytest.raises(ValueError, match="did you mean 'average'"):
        check_profile("averag")


def test_criterion_can_be_built_in_python() -> None:
    c = Criterion(request="GET /health", metric="p95", op="<=", value="20ms")
    assert c.threshold == 20.0
    Baseline(scenario="health", criteria=(c,))


# --- mistakes: one line, file, key path, line number ----------------------------------------

HEADER = 'scenario = "health"\n'
GOOD = '[[criteria]]\nrequest = "GET /health"\nmetric = "p95"\nop = "<"\nvalue = "20ms"\n'


def _criterion(**changes: str | None) -> str:
    fields: dict[str, str | None] = {
        "request": '"GET /health"',
        "metric": '"p95"',
        "op": '"<"',
        "value": '"20ms"',
    }
    fields.update(changes)
    body = "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)
    return "[[criteria]]\n" + body


# (text after HEADER + GOOD, expected key path, expected line, fragment of the problem)
# The bad criterion is criteria[1]: its header is line 7, request 8, metric 9, op 10, value 11.
MISTAKES = [
    (_criterion(metric='"p96"'), "criteria[1].metric", 9, "unknown metric 'p96' for a request"),
    (_criterion(request='"GET /helth"'), "criteria[1].request", 8, "did you mean 'GET /health'"),
    (
        _criterion(request='"POST /api/calls"'),
        "criteria[1].request",
        8,
        "unknown request 'POST /api/calls' for scenario 'health'",
    ),
    (_criterion(value='"-5ms"'), "criteria[1].value", 11, "negative threshold"),
    (_criterion(metric='"error_rate"', value="-0.1"), "criteria[1].value", 11, "negative"),
    (_criterion(value='"fast"'), "criteria[1].value", 11, "not a number"),
    (_criterion(value="true"), "criteria[1].value", 11, "must be a number"),
    (_criterion(value="nan"), "criteria[1].value", 11, "not a finite number"),
    (_criterion(value='"20kg"'), "criteria[1].value", 11, "bad unit 'kg'"),
    (_criterion(value="20"), "criteria[1].value", 11, "needs a unit"),
    (_criterion(metric='"error_rate"', value='"1ms"'), "criteria[1].value", 11, "bad unit 'ms'"),
    (_criterion(metric='"error_rate"', value="5"), "criteria[1].value", 11, "above 1"),
    (_criterion(metric='"error_rate"', value='"150%"'), "criteria[1].value", 11, "above 100%"),
    (_criterion(metric='"rps"', value='"100/min"'), "criteria[1].value", 11, "bad unit '/min'"),
    (_criterion(op='"=<"'), "criteria[1].op", 10, "got '=<'"),
    (_criterion(op=None), "criteria[1].op", 7, "missing"),
    (_criterion(profiles='["avg"]'), "criteria[1].profiles[0]", 12, "unknown profile 'avg'"),
    (_criterion(profiles='["smoke", "stres"]'), "criteria[1].profiles[1]", 12, "'stress'"),
    (_criterion(profiles='"average"'), "criteria[1].profiles", 12, "must be a list"),
    (_criterion(profiles="[]"), "criteria[1].profiles", 12, "apply nowhere"),
    (_criterion(thresold='"1"'), "criteria[1].thresold", 12, "unknown key"),
    (_criterion(gauge='"queue_depth"'), "criteria[1].gauge", 12, "only one of"),
    (_criterion(request=None, gauge='"queue_dept"'), "criteria[1].gauge", 11, "unknown gauge"),
    (
        _criterion(request=None, gauge='"queue_depth"', metric='"error_rate"'),
        "criteria[1].metric",
        8,
        "unknown metric 'error_rate' for a gauge",
    ),
    (_criterion(request=None, counter='"dropped"'), "criteria[1].counter", 11, "unknown counter"),
    (_criterion(request=None), "criteria[1].request", 7, "name a request"),
    (_criterion(delay_abort_eval='"30s"'), "criteria[1].delay_abort_eval", 12, "abort_on_fail"),
    (
        _criterion(abort_on_fail="true", delay_abort_eval="30"),
        "criteria[1].delay_abort_eval",
        13,
        "say the unit",
    ),
    (_criterion(abort_on_fail='"yes"'), "criteria[1].abort_on_fail", 12, "valid boolean"),
    (
        '[[reference]]\nname = "x"\ntarget = 10\nmaximum = 5\n',
        "reference[0].maximum",
        10,
        "below target",
    ),
    ('[[reference]]\nname = "x"\n', "reference[0].target", 7, "give a target"),
    ('[[reference]]\nname = "x"\ntarget = -1\n', "reference[0].target", 9, "greater than or equal"),
]


@pytest.mark.parametrize(("extra", "key_path", "line", "problem"), MISTAKES)
def test_mistake_is_one_line_naming_file_key_and_line(
    tmp_path: Path, extra: str, key_path: str, line: int, problem: str
) -> None:
    path = tmp_path / "health.toml"
    path.write_text(HEADER + GOOD + extra, encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_baseline(path, "health")
    error = caught.value
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: {key_path}: "), message
    assert problem in message
    assert (error.file, error.key_path, error.line) == (str(path), key_path, line)
    assert isinstance(error, ValueError)


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "health.toml"
    path.write_text(HEADER + GOOD + "[[criteria]]\nmetric = \n", encoding="utf-8")
    with pytest.raises(BaselineError) as caught:
        load_baseline(path, "health")
    assert str(caught.value).startswith(f"{path}:8: TOML syntax error: ")
    assert caught.value.line == 8


def test_file_for_another_scenario_is_refused() -> None:
    text = 'scenario = "analytics"\n' + GOOD.replace("GET /health", "GET /api/analytics/dashboard")
    with pytest.raises(
        BaselineError,
        match=r"^x.toml:1: scenario: this file is for scenario 'analytics', not 'health'$",
    ):
        parse_baseline(text, "health", source="x.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD, "x.toml: scenario: missing (required)"),
        ('scenario = "helth"\n' + GOOD, "x.toml:1: scenario: unknown scenario 'helth'"),
        (HEADER, "x.toml: criteria: missing (required)"),
        (HEADER + "criteria = []\n", "x.toml:2: criteria: no criteria"),
        (HEADER + "colour = 1\n" + GOOD, "x.toml:2: colour: unknown key"),
    ],
)
def test_top_level_mistakes(text: str, message: str) -> None:
    with pytest.raises(BaselineError) as caught:
        parse_baseline(text, "health", source="x.toml")
    assert str(caught.value).startswith(message), str(caught.value)


def test_several_mistakes_are_counted() -> None:
    text = HEADER + _criterion(metric='"p96"') + _criterion(op='"=="') + _criterion(value='"1kg"')
    with pytest.raises(BaselineError, match=r"criteria\[0\]\.metric: .* \(and 2 more problems\)$"):
        parse_baseline(text, "health", source="x.toml")


def test_unknown_scenario_argument() -> None:
    with pytest.raises(BaselineError, match="unknown scenario 'nope'"):
        parse_baseline(HEADER + GOOD, "nope", source="x.toml")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(BaselineError, match=f"^{missing}: cannot read the baseline"):
        load_baseline(missing, "health")


def test_line_numbers_survive_comments_and_blank_lines() -> None:
    text = (
        '# comment\n\nscenario = "health"\n\n[[criteria]] # first\n'
        'request = "GET /health"\nmetric = "p95"\nop = "<"\nvalue = "20ms"\n\n'
        "# second\n[[ criteria ]]\n"
        'request = "GET /health"\nmetric = "p95"\nop = "<"\n# the unit is wrong\nvalue = "20 kg"\n'
    )
    with pytest.raises(BaselineError) as caught:
        parse_baseline(text, "health", source="x.toml")
    assert caught.value.line == 17
    assert caught.value.key_path == "criteria[1].value"


def test_module_names_are_in_one_place() -> None:
    assert set(baselines.GAUGES) == {
        "queue_depth", "queue_overdue", "queue_waiting", "queue_active", "queue_delayed",
        "generator_rss_bytes", "generator_cpu_percent",
    }  # fmt: skip
    assert set(baselines.COUNTERS) == {
        "dropped_iterations", "dropped_late_iterations", "queue_jobs_completed",
        "queue_jobs_failed", "queue_stalled_jobs", "held_users",
    }  # fmt: skip
