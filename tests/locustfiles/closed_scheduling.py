"""Closed-model twin of locustfiles/scheduling.py, for tests/test_arrival_e2e.py.

The same call, but each user waits for its reply before scheduling the next one and never
waits in between: the load the platform receives is set by its own response time.
"""

from locust import constant, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json


class ClosedSchedulingUser(PlatformUser):
    wait_time = constant(0)

    @task
    def schedule_call(self) -> None:
        with self.client.post(
            endpoints.CALLS, json=self.data.schedule_call(), catch_response=True
        ) as response:
            expect_json(response, 201, required=("id",), equals={"status": "scheduled"})
