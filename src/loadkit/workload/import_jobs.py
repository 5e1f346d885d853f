"""Following a bulk import to its end: poll the job with backoff, time upload → completed.

The processing time is reported as its own Locust stats entry (request type ``JOB``) so it gets
percentiles like any endpoint and can carry a baseline ("1000 rows in < 60 s"). Its resolution is
the polling interval: the poll delay starts at ``first_delay_s`` and grows to ``max_delay_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gevent

from loadkit import endpoints
from loadkit.workload.checks import expect_json

TERMINAL_STATUSES = frozenset({"completed", "failed"})


class ImportFailed(Exception):
    """The job failed, vanished or outlived its timeout; the message says which."""


@dataclass(frozen=True)
class ImportOutcome:
    job_id: str
    status: str
    total_rows: int
    processed_rows: int
    invalid_rows: int
    elapsed_s: float
    error: ImportFailed | None


def wait_for_import(
    client: Any,
    job_id: str,
    *,
    started_s: float,
    timeout_s: float,
    first_delay_s: float = 0.2,
    max_delay_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> ImportOutcome:
    """Poll ``GET /api/imports/{job_id}`` until the job ends or ``timeout_s`` passes.

    ``started_s`` is the ``clock()`` reading taken just before the upload, so the elapsed time
    covers upload and processing. Each poll is itself a checked request in the stats.
    """
    path = endpoints.IMPORT_STATUS.format(job_id=job_id)
    name = endpoints.stats_name(endpoints.IMPORT_STATUS)
    delay_s = first_delay_s
    last: dict[str, Any] = {}
    while True:
        with client.get(path, name=name, catch_response=True) as response:
            body = expect_json(response, 200, required=("status", "processed_rows", "total_rows"))
        if body is not None:
            last = body
        elapsed_s = clock() - started_s
        status = str(last.get("status", "unknown"))
        if status in TERMINAL_STATUSES:
            error = None
            if status == "failed":
                error = ImportFailed(
                    f"import job {job_id} failed: {last.get('error', 'no reason')}"
                )
            return _outcome(job_id, last, elapsed_s, error)
        if elapsed_s >= timeout_s:
            progress = f"{last.get('processed_rows', '?')}/{last.get('total_rows', '?')} rows"
            error = ImportFailed(
                f"import job {job_id} not completed after {timeout_s:g} s "
                f"(status {status}, {progress})"
            )
            return _outcome(job_id, last, elapsed_s, error)
        gevent.sleep(min(delay_s, max(0.0, timeout_s - elapsed_s)))
        delay_s = min(delay_s * 1.5, max_delay_s)


def _outcome(
    job_id: str, body: dict[str, Any], elapsed_s: float, error: ImportFailed | None
) -> ImportOutcome:
    return ImportOutcome(
        job_id=job_id,
        status=str(body.get("status", "unknown")),
        total_rows=int(body.get("total_rows", 0)),
        processed_rows=int(body.get("processed_rows", 0)),
        invalid_rows=int(body.get("invalid_rows", 0)),
        elapsed_s=elapsed_s,
        error=error,
    )


class TimingRecorder(Protocol):
    """``PlatformUser.record_timing``: a row of the kit's own, outside the request totals."""

    def __call__(
        self,
        request_type: str,
        name: str,
        response_time_ms: float,
        response_length: int = 0,
        exception: BaseException | None = None,
    ) -> None: ...


def report_processing_time(record_timing: TimingRecorder, outcome: ImportOutcome) -> None:
    """Record the ``JOB`` row of one import (a failure carries the reason)."""
    record_timing(
        endpoints.JOB_REQUEST_TYPE,
        endpoints.IMPORT_PROCESSING_NAME,
        outcome.elapsed_s * 1000.0,
        outcome.processed_rows,
        outcome.error,
    )
