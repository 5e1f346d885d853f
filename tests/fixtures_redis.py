"""A real ``redis-server`` on a free loopback port, for the tests that need Redis.

Imported by the test modules that use it (``from fixtures_redis import redis_server``). A
missing ``redis-server`` fails those tests with the install command: CI installs it
(``scripts/test.sh``), and a skipped Redis test would hide a Redis bug.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

STARTUP_TIMEOUT_S = 5.0
INSTALL_HINT = (
    "redis-server is not installed; install it with "
    "`apt-get update && apt-get install -y redis-server` (scripts/test.sh does this)"
)


@dataclass
class RedisServer:
    """A running ``redis-server``: where it listens, and a client for checking its keys."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(data_dir: Path) -> RedisServer:
    """Start ``redis-server`` on loopback without persistence; fail the test if it cannot."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    last_log = ""
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = free_port()
        log_path = data_dir / f"redis-{port}.log"
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data_dir),
                "--logfile",
                str(log_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        server = RedisServer(port, process)
        if _wait_until_ready(server):
            return server
        stop_redis(server)
        last_log = log_path.read_text(errors="replace")[-1000:] if log_path.exists() else ""
    pytest.fail(f"redis-server did not start; its log ends with:\n{last_log}", pytrace=False)


def stop_redis(server: RedisServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def _wait_until_ready(server: RedisServer) -> bool:
    deadline_s = time.monotonic() + STARTUP_TIMEOUT_S
    client = server.client()
    try:
        while time.monotonic() < deadline_s:
            if server.process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        stop_redis(server)
