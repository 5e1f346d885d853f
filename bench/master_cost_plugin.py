"""Loaded into a Locust master by bench/master_cost.py: records what workers send, then replays it
as if from hundreds of workers and times the master's handling. Not part of the kit.

Recording happens at Locust's level, not the kit's, so it keeps working whatever the kit puts in
its messages: the ``data`` of every ``worker_report`` event (Locust's "stats" message, with
everything the kit's ``report_to_master`` listeners added) and every message of a type some
plugin registered with ``runner.register_message`` (wrapped in ``runner.custom_messages``).
Each is kept as Locust's own wire bytes (``Message.serialize``).

Replay runs in the same master, during the same run (the kit drops reports of another run), by
the route a message from the network takes: ``Message.unserialize`` then
``runner.handle_message``, with one made-up worker id per simulated worker. The real workers
keep running meanwhile; their few messages wait in the socket while a batch is timed.

Configured by environment variables (set by bench/master_cost.py):
``LOADKIT_BENCH_RECORD_S`` seconds of recording, ``LOADKIT_BENCH_WORKERS`` simulated worker
counts ("100,500"), ``LOADKIT_BENCH_ROUNDS`` report rounds per batch, ``LOADKIT_BENCH_REPEATS``,
``LOADKIT_BENCH_OUT`` the JSON file the timings go to.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.rpc.protocol import Message
from locust.runners import MasterRunner

_recorded: list[bytes] = []
_recording = True


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or "LOADKIT_BENCH_OUT" not in os.environ:
        return
    environment.events.worker_report.add_listener(_record_report)
    environment.events.test_start.add_listener(lambda **_: _wrap_custom_messages(runner))
    gevent.spawn(_record_then_replay, environment)


def _record_report(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    if _recording:
        _recorded.append(Message("stats", data, client_id).serialize())


def _wrap_custom_messages(runner: MasterRunner) -> None:
    for message_type, (listener, concurrent) in list(runner.custom_messages.items()):
        if getattr(listener, "_bench_wrapped", False):
            continue

        def recording(environment: Any, msg: Message, _listener: Any = listener) -> None:
            if _recording:
                _recorded.append(Message(msg.type, msg.data, msg.node_id).serialize())
            _listener(environment=environment, msg=msg)

        recording._bench_wrapped = True  # type: ignore[attr-defined]
        runner.custom_messages[message_type] = (recording, concurrent)


def _record_then_replay(environment: Any) -> None:
    global _recording
    gevent.sleep(float(os.environ.get("LOADKIT_BENCH_RECORD_S", "20")))
    _recording = False
    runner: MasterRunner = environment.runner
    stats_messages = sum(1 for raw in _recorded if Message.unserialize(raw).type == "stats")
    sizes = [int(n) for n in os.environ.get("LOADKIT_BENCH_WORKERS", "100,500").split(",")]
    rounds = int(os.environ.get("LOADKIT_BENCH_ROUNDS", "5"))
    repeats = int(os.environ.get("LOADKIT_BENCH_REPEATS", "3"))
    out: dict[str, Any] = {
        "recorded_messages": len(_recorded),
        "recorded_reports": stats_messages,
        "recorded_bytes_per_report": sum(map(len, _recorded)) / max(1, stats_messages),
        "message_types": sorted({Message.unserialize(raw).type for raw in _recorded}),
        "batches": [],
    }
    if stats_messages == 0:
        _write(out)
        return
    # Reports from made-up workers are logged by Locust at INFO ("Discarded report from
    # unrecognized worker"); keep that out of the timing, as a production master at WARNING would.
    logging.getLogger("locust.runners").setLevel(logging.WARNING)
    for _ in range(repeats):
        for workers in sizes:
            out["batches"].append(_replay(runner, workers, rounds))
    _write(out)


def _replay(runner: MasterRunner, workers: int, rounds: int) -> dict[str, Any]:
    """Feed ``rounds`` report intervals' worth of messages from ``workers`` made-up workers."""
    node_ids = [f"bench-replay-{workers}-{i}" for i in range(workers)]
    reports = 0
    handled = 0
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    index = 0
    for _ in range(rounds):
        for node_id in node_ids:
            # One report per worker per round, plus the custom messages that came with it.
            while True:
                message = Message.unserialize(_recorded[index % len(_recorded)])
                index += 1
                message.node_id = node_id
                runner.handle_message(node_id, message)
                handled += 1
                if message.type == "stats":
                    reports += 1
                    break
    cpu_s = time.process_time() - cpu_before
    wall_s = time.perf_counter() - wall_before
    gevent.sleep(0)  # let the real workers' waiting messages through between batches
    return {
        "workers": workers,
        "reports": reports,
        "messages": handled,
        "cpu_s": cpu_s,
        "wall_s": wall_s,
        "cpu_ms_per_report": cpu_s * 1000 / reports,
    }


def _write(out: dict[str, Any]) -> None:
    Path(os.environ["LOADKIT_BENCH_OUT"]).write_text(json.dumps(out, indent=2))
