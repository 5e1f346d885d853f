"""The suite's split into shards: whole files, balanced, the same in every shard process."""

from __future__ import annotations

from pathlib import Path

import pytest
from sharding import (
    ShardError,
    assign,
    durations_from_junit,
    file_weights,
    measured_durations,
    parse_shard,
)


def test_every_file_lands_in_exactly_one_shard_and_the_loads_are_balanced() -> None:
    tests = [("a.py", True)] * 6 + [("b.py", True)] * 5 + [("c.py", False)] * 200
    tests += [("d.py", True)] * 3 + [("e.py", False)] * 10
    weights = file_weights(tests)
    assert weights["a.py"] == pytest.approx(42.0) and weights["c.py"] == pytest.approx(24.0)
    shards = assign(weights, 2)
    assert set(shards) == set(weights) and set(shards.values()) == {1, 2}
    loads = [sum(w for p, w in weights.items() if shards[p] == s) for s in (1, 2)]
    assert abs(loads[0] - loads[1]) <= max(weights.values())
    assert assign(dict(reversed(list(weights.items()))), 2) == shards  # order does not matter


def test_one_shard_keeps_everything() -> None:
    assert set(assign({"a.py": 1.0, "b.py": 2.0}, 1).values()) == {1}


@pytest.mark.parametrize("text", ["", "2", "0/2", "3/2", "a/b", "1/0"])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(ShardError):
        parse_shard(text)
    assert parse_shard("2/3") == (2, 3)


def test_measured_seconds_override_the_estimate() -> None:
    weights = file_weights([("a.py", True), ("b.py", False)], {"a.py": 30.5})
    assert weights == {"a.py": 30.5, "b.py": pytest.approx(0.12)}


def test_durations_are_summed_per_file_from_junit_reports(tmp_path: Path) -> None:
    report = tmp_path / "j.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a" name="t1" time="1.25"/>'
        '<testcase classname="tests.test_a.TestGroup" name="t2" time="2.0"/>'
        '<testcase classname="tests.test_b" name="t3" time="0.5"/>'
        "</testsuite></testsuites>"
    )
    assert durations_from_junit([report]) == {"tests/test_a.py": 3.2, "tests/test_b.py": 0.5}
    assert measured_durations(tmp_path / "missing.json") == {}
    (tmp_path / "d.json").write_text('{"tests/test_a.py": 3}')
    assert measured_durations(tmp_path / "d.json") == {"tests/test_a.py": 3.0}
