"""Shared fixtures: a real reference platform on loopback, and running the kit as a user would."""

from __future__ import annotations

# Locust patches the standard library when it is imported; tests import it after ssl/requests
# (through the platform launcher), so patch first, as Locust's own entry point does.
from gevent import monkey

monkey.patch_all()

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sharding import assign, file_weights, measured_durations, parse_shard

from loadkit.endpoints import CALLS
from loadkit.platform.launcher import RunningPlatform, start_platform

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Distinctive, so a leak into any output or file is found by a plain substring search.
TEST_API_KEY = "lk-test-key-7f3a9c2e51d84b06"
#: Environment variables of the developer's shell that would change what a test runs against.
_KIT_VARS = ("API_URL", "API_KEY", "REDIS_URL")
_KIT_PREFIXES = ("LOADKIT_", "LOCUST_")


@dataclass
class RunResult:
    exit_code: int
    output: str
    run_dir: Path | None

    def verdict(self) -> dict[str, Any]:
        assert self.run_dir is not None, self.output
        return json.loads((self.run_dir / "verdict.json").read_text())


def kit_env(
    api_url: str | None, api_key: str | None = TEST_API_KEY, **extra: str
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _KIT_VARS and not k.startswith(_KIT_PREFIXES)
    }
    if api_url is not None:
        env["API_URL"] = api_url
    if api_key is not None:
        env["API_KEY"] = api_key
    env.update(extra)
    return env


def run_kit(
    args: Sequence[str], env: dict[str, str], results: Path, timeout_s: float = 90
) -> RunResult:
    """``loadkit run ...`` in a subprocess, bounded in time; finds the run's results folder."""
    return run_kit_command(["run", *args], env, results, timeout_s)


def run_kit_command(
    args: Sequence[str], env: dict[str, str], results: Path, timeout_s: float = 90
) -> RunResult:
    """``loadkit <command> ...`` with ``--results`` added before any ``--``."""
    args = list(args)
    split = args.index("--") if "--" in args else len(args)
    args[split:split] = ["--results", str(results)]
    command = [sys.executable, "-m", "loadkit.cli.main", *args]
    done = subprocess.run(
        command,
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )
    runs = sorted(results.glob("*/")) if results.exists() else []
    return RunResult(done.returncode, done.stdout + done.stderr, runs[-1] if runs else None)


def schedule_calls(
    platform: RunningPlatform, count: int, due_in_s: float = 0.0, campaign_id: str = "test"
) -> list[str]:
    """Schedule ``count`` calls due in ``due_in_s`` (straight HTTP, not load); returns their ids."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=due_in_s)
    ids = []
    with requests.Session() as session:
        for i in range(count):
            response = session.post(
                platform.url + CALLS,
                json={
                    "phone_number": f"+1415555{i:04d}",
                    "scheduled_at": when.isoformat(),
                    "campaign_id": campaign_id,
                },
                headers={"X-API-Key": TEST_API_KEY},
                timeout=5,
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    return ids


@pytest.fixture(scope="module")
def platform() -> Iterator[RunningPlatform]:
    with start_platform(api_key=TEST_API_KEY) as running:
        yield running


@pytest.fixture
def fresh_platform(platform: RunningPlatform) -> RunningPlatform:
    platform.reset_counters()
    return platform


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``LOADKIT_TEST_SHARD=i/n``: keep the i-th of n shards of the tests that can share the
    machine (``tests/sharding.py``); ``serial`` tests are in no shard (they run alone)."""
    text = os.environ.get("LOADKIT_TEST_SHARD")
    if not text:
        return
    index, count = parse_shard(text)
    shared = [item for item in items if item.get_closest_marker("serial") is None]
    shards = assign(
        file_weights(
            ((_file(item), item.get_closest_marker("slow") is not None) for item in shared),
            measured_durations(),
        ),
        count,
    )
    kept = [item for item in shared if shards[_file(item)] == index]
    keep = set(kept)
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]
