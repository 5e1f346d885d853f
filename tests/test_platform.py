"""The reference platform, end to end on loopback (real subprocess, real HTTP), plus its parsers.

Two platforms serve the module: ``platform`` is fast and deterministic (every call completes,
few agents so a burst visibly queues); ``faulty`` injects latency and failures and keeps calls
in progress for seconds. Each test uses its own campaign ids, so tests sharing a platform don't
see each other's calls.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests

from loadkit import endpoints
from loadkit.platform import store as st
from loadkit.platform.faults import (
    FailureFault,
    FaultSpecError,
    LatencyFault,
    parse_failure_spec,
    parse_latency_spec,
)
from loadkit.platform.imports import ImportFileError, parse_contacts_csv, validate_row
from loadkit.platform.launcher import PlatformStartError, RunningPlatform, start_platform
from loadkit.platform.multipart import (
    MultipartError,
    boundary_from_content_type,
    parse_header_params,
    parse_multipart,
)
from loadkit.platform.routes import ROUTE_KEYS
from loadkit.platform.server import main

API_KEY = f"test-key-{secrets.token_hex(8)}"
TIMEOUT_S = 5
MAX_UPLOAD_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def platform() -> Iterator[RunningPlatform]:
    args = ["--agents", "4", "--call-duration-ms", "40", "--call-jitter-ms", "0"]
    args += ["--outcome-weights", "completed=1", "--max-attempts", "3", "--seed", "7"]
    args += ["--import-rows-per-s", "4000", "--max-upload-bytes", str(MAX_UPLOAD_BYTES)]
    with start_platform(API_KEY, extra_args=args) as running:
        yield running


@pytest.fixture(scope="module")
def faulty() -> Iterator[RunningPlatform]:
    args = ["--fail", "GET /api/analytics/dashboard=0.3", "--import-fail-ratio", "1"]
    args += ["--agents", "2", "--call-duration-ms", "3000", "--seed", "11"]
    env = {"LOADKIT_PLATFORM_LATENCY": "POST /api/calls=150"}
    with start_platform(API_KEY, extra_args=args, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


# ---- helpers --------------------------------------------------------------------------------


def call(
    http: requests.Session,
    platform: RunningPlatform,
    method: str,
    path: str,
    *,
    key: str | None = API_KEY,
    **kwargs: Any,
) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers.setdefault("X-API-Key", key)
    return http.request(method, platform.url + path, headers=headers, timeout=TIMEOUT_S, **kwargs)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def now_utc() -> datetime:
    return datetime.now(UTC)


def call_body(campaign_id: str, *, in_s: float = 0.0, phone: str = "+14155550123") -> dict:
    return {
        "phone_number": phone,
        "scheduled_at": iso(now_utc() + timedelta(seconds=in_s)),
        "campaign_id": campaign_id,
        "metadata": {"source": "test"},
    }


def schedule(http: requests.Session, platform: RunningPlatform, body: dict) -> dict:
    response = call(http, platform, "POST", endpoints.CALLS, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def retry_path(call_id: str) -> str:
    return endpoints.CALL_RETRY.format(call_id=call_id)


def wait_until(condition: Callable[[], Any], timeout_s: float = 10.0, poll_s: float = 0.05) -> Any:
    deadline_s = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(poll_s)


def wait_for_drain(platform: RunningPlatform) -> dict:
    def drained() -> dict | None:
        stats = platform.queue_stats()
        return stats if stats["waiting"] == 0 and stats["active"] == 0 else None

    return wait_until(drained)


def multipart_body(
    fields: dict[str, str], files: dict[str, tuple[str, bytes]], boundary: str = "b0undary"
) -> tuple[bytes, str]:
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, content) in files.items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


# ---- health, auth, routing ------------------------------------------------------------------


def test_health_needs_no_key(session: requests.Session, platform: RunningPlatform) -> None:
    response = call(session, platform, "GET", endpoints.HEALTH, key=None)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert isinstance(body["uptime_s"], float) and body["uptime_s"] >= 0


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 401, "missing API key"),
        ({"Authorization": f"Basic {API_KEY}"}, 401, "missing API key"),
        ({"X-API-Key": "wrong"}, 403, "invalid API key"),
        ({"Authorization": "Bearer wrong"}, 403, "invalid API key"),
        ({"X-API-Key": "clé-non-ascii"}, 403, "invalid API key"),
        ({"X-API-Key": API_KEY}, 200, None),
        ({"Authorization": f"Bearer {API_KEY}"}, 200, None),
    ],
)
def test_api_key_header_styles(
    session: requests.Session,
    platform: RunningPlatform,
    headers: dict[str, str],
    status: int,
    detail: str | None,
) -> None:
    encoded = {name: value.encode("utf-8") for name, value in headers.items()}
    response = call(session, platform, "GET", endpoints.QUEUE_STATS, key=None, headers=encoded)
    assert response.status_code == status
    if detail is not None:
        assert response.json() == {"detail": detail}
    assert API_KEY not in response.text
    assert all(API_KEY not in value for value in response.headers.values())


def test_unknown_path_and_wrong_method(
    session: requests.Session, platform: RunningPlatform
) -> None:
    missing = call(session, platform, "GET", "/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "not found"}
    wrong = call(session, platform, "DELETE", endpoints.CALLS)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert wrong.json() == {"detail": "method not allowed"}


def test_keep_alive_requests_are_not_delayed_by_nagle(platform: RunningPlatform) -> None:
    """Without TCP_NODELAY each keep-alive response stalls ~40 ms on loopback (delayed ACK)."""
    with requests.Session() as http:
        started_s = time.perf_counter()
        for _ in range(200):
            assert http.get(platform.url + endpoints.HEALTH, timeout=TIMEOUT_S).status_code == 200
        elapsed_s = time.perf_counter() - started_s
    assert elapsed_s < 2.0, f"200 keep-alive requests took {elapsed_s:.2f} s"


# ---- scheduling -----------------------------------------------------------------------------


def test_schedule_call(session: requests.Session, platform: RunningPlatform) -> None:
    body = call_body("sched-ok", in_s=3600)
    created = schedule(session, platform, body)
    assert created["status"] == "scheduled"
    assert created["attempts"] == 0
    assert created["phone_number"] == body["phone_number"]
    assert created["campaign_id"] == "sched-ok"
    assert datetime.fromisoformat(created["scheduled_at"]) == datetime.fromisoformat(
        body["scheduled_at"]
    )
    assert isinstance(created["id"], str) and created["id"]


def test_schedule_accepts_z_suffix_and_recent_past(
    session: requests.Session, platform: RunningPlatform
) -> None:
    body = call_body("sched-z")
    body["scheduled_at"] = (now_utc() - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    schedule(session, platform, body)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"phone_number": None}, "phone_number", "field required"),
        ({"phone_number": 14155550123}, "phone_number", "must be a string"),
        ({"phone_number": "14155550123"}, "phone_number", "E.164"),
        ({"phone_number": "+0415555012"}, "phone_number", "E.164"),
        ({"phone_number": "+1234567"}, "phone_number", "E.164"),
        ({"phone_number": "+1234567890123456"}, "phone_number", "E.164"),
        ({"phone_number": "+1415555012\n"}, "phone_number", "E.164"),
        ({"scheduled_at": None}, "scheduled_at", "field required"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at", "ISO-8601"),
        ({"scheduled_at": "2031-01-01T09:00:00"}, "scheduled_at", "timezone"),
        ({"scheduled_at": "2020-01-01T09:00:00Z"}, "scheduled_at", "in the past"),
        ({"campaign_id": None}, "campaign_id", "field required"),
        ({"campaign_id": ""}, "campaign_id", "must not be empty"),
        ({"campaign_id": "x" * 65}, "campaign_id", "at most 64"),
        ({"campaign_id": 7}, "campaign_id", "must be a string"),
        ({"metadata": ["not", "an", "object"]}, "metadata", "JSON object"),
    ],
)
def test_schedule_field_errors(
    session: requests.Session, platform: RunningPlatform, changes: dict, field: str, message: str
) -> None:
    body = {**call_body("sched-bad", in_s=60), **changes}
    body = {name: value for name, value in body.items() if value is not None}
    response = call(session, platform, "POST", endpoints.CALLS, json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["detail"] == "validation failed"
    assert [error["field"] for error in payload["errors"]] == [field]
    assert message in payload["errors"][0]["message"]


def test_schedule_lists_every_bad_field(
    session: requests.Session, platform: RunningPlatform
) -> None:
    body = {"phone_number": "12", "scheduled_at": "soon", "campaign_id": ""}
    response = call(session, platform, "POST", endpoints.CALLS, json=body)
    assert response.status_code == 422
    fields = [error["field"] for error in response.json()["errors"]]
    assert fields == ["phone_number", "scheduled_at", "campaign_id"]


@pytest.mark.parametrize(
    ("data", "status"),
    [(b"{not json", 400), (b"", 400), (b'{"x": NaN}', 400), (b"[1, 2]", 422), (b'"text"', 422)],
)
def test_schedule_body_errors(
    session: requests.Session, platform: RunningPlatform, data: bytes, status: int
) -> None:
    response = call(
        session,
        platform,
        "POST",
        endpoints.CALLS,
        data=data,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == status
    assert "detail" in response.json()


# ---- retry ----------------------------------------------------------------------------------


def test_retry_scheduled_call_until_attempts_run_out(
    session: requests.Session, platform: RunningPlatform
) -> None:
    created = schedule(session, platform, call_body("retry-limit", in_s=3600))
    path = retry_path(created["id"])
    first = call(session, platform, "POST", path, json={"delay_s": 60})
    assert first.status_code == 202
    assert first.json()["status"] == "retry_scheduled"
    assert first.json()["attempts"] == 1
    assert first.json()["id"] == created["id"]
    retry_at = iso(now_utc() + timedelta(hours=2))
    second = call(session, platform, "POST", path, json={"retry_at": retry_at})
    assert second.status_code == 202
    assert datetime.fromisoformat(second.json()["retry_at"]) == datetime.fromisoformat(retry_at)
    assert second.json()["attempts"] == 2
    assert call(session, platform, "POST", path, json={"delay_s": 3600}).json()["attempts"] == 3
    exhausted = call(session, platform, "POST", path, json={"delay_s": 60})
    assert exhausted.status_code == 409
    assert "retry limit" in exhausted.json()["detail"]


def test_retry_unknown_call(session: requests.Session, platform: RunningPlatform) -> None:
    response = call(session, platform, "POST", retry_path("no-such-call"), json={"delay_s": 1})
    assert response.status_code == 404
    assert response.json() == {"detail": "call not found"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"delay_s": 5, "retry_at": "2031-01-01T00:00:00Z"}, "body"),
        ({"delay_s": -1}, "delay_s"),
        ({"delay_s": "5"}, "delay_s"),
        ({"delay_s": True}, "delay_s"),
        ({"retry_at": "later"}, "retry_at"),
        ({"retry_at": "2020-01-01T00:00:00Z"}, "retry_at"),
    ],
)
def test_retry_validation(
    session: requests.Session, platform: RunningPlatform, body: dict, field: str
) -> None:
    created = schedule(session, platform, call_body("retry-bad", in_s=3600))
    response = call(session, platform, "POST", retry_path(created["id"]), json=body)
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_retry_completed_call_conflicts(
    session: requests.Session, platform: RunningPlatform
) -> None:
    created = schedule(session, platform, call_body("retry-done"))
    wait_for_drain(platform)  # every call completes on this platform
    response = call(session, platform, "POST", retry_path(created["id"]), json={"delay_s": 1})
    assert response.status_code == 409
    assert response.json() == {"detail": "call already completed"}


def test_retry_call_in_progress_conflicts(
    session: requests.Session, faulty: RunningPlatform
) -> None:
    created = schedule(session, faulty, call_body("retry-busy"))
    wait_until(lambda: faulty.queue_stats()["active"] >= 1)  # calls last 3 s there
    response = call(session, faulty, "POST", retry_path(created["id"]), json={"delay_s": 1})
    assert response.status_code == 409
    assert response.json() == {"detail": "call is in progress"}


# ---- queue ----------------------------------------------------------------------------------


def test_queue_rises_under_burst_and_drains(
    session: requests.Session, platform: RunningPlatform
) -> None:
    before = wait_for_drain(platform)
    for index in range(80):  # 4 agents x 40 ms = 100 calls/s: the burst must queue
        schedule(session, platform, call_body("burst", phone=f"+1415555{index:04d}"))
    during = platform.queue_stats()
    assert during["waiting"] + during["active"] > 10
    assert during["active"] <= 4
    after = wait_for_drain(platform)
    assert after["completed"] - before["completed"] >= 80
    assert after["failed"] == before["failed"]
    assert after["processing_rate_per_s"] > 0


def test_future_call_is_delayed_then_runs(
    session: requests.Session, platform: RunningPlatform
) -> None:
    before = wait_for_drain(platform)
    schedule(session, platform, call_body("delayed", in_s=0.8))
    assert platform.queue_stats()["delayed"] == before["delayed"] + 1
    wait_until(lambda: platform.queue_stats()["completed"] == before["completed"] + 1, 5)
    assert platform.queue_stats()["delayed"] == before["delayed"]


# ---- analytics ------------------------------------------------------------------------------


def test_dashboard_aggregates_by_campaign_status_and_day(
    session: requests.Session, platform: RunningPlatform
) -> None:
    campaign = f"dash-{secrets.token_hex(4)}"
    today = schedule(session, platform, call_body(campaign))["scheduled_at"]
    for _ in range(4):
        schedule(session, platform, call_body(campaign))
    in_two_days = now_utc() + timedelta(days=2)
    for _ in range(2):
        schedule(session, platform, {**call_body(campaign), "scheduled_at": iso(in_two_days)})
    schedule(session, platform, call_body("dash-other-campaign"))
    wait_for_drain(platform)

    query = {
        "from": iso(now_utc() - timedelta(days=1)),
        "to": iso(in_two_days),
        "campaign_id": campaign,
    }
    response = call(session, platform, "GET", endpoints.ANALYTICS_DASHBOARD, params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["campaign_id"] == campaign
    assert body["total_calls"] == 7
    assert body["by_status"]["completed"] == 5
    assert body["by_status"]["scheduled"] == 2
    assert sum(body["by_status"].values()) == 7
    assert body["success_rate"] == 1.0
    days = {entry["date"]: entry for entry in body["by_day"]}
    assert len(days) == 4  # yesterday .. in two days, empty days included
    today_date = datetime.fromisoformat(today).astimezone(UTC).date().isoformat()
    assert days[today_date] == {"date": today_date, "total": 5, "completed": 5}
    later = in_two_days.date().isoformat()
    assert days[later] == {"date": later, "total": 2, "completed": 0}

    everything = call(session, platform, "GET", endpoints.ANALYTICS_DASHBOARD).json()
    assert everything["campaign_id"] is None
    assert everything["total_calls"] >= 6  # default range: the last 7 days, all campaigns
    start = datetime.fromisoformat(everything["range"]["from"])
    end = datetime.fromisoformat(everything["range"]["to"])
    assert end - start == timedelta(days=7)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2030-13-01"}, "to"),
        ({"from": "2030-02-01", "to": "2030-01-01"}, "from"),
        ({"from": "2028-01-01", "to": "2030-01-01"}, "to"),
        ({"campaign_id": "c" * 65}, "campaign_id"),
    ],
)
def test_dashboard_rejects_bad_ranges(
    session: requests.Session, platform: RunningPlatform, query: dict, field: str
) -> None:
    response = call(session, platform, "GET", endpoints.ANALYTICS_DASHBOARD, params=query)
    assert response.status_code == 422
    assert field in [error["field"] for error in response.json()["errors"]]


def test_dashboard_accepts_unencoded_plus_offset(
    session: requests.Session, platform: RunningPlatform
) -> None:
    path = endpoints.ANALYTICS_DASHBOARD + "?from=2030-01-01T00:00:00+02:00&to=2030-01-03"
    response = call(session, platform, "GET", path)
    assert response.status_code == 200, response.text
    assert [day["date"] for day in response.json()["by_day"]] == [
        "2029-12-31",
        "2030-01-01",
        "2030-01-02",
        "2030-01-03",
    ]


def test_dashboard_sums_counters_not_calls() -> None:
    """A year-long query costs the same over 200k calls as over 2k: it reads counters per day.

    Timed as a ratio of two stores on the same host (best of 5, GC off), not against a wall-clock
    bound, so a busy neighbour or a collection cannot fail it; a scan of the calls would be ~100x.
    """
    first_day = date(2030, 1, 1)
    year = (first_day, first_day + timedelta(days=365))
    big, small = _year_of_calls(200_000), _year_of_calls(2_000)
    totals = big.dashboard(*year, None)
    one_campaign = big.dashboard(*year, "c3")
    assert totals.total_calls == 200_000
    assert totals.by_status[st.COMPLETED] == 40_000
    assert totals.success_rate == pytest.approx(0.25)
    assert one_campaign.total_calls == sum(1 for i in range(200_000) if i % 7 == 3)
    assert len(totals.by_day) == 366
    assert small.dashboard(*year, None).total_calls == 2_000

    def best_of_5(store: st.CallStore) -> float:
        timings = []
        for _ in range(5):
            started_s = time.perf_counter()
            store.dashboard(*year, None)
            store.dashboard(*year, "c3")
            timings.append(time.perf_counter() - started_s)
        return min(timings)

    gc.disable()
    try:
        big_s, small_s = best_of_5(big), best_of_5(small)
    finally:
        gc.enable()
    assert big_s < 3 * small_s, (
        f"200k calls: {big_s * 1e3:.2f} ms, 2k calls: {small_s * 1e3:.2f} ms"
    )


def _year_of_calls(count: int) -> st.CallStore:
    """``count`` calls over 2030, five statuses in turn, seven campaigns."""
    store = st.CallStore()
    rng = random.Random(1)
    statuses = (st.COMPLETED, st.NO_ANSWER, st.BUSY, st.FAILED, st.SCHEDULED)
    for index in range(count):
        day = date(2030, 1, 1) + timedelta(days=rng.randrange(365))
        when = datetime(day.year, day.month, day.day, tzinfo=UTC)
        status = statuses[index % 5]
        store.add(
            st.Call(str(index), "+14155550123", f"c{index % 7}", when, day.toordinal(), status)
        )
    return store


def test_status_change_moves_counts_between_statuses() -> None:
    store = st.CallStore()
    day = date(2030, 5, 1)
    when = datetime(2030, 5, 1, 12, tzinfo=UTC)
    calls = [
        st.Call(str(i), "+14155550123", "c", when, day.toordinal(), st.QUEUED) for i in range(4)
    ]
    for item in calls:
        store.add(item)
    for item, outcome in zip(
        calls, (st.COMPLETED, st.NO_ANSWER, st.BUSY, st.IN_PROGRESS), strict=True
    ):
        store.set_status(item, outcome)
    totals = store.dashboard(day, day, "c")
    assert totals.by_status[st.QUEUED] == 0
    assert totals.total_calls == 4
    assert totals.success_rate == pytest.approx(1 / 3)  # in_progress is not finished
    assert totals.by_day == [(day, 4, 1)]
    assert store.dashboard(day, day, "other").total_calls == 0


# ---- imports --------------------------------------------------------------------------------


def contacts_csv() -> tuple[bytes, int, int]:
    """A CSV with known bad rows; returns (bytes, valid rows, invalid rows)."""
    lines = [
        "phone_number,first_name,last_name,email,timezone",
        "+14155550101,Ava,Smith,ava@example.com,UTC",  # row 2
        "+14155550102,Liam,Garcia,,UTC",  # row 3: no email is fine
        "12345,Bad,Phone,bad@example.com,UTC",  # row 4: phone
        "+14155550103,Bad,Email,not-an-email,UTC",  # row 5: email
        "+14155550101,Dup,Phone,dup@example.com,UTC",  # row 6: duplicates row 2
        ",No,Phone,none@example.com,UTC",  # row 7: phone missing
        "+14155550104,Too,Many,x@example.com,UTC,extra",  # row 8: field count
        '"+14155550105","Quoted, Name",Q,q@example.com,UTC',  # row 9
        "",  # row 10: blank, skipped
    ]
    lines += [f"+1415556{index:04d},Gen,Row,gen{index}@example.org,UTC" for index in range(150)]
    return ("\r\n".join(lines) + "\r\n").encode(), 153, 5


def test_import_lifecycle(session: requests.Session, platform: RunningPlatform) -> None:
    data, valid, invalid = contacts_csv()
    response = call(
        session,
        platform,
        "POST",
        endpoints.CONTACTS_IMPORT,
        files={"file": ("contacts.csv", data, "text/csv")},
        data={"campaign_id": "import-test"},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["total_rows"] == valid + invalid
    path = endpoints.IMPORT_STATUS.format(job_id=accepted["job_id"])

    def finished() -> dict | None:
        job = call(session, platform, "GET", path).json()
        return job if job["status"] in ("completed", "failed") else None

    job = wait_until(finished)
    assert job["status"] == "completed"
    assert job["job_id"] == accepted["job_id"]
    assert job["total_rows"] == job["processed_rows"] == valid + invalid
    assert (job["valid_rows"], job["invalid_rows"]) == (valid, invalid)
    assert [(e["row"], e["field"]) for e in job["errors"]] == [
        (4, "phone_number"),
        (5, "email"),
        (6, "phone_number"),
        (7, "phone_number"),
        (8, None),
    ]
    assert "duplicates row 2" in job["errors"][2]["message"]
    assert job["completed_at"] is not None and job["created_at"] <= job["completed_at"]


def test_import_reports_at_most_100_errors(
    session: requests.Session, platform: RunningPlatform
) -> None:
    data = ("phone_number\n" + "not-a-phone\n" * 250).encode()
    body, content_type = multipart_body({}, {"file": ("bad.csv", data)})
    response = call(
        session,
        platform,
        "POST",
        endpoints.CONTACTS_IMPORT,
        data=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 202
    path = endpoints.IMPORT_STATUS.format(job_id=response.json()["job_id"])
    job = wait_until(
        lambda: (j := call(session, platform, "GET", path).json())["status"] == "completed" and j
    )
    assert job["invalid_rows"] == 250
    assert len(job["errors"]) == 100


@pytest.mark.parametrize(
    ("fields", "files", "detail"),
    [
        ({"campaign_id": "c"}, {}, "missing form field 'file'"),
        ({}, {"file": ("empty.csv", b"")}, "empty"),
        ({}, {"file": ("blank.csv", b"\r\n\r\n")}, "empty"),
        ({}, {"file": ("header.csv", b"phone_number,email\r\n")}, "no data rows"),
        ({}, {"file": ("cols.csv", b"name,email\r\nAva,a@example.com\r\n")}, "phone_number"),
        ({}, {"file": ("quote.csv", b'phone_number\r\n"+1415"5550123\r\n')}, "not valid CSV"),
        ({}, {"file": ("open.csv", b'phone_number\r\n"+14155550123\r\n')}, "not valid CSV"),
        ({}, {"file": ("bin.csv", b"\xff\xfe\x00\x01\x02")}, "not UTF-8"),
    ],
)
def test_import_bad_uploads(
    session: requests.Session,
    platform: RunningPlatform,
    fields: dict,
    files: dict,
    detail: str,
) -> None:
    body, content_type = multipart_body(fields, files)
    response = call(
        session,
        platform,
        "POST",
        endpoints.CONTACTS_IMPORT,
        data=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_import_bad_requests(session: requests.Session, platform: RunningPlatform) -> None:
    not_multipart = call(session, platform, "POST", endpoints.CONTACTS_IMPORT, json={"a": 1})
    assert not_multipart.status_code == 400
    assert "multipart/form-data" in not_multipart.json()["detail"]
    body, content_type = multipart_body({}, {"file": ("c.csv", b"phone_number\n+14155550123\n")})
    truncated = call(
        session,
        platform,
        "POST",
        endpoints.CONTACTS_IMPORT,
        data=body[:-12],
        headers={"Content-Type": content_type},
    )
    assert truncated.status_code == 400
    big = b"phone_number\n" + b"+14155550123\n" * (MAX_UPLOAD_BYTES // 13 + 10)
    too_large = call(
        session,
        platform,
        "POST",
        endpoints.CONTACTS_IMPORT,
        files={"file": ("big.csv", big, "text/csv")},
    )
    assert too_large.status_code == 413
    unknown = call(session, platform, "GET", endpoints.IMPORT_STATUS.format(job_id="nope"))
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "import job not found"}


def test_import_fault_fails_the_job(session: requests.Session, faulty: RunningPlatform) -> None:
    data = ("phone_number\n" + "".join(f"+1415557{i:04d}\n" for i in range(20))).encode()
    response = call(
        session,
        faulty,
        "POST",
        endpoints.CONTACTS_IMPORT,
        files={"file": ("c.csv", data, "text/csv")},
    )
    assert response.status_code == 202
    path = endpoints.IMPORT_STATUS.format(job_id=response.json()["job_id"])
    job = wait_until(
        lambda: (j := call(session, faulty, "GET", path).json())["status"] == "failed" and j
    )
    assert job["processed_rows"] == 10
    assert "injected" in job["failure_reason"]
    assert job["completed_at"] is not None


# ---- counters and faults --------------------------------------------------------------------


def test_counters_count_every_request_including_rejected_ones(
    session: requests.Session, platform: RunningPlatform
) -> None:
    platform.reset_counters()
    assert platform.counters() == {
        "total": 0,
        "requests": {},
        "responses": {},
        "response_bytes": {},
    }
    for _ in range(5):
        call(session, platform, "GET", endpoints.HEALTH, key=None)
    for _ in range(3):
        call(session, platform, "GET", endpoints.QUEUE_STATS, key=None)
    for _ in range(2):
        call(session, platform, "POST", endpoints.CALLS, key="wrong", json={})
    for _ in range(4):
        call(session, platform, "POST", endpoints.CALLS, json=call_body("counters", in_s=3600))
    call(session, platform, "POST", endpoints.CALLS, json={})
    call(session, platform, "POST", retry_path("a"), json={"delay_s": 1})
    call(session, platform, "POST", retry_path("b"), json={"delay_s": 1})
    call(session, platform, "GET", "/favicon.ico", key=None)
    counters = platform.counters()
    response_bytes = counters.pop("response_bytes")
    assert set(response_bytes) == set(counters["requests"])
    assert all(n > 0 for n in response_bytes.values())
    retry = f"POST {endpoints.stats_name(endpoints.CALL_RETRY)}"
    assert counters == {
        "total": 18,
        "requests": {
            "GET /health": 5,
            "GET /api/queue/stats": 3,
            "POST /api/calls": 7,
            retry: 2,
            "GET [unmatched]": 1,
        },
        "responses": {
            "GET /health 200": 5,
            "GET /api/queue/stats 401": 3,
            "POST /api/calls 403": 2,
            "POST /api/calls 201": 4,
            "POST /api/calls 422": 1,
            f"{retry} 404": 2,
            "GET [unmatched] 404": 1,
        },
    }
    assert platform.counters()["total"] == 18  # reading the counters is not counted


def test_latency_fault_slows_one_route_only(
    session: requests.Session, faulty: RunningPlatform
) -> None:
    def timed_ms(method: str, path: str, **kwargs: Any) -> float:
        started_s = time.perf_counter()
        response = call(session, faulty, method, path, **kwargs)
        assert response.status_code < 500
        return (time.perf_counter() - started_s) * 1000

    slow = [timed_ms("POST", endpoints.CALLS, json=call_body("lat", in_s=600)) for _ in range(5)]
    fast = [timed_ms("GET", endpoints.HEALTH) for _ in range(5)]
    fast += [timed_ms("GET", endpoints.QUEUE_STATS) for _ in range(5)]
    assert min(slow) >= 150
    assert max(fast) < 100


def test_failure_ratio_is_approximately_applied(
    session: requests.Session, faulty: RunningPlatform
) -> None:
    statuses = [
        call(session, faulty, "GET", endpoints.ANALYTICS_DASHBOARD).status_code for _ in range(400)
    ]
    failures = statuses.count(503)
    assert set(statuses) <= {200, 503}
    assert 0.22 <= failures / 400 <= 0.38, failures
    injected = call(session, faulty, "GET", endpoints.ANALYTICS_DASHBOARD)
    while injected.status_code != 503:
        injected = call(session, faulty, "GET", endpoints.ANALYTICS_DASHBOARD)
    assert injected.json() == {"detail": "injected fault"}
    assert call(session, faulty, "GET", endpoints.HEALTH).status_code == 200


# ---- process behaviour ----------------------------------------------------------------------


def platform_process(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadkit.platform", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def test_process_announces_serves_and_stops_cleanly_without_leaking_the_key() -> None:
    key = f"secret-{secrets.token_hex(8)}"
    process = platform_process("--port", "0", "--access-log", env={"API_KEY": key})
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("loadkit platform listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        with requests.Session() as http:
            denied = http.get(
                url + endpoints.QUEUE_STATS, headers={"X-API-Key": key + "x"}, timeout=TIMEOUT_S
            )
            allowed = http.get(
                url + endpoints.QUEUE_STATS,
                headers={"Authorization": f"Bearer {key}"},
                timeout=TIMEOUT_S,
            )
        assert (denied.status_code, allowed.status_code) == (403, 200)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stdout == ""  # nothing after the one announcement line
    assert "/api/queue/stats" in stderr  # the access log is on
    assert key not in stderr


def test_generated_key_is_not_printed() -> None:
    env = {name: value for name, value in os.environ.items() if name != "API_KEY"}
    process = subprocess.Popen(
        [sys.executable, "-m", "loadkit.platform"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert line.startswith("loadkit platform listening on ") and stdout == ""
    assert stderr == ""


def test_non_loopback_host_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadkit.platform", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "0.0.0.0" in result.stderr and "loopback" in result.stderr


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.20", "example.com", "::"])
def test_other_non_loopback_hosts_are_refused(host: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--host", host]) == 2
    assert "only loopback addresses" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--latency", "POST /api/calls=abc"], {}, "--latency"),
        (["--latency", "POST /api/call=5"], {}, "--latency"),
        (["--fail", "*=1.5"], {}, "--fail"),
        (["--fail", "GET /health"], {}, "--fail"),
        ([], {"LOADKIT_PLATFORM_LATENCY": "*=20~x"}, "LOADKIT_PLATFORM_LATENCY"),
        ([], {"LOADKIT_PLATFORM_FAIL": "*=0.1:404"}, "LOADKIT_PLATFORM_FAIL"),
        (["--outcome-weights", "won=1"], {}, "--outcome-weights"),
        (["--agents", "0"], {}, "--agents"),
    ],
)
def test_bad_settings_give_one_line_naming_the_source(
    argv: list[str], environ: dict[str, str], named: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv, environ=environ) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert named in err


def test_start_platform_reports_early_exit_with_stderr() -> None:
    with (
        pytest.raises(PlatformStartError, match="--agents"),
        start_platform(API_KEY, extra_args=["--agents", "0"]),
    ):
        pass


def test_running_platform_repr_hides_the_key(platform: RunningPlatform) -> None:
    assert API_KEY not in repr(platform)
    assert platform.url in repr(platform)


# ---- unit: fault specs ----------------------------------------------------------------------


def test_fault_spec_parsing() -> None:
    assert parse_latency_spec("POST /api/calls=500", ROUTE_KEYS) == (
        "POST /api/calls",
        LatencyFault(500.0, 0.0),
    )
    assert parse_latency_spec(" * = 20~5 ", ROUTE_KEYS) == ("*", LatencyFault(20.0, 5.0))
    assert parse_latency_spec("post /api/calls/{call_id}/retry=1", ROUTE_KEYS)[0] == (
        "POST /api/calls/[id]/retry"
    )
    assert parse_failure_spec("GET /api/analytics/dashboard=0.3", ROUTE_KEYS) == (
        "GET /api/analytics/dashboard",
        FailureFault(0.3, 503),
    )
    assert parse_failure_spec("*=1:500", ROUTE_KEYS) == ("*", FailureFault(1.0, 500))


@pytest.mark.parametrize(
    "spec",
    ["", "=5", "*=", "POST /api/calls", "POST /api/calls=-1", "POST /api/calls=5~x",
     "FETCH /health=5", "GET health=5", "GET /api/unknown=5", "*=nan"],
)  # fmt: skip
def test_bad_latency_specs(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_latency_spec(spec, ROUTE_KEYS)


@pytest.mark.parametrize("spec", ["*=-0.1", "*=2", "*=0.5:404", "*=0.5:abc", "*=x"])
def test_bad_failure_specs(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_failure_spec(spec, ROUTE_KEYS)


def test_latency_sample_stays_within_jitter() -> None:
    rng = random.Random(3)
    samples = [LatencyFault(20.0, 5.0).sample_s(rng) for _ in range(1000)]
    assert min(samples) >= 0.015 and max(samples) <= 0.025
    assert LatencyFault(1.0, 10.0).sample_s(rng) >= 0


# ---- unit: multipart ------------------------------------------------------------------------


def test_multipart_parses_fields_and_files() -> None:
    content = b"phone_number\r\n+14155550123\r\n--b0undary-not-a-delimiter\r\n"
    body, content_type = multipart_body({"campaign_id": "c-1"}, {"file": ("a.csv", content)})
    parts = parse_multipart(
        b"preamble\r\n" + body + b"epilogue", boundary_from_content_type(content_type)
    )
    assert [(p.name, p.filename, p.content_type, p.data) for p in parts] == [
        ("campaign_id", None, None, b"c-1"),
        ("file", "a.csv", "text/csv", content),
    ]


def test_multipart_matches_what_requests_encodes() -> None:
    prepared = requests.Request(
        "POST",
        "http://127.0.0.1/",
        files={"file": ("x.csv", b"\x00\r\n\xff binary", "text/csv")},
        data={"campaign_id": "é"},
    ).prepare()
    assert isinstance(prepared.body, bytes)
    parts = parse_multipart(
        prepared.body, boundary_from_content_type(prepared.headers["Content-Type"])
    )
    by_name = {part.name: part for part in parts}
    assert by_name["file"].data == b"\x00\r\n\xff binary"
    assert by_name["file"].filename == "x.csv"
    assert by_name["campaign_id"].data.decode() == "é"


def test_multipart_header_parameters() -> None:
    assert parse_header_params('form-data; name="a;b"; filename="q\\"t.csv"') == (
        "form-data",
        {"name": "a;b", "filename": 'q"t.csv'},
    )
    assert parse_header_params("form-data; name=plain; filename*=UTF-8''na%C3%AFve.csv") == (
        "form-data",
        {"name": "plain", "filename": "naïve.csv"},
    )
    assert boundary_from_content_type('multipart/form-data; boundary="a b:c"') == b"a b:c"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "multipart/form-data",
        "multipart/form-data; boundary=" + "x" * 71,
    ],
)
def test_multipart_bad_content_types(content_type: str | None) -> None:
    with pytest.raises(MultipartError):
        boundary_from_content_type(content_type)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"no boundary here",
        b'--XYZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue',  # no closing boundary
        b"--XYZ\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--XYZ--",  # no disposition
        b'--XYZ\r\nContent-Disposition: attachment; name="a"\r\n\r\nv\r\n--XYZ--',
        b'--XYZ\r\nContent-Disposition: form-data; name="a"\r\nv\r\n--XYZ--',  # no blank line
    ],
)
def test_multipart_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MultipartError):
        parse_multipart(body, b"XYZ")


def test_multipart_empty_form_and_lookalike_boundaries() -> None:
    assert parse_multipart(b"--XYZ--\r\n", b"XYZ") == []
    # "--XYZjunk" is not a delimiter line: it is preamble, so this form is empty, not broken.
    lookalike = b'--XYZjunk\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XYZ--'
    assert parse_multipart(lookalike, b"XYZ") == []


# ---- unit: CSV ------------------------------------------------------------------------------


def test_csv_header_is_normalised_and_rows_numbered_like_a_spreadsheet() -> None:
    upload = parse_contacts_csv(
        "\ufeff Phone_Number ,EMAIL\r\n+14155550123,a@b.co\r\n\r\nx,y\r\n".encode()
    )
    assert upload.columns == ("phone_number", "email")
    assert [row for row, _ in upload.rows] == [2, 4]


def test_csv_rejects_header_not_first() -> None:
    with pytest.raises(ImportFileError):
        parse_contacts_csv(b"\r\nphone_number\r\n+14155550123\r\n")


@pytest.mark.parametrize(
    ("email", "ok"),
    [("a@example.com", True), ("first.last+tag@sub.example.org", True), ("a@b", False),
     ("a@@b.com", False), ("a b@c.com", False), (".a@b.com", False), ("a@-b.com", False),
     ("a@b.123", False)],
)  # fmt: skip
def test_row_email_syntax(email: str, ok: bool) -> None:
    errors = validate_row(2, ["+14155550123", email], ("phone_number", "email"), {})
    assert (errors == []) is ok


def test_rows_validate_like_a_writer_writes_them() -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["phone_number", "note"], ["+14155550123", 'says "hi", twice']])
    upload = parse_contacts_csv(buffer.getvalue().encode())
    assert validate_row(*upload.rows[0], upload.columns, {}) == []
