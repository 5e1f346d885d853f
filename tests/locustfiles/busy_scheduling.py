"""The scheduling scenario with 2 ms of extra CPU per iteration, for tests/test_arrival_e2e.py.

The extra work (after the reply, where a client's own work on a response goes) makes the load
generator, not the reference platform, the bottleneck: one process can run at most ~400 of
these iterations a second, whatever rate it is asked for.
"""

import time

from locust import task

from loadkit import endpoints
from loadkit.plugin.arrival import ArrivalRateUser
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json

BURN_S = 0.002


class BusySchedulingUser(ArrivalRateUser, PlatformUser):
    rate_per_s = 2000

    @task
    def schedule_call(self) -> None:
        with self.client.post(
            endpoints.CALLS, json=self.data.schedule_call(), catch_response=True
        ) as response:
            expect_json(response, 201, required=("id",), equals={"status": "scheduled"})
        end_s = time.perf_counter() + BURN_S
        while time.perf_counter() < end_s:
            pass
