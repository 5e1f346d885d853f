"""Call scheduling: how many calls per second the API accepts, and how fast.

Expected (load-testing guide): 50 calls/s, P95 < 200 ms, queue depth < 1000. Each user schedules
five calls a second (10 users = 50 calls/s), each due within the next 30 s, so the platform's
queue fills and its dispatchers have work.
"""

from locust import constant_throughput, task

from loadkit import endpoints
from loadkit.checks import expect_json
from loadkit.user import PlatformUser


class SchedulingUser(PlatformUser):
    wait_time = constant_throughput(5)

    @task
    def schedule_call(self) -> None:
        with self.client.post(
            endpoints.CALLS, json=self.data.schedule_call(), catch_response=True
        ) as response:
            expect_json(response, 201, required=("id",), equals={"status": "scheduled"})
