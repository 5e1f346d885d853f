"""Split the suite into shards that run side by side (``scripts/test.sh``: two, on two cores).

Whole files go to one shard, so a module's fixtures (a platform, a Redis, five smoke runs) are
built once. Files are weighed by what they cost, as measured (``durations.json`` beside this
file, seconds per file) or, for a file not measured yet, estimated from its tests (a real Locust
run is ~60 times a unit test), and handed out heaviest first to the lightest shard:
deterministic, so every shard process computes the same split from the same collection.

Refresh the measurements after adding slow tests (a shard of ~5 minutes should stay balanced)::

    for s in 1 2; do LOADKIT_TEST_SHARD=$s/2 .venv/bin/pytest --junitxml=/tmp/j$s.xml & done; wait
    .venv/bin/python tests/sharding.py /tmp/j1.xml /tmp/j2.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping
from pathlib import Path

DURATIONS_FILE = Path(__file__).with_name("durations.json")

#: Seconds a test costs, roughly (the suite's --durations): a slow one runs Locust for seconds.
SLOW_TEST_S = 7.0
FAST_TEST_S = 0.12


class ShardError(ValueError):
    """``LOADKIT_TEST_SHARD`` is not ``i/n`` with 1 <= i <= n."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/2"`` -> ``(1, 2)``."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ShardError(f"LOADKIT_TEST_SHARD={text!r}: expected i/n, e.g. 1/2") from None
    if not 1 <= i <= n:
        raise ShardError(f"LOADKIT_TEST_SHARD={text!r}: i must be between 1 and n")
    return i, n


def file_weights(
    tests: Iterable[tuple[str, bool]], measured: Mapping[str, float] | None = None
) -> dict[str, float]:
    """``(file, is_slow)`` per test -> the file's seconds: measured, else estimated."""
    weights: dict[str, float] = {}
    for path, slow in tests:
        weights[path] = weights.get(path, 0.0) + (SLOW_TEST_S if slow else FAST_TEST_S)
    known = measured or {}
    return {path: known.get(path, estimate) for path, estimate in weights.items()}


def measured_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    """The last measurement, or nothing (every file estimated) if there is none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def durations_from_junit(reports: Iterable[Path]) -> dict[str, float]:
    """Seconds per test file (``tests/test_x.py``) from pytest's JUnit XML reports."""
    seconds: dict[str, float] = {}
    for report in reports:
        for case in ElementTree.parse(report).iter("testcase"):
            module = case.get("classname", "").split(".")
            path = "/".join(part for part in module if not part[:1].isupper()) + ".py"
            seconds[path] = seconds.get(path, 0.0) + float(case.get("time", 0.0))
    return {path: round(s, 1) for path, s in sorted(seconds.items())}


def assign(weights: Mapping[str, float], count: int) -> dict[str, int]:
    """Each file's shard (1..count): heaviest first, to the lightest shard so far."""
    loads = [0.0] * count
    shards: dict[str, int] = {}
    for path in sorted(weights, key=lambda p: (-weights[p], p)):
        lightest = min(range(count), key=lambda s: (loads[s], s))
        shards[path] = lightest + 1
        loads[lightest] += weights[path]
    return shards


if __name__ == "__main__":
    durations = durations_from_junit(Path(arg) for arg in sys.argv[1:])
    DURATIONS_FILE.write_text(json.dumps(durations, indent=1) + "\n")
    print(f"{len(durations)} files, {sum(durations.values()):.0f} s -> {DURATIONS_FILE}")
