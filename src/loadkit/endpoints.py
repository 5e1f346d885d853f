"""The platform's HTTP contract in one place: paths, and the request names the stats use.

Both the reference platform (which routes on these paths) and the scenarios (which call them)
import from here, so a path changes in one line. Request names are path templates with the
variable part in brackets, so Locust keeps one stats row per endpoint rather than one per id.
"""

from __future__ import annotations

from typing import Final

HEALTH: Final = "/health"
CALLS: Final = "/api/calls"
CALL_RETRY: Final = "/api/calls/{call_id}/retry"
CONTACTS_IMPORT: Final = "/api/contacts/import"
IMPORT_STATUS: Final = "/api/imports/{job_id}"
ANALYTICS_DASHBOARD: Final = "/api/analytics/dashboard"
QUEUE_STATS: Final = "/api/queue/stats"
#: Not part of the platform's API: the reference platform's own request counters, for tests.
PLATFORM_COUNTERS: Final = "/_loadkit/counters"
#: The platform's Prometheus text endpoint (CPU, memory, queue), scraped beside the load.
PLATFORM_METRICS: Final = "/metrics"

API_PREFIX: Final = "/api/"


def stats_name(template: str) -> str:
    """The grouped stats name: ``/api/calls/{call_id}/retry`` -> ``/api/calls/[id]/retry``.

    One stats row per endpoint, never one per id.
    """
    out: list[str] = []
    for part in template.split("/"):
        out.append("[id]" if part.startswith("{") and part.endswith("}") else part)
    return "/".join(out)


#: Request type of the kit's own timing entries (not HTTP requests): kept out of HTTP totals.
JOB_REQUEST_TYPE: Final = "JOB"
#: Request type of the arrival-rate executor's second row per request: latency measured from the
#: iteration's intended start, not from when it was sent (coordinated omission).
INTENDED_REQUEST_TYPE: Final = "INTENDED"
#: Stats rows that are not HTTP requests of their own: left out of HTTP totals and rates.
NON_HTTP_REQUEST_TYPES: Final = frozenset({JOB_REQUEST_TYPE, INTENDED_REQUEST_TYPE})
#: Stats name of the bulk import's upload-to-completed processing time.
IMPORT_PROCESSING_NAME: Final = "bulk import: upload to completed"


def request_name(method: str, template: str) -> str:
    """The stats name of a request: ``request_name("POST", CALL_RETRY)`` ->
    ``"POST /api/calls/[id]/retry"``. Baseline criteria name requests this way."""
    return f"{method} {stats_name(template)}"


def intended(request: str) -> str:
    """The arrival-rate executor's second row of ``request``, timed from the intended start."""
    return f"{INTENDED_REQUEST_TYPE} {request}"


HEALTH_CHECK: Final = request_name("GET", HEALTH)
SCHEDULE_CALL: Final = request_name("POST", CALLS)
RETRY_CALL: Final = request_name("POST", CALL_RETRY)
CONTACTS_IMPORT_REQUEST: Final = request_name("POST", CONTACTS_IMPORT)
IMPORT_STATUS_REQUEST: Final = request_name("GET", IMPORT_STATUS)
ANALYTICS_DASHBOARD_REQUEST: Final = request_name("GET", ANALYTICS_DASHBOARD)
QUEUE_STATS_REQUEST: Final = request_name("GET", QUEUE_STATS)
#: The bulk import's upload-to-completed row, as criteria name it.
IMPORT_PROCESSING_ROW: Final = f"{JOB_REQUEST_TYPE} {IMPORT_PROCESSING_NAME}"
