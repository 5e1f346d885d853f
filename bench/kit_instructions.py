"""Instructions per request of each layer of the kit, counted by callgrind (not a test).

Why instructions: on a machine shared with other work, CPU-time figures of the same run spread
by ±30%; valgrind's callgrind counts the instructions a process executes, which do not depend on
what else runs. Each variant runs in its own process under callgrind against nginx on loopback:
after a warm-up it asks callgrind to zero its counters, runs ``--requests`` more requests (or
arrival-rate iterations), and dumps the count, so start-up and shutdown are left out. The
process runs ~50x slower under valgrind, so every variant is CPU-bound (the capacity regime).

Variants (each adds one layer to the previous, except the arrival pair):

* ``bare``   -- FastHttpUser ``GET /health``, no check, Locust's stats only;
* ``check``  -- + ``catch_response`` and ``loadkit.workload.checks.expect_json``;
* ``user``   -- + ``PlatformUser`` (API key header, timeouts; the kit's user class);
* ``plugin`` -- + the kit's whole plugin initialised as ``locust -f`` does (recorder, per-second
  collector writing to a results folder, arrival tracker, verdict hook, queue sampler);
* ``lean``   -- like ``bare``, on the lean client (``loadkit.leanclient.LeanHttpUser``);
* ``lean-plugin`` -- like ``plugin`` (key header, timeouts, check, the kit's plugin), on the
  lean client;
* ``catch``  -- bare + ``catch_response`` and ``response.success()`` only (what Locust's
  response context manager costs, without the body check);
* ``naive-check`` -- bare + what a Locust user writes for the same work as the kit's health
  request (the key header, ``catch_response``, ``json.loads`` and a comparison): the base for the
  kit's own overhead, which is ``plugin`` (corrected, below) over this;
* ``plugin-idle`` -- the plugin with one user making one request a second: the instructions per
  second of the kit's and Locust's once-a-second work (with a row to write every second, as under
  load), less that one request (``user``'s count per request). Under valgrind a request takes
  ~50x longer, so the ``plugin`` row charges ~50x too much of that work to each request; the
  summary corrects it to what it is at ``--real-rps``;
* ``plugin-no-collector``, ``plugin-no-queue`` -- ``plugin`` without one piece: the collector's
  request listener, or the queue sampler (the arrival tracker listens only where an arrival-rate
  user exists: see ``open-post-no-intended``);
* ``open-post-no-intended`` -- ``open-post`` without the second (INTENDED) request event;
* ``closed-post`` -- the kit's scheduling request (payload, checked ``POST /api/calls``) in
  closed-loop users, plugin on;
* ``open-post``   -- the same request as arrival-rate iterations (``ArrivalRateUser``), plugin on.

Run (about 10 minutes)::

    .venv/bin/python bench/kit_instructions.py
    .venv/bin/python bench/kit_instructions.py --variants bare,plugin --requests 2000
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = (
    "bare",
    "catch",
    "check",
    "naive-check",
    "user",
    "plugin",
    "plugin-idle",
    "lean",
    "lean-plugin",
)
IDLE_S = 20.0  # plugin-idle: seconds of once-a-second work counted (wall clock, under valgrind)
#: The plugin with one piece taken out (``plugin-no-<piece>``): what that piece costs.
PLUGIN_PIECES = {
    "collector": "Measurement._subscribe.<locals>.on_request",  # loadkit.plugin.measurement
    "intended": "ArrivalTracker.on_request",  # loadkit.plugin.arrival (the INTENDED rows)
}
WARMUP_REQUESTS = 300


def child(variant: str, url: str, requests: int, results_dir: str, rate_per_s: float) -> None:
    """Run inside callgrind: warm up, zero the counters, run ``requests``, dump, exit."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from kit_overhead import (
        BareUser,
        CatchUser,
        CheckUser,
        NaiveCheckUser,
        _kit_user,
        _lean_user,
        bare_environment,
        kit_environment,
    )
    from locust import constant, task

    if variant == "bare":
        environment = bare_environment(BareUser, url)
    elif variant == "catch":
        environment = bare_environment(CatchUser, url)
    elif variant == "check":
        environment = bare_environment(CheckUser, url)
    elif variant == "naive-check":
        environment = bare_environment(NaiveCheckUser, url)
    elif variant == "plugin-idle":
        environment = kit_environment(_kit_user(wait_s=1.0), url, results_dir)
    elif variant == "user":
        environment = bare_environment(_kit_user(), url)
    elif variant == "lean":
        environment = bare_environment(_lean_user(kit=False), url)
    elif variant == "lean-plugin":
        environment = kit_environment(_lean_user(kit=True), url, results_dir)
    elif variant.startswith("plugin"):
        environment = kit_environment(_kit_user(), url, results_dir)
        remove_piece(environment, variant.removeprefix("plugin").removeprefix("-no-"))
    else:
        from loadkit.plugin.arrival import ArrivalRateUser
        from loadkit.plugin.user import PlatformUser
        from loadkit.workload.checks import expect_json

        def schedule_call(user: PlatformUser) -> None:
            with user.client.post(
                "/api/calls", json=user.data.schedule_call(), catch_response=True
            ) as response:
                expect_json(response, 201, required=("id",), equals={"status": "scheduled"})

        if variant == "closed-post":
            user_class = type(
                "ClosedPost", (PlatformUser,), {"wait_time": constant(0), "tasks": [schedule_call]}
            )
        else:
            user_class = type(
                "OpenPost",
                (ArrivalRateUser, PlatformUser),
                {"rate_per_s": rate_per_s, "tasks": [task(schedule_call)]},
            )
        environment = kit_environment(user_class, url, results_dir)
        remove_piece(environment, variant.removeprefix("open-post").removeprefix("-no-"))
    row = ("/api/calls", "POST") if "post" in variant else ("/health", "GET")

    def done_requests() -> int:
        return environment.stats.get(*row).num_requests

    def wait_for(count: int) -> None:
        while done_requests() < count:
            gevent.sleep(0.001)

    users = 1 if variant.startswith(("open-post", "plugin-idle")) else 10
    environment.runner.start(users, spawn_rate=users)
    if variant == "plugin-idle":
        wait_for(1)
        gevent.sleep(2.0)  # past the first second's set-up
    else:
        wait_for(WARMUP_REQUESTS)
    callgrind("--zero")
    start = done_requests()
    started_s = time.perf_counter()
    if variant == "plugin-idle":
        gevent.sleep(IDLE_S)
    else:
        wait_for(start + requests)
    elapsed_s = time.perf_counter() - started_s
    callgrind("--dump")
    counted = done_requests() - start
    if variant == "plugin-idle":
        print(f"COUNTED {counted} RATE 0 SECONDS {elapsed_s:.3f}", flush=True)
    else:
        print(f"COUNTED {counted} RATE {counted / elapsed_s:.1f}", flush=True)
    os._exit(0)


def callgrind(action: str) -> None:
    """Zero (``--zero``) or dump (``--dump``) this process's counts, from inside callgrind."""
    subprocess.run(
        ["callgrind_control", action, str(os.getpid())], check=True, stdout=subprocess.DEVNULL
    )


def remove_piece(environment: Any, piece: str) -> None:
    """Take one of the kit's per-request pieces out of a running plugin (see ``PLUGIN_PIECES``)."""
    if not piece:
        return
    if piece == "queue":  # its start-of-test listener: no sampling, no request to the target
        starts = environment.events.test_start._handlers
        (on_start,) = [h for h in starts if "install_queue_sampler" in h.__qualname__]
        environment.events.test_start.remove_listener(on_start)
        return
    handlers = environment.events.request._handlers
    wanted = PLUGIN_PIECES[piece]
    matching = [h for h in handlers if getattr(h, "__qualname__", "") == wanted]
    if len(matching) != 1:
        raise RuntimeError(f"no single request listener {wanted!r} among {handlers}")
    environment.events.request.remove_listener(matching[0])


def instructions_of(dump_dir: Path) -> int:
    """The instruction total of the last dump (``callgrind.out.PID.N`` with the highest N)."""
    dumps = sorted(dump_dir.glob("callgrind.out.*.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    text = dumps[-1].read_text(errors="replace")
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no totals in {dumps[-1]}")
    return int(match[1])


def run_variant(
    variant: str, url: str, requests: int, work: Path, rate_per_s: float
) -> tuple[int, int, float, float]:
    """(instructions, requests counted, their rate under valgrind, idle seconds) of a variant."""
    dump_dir = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADKIT_", "LOCUST_"))}
    env.update(API_KEY="bench-key-not-secret", PYTHONPATH=str(HERE))
    env.pop("API_URL", None)
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={dump_dir}/callgrind.out.%p",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant,
        "--url",
        url,
        "--requests",
        str(requests),
        "--results-dir",
        str(dump_dir),
        "--rate",
        str(rate_per_s),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    match = re.search(r"COUNTED (\d+) RATE ([\d.]+)(?: SECONDS ([\d.]+))?", done.stdout)
    if match is None:
        raise RuntimeError(f"{variant} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return instructions_of(dump_dir), int(match[1]), float(match[2]), float(match[3] or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--open-rate",
        type=float,
        default=0.0,
        help="open-post's rate per second under valgrind (default: 80%% of closed-post's "
        "rate when that ran first, else 60)",
    )
    parser.add_argument(
        "--real-rps",
        type=float,
        default=8000.0,
        help="the request rate at real speed the once-a-second work is spread over in the "
        "corrected plugin rows (per_core.py's kit rate on one core; default 8000)",
    )
    parser.add_argument("--rate", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.requests, args.results_dir, args.rate)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("valgrind not found: apt-get install -y valgrind")
    sys.path.insert(0, str(HERE))
    from nginx_target import nginx_target

    rows: list[tuple[str, float]] = []
    rates: dict[str, float] = {}
    idle_per_s: float | None = None
    with nginx_target(cpu=1) as target, tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            rate = args.open_rate or 0.8 * rates.get("closed-post", 75.0)
            instructions, counted, rates[variant], idle_s = run_variant(
                variant, target.url, args.requests, Path(tmp), rate
            )
            if variant == "plugin-idle":
                their_share = counted * dict(rows).get("user", 0.0)
                idle_per_s = (instructions - their_share) / idle_s
                print(
                    f"plugin-idle: {idle_per_s:,.0f} instructions per second of once-a-second "
                    f"work ({idle_s:.1f} s under valgrind, {counted} requests"
                    + (" taken off at user's count)" if their_share else ", not taken off)"),
                    file=sys.stderr,
                )
                continue
            per_request = instructions / counted
            label = f"{variant} at {rate:g}/s" if variant.startswith("open-post") else variant
            rows.append((label, per_request))
            print(
                f"{label}: {per_request:,.0f} instructions/request ({counted} requests, "
                f"{rates[variant]:.0f}/s under valgrind)",
                file=sys.stderr,
            )
    print(
        f"\nInstructions per request (callgrind, {args.requests} requests after "
        f"{WARMUP_REQUESTS} warm-up, CPU-bound under valgrind)\n"
    )
    print("| variant | instructions/request | vs first |")
    print("|---|---|---|")
    first = rows[0][1]
    for variant, per_request in rows:
        print(f"| {variant} | {per_request:,.0f} | {per_request / first:.2f}× |")
    if idle_per_s is not None:
        print(
            f"\nOnce-a-second work (plugin-idle): {idle_per_s:,.0f} "
            f"instructions/s; at {args.real_rps:,.0f} requests/s that is "
            f"{idle_per_s / args.real_rps:,.0f} per request.\n"
        )
        print("| variant, once-a-second work spread as at real speed | instructions/request |")
        print("|---|---|")
        for variant, per_request in rows:
            if "plugin" in variant and rates.get(variant):
                corrected = per_request - idle_per_s / rates[variant] + idle_per_s / args.real_rps
                print(f"| {variant} | {corrected:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
