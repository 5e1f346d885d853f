"""CPU and memory of a whole process tree while it runs: what a load generator really costs.

Why a tree: ``loadkit run`` is a parent process plus a Locust child (plus workers when
distributed); counting only the Locust process hides the parent's work, and counting only the
parent misses the child until it exits. A tree's CPU at an instant is the sum, over its live
processes, of their own CPU plus what they collected from children they already reaped
(``children_user/system``): every process ever in the tree is then counted exactly once.

The whole run's CPU comes from ``os.wait4`` (the kernel's own total for the root and everything
it waited for), so start-up and shutdown are charged too. A sampler thread reads the tree every
``interval_s`` with epoch timestamps, so the CPU spent inside any window can be interpolated and
set against a server's count of the same window.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class TreeSample:
    at_s: float  # epoch seconds
    cpu_s: float
    rss_bytes: int
    processes: int


def tree_sample(root_pid: int) -> TreeSample | None:
    """The tree's CPU and summed RSS now; None once the root is gone."""
    at_s = time.time()
    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    cpu_s = 0.0
    rss = 0
    alive = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            with proc.oneshot():
                t = proc.cpu_times()
                cpu_s += t.user + t.system + t.children_user + t.children_system
                rss += proc.memory_info().rss
            alive += 1
    return TreeSample(at_s, cpu_s, rss, alive)


@dataclass
class TreeRun:
    """One finished run of a command: exit code, wall time, samples and kernel totals."""

    exit_code: int
    started_s: float
    ended_s: float
    total_cpu_s: float
    max_rss_bytes: int
    samples: list[TreeSample] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        return self.ended_s - self.started_s

    def cpu_between(self, start_s: float, end_s: float) -> float:
        """CPU seconds the tree spent between two epoch times (linear between samples)."""
        return self._cpu_at(end_s) - self._cpu_at(start_s)

    def _cpu_at(self, at_s: float) -> float:
        times = [s.at_s for s in self.samples]
        if not times:
            raise ValueError("no samples taken")
        i = bisect.bisect_left(times, at_s)
        if i == 0:
            return self.samples[0].cpu_s
        if i >= len(times):
            return self.samples[-1].cpu_s
        a, b = self.samples[i - 1], self.samples[i]
        share = (at_s - a.at_s) / (b.at_s - a.at_s) if b.at_s > a.at_s else 0.0
        return a.cpu_s + share * (b.cpu_s - a.cpu_s)

    def peak_rss_bytes(self) -> int:
        """The largest summed RSS of the tree seen by the sampler."""
        return max((s.rss_bytes for s in self.samples), default=0)


def run_tree(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdout_path: str | None = None,
    interval_s: float = 0.25,
    timeout_s: float = 600.0,
) -> TreeRun:
    """Run ``command`` to its end, sampling its tree; SIGKILL after ``timeout_s``."""
    out = open(stdout_path or os.devnull, "wb")  # noqa: SIM115 - closed below
    started_s = time.time()
    process = subprocess.Popen(
        list(command),
        env=dict(env) if env is not None else None,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    samples: list[TreeSample] = []
    done = threading.Event()

    def sample_forever() -> None:
        while not done.is_set():
            sample = tree_sample(process.pid)
            if sample is not None and sample.processes:
                samples.append(sample)
            done.wait(interval_s)

    sampler = threading.Thread(target=sample_forever, daemon=True)
    sampler.start()
    deadline_s = time.monotonic() + timeout_s
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline_s:
                process.kill()
            time.sleep(0.02)
    finally:
        done.set()
        sampler.join()
        out.close()
    ended_s = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    return TreeRun(
        exit_code=process.returncode,
        started_s=started_s,
        ended_s=ended_s,
        total_cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_bytes=usage.ru_maxrss * 1024,
        samples=samples,
    )
