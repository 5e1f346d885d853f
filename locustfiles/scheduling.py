"""Call scheduling: how many calls per second the API accepts, and how fast.

Expected (load-testing guide): 50 calls/s, P95 < 200 ms, queue depth < 1000. The guide's
"Calls/Second" is an arrival rate, so calls are started at a rate whatever the platform's
response time (an open model: a slow platform gets the same load, and shows it), each call due
within the next 30 s, so the platform's queue fills and its dispatchers have work. The rate is
the scenario's default in the registry (50/s, ``loadkit scenarios``); ``--rate 80`` or
``--rate-stage 30s:50 --rate-stage 1m:200`` change it, ``rate_per_s = 80`` on a copy of this class
sets your own default (docs/arrival_rate.md).
"""

from locust import task

from loadkit import endpoints
from loadkit.plugin.arrival import ArrivalRateUser
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json


class SchedulingUser(ArrivalRateUser, PlatformUser):
    @task
    def schedule_call(self) -> None:
        with self.client.post(
            endpoints.CALLS, json=self.data.schedule_call(), catch_response=True
        ) as response:
            expect_json(response, 201, required=("id",), equals={"status": "scheduled"})
