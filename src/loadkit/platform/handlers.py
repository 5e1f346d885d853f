"""The endpoint handlers: request in, ``(status, payload)`` out, errors raised as HttpError.

Authentication, routing, faults and counting happen before a handler runs (see ``app.py``), so
each handler is only the endpoint's own contract, as written in ``docs/api.md``.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, timedelta
from typing import Any

from loadkit.platform import store as st
from loadkit.platform.analytics import dashboard_payload, parse_dashboard_query
from loadkit.platform.call_queue import CallQueue
from loadkit.platform.config import PlatformConfig
from loadkit.platform.imports import ImportFileError, ImportManager, parse_contacts_csv
from loadkit.platform.multipart import MultipartError, boundary_from_content_type, parse_multipart
from loadkit.platform.validation import (
    FieldError,
    check_campaign_id,
    check_delay_s,
    check_future_datetime,
    check_phone_number,
    utc_now,
)
from loadkit.platform.wsgi_io import HttpError, Request, validation_failed

Result = tuple[int, Any]
_REQUIRED = "field required"


class Handlers:
    def __init__(
        self,
        config: PlatformConfig,
        store: st.CallStore,
        queue: CallQueue,
        imports: ImportManager,
    ) -> None:
        self._config = config
        self._store = store
        self._queue = queue
        self._imports = imports
        self._started_s = time.monotonic()

    def health(self, request: Request) -> Result:
        return 200, {"status": "ok", "uptime_s": round(time.monotonic() - self._started_s, 3)}

    def create_call(self, request: Request) -> Result:
        body = _json_object(request, self._config.max_json_bytes)
        now = utc_now()
        errors: list[FieldError] = []
        phone = body.get("phone_number")
        if phone is None:
            errors.append(FieldError("phone_number", _REQUIRED))
        elif (problem := check_phone_number(phone)) is not None:
            errors.append(FieldError("phone_number", problem))
        scheduled_at = None
        if body.get("scheduled_at") is None:
            errors.append(FieldError("scheduled_at", _REQUIRED))
        else:
            scheduled_at, problem = check_future_datetime(body["scheduled_at"], now)
            if problem is not None:
                errors.append(FieldError("scheduled_at", problem))
        campaign_id = body.get("campaign_id")
        if campaign_id is None:
            errors.append(FieldError("campaign_id", _REQUIRED))
        elif (problem := check_campaign_id(campaign_id)) is not None:
            errors.append(FieldError("campaign_id", problem))
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            errors.append(FieldError("metadata", "must be a JSON object"))
        if errors or not (isinstance(phone, str) and isinstance(campaign_id, str) and scheduled_at):
            raise validation_failed(errors)
        call = st.Call(
            id=str(uuid.uuid4()),
            phone_number=phone,
            campaign_id=campaign_id,
            scheduled_at=scheduled_at,
            day=scheduled_at.astimezone(UTC).date().toordinal(),
            status=st.SCHEDULED,
            metadata=metadata,
        )
        self._store.add(call)
        self._queue.enqueue(call, scheduled_at.timestamp(), st.SCHEDULED)
        return 201, {
            "id": call.id,
            "status": st.SCHEDULED,  # at creation; a due call moves on to "queued" at once
            "phone_number": call.phone_number,
            "scheduled_at": scheduled_at.isoformat(),
            "campaign_id": call.campaign_id,
            "attempts": 0,
        }

    def retry_call(self, request: Request) -> Result:
        body = _json_object(request, self._config.max_json_bytes)
        now = utc_now()
        retry_at_text: Any = body.get("retry_at")
        delay_s: Any = body.get("delay_s")
        if (retry_at_text is None) == (delay_s is None):
            raise validation_failed([FieldError("body", "give exactly one of retry_at or delay_s")])
        if retry_at_text is not None:
            retry_at, problem = check_future_datetime(retry_at_text, now)
            if problem is not None or retry_at is None:
                raise validation_failed([FieldError("retry_at", str(problem))])
        else:
            if (problem := check_delay_s(delay_s)) is not None:
                raise validation_failed([FieldError("delay_s", problem)])
            retry_at = now + timedelta(seconds=float(delay_s))
        call = self._store.get(request.params["call_id"])
        if call is None:
            raise HttpError(404, "call not found")
        if call.status not in st.RETRYABLE_STATUSES:
            raise HttpError(409, _not_retryable_reason(call.status))
        if call.attempts >= self._config.max_attempts:
            raise HttpError(
                409,
                f"retry limit reached: {call.attempts} of {self._config.max_attempts} "
                "attempts used",
            )
        call.attempts += 1
        call.retry_at = retry_at
        self._queue.enqueue(call, retry_at.timestamp(), st.RETRY_SCHEDULED)
        return 202, {
            "id": call.id,
            "status": st.RETRY_SCHEDULED,
            "retry_at": retry_at.isoformat(),
            "attempts": call.attempts,
        }

    def import_contacts(self, request: Request) -> Result:
        try:
            boundary = boundary_from_content_type(request.content_type)
            body = request.read_body(self._config.max_upload_bytes)
            parts = parse_multipart(body, boundary)
        except MultipartError as exc:
            raise HttpError(400, str(exc)) from None
        files = [part for part in parts if part.name == "file"]
        if not files:
            raise HttpError(400, "missing form field 'file' (the CSV to import)")
        campaign_id = None
        for part in parts:
            if part.name == "campaign_id" and part.data.strip():
                campaign_id = part.data.decode("utf-8", "replace").strip()
                if (problem := check_campaign_id(campaign_id)) is not None:
                    raise validation_failed([FieldError("campaign_id", problem)])
        try:
            upload = parse_contacts_csv(files[0].data)
        except ImportFileError as exc:
            raise HttpError(400, str(exc)) from None
        job = self._imports.submit(upload, campaign_id)
        return 202, {"job_id": job.id, "status": job.status, "total_rows": job.total_rows}

    def import_status(self, request: Request) -> Result:
        job = self._imports.get(request.params["job_id"])
        if job is None:
            raise HttpError(404, "import job not found")
        return 200, job.to_json()

    def dashboard(self, request: Request) -> Result:
        query, errors = parse_dashboard_query(request.query(), utc_now())
        if query is None:
            raise validation_failed(errors)
        totals = self._store.dashboard(query.first_day, query.last_day, query.campaign_id)
        return 200, dashboard_payload(query, totals)

    def queue_stats(self, request: Request) -> Result:
        return 200, self._queue.stats()


def _json_object(request: Request, limit_bytes: int) -> dict[str, Any]:
    body = request.read_json(limit_bytes)
    if not isinstance(body, dict):
        raise validation_failed([FieldError("body", "must be a JSON object")])
    return body


def _not_retryable_reason(status: str) -> str:
    if status == st.IN_PROGRESS:
        return "call is in progress"
    if status == st.COMPLETED:
        return "call already completed"
    return f"call is {status}"
