"""``loadkit compare`` and ``loadkit history`` over a history of constructed records (no load)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadkit.cli.main import main
from loadkit.core.metrics import EndpointMetrics
from loadkit.core.plan import RunPlan
from loadkit.core.profiles import Stage
from loadkit.core.reference import request_row
from loadkit.results.history import HistoryStore
from loadkit.results.run_record import Provenance, build_record, target_origin

AVERAGE = (Stage(0.0, 10), Stage(300.0, 10))


def rows(p95_ms: float, rps: float, failures: int = 0) -> list[dict]:
    out = []
    for method, name in (("", "Aggregated"), ("GET", "/health")):
        metrics = EndpointMetrics(
            method, name, 1000, failures, 1.0, p95_ms * 2, p95_ms / 2, p95_ms / 2,
            p95_ms * 0.9, p95_ms, p95_ms * 1.1, rps, 300.0,
        )  # fmt: skip
        out.append(request_row(metrics))
    return out


def add_run(
    store: HistoryStore,
    day: int,
    p95_ms: float,
    rps: float = 100.0,
    *,
    passed: bool = True,
    stages: tuple[Stage, ...] = AVERAGE,
    profile: str = "average",
    http_client: str | None = "fast",
) -> str:
    plan = RunPlan("health", profile, stages)
    verdict = {
        "passed": passed,
        "exit_code": 0 if passed else 1,
        "state": "complete",
        "criteria": [],
        "requests": rows(p95_ms, rps),
        "started_at": f"2026-05-{day:02d}T02:00:00Z",
    }
    provenance = Provenance("http://user:secret@127.0.0.1:3000/api?x=1", "v1", http_client)
    store.append(build_record(plan, verdict, provenance, run_dir=None, started_at=""))
    return plan.run_id


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(tmp_path / "history.sqlite")


def loadkit(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str]:
    code = main([*args, "--results", str(tmp_path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_record_keeps_the_target_origin_only() -> None:
    assert target_origin("http://user:secret@127.0.0.1:3000/api?x=1") == "http://127.0.0.1:3000"
    assert target_origin("https://[::1]:8443") == "https://[::1]:8443"
    assert target_origin(None) is None


def test_compare_exits_1_on_a_regression_and_0_without(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = add_run(store, 1, 40.0)
    slower = add_run(store, 2, 52.0)
    code, out = loadkit(capsys, tmp_path, "compare", reference[:8], slower[:8])
    assert code == 1, out
    assert "regression (allowed +20%)" in out
    last = out.splitlines()[-1]
    assert last.startswith("4 regressions beyond the tolerances: ")  # P50 and P95, both rows
    assert "total p95 +12 ms (+30.0%)" in last and "p99" not in last  # +30% is P99's tolerance
    code, out = loadkit(capsys, tmp_path, "compare", reference, slower, "--tolerance", "p95=40%")
    assert code == 1  # p50 still rises by 30%
    code, _ = loadkit(
        capsys, tmp_path, "compare", reference, slower,
        "--tolerance", "p95=40%", "--tolerance", "p50=40%", "--tolerance", "p99=40%",
    )  # fmt: skip
    assert code == 0


def test_compare_says_when_the_two_runs_had_different_http_clients(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fast = add_run(store, 1, 40.0)
    lean = add_run(store, 2, 40.0, http_client="lean")
    unknown = add_run(store, 3, 40.0, http_client=None)  # a record from before the field
    note = "note: A ran on the fast HTTP client and B on the lean one"
    assert note in loadkit(capsys, tmp_path, "compare", fast, lean)[1]
    assert "HTTP client" not in loadkit(capsys, tmp_path, "compare", fast, unknown)[1]
    assert "HTTP client" not in loadkit(capsys, tmp_path, "compare", fast, fast)[1]


def test_compare_json_has_every_request_and_metric(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = add_run(store, 1, 40.0, 100.0), add_run(store, 2, 40.0, 80.0)
    code, out = loadkit(capsys, tmp_path, "compare", a, b, "--json")
    document = json.loads(out)
    assert code == 1 and document["exit_code"] == 1
    by_key = {(r["request"], r["metric"]): r for r in document["rows"]}
    assert by_key[("total", "rps")]["judgement"] == "regression"
    assert by_key[("total", "rps")]["relative"] == pytest.approx(-0.2)
    assert by_key[("total", "count")]["judgement"] == "not judged"
    assert by_key[("GET /health", "p95")]["judgement"] == "within"
    assert document["a"]["target"] == {"url": "http://127.0.0.1:3000", "version": "v1"}


def test_improvements_fail_only_with_fail_on_change(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = add_run(store, 1, 40.0, 100.0), add_run(store, 2, 40.0, 150.0)
    assert loadkit(capsys, tmp_path, "compare", a, b)[0] == 0
    assert loadkit(capsys, tmp_path, "compare", a, b, "--fail-on", "change")[0] == 1


def test_earlier_runs_spread_keeps_noise_from_counting(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for day, p95 in enumerate((44.0, 53.0, 41.0, 40.0), start=1):
        add_run(store, day, p95)
    tonight = add_run(store, 9, 52.0)
    # +30% against the last passing run, but inside the 40-53 ms the last runs showed.
    code, out = loadkit(
        capsys, tmp_path, "compare", "health/average", tonight,
        "--tolerance", "p50=100%", "--tolerance", "p99=100%",
    )  # fmt: skip
    assert code == 0, out
    assert "and the spread of 4 earlier passing runs" in out
    code, out = loadkit(
        capsys, tmp_path, "compare", "health/average", tonight, "--spread-runs", "0",
        "--tolerance", "p50=100%", "--tolerance", "p99=100%",
    )  # fmt: skip
    assert code == 1, out


def test_names_pick_runs_before_the_other_side_of_the_same_load(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = add_run(store, 1, 40.0)
    add_run(store, 2, 40.0, stages=(Stage(0.0, 5), Stage(30.0, 5)))  # another load
    failed = add_run(store, 3, 90.0, passed=False)
    code, out = loadkit(capsys, tmp_path, "compare", "health/average", "health/average@latest")
    assert code == 1
    assert f"A  run {first[:8]}" in out and f"B  run {failed[:8]}" in out
    # With one run given, A is its reference: here the one passing run before it.
    assert f"A  run {first[:8]}" in loadkit(capsys, tmp_path, "compare", failed)[1]


def test_a_series_without_a_reference_passes_only_when_asked(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only = add_run(store, 1, 40.0)
    code, out = loadkit(capsys, tmp_path, "compare", "health/average@reference", only)
    assert code == 2 and "nothing to compare with" in out
    args = ("compare", "health/average@reference", only, "--no-reference", "pass")
    assert loadkit(capsys, tmp_path, *args)[0] == 0
    # A run named by id that does not exist is an error whatever --no-reference says.
    assert loadkit(capsys, tmp_path, "compare", "deadbeef", only, "--no-reference", "pass")[0] == 2


def test_history_shows_the_series_and_flags_failures_and_the_reference(
    store: HistoryStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = add_run(store, 1, 40.0)
    store.mark_reference(reference)
    add_run(store, 2, 41.0)
    add_run(store, 3, 60.0, passed=False)
    add_run(store, 4, 40.0, stages=(Stage(0.0, 5), Stage(30.0, 5)), profile="smoke")
    code, out = loadkit(capsys, tmp_path, "history", "health")
    assert code == 2 and "say health/PROFILE" in out
    code, out = loadkit(capsys, tmp_path, "history", "health/average", "--json")
    assert code == 0
    trend = json.loads(out)
    assert [(r["p95_ms"], r["passed"], r["reference"]) for r in trend] == [
        (40.0, True, True), (41.0, True, False), (60.0, False, False),
    ]  # fmt: skip
    code, out = loadkit(capsys, tmp_path, "history", "health/average", "--markdown", "--last", "2")
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 3 and "| FAIL |" in table[-1]
    page = tmp_path / "trend.html"
    code, out = loadkit(capsys, tmp_path, "history", "health/average", "--chart", str(page))
    assert code == 0
    html = page.read_text()
    assert "<svg" in html and reference[:8] in html and "secret" not in html


def test_history_of_nothing_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = loadkit(capsys, tmp_path, "history", "health/average")
    assert code == 2
    assert (
        out.strip()
        == f"loadkit history: no recorded runs of health/average in {tmp_path}/history.sqlite"
    )
