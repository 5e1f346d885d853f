"""``loadkit ui`` as a user starts it, for the web UI tests (HTTP and browser)."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from conftest import REPO_ROOT

from loadkit.cli.topology import free_loopback_port

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout_s: float = 30, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@dataclass
class UiSession:
    """A running ``loadkit ui``: its printed URL, its session folder, and its console so far."""

    process: subprocess.Popen[bytes]
    console_file: Path
    url: str
    """The URL ``loadkit ui`` printed (with the base path and a trailing slash)."""
    results: Path
    auth: tuple[str, str] | None = None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("auth", self.auth)
        return requests.get(self.url + path.lstrip("/"), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("auth", self.auth)
        kwargs.setdefault("headers", {"Origin": self.origin})
        return requests.post(self.url + path.lstrip("/"), **kwargs)

    @property
    def origin(self) -> str:
        return "/".join(self.url.split("/", 3)[:3])

    def console(self) -> str:
        return self.console_file.read_text(encoding="utf-8", errors="replace")

    def status(self) -> dict[str, Any]:
        return self.get("loadkit/status").json()

    def session_dir(self) -> Path:
        folders = list(self.results.glob("*-ui-*"))
        assert len(folders) == 1, folders
        return folders[0]

    def run_verdict(self, folder: str) -> dict[str, Any]:
        return json.loads((self.session_dir() / folder / "verdict.json").read_text())


@contextlib.contextmanager
def ui_session(
    scenario: str,
    env: dict[str, str],
    results: Path,
    locust_args: Sequence[str] = (),
    auth: tuple[str, str] | None = None,
) -> Iterator[UiSession]:
    """Start ``loadkit ui SCENARIO`` on a free loopback port; stop it (SIGTERM) at the end."""
    port = free_loopback_port()
    command = [sys.executable, "-m", "loadkit.cli.main", "ui", scenario,
               "--web-port", str(port), "--results", str(results)]  # fmt: skip
    if locust_args:
        command += ["--", *locust_args]
    console = results.parent / f"{results.name}-ui-console.log"
    with console.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = _printed_url(process, console)
        session = UiSession(process, console, url, results, auth)
        wait_for(lambda: _answers(session), what="the web UI")
        yield session
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            process.kill()


def _printed_url(process: subprocess.Popen[bytes], console: Path) -> str:
    """The URL on ``loadkit ui``'s "web UI: <url> (...)" line."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in console.read_text(encoding="utf-8", errors="replace").splitlines():
            if "web UI: " in line:
                return line.split("web UI: ", 1)[1].split()[0]
        if process.poll() is not None:
            raise AssertionError(
                f"loadkit ui exited with {process.returncode}: {console.read_text()}"
            )
        time.sleep(0.1)
    raise AssertionError("loadkit ui printed no URL within 30 s")


def _answers(session: UiSession) -> bool:
    try:
        return session.get("loadkit/status", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
