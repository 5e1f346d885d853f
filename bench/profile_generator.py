"""Where a load generator's CPU goes, per request: py-spy on a generator against nginx (not a test).

Runs one of ``per_core.py``'s generators (``bare``, ``kit``, ``lean``) against Debian's nginx on
loopback and samples it with py-spy (``pip install py-spy``; needs ptrace):

* ``--window steady`` (default): attaches to the Locust process ``--warmup-s`` after launch for
  ``--sample-s`` seconds, so only steady-state work is seen; nginx counts the requests sent in
  that span;
* ``--window whole``: samples the whole process tree from launch to exit (start-up, imports and
  end-of-run work included), against every request of the run.

Each sample stands for 1/rate s of CPU on a thread that was running (py-spy skips idle threads),
so ``samples / rate / requests`` is CPU µs per request. The report lists the frames with the
most inclusive time (everything under them) and self time, plus the kit's own components
(frames from ``loadkit/`` source files), each as µs per request and share of all samples.
py-spy itself runs on the server's CPU (1), the generator on CPU 0.

Run::

    .venv/bin/python bench/profile_generator.py kit
    .venv/bin/python bench/profile_generator.py bare --window whole --raw /tmp/bare.txt
"""

from __future__ import annotations

import argparse
import collections
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import psutil
from nginx_target import nginx_target, pinned
from per_core import GENERATOR_CPU, GENERATORS, SERVER_CPU, generator_env

Stack = tuple[str, ...]


def read_raw(path: Path) -> dict[Stack, int]:
    """py-spy's raw (collapsed) output: ``frame;frame;... count`` per line."""
    stacks: dict[Stack, int] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        frames, _, count = line.rpartition(" ")
        if frames:
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``; process frames kept short."""
    if frame.startswith("process "):
        return "process"
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    keep = "/".join(parts[-2:]) if "loadkit" in parts else parts[-1]
    return f"{name} ({keep})"


def inclusive(stacks: dict[Stack, int]) -> collections.Counter[str]:
    """Samples under each (shortened) frame, counted once per stack."""
    out: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        for frame in {short(f) for f in stack}:
            out[frame] += count
    return out


def self_time(stacks: dict[Stack, int]) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        out[short(stack[-1])] += count
    return out


def kit_frames(stacks: dict[Stack, int]) -> collections.Counter[str]:
    """Inclusive samples of the outermost ``loadkit/`` frame of each stack below Locust's own
    frames: what the kit's code costs, whoever called it."""
    out: collections.Counter[str] = collections.Counter()
    for stack, count in stacks.items():
        for frame in stack:
            if "(loadkit/" in frame or "/loadkit/" in frame:
                out[short(frame)] += count
                break
    return out


def print_top(
    title: str, counts: collections.Counter[str], total: int, scale_us: float, limit: int
) -> None:
    print(f"\n{title}")
    print(f"{'µs/req':>8} {'share':>6}  frame")
    for frame, samples in counts.most_common(limit):
        print(f"{samples * scale_us:8.1f} {samples / total:6.1%}  {frame}")


def locust_process(root: psutil.Process, timeout_s: float) -> psutil.Process:
    """The process running Locust in ``root``'s tree (root itself for a plain ``locust``)."""
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        for proc in [root, *root.children(recursive=True)]:
            cmdline = " ".join(proc.cmdline())
            if "-m locust" in cmdline or "locust " in cmdline.split("-m", 1)[-1][:8]:
                return proc
        time.sleep(0.1)
    raise RuntimeError("no Locust process appeared")


def scheduling_command(rate: str, url: str, args: argparse.Namespace, work: Path) -> list[str]:
    """``loadkit run scheduling --rate R``: the arrival-rate executor's cost per iteration."""
    return [
        sys.executable,
        "-m",
        "loadkit.cli",
        "run",
        "scheduling",
        "--rate",
        rate,
        "--no-baseline",
        "-t",
        f"{args.duration_s:g}s",
        "--api-url",
        url,
        "--results",
        str(work / "results"),
    ]


def profile(args: argparse.Namespace) -> tuple[Path, int, float]:
    """Run the generator under py-spy; returns (raw file, requests nginx saw, sampled span s)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    work = Path(tempfile.mkdtemp(prefix="loadkit-profile-"))
    raw = Path(args.raw) if args.raw else work / "profile.txt"
    key = secrets.token_urlsafe(24)
    with nginx_target(SERVER_CPU) as target:
        if args.generator.startswith("scheduling:"):
            command = scheduling_command(args.generator.partition(":")[2], target.url, args, work)
        else:
            generator = GENERATORS[args.generator]
            command = generator.command(target.url, args.connections, args.duration_s, work, key)
        env = generator_env(key)
        spy = [py_spy, "record", "--nonblocking", "-r", str(args.hz), "-f", "raw", "-o", str(raw)]
        offset = target.log_offset()
        if args.window == "whole":
            full = pinned(
                [*spy, "--subprocesses", "--", *pinned(command, GENERATOR_CPU)], SERVER_CPU
            )
            started_s = time.time()
            subprocess.run(
                full,
                env=env,
                cwd=work,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            target.flush()
            lines = target.lines_since(offset)
            return raw, len(lines), time.time() - started_s
        process = subprocess.Popen(
            pinned(command, GENERATOR_CPU),
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            locust = locust_process(psutil.Process(process.pid), timeout_s=30)
            time.sleep(args.warmup_s)
            started_s = time.time()
            subprocess.run(
                pinned(
                    [*spy, "--pid", str(locust.pid), "--duration", f"{args.sample_s:g}"], SERVER_CPU
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            ended_s = time.time()
            process.wait(timeout=args.duration_s + 60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        target.flush()
        lines = [line for line in target.lines_since(offset) if started_s <= line.at_s < ended_s]
        return raw, len(lines), ended_s - started_s


def report(raw: Path, requests: int, span_s: float, args: argparse.Namespace) -> None:
    stacks = read_raw(raw)
    total = sum(stacks.values())
    scale_us = 1e6 / args.hz / max(1, requests)
    print(
        f"{args.generator}, window {args.window}: {total} samples at {args.hz} Hz over "
        f"{span_s:.1f} s, {requests} requests in nginx's log ({requests / span_s:,.0f}/s); "
        f"sampled CPU {total * scale_us:.1f} µs/request. Raw stacks: {raw}"
    )
    print_top("Inclusive (all time under the frame):", inclusive(stacks), total, scale_us, args.top)
    print_top("Self (time in the frame itself):", self_time(stacks), total, scale_us, args.top)
    print_top(
        "The kit's code (outermost loadkit frame):", kit_frames(stacks), total, scale_us, args.top
    )


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "generator",
        help="bare, kit, lean (GET /health, closed loop) or scheduling:RATE (the arrival-rate "
        "scenario at RATE iterations/s)",
    )
    parser.add_argument("--window", choices=("steady", "whole"), default="steady")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration-s", type=float, default=15.0, help="the run's length")
    parser.add_argument("--warmup-s", type=float, default=4.0, help="steady: attach after this")
    parser.add_argument("--sample-s", type=float, default=8.0, help="steady: sample this long")
    parser.add_argument("--hz", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="rows per list")
    parser.add_argument("--raw", help="keep the raw stacks here")
    args = parser.parse_args(list(argv) if argv is not None else None)
    raw, requests, span_s = profile(args)
    report(raw, requests, span_s, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
