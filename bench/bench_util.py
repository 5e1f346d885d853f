"""What the capacity benchmarks share: the processes of a `loadkit run`, CPU pinning, CPU time,
nginx on loopback, and the figures file that `loadkit plan` reads.

Benchmarks, not tests: run by hand (bench/*.py), never by pytest. The machine they were written
on has 2 cores shared with other people, so every figure is a median over interleaved repeats,
with its spread, and CPU time is measured rather than wall time wherever it can be.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
#: The measured figures `loadkit plan` reads (package data, so an installed kit has them).
FIGURES_FILE = REPO / "src" / "loadkit" / "capacity_figures.json"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin(process: psutil.Process, core: int) -> None:
    """Pin a process (and its threads) to one core; a no-op where affinity cannot be set."""
    with contextlib.suppress(psutil.Error, OSError):
        process.cpu_affinity([core])


def cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds the process has used so far."""
    times = process.cpu_times()
    return times.user + times.system


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and range of repeated measurements (the figures file keeps all three)."""
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "n": len(values),
    }


@dataclass
class LoadkitRun:
    """A ``loadkit run ... --workers N`` started as a user would start it, and its processes."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, args: Sequence[str], env: dict[str, str], log_path: Path) -> LoadkitRun:
        command = [loadkit_command(), *args]
        log = log_path.open("wb")
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return cls(process, log_path)

    def locust_processes(
        self, role: str, count: int, timeout_s: float = 30.0
    ) -> list[psutil.Process]:
        """The Locust processes of ``role`` ("master" or "worker"), once ``count`` exist."""
        deadline = time.monotonic() + timeout_s
        flag = f"--{role}"
        while time.monotonic() < deadline:
            found = [
                p
                for p in psutil.Process(self.process.pid).children(recursive=True)
                if _cmdline_has(p, flag)
            ]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise RuntimeError(f"{count} {role} process(es) did not start; see {self.log_path}")

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            return self.process.wait(timeout=30)


def _cmdline_has(process: psutil.Process, flag: str) -> bool:
    try:
        return flag in process.cmdline()
    except psutil.Error:
        return False


def loadkit_command() -> str:
    """The ``loadkit`` command of this interpreter's environment (the one with the kit)."""
    beside = Path(sys.executable).parent / "loadkit"
    return str(beside) if beside.exists() else "loadkit"


def kit_env(api_url: str, api_key: str, **extra: str) -> dict[str, str]:
    """The caller's environment without kit/Locust settings, aimed at ``api_url``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOADKIT_", "LOCUST_")) and k not in ("API_URL", "API_KEY")
    }
    env.update(API_URL=api_url, API_KEY=api_key, LOADKIT_QUEUE_SOURCE="off", **extra)
    return env


# -- nginx -------------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    log_format stamp '$msec';
    keepalive_requests 1000000;
    server {{
        listen {host}:{port};
        location = /health {{
            access_log {work}/access.log stamp buffer=64k flush=1s;
            default_type application/json;
            return 200 '{{"status":"ok"}}';
        }}
    }}
}}
"""


@dataclass
class Nginx:
    """Debian's nginx as our own process: our config, a free loopback port, our access log."""

    process: subprocess.Popen[bytes]
    url: str
    access_log: Path

    def requests_between(self, start_epoch_s: float, end_epoch_s: float) -> int:
        """Requests whose log stamp ($msec: when the response was logged) falls in the window."""
        count = 0
        with self.access_log.open() as handle:
            for line in handle:
                stamp = float(line)
                if start_epoch_s <= stamp < end_epoch_s:
                    count += 1
        return count


@contextlib.contextmanager
def nginx(core: int | None = None) -> Iterator[Nginx]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx not found: apt-get install -y nginx-light")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as work:
        port = free_port()
        conf = Path(work) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, host=LOOPBACK, port=port))
        command = [binary, "-p", work, "-c", str(conf), "-e", f"{work}/error.log"]
        if core is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(core), *command]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        url = f"http://{LOOPBACK}:{port}"
        _wait_listening(port, process)
        try:
            yield Nginx(process, url, Path(work) / "access.log")
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx did not listen")


# -- the figures file --------------------------------------------------------------------------


def update_figures(section: str, value: dict[str, Any]) -> None:
    """Replace one section of the figures file, keeping the others (each bench owns one)."""
    figures = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.exists() else {}
    figures[section] = value
    FIGURES_FILE.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{len(cores())} cores ({model}), shared with other users"
