"""Probe for tests/test_recorder.py: run real Locust with the kit's recorder attached.

Users call ``/ok`` (200) and ``/fail`` (500, a failure) on the test's counting server and fire
an occasional ``JOB`` timing (which must stay out of the HTTP total). At ``quitting`` the local
runner or master writes the recorder's snapshot, Locust's own counts and the timing of the
workers' reports around ``test_stop`` as JSON to ``$LOADKIT_RECORDER_PROBE_OUT``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from typing import Any

from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadkit.endpoints import JOB_REQUEST_TYPE
from loadkit.measure.recorder import REPORT_KEY, RunRecorder, attach

OUT_ENV = "LOADKIT_RECORDER_PROBE_OUT"
JOB_NAME = "probe job"


class ProbeUser(FastHttpUser):
    wait_time = constant(0.01)

    @task(8)
    def ok(self) -> None:
        self.client.get("/ok")

    @task(2)
    def fail(self) -> None:
        self.client.get("/fail")

    @task(1)
    def job(self) -> None:
        self.environment.events.request.fire(
            request_type=JOB_REQUEST_TYPE,
            name=JOB_NAME,
            response_time=random.uniform(100.0, 900.0),
            response_length=0,
            exception=None,
            context={},
        )


class _Evidence:
    """What the master saw around ``test_stop``: how much had arrived, and what came after."""

    def __init__(self, environment: Environment, recorder: RunRecorder) -> None:
        self.environment = environment
        self.recorder = recorder
        self.stopped_at_s: float | None = None
        self.at_test_stop: dict[str, Any] = {}
        self.after_test_stop: list[dict[str, Any]] = []
        environment.events.test_stop.add_listener(self.on_test_stop)
        environment.events.worker_report.add_listener(self.on_worker_report)
        environment.events.quitting.add_listener(self.on_quitting)

    def on_test_stop(self, **_kwargs: Any) -> None:
        self.stopped_at_s = time.monotonic()
        self.at_test_stop = {
            "count": self.recorder.snapshot()["Aggregated"].count,
            "reports": self.recorder.reports_received,
            "locust_total": self.environment.runner.stats.total.num_requests,
        }

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
        if self.stopped_at_s is None:
            return
        payload = data.get(REPORT_KEY, {})
        self.after_test_stop.append(
            {
                "worker": client_id,
                "after_s": time.monotonic() - self.stopped_at_s,
                "final": payload.get("final"),
                "requests": sum(row["hist"]["n"] for row in payload.get("rows", [])),
            }
        )

    def on_quitting(self, environment: Environment, **_kwargs: Any) -> None:
        path = os.environ.get(OUT_ENV)
        if not path:
            return
        stats = environment.runner.stats
        result = {
            "role": "master" if isinstance(environment.runner, MasterRunner) else "local",
            "snapshot": {key: dataclasses.asdict(m) for key, m in self.recorder.snapshot().items()},
            "locust_rows": {
                f"{e.method} {e.name}": [e.num_requests, e.num_failures]
                for e in stats.entries.values()
            },
            "locust_total": [stats.total.num_requests, stats.total.num_failures],
            "reports_received": self.recorder.reports_received,
            "stale_reports": self.recorder.stale_reports,
            "pending": sorted(self.recorder.pending_sources()),
            "at_test_stop": self.at_test_stop,
            "after_test_stop": self.after_test_stop,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    recorder = attach(environment)
    if not isinstance(environment.runner, WorkerRunner):
        _Evidence(environment, recorder)
