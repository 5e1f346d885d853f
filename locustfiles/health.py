"""Health check: how many liveness probes per second the API answers, and how fast.

Expected (load-testing guide): 1000+ RPS, P95 < 50 ms, error rate < 0.1%. The users do not wait
between requests, so the rate is limited only by the platform and the generator.
"""

from locust import constant, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json


class HealthUser(PlatformUser):
    wait_time = constant(0)

    @task
    def health(self) -> None:
        with self.client.get(endpoints.HEALTH, catch_response=True) as response:
            expect_json(response, 200, equals={"status": "ok"})
