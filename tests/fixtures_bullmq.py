"""Queue states built by real BullMQ (``tests/fixtures/bullmq``), and BullMQ's own counts of them.

``scripts/test.sh`` installs the pinned versions (``npm ci`` there). A missing Node or
``node_modules`` fails the tests that need them with the command to run: a skipped BullMQ test
would hide a wrong reading.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "bullmq"
MAJORS = (4, 5, 6)
STEP_TIMEOUT_S = 20.0
INSTALL_HINT = "run `npm ci` in tests/fixtures/bullmq (scripts/test.sh does this)"


@dataclass
class BuiltQueue:
    """A queue BullMQ has just built; the Node process waits until :meth:`bullmq_counts`."""

    major: int
    ready: dict[str, Any]
    """``{"version": "bullmq:6.7.6", "due_ms": [due time of each delayed job]}``."""
    process: subprocess.Popen[str]

    def bullmq_counts(self, at_ms: int | None = None) -> dict[str, Any]:
        """BullMQ's counts now (``getJobCounts()``, ``getDelayedCount()``...); BullMQ 6 also
        answers ``delayed_before_at``: ``getDelayedCount(at_ms)``. The Node process then exits."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{'' if at_ms is None else at_ms}\n")
        self.process.stdin.flush()
        return _json_line(self.process)


@contextmanager
def bullmq_stats_server(major: int, redis_url: str, prefix: str, queue: str) -> Iterator[str]:
    """A loopback HTTP endpoint answering BullMQ's ``getJobCounts()`` of the queue; its URL."""
    process = subprocess.Popen(
        [node_binary(), "stats_server.mjs", str(major), redis_url, prefix, queue],
        cwd=FIXTURE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{_json_line(process)['port']}"
    finally:
        _end(process)


@dataclass
class BullmqPlatform:
    """``platform_server.mjs``: the kit's API with the calls in a real BullMQ queue."""

    url: str
    version: str
    """``meta.version`` as BullMQ reports it (``bullmq:6.7.6``)."""

    def bullmq_counts(self) -> dict[str, Any]:
        """BullMQ's own ``getJobCounts()`` and metrics total, asked through the platform."""
        with urllib.request.urlopen(self.url + "/_bullmq/counts", timeout=5) as answer:
            counts: dict[str, Any] = json.load(answer)
        return counts


@contextmanager
def bullmq_platform(
    major: int, redis_url: str, prefix: str, queue: str, api_key: str, **options: Any
) -> Iterator[BullmqPlatform]:
    """A loopback platform whose ``POST /api/calls`` adds BullMQ jobs (see the script for
    ``options``: ``worker``, ``delay_scale``); no ``worker`` is a stalled dialer."""
    process = subprocess.Popen(
        [node_binary(), "platform_server.mjs", str(major), redis_url, prefix, queue,
         json.dumps(options)],
        cwd=FIXTURE_DIR,
        env={**os.environ, "API_KEY": api_key},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        ready = _json_line(process)
        yield BullmqPlatform(f"http://127.0.0.1:{ready['port']}", ready["version"])
    finally:
        _end(process)


def node_binary() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.fail(f"node is not installed (Node 20+): {INSTALL_HINT}", pytrace=False)
    if not (FIXTURE_DIR / "node_modules" / "bullmq6").is_dir():
        pytest.fail(f"BullMQ is not installed: {INSTALL_HINT}", pytrace=False)
    return binary


@contextmanager
def bullmq_queue(
    major: int, redis_url: str, prefix: str, queue: str, **plan: Any
) -> Iterator[BuiltQueue]:
    """Build ``plan`` (see ``make_queue.mjs``) in ``prefix:queue`` with BullMQ ``major``."""
    process = subprocess.Popen(
        [node_binary(), "make_queue.mjs", str(major), redis_url, prefix, queue, json.dumps(plan)],
        cwd=FIXTURE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield BuiltQueue(major, _json_line(process), process)
    finally:
        _end(process)


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=STEP_TIMEOUT_S)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _json_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=STEP_TIMEOUT_S)
        pytest.fail(f"make_queue.mjs ended early:\n{process.stderr.read()[-2000:]}", pytrace=False)
    answer: dict[str, Any] = json.loads(line)
    return answer
