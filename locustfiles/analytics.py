"""Analytics dashboard: aggregate queries over varied time ranges and campaigns.

Expected (load-testing guide): 100 RPS, P95 < 500 ms, error rate < 0.5%. Each user asks about
five dashboards a second, as a team of analysts refreshing their views would.
"""

from urllib.parse import urlencode

from locust import between, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json

DASHBOARD_FIELDS = ("total_calls", "by_status", "by_day", "success_rate")


class AnalyticsUser(PlatformUser):
    wait_time = between(0.1, 0.3)

    @task
    def dashboard(self) -> None:
        query = urlencode(self.data.analytics_query())
        with self.client.get(
            f"{endpoints.ANALYTICS_DASHBOARD}?{query}",
            name=endpoints.ANALYTICS_DASHBOARD,
            catch_response=True,
        ) as response:
            expect_json(response, 200, required=DASHBOARD_FIELDS)
