"""Run the reference platform as a child process, for tests and ``loadkit run``.

A subprocess rather than a greenlet in the caller: the platform then has its own interpreter
(and core), so it neither steals CPU from the load generator nor shares its event loop, and the
numbers a test measures are the platform's. The API key travels in the child's environment,
never on its command line (visible to every user through ``ps``).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

import requests

from loadkit.endpoints import PLATFORM_COUNTERS, QUEUE_STATS
from loadkit.platform.protocol import API_KEY_ENV, LISTENING_PREFIX, PARENT_PID_ENV
from loadkit.process_lifetime import die_with_parent

STOP_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 5.0
STDERR_TAIL_CHARS = 2000
_URL_RE = re.compile(re.escape(LISTENING_PREFIX) + r"(http://\S+)")


class PlatformStartError(RuntimeError):
    """The platform did not announce itself; the message carries its stderr tail."""


class RunningPlatform:
    """A started platform: its URL, and the harness endpoints a test reads."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], api_key: str) -> None:
        self.url = url
        self.process = process
        self._api_key = api_key
        self._session = requests.Session()

    def __repr__(self) -> str:  # the key stays out of reprs and tracebacks
        return f"RunningPlatform(url={self.url!r}, pid={self.process.pid})"

    def counters(self) -> dict[str, Any]:
        """What the platform itself counted (``GET /_loadkit/counters``)."""
        return self._get_json(PLATFORM_COUNTERS, {})

    def reset_counters(self) -> None:
        response = self._session.post(
            self.url + PLATFORM_COUNTERS + "/reset", timeout=HTTP_TIMEOUT_S
        )
        response.raise_for_status()

    def queue_stats(self) -> dict[str, Any]:
        """``GET /api/queue/stats`` (with the key)."""
        return self._get_json(QUEUE_STATS, {"X-API-Key": self._api_key})

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``; returns the exit code. Idempotent."""
        self._session.close()
        return _terminate(self.process)

    def _get_json(self, path: str, headers: dict[str, str]) -> dict[str, Any]:
        response = self._session.get(self.url + path, headers=headers, timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        payload: dict[str, Any] = response.json()
        return payload


@contextmanager
def start_platform(
    api_key: str,
    *,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout_s: float = 10,
) -> Iterator[RunningPlatform]:
    """Start ``python -m loadkit.platform --port 0 *extra_args`` and yield it once listening.

    ``env`` adds to (or overrides) the inherited environment; ``api_key`` is set as
    ``API_KEY`` in it. On exit the process gets SIGTERM, then SIGKILL if it lingers. Raises
    :class:`PlatformStartError` if it exits or stays silent for ``startup_timeout_s``.
    """
    child_env = {
        **os.environ,
        **(env or {}),
        API_KEY_ENV: api_key,
        PARENT_PID_ENV: str(os.getpid()),
    }
    command = [sys.executable, "-m", "loadkit.platform", "--port", "0", *extra_args]
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,  # a file, not a pipe: an unread pipe would block the server
            env=child_env,
            preexec_fn=die_with_parent(),  # and its own watcher (PARENT_PID_ENV) elsewhere
        )
        try:
            url = _wait_for_url(process, startup_timeout_s, stderr_file)
            platform = RunningPlatform(url, process, api_key)
            try:
                yield platform
            finally:
                platform.stop()
        finally:
            _terminate(process)
            if process.stdout is not None:
                process.stdout.close()


def _wait_for_url(
    process: subprocess.Popen[bytes], timeout_s: float, stderr_file: IO[bytes]
) -> str:
    assert process.stdout is not None
    deadline_s = time.monotonic() + timeout_s
    received = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in received:
            remaining_s = deadline_s - time.monotonic()
            if remaining_s <= 0:
                _terminate(process)
                raise PlatformStartError(
                    f"platform did not announce itself within {timeout_s} s"
                    + _stderr_tail(stderr_file)
                )
            if not selector.select(remaining_s):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:  # EOF: the process exited (or closed stdout) before announcing
                code = _terminate(process)
                raise PlatformStartError(
                    f"platform exited with code {code} before listening" + _stderr_tail(stderr_file)
                )
            received += chunk
    line = received.split(b"\n", 1)[0].decode("utf-8", "replace")
    match = _URL_RE.search(line)
    if match is None:
        _terminate(process)
        raise PlatformStartError(f"unexpected first line from the platform: {line!r}")
    return match.group(1)


def _stderr_tail(stderr_file: IO[bytes]) -> str:
    stderr_file.seek(0)
    tail = stderr_file.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:].strip()
    return f"; stderr:\n{tail}" if tail else " (stderr was empty)"


def _terminate(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@contextmanager
def embedded_platform(settings: Any) -> Iterator[tuple[RunningPlatform, str]]:
    """The one place the kit starts its reference platform for a run with no ``API_URL``:
    ``(platform, key)``, the key being ``API_KEY`` if set, else a random one for this run."""
    import secrets

    key = settings.api_key_value or secrets.token_urlsafe(24)
    with start_platform(api_key=key) as platform:
        yield platform, key
