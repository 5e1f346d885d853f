"""Contact CSV imports: parse at upload, validate rows in the background at a bounded rate.

The real platform answers an upload at once (202 with a job id) and works through the rows
afterwards, so clients poll the job; the stand-in does the same at ``rows_per_s`` per job, with
jobs running concurrently, so a load test sees realistic upload-to-completed times. The upload
is parsed completely up front (a malformed file is the client's 400, not a failed job); a job
is ``failed`` only when something systemic breaks, which here means the fault injection
``fail_ratio``.
"""

from __future__ import annotations

import csv
import io
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import gevent
from gevent.pool import Group

from loadkit.platform.validation import check_email, check_phone_number, isoformat_utc

PHONE_COLUMN: Final = "phone_number"
EMAIL_COLUMN: Final = "email"
MAX_REPORTED_ERRORS: Final = 100
TICK_S: Final = 0.05
"""How often a job wakes to validate the rows its rate allows since it started."""
MAX_ROWS_PER_TICK: Final = 2000
"""Cap on rows validated without yielding, so one fast job cannot stall the server."""

QUEUED: Final = "queued"
PROCESSING: Final = "processing"
COMPLETED: Final = "completed"
FAILED: Final = "failed"


class ImportFileError(ValueError):
    """The upload is not an importable CSV; the message is the 400's detail."""


@dataclass(frozen=True)
class ContactsCsv:
    """A parsed upload: normalised column names and the data records with their row numbers.

    Row numbers count records as a spreadsheet numbers rows: the header is row 1.
    """

    columns: tuple[str, ...]
    rows: list[tuple[int, list[str]]]


def parse_contacts_csv(data: bytes) -> ContactsCsv:
    """Parse an upload strictly enough that garbage is refused (:class:`ImportFileError`)."""
    if not data.strip():
        raise ImportFileError("file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError("file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        for record_no, record in enumerate(reader, start=1):
            if not any(field.strip() for field in record):
                continue  # blank line: counted as a row number, not imported
            if header is None:
                header = [name.strip().lower() for name in record]
                header_row = record_no
                continue
            rows.append((record_no, record))
    except csv.Error as exc:
        raise ImportFileError(f"file is not valid CSV: {exc}") from None
    if header is None:
        raise ImportFileError("file is empty")
    if header_row != 1 or PHONE_COLUMN not in header:
        raise ImportFileError(f"CSV header row must come first and name a {PHONE_COLUMN} column")
    if not rows:
        raise ImportFileError("CSV has a header row but no data rows")
    return ContactsCsv(columns=tuple(header), rows=rows)


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None
    """The bad column, or ``None`` when the row as a whole is malformed."""
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


def validate_row(
    row_no: int, record: list[str], columns: tuple[str, ...], seen_phones: dict[str, int]
) -> list[RowError]:
    """The errors of one record; records its phone number in ``seen_phones`` when it is new."""
    if len(record) != len(columns):
        return [RowError(row_no, None, f"expected {len(columns)} fields, got {len(record)}")]
    values = dict(zip(columns, record, strict=True))
    errors: list[RowError] = []
    phone = values[PHONE_COLUMN].strip()
    if not phone:
        errors.append(RowError(row_no, PHONE_COLUMN, "is required"))
    elif (problem := check_phone_number(phone)) is not None:
        errors.append(RowError(row_no, PHONE_COLUMN, problem))
    elif phone in seen_phones:
        errors.append(RowError(row_no, PHONE_COLUMN, f"duplicates row {seen_phones[phone]}"))
    else:
        seen_phones[phone] = row_no
    email = values.get(EMAIL_COLUMN, "").strip()
    if email and (problem := check_email(email)) is not None:
        errors.append(RowError(row_no, EMAIL_COLUMN, problem))
    return errors


@dataclass(eq=False)
class ImportJob:
    id: str
    campaign_id: str | None
    upload: ContactsCsv
    """The parsed file; its records are dropped when the job ends."""
    total_rows: int
    created_s: float
    fail_at_row_index: int | None = None
    """Index of the record at which an injected fault fails the job (``None``: it won't)."""
    status: str = QUEUED
    processed_rows: int = 0
    valid_rows: int = 0
    invalid_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    completed_s: float | None = None
    failure_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "status": self.status,
            "campaign_id": self.campaign_id,
            "total_rows": self.total_rows,
            "processed_rows": self.processed_rows,
            "valid_rows": self.valid_rows,
            "invalid_rows": self.invalid_rows,
            "errors": [error.to_json() for error in self.errors],
            "created_at": isoformat_utc(self.created_s),
            "completed_at": None if self.completed_s is None else isoformat_utc(self.completed_s),
            "failure_reason": self.failure_reason,
        }


class ImportManager:
    """Holds the jobs and runs one greenlet per job at ``rows_per_s``."""

    def __init__(self, rows_per_s: float, fail_ratio: float, rng: random.Random) -> None:
        self._rows_per_s = rows_per_s
        self._fail_ratio = fail_ratio
        self._rng = rng
        self._jobs: dict[str, ImportJob] = {}
        self._workers = Group()

    def submit(self, upload: ContactsCsv, campaign_id: str | None) -> ImportJob:
        fail_at = None
        if self._fail_ratio and self._rng.random() < self._fail_ratio:
            fail_at = len(upload.rows) // 2
        job = ImportJob(
            id=str(uuid.uuid4()),
            campaign_id=campaign_id,
            upload=upload,
            total_rows=len(upload.rows),
            created_s=time.time(),
            fail_at_row_index=fail_at,
        )
        self._jobs[job.id] = job
        self._workers.spawn(self._process, job)
        return job

    def get(self, job_id: str) -> ImportJob | None:
        return self._jobs.get(job_id)

    def status_counts(self) -> dict[str, int]:
        """Jobs by status, every status present (the ``/metrics`` gauge)."""
        counts = dict.fromkeys((QUEUED, PROCESSING, COMPLETED, FAILED), 0)
        for job in self._jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts

    def stop(self) -> None:
        self._workers.kill(block=True, timeout=2)

    def _process(self, job: ImportJob) -> None:
        started_s = time.monotonic()
        seen_phones: dict[str, int] = {}
        columns = job.upload.columns
        rows = job.upload.rows
        while job.processed_rows < job.total_rows:
            gevent.sleep(TICK_S)
            job.status = PROCESSING
            allowed = int((time.monotonic() - started_s) * self._rows_per_s)
            target = min(job.total_rows, allowed, job.processed_rows + MAX_ROWS_PER_TICK)
            for index in range(job.processed_rows, target):
                if index == job.fail_at_row_index:
                    self._finish(job, FAILED, "injected fault: import job failed")
                    return
                row_no, record = rows[index]
                row_errors = validate_row(row_no, record, columns, seen_phones)
                if row_errors:
                    job.invalid_rows += 1
                    room = MAX_REPORTED_ERRORS - len(job.errors)
                    job.errors.extend(row_errors[: max(room, 0)])
                else:
                    job.valid_rows += 1
                job.processed_rows += 1
        self._finish(job, COMPLETED, None)

    @staticmethod
    def _finish(job: ImportJob, status: str, reason: str | None) -> None:
        job.status = status
        job.failure_reason = reason
        job.completed_s = time.time()
        job.upload.rows.clear()  # the records are no longer needed; keep memory flat
