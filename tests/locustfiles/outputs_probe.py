"""Probe for the tests of ``loadkit.plugin.outputs``: real Locust with the outputs installed.

Users call ``GET /health`` and ``GET /api/queue/stats`` on the reference platform and fire an
occasional ``JOB`` timing (which must stay out of the HTTP total). The file registers
``add_output_arguments`` and ``install_outputs`` itself (both are idempotent, so the kit's plugin
may do it too). At ``quit`` the local runner or master writes Locust's own counts and the kit
recorder's per-second counts, as JSON, to ``$LOADKIT_OUTPUTS_PROBE_OUT``: independent numbers
for the tests to compare the outputs with.
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
from loadkit.plugin.outputs import add_output_arguments, install_outputs
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
        self.environment.events.request.fire(
            request_type=endpoints.JOB_REQUEST_TYPE,
            name=JOB_NAME,
            response_time=random.uniform(100.0, 300.0),
            response_length=0,
            exception=None,
            context={},
        )


@events.init_command_line_parser.add_listener
def on_parser(parser: Any) -> None:
    add_output_arguments(parser)


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    install_outputs(environment)
    if not isinstance(environment.runner, WorkerRunner):
        environment.events.quit.add_listener(lambda **_: _write_evidence(environment))


def _write_evidence(environment: Environment) -> None:
    path = os.environ.get(OUT_ENV)
    if not path:
        return
    stats = environment.runner.stats
    hook = getattr(environment, "loadkit_verdict", None)
    recorder_per_second = hook.recorder.per_second("Aggregated") if hook is not None else {}
    result = {
        "role": "master" if isinstance(environment.runner, MasterRunner) else "local",
        "locust_rows": {
            f"{e.method} {e.name}": [e.num_requests, e.num_failures] for e in stats.entries.values()
        },
        "recorder_per_second": {str(s): list(v) for s, v in recorder_per_second.items()},
    }
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
