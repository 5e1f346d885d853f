"""Where Locust runs: one process, a master with local workers, or one side of a cluster.

The kit uses Locust's own distribution (``--master`` / ``--worker``), never a home-made one:
``--workers N`` starts a master bound to loopback on a free port plus N worker processes of the
same locustfile; ``--master`` and ``--worker --master-host H`` run one side each, for clusters
that span machines. The shape, the verdict and the queue sampler run on the master only.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Literal

from loadkit.core.exit_codes import EXIT_NO_WORKERS
from loadkit.process_lifetime import die_with_parent, owner_env

Role = Literal["standalone", "master", "worker"]
LOCAL_MASTER_HOST = "127.0.0.1"
DEFAULT_MASTER_PORT = 5557
#: How long workers get to leave after the master has exited before they are killed.
WORKER_EXIT_GRACE_S = 10.0
#: How long a master waits for its expected workers before giving up.
EXPECT_WORKERS_MAX_WAIT_S = 30
NO_WORKERS_MESSAGE = (
    "loadkit: the master gave up: its workers did not all connect in time (-- "
    f"--expect-workers-max-wait, {EXPECT_WORKERS_MAX_WAIT_S} s unless given), so nothing was "
    f"sent (exit code {EXIT_NO_WORKERS}); check that they run and their --master-host and "
    "--master-port (locust.log says how many came)"
)


@dataclass(frozen=True)
class Topology:
    role: Role = "standalone"
    local_workers: int = 0
    master_host: str = LOCAL_MASTER_HOST
    master_port: int = DEFAULT_MASTER_PORT
    expect_workers: int | None = None

    @property
    def runs_master(self) -> bool:
        return self.role == "master" or self.local_workers > 0

    def master_args(self) -> list[str]:
        """Locust options of the master process (none for a single process)."""
        if not self.runs_master:
            return []
        expected = self.expect_workers or self.local_workers or 1
        args = [
            "--master",
            "--master-bind-port",
            str(self.master_port),
            "--expect-workers",
            str(expected),
            "--expect-workers-max-wait",
            str(EXPECT_WORKERS_MAX_WAIT_S),
        ]
        if self.local_workers:
            args[1:1] = ["--master-bind-host", LOCAL_MASTER_HOST]
        return args

    def worker_args(self) -> list[str]:
        return [
            "--worker",
            "--master-host",
            self.master_host,
            "--master-port",
            str(self.master_port),
        ]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCAL_MASTER_HOST, 0))
        return int(sock.getsockname()[1])


def run_processes(
    main: Sequence[str],
    helpers: Sequence[Sequence[str]],
    env: dict[str, str],
    helper_logs: Sequence[Path] = (),
) -> int:
    """Run ``main`` (a standalone Locust or the master) and ``helpers`` (its workers) to the end.

    SIGTERM/SIGINT to us go to ``main``, which stops its workers the Locust way and still writes
    its results. Workers that outlive the master by ``WORKER_EXIT_GRACE_S`` are terminated.
    Returns the exit code of ``main``. Every process started here ends when we do, even by
    SIGKILL (``loadkit.process_lifetime``).
    """
    # Each child in a session of its own: a Ctrl-C at the terminal reaches only this process,
    # which decides what the children get (``_wait_forwarding_signals``); and each one ends
    # when this process does, even by SIGKILL.
    env = {**env, **owner_env()}
    main_process = subprocess.Popen(
        list(main), env=env, start_new_session=True, preexec_fn=die_with_parent()
    )
    logs: list[IO[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for i, command in enumerate(helpers):
            out: IO[bytes] | int = subprocess.DEVNULL
            if i < len(helper_logs):
                handle = helper_logs[i].open("wb")
                logs.append(handle)
                out = handle
            workers.append(
                subprocess.Popen(
                    list(command),
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent(),
                )
            )
        code = _wait_forwarding_signals(main_process)
        if code == EXIT_NO_WORKERS:
            print(NO_WORKERS_MESSAGE, file=sys.stderr, flush=True)
    finally:
        for worker in workers:
            _stop(worker)
        if main_process.poll() is None:
            _stop(main_process)
        for handle in logs:
            handle.close()
    return code


def _wait_forwarding_signals(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process``, passing on Ctrl-C / SIGTERM with escalation.

    The first signal is passed on as it came (Locust stops the load gracefully, judges, writes
    its results); the second as SIGINT (the kit's plugin then stops the users at once, still
    writing what was measured); the third kills the process (the parent writes the verdict).
    """
    received = 0

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        with contextlib.suppress(ProcessLookupError):
            if received == 1:
                process.send_signal(signum)
            elif received == 2:
                process.send_signal(signal.SIGINT)
            else:
                process.kill()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=WORKER_EXIT_GRACE_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
