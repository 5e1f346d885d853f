"""Instructions per Locust ``request`` event of each kit listener, by callgrind (not a test).

Every request a load generator makes fires Locust's ``request`` event once (twice inside an
arrival-rate iteration: the ``INTENDED`` row). This builds the environment ``locust -f`` builds,
with the kit's plugin initialised (no users, no load, so nothing time-based runs), then fires
``--events`` events in a tight loop for each configuration, under callgrind, zeroing and dumping
the counters around each loop:

* ``locust``      -- Locust's own stats listener only (what bare Locust pays);
* ``+collector``  -- + the kit's collector (``loadkit.plugin.measurement``: counts, histogram,
  per-second series);
* ``+arrival``    -- + ``loadkit.plugin.arrival``'s tracker (outside an iteration: one check);
* ``+intended``   -- the same, fired inside an arrival iteration's greenlet: the tracker records
  the ``INTENDED`` row (the kit's collector and Locust's stats, outside Locust's total).

Run: ``.venv/bin/python bench/listener_instructions.py`` (a minute or two)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = ("locust", "+collector", "+arrival", "+intended")


def child(events: int, results_dir: str) -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from kit_overhead import _kit_user, kit_environment

    from loadkit.plugin import arrival

    environment = kit_environment(_kit_user(), "http://127.0.0.1:9", results_dir)
    environment.events.test_start.fire(environment=environment)  # the collector: a run
    request = environment.events.request
    handlers = list(request._handlers)

    def named(fragment: str) -> object:
        (handler,) = [h for h in handlers if fragment in getattr(h, "__qualname__", "")]
        return handler

    locust_stats = named("Runner.__init__.<locals>.on_request")
    collector = named("Measurement._subscribe.<locals>.on_request")
    # Subscribed only when the locustfile has an arrival-rate user (this one has none).
    tracker = arrival.tracker_of(environment).on_request
    fire = request.fire

    def fire_many() -> None:
        for i in range(events):
            fire(
                request_type="GET",
                name="/health",
                response_time=1.0 + (i % 50) * 0.1,
                response_length=30,
                exception=None,
                context={},
            )

    def measure(step: str, in_iteration: bool = False) -> None:
        subprocess.run(
            ["callgrind_control", "--zero", str(os.getpid())], check=True, stdout=subprocess.DEVNULL
        )
        if in_iteration:
            iteration = arrival._Iteration.__new__(arrival._Iteration)
            gevent.Greenlet.__init__(iteration, fire_many)
            iteration.start_delay_ms = 1.0
            iteration.start()
            iteration.join()
        else:
            fire_many()
        subprocess.run(
            ["callgrind_control", "--dump", str(os.getpid())],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"STEP {step}", flush=True)

    request._handlers = [locust_stats]
    measure("locust")
    request._handlers = [locust_stats, collector]
    measure("+collector")
    request._handlers = [locust_stats, collector, tracker]
    measure("+arrival")
    measure("+intended", in_iteration=True)
    os._exit(0)


def totals(dump_dir: Path) -> list[int]:
    """Instruction totals of the dumps, in dump order."""
    dumps = sorted(dump_dir.glob("callgrind.out.*.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    out = []
    for dump in dumps:
        match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
        assert match, dump
        out.append(int(match[1]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.events, args.results_dir)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADKIT_", "LOCUST_"))}
        env.update(API_KEY="bench-key-not-secret", PYTHONPATH=str(HERE), LOADKIT_QUEUE_SOURCE="off")
        env.pop("API_URL", None)
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out.%p",
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                "--events",
                str(args.events),
                "--results-dir",
                tmp,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        steps = re.findall(r"STEP (\S+)", done.stdout)
        if steps != list(STEPS):
            raise RuntimeError(f"child failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        counts = totals(Path(tmp))
    print(f"\nInstructions per request event (callgrind, {args.events} events per step)\n")
    print("| listeners | instructions/event | step |")
    print("|---|---|---|")
    previous = None
    for step, total in zip(STEPS, counts, strict=True):
        per_event = total / args.events
        delta = "" if previous is None else f"{per_event - previous:+,.0f}"
        print(f"| {step} | {per_event:,.0f} | {delta} |")
        previous = per_event
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
