"""Probe for the tests of ``loadkit.plugin.outputs``: real Locust with the outputs installed.

Users call ``GET /health`` and ``GET /api/queue/stats`` on the reference platform and fire an
occasional ``JOB`` timing (which must stay out of the HTTP total); the kit's plugin (loaded with
``PlatformUser``) installs the outputs. At ``quit`` the local runner or master writes Locust's
own counts and the kit collector's per-second counts, as JSON, to ``$LOADKIT_OUTPUTS_PROBE_OUT``:
independent numbers for the tests to compare the outputs with.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from locust import constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadkit import endpoints
from loadkit.plugin.context import context_of
from loadkit.plugin.user import PlatformUser

OUT_ENV = "LOADKIT_OUTPUTS_PROBE_OUT"
JOB_NAME = "probe job"


class ProbeUser(PlatformUser):
    wait_time = constant(0.005)

    @task(6)
    def health(self) -> None:
        self.client.get(endpoints.HEALTH)

    @task(2)
    def queue_stats(self) -> None:
        self.client.get(endpoints.QUEUE_STATS)

    @task(1)
    def job(self) -> None:
        self.record_timing(endpoints.JOB_REQUEST_TYPE, JOB_NAME, random.uniform(100.0, 300.0))


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        environment.events.quit.add_listener(lambda **_: _write_evidence(environment))


def _write_evidence(environment: Environment) -> None:
    path = os.environ.get(OUT_ENV)
    if not path:
        return
    stats = environment.runner.stats
    measurement = context_of(environment).measurement
    recorder_per_second = measurement.collector.per_second("Aggregated") if measurement else {}
    result = {
        "role": "master" if isinstance(environment.runner, MasterRunner) else "local",
        "locust_rows": {
            f"{e.method} {e.name}": [e.num_requests, e.num_failures] for e in stats.entries.values()
        },
        "recorder_per_second": {str(s): list(v) for s, v in recorder_per_second.items()},
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
