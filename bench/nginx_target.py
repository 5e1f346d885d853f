"""Debian's nginx as a load target on loopback whose access log is the independent request count.

Why nginx: it answers the kit's requests in a few µs of its own CPU, so the load generator (not
the server) is what a benchmark measures, and its access log counts what was really received --
not what the generator believes it sent. The log lines carry ``$msec`` (epoch seconds with ms),
so a run's requests can be counted inside any time window.

The configuration answers what the kit's scenarios check (``loadkit.workload.checks.expect_json``):

* ``GET /health`` -> 200 ``{"status": "ok", ...}`` (the health scenario and preflight);
* ``POST /api/calls`` -> 201 ``{"id": ..., "status": "scheduled", ...}`` (the scheduling
  scenario requires ``id`` and ``status == "scheduled"``);
* ``GET /api/queue/stats`` -> 200 queue counts (preflight's key check and the queue sampler).

nginx runs as our own process (``daemon off``, its own prefix, pid file and logs in a temporary
folder), on a free loopback port, one worker, optionally pinned to one CPU with ``taskset``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"

HEALTH_BODY = '{"status":"ok","uptime_s":1.0}'
CALL_BODY = (
    '{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","status":"scheduled",'
    '"phone_number":"+14155550100","scheduled_at":"2030-01-01T00:00:00+00:00",'
    '"campaign_id":"bench","attempts":0}'
)
QUEUE_STATS_BODY = '{"waiting":0,"active":0,"delayed":0,"completed":0,"failed":0}'

_CONFIG = """\
{user_line}
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format counting '$msec $request_method $uri $status $connection';
    access_log {work}/access.log counting buffer=256k flush=1s;
    client_body_temp_path {work}/body;
    client_body_buffer_size 64k;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    tcp_nodelay on;
    default_type application/json;
    server {{
        listen {host}:{port} reuseport backlog=4096;
        location = /health {{ return 200 '{health}'; }}
        location = /api/calls {{ return 201 '{call}'; }}
        location = /api/queue/stats {{ return 200 '{queue}'; }}
        location / {{ return 404 '{{"error":"not found"}}'; }}
    }}
}}
"""


def free_port() -> int:
    """A port nobody listens on right now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pinned(command: Sequence[str], cpu: int | None) -> list[str]:
    """``command`` under ``taskset -c cpu`` when a CPU is given and taskset exists."""
    if cpu is None or shutil.which("taskset") is None:
        return list(command)
    return ["taskset", "-c", str(cpu), *command]


@dataclass(frozen=True)
class LogLine:
    at_s: float  # epoch seconds
    method: str
    path: str
    status: int
    connection: int  # nginx's connection serial number: new numbers are new connections


class NginxTarget:
    """A running nginx; ``url``, the access log, and counting by window."""

    def __init__(self, work: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.work = work
        self.port = port
        self.process = process
        self.url = f"http://{HOST}:{port}"
        self.access_log = work / "access.log"

    def log_offset(self) -> int:
        """Where the access log ends now: lines after it belong to what runs next."""
        self.flush()
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def flush(self) -> None:
        """Make nginx write its buffered log lines (it reopens its logs on USR1, flushing them)."""
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(0.3)

    def lines_since(self, offset: int) -> list[LogLine]:
        """Every request logged after ``offset`` (call ``flush`` first, or wait > 1 s)."""
        out: list[LogLine] = []
        with open(self.access_log, "rb") as handle:
            handle.seek(offset)
            for raw in handle:
                parts = raw.split()
                if len(parts) == 5:
                    at_s, method, path, status, connection = parts
                    out.append(
                        LogLine(
                            float(at_s),
                            method.decode(),
                            path.decode(),
                            int(status),
                            int(connection),
                        )
                    )
        return out

    def cpu_s(self) -> float:
        """CPU seconds of nginx's master and worker so far (the server's own cost)."""
        import psutil

        total = 0.0
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    total += times.user + times.system
        return total


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not listen on {HOST}:{port} within {timeout_s:g} s")


@contextlib.contextmanager
def nginx_target(cpu: int | None = 1, port: int | None = None) -> Iterator[NginxTarget]:
    """Start nginx on loopback (pinned to ``cpu`` if possible); stop it and clean up after."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx not found: apt-get install -y nginx-light")
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="loadkit-nginx-") as tmp:
        work = Path(tmp)
        (work / "body").mkdir()
        (work / "logs").mkdir()  # nginx's compiled-in default error log, before it reads ours
        user_line = f"user {_user_name()};" if os.geteuid() == 0 else ""
        (work / "nginx.conf").write_text(
            _CONFIG.format(
                user_line=user_line,
                work=work,
                host=HOST,
                port=port,
                health=HEALTH_BODY,
                call=CALL_BODY,
                queue=QUEUE_STATS_BODY,
            )
        )
        command = pinned(
            [binary, "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"], cpu
        )
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        try:
            _wait_listening(port, process, timeout_s=10)
            yield NginxTarget(work, port, process)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
