"""Bulk import: upload a CSV of contacts, then follow the import job until it completes.

Expected (load-testing guide): 10 concurrent uploads, 1000 rows processed in < 60 s, error rate
< 1%. Upload-to-completed time shows as its own row, "JOB bulk import: upload to completed".
"""

import time

from locust import between, task

from loadkit import endpoints
from loadkit.plugin.user import PlatformUser
from loadkit.workload.checks import expect_json
from loadkit.workload.datagen import multipart_form
from loadkit.workload.import_jobs import report_processing_time, wait_for_import


class BulkImportUser(PlatformUser):
    wait_time = between(1, 3)

    @task
    def import_contacts(self) -> None:
        csv_bytes = self.data.contacts_csv(self.settings.import_rows)
        body, content_type = multipart_form(
            {"campaign_id": self.data.campaign_id()},
            {"file": ("contacts.csv", csv_bytes, "text/csv")},
        )
        started_s = time.monotonic()
        with self.client.post(
            endpoints.CONTACTS_IMPORT,
            data=body,
            headers={"Content-Type": content_type},
            catch_response=True,
        ) as response:
            job = expect_json(response, 202, required=("job_id",))
        if job is None:
            return
        outcome = wait_for_import(
            self.client,
            job["job_id"],
            started_s=started_s,
            timeout_s=self.settings.import_timeout_s,
        )
        report_processing_time(self.record_timing, outcome)
