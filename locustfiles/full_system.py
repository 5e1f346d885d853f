"""Full system: users mixing call scheduling, retries and dashboard reads, with think time.

Expected (load-testing guide): 100 concurrent users, P95 < 1000 ms, error rate < 2%. Weights
follow a dialer's day: mostly scheduling, then dashboards, then retries of its own recent calls.
"""

from urllib.parse import urlencode

from locust import between, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json
from loadkit.workload.recent_calls import RecentCalls


class FullSystemUser(PlatformUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.recent_calls = RecentCalls()
        # A shift starts with each thing once: schedule, look at the dashboard, retry. The mix
        # below is random; this way even a one-user smoke run proves every request works.
        self.schedule_call()
        self.dashboard()
        self.retry_call()

    @task(5)
    def schedule_call(self) -> None:
        # Due in 1-10 minutes: still retryable when this user retries it.
        payload = self.data.schedule_call(delay_s=(60, 600))
        with self.client.post(endpoints.CALLS, json=payload, catch_response=True) as response:
            call = expect_json(response, 201, required=("id",))
        if call is not None:
            self.recent_calls.add(call["id"])

    @task(3)
    def dashboard(self) -> None:
        query = urlencode(self.data.analytics_query())
        with self.client.get(
            f"{endpoints.ANALYTICS_DASHBOARD}?{query}",
            name=endpoints.ANALYTICS_DASHBOARD,
            catch_response=True,
        ) as response:
            expect_json(response, 200, required=("total_calls", "by_status"))

    @task(2)
    def retry_call(self) -> None:
        call_id = self.recent_calls.pick()
        if call_id is None:
            self.schedule_call()
            return
        with self.client.post(
            endpoints.CALL_RETRY.format(call_id=call_id),
            json=self.data.retry(),
            name=endpoints.stats_name(endpoints.CALL_RETRY),
            catch_response=True,
        ) as response:
            expect_json(response, 202, equals={"status": "retry_scheduled"})
