"""Test data: valid for the platform, realistic, and unique across users and workers."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest

from loadkit.workload.datagen import CSV_COLUMNS, DataFactory, Namespace, multipart_form

E164 = re.compile(r"^\+[1-9]\d{7,14}$")


def factory(worker: int = 0, user: int = 0, run: str = "abc123") -> DataFactory:
    return DataFactory(Namespace(run, worker, user))


def test_phone_numbers_are_e164_and_unique_across_users_and_workers() -> None:
    numbers: list[str] = []
    for worker in (0, 1, 99):
        for user in (0, 1, 12345, 99999):
            f = factory(worker, user)
            numbers += [f.phone_number() for _ in range(200)]
    assert all(E164.match(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)


def test_namespace_bounds() -> None:
    with pytest.raises(ValueError, match="worker index"):
        Namespace("x", 100, 0)
    with pytest.raises(ValueError, match="user index"):
        Namespace("x", 0, 100_000)


def test_schedule_call_payload_is_valid_and_due_soon() -> None:
    body = factory().schedule_call(delay_s=(5, 10))
    assert E164.match(body["phone_number"])
    due = datetime.fromisoformat(body["scheduled_at"])
    seconds_ahead = (due - datetime.now(UTC)).total_seconds()
    assert 4 <= seconds_ahead <= 10
    assert body["campaign_id"].startswith("lk-abc123-w0-u0-c")


def test_same_namespace_replays_same_data_and_runs_differ_in_campaigns() -> None:
    assert factory().contacts_csv(5) == factory().contacts_csv(5)
    assert factory(run="aaaaaa").campaign_id() != factory(run="bbbbbb").campaign_id()


def test_contacts_csv() -> None:
    rows = list(csv.DictReader(io.StringIO(factory().contacts_csv(1000).decode())))
    assert len(rows) == 1000
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len({row["phone_number"] for row in rows}) == 1000
    assert all(E164.match(row["phone_number"]) and "@" in row["email"] for row in rows)


def test_analytics_query_range() -> None:
    f = factory()
    for _ in range(50):
        query = f.analytics_query()
        start, end = (datetime.fromisoformat(query[k]) for k in ("from", "to"))
        assert 1 <= (end - start).days <= 90


def test_multipart_form_round_trips_through_the_stdlib_parser() -> None:
    from email.parser import BytesParser
    from email.policy import HTTP

    body, content_type = multipart_form(
        {"campaign_id": "c1"},
        {"file": ("contacts.csv", b"phone_number\n+14155550123\n", "text/csv")},
    )
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = {
        part.get_param("name", header="content-disposition"): part for part in message.iter_parts()
    }
    assert parts["campaign_id"].get_content() == "c1"
    assert parts["file"].get_filename() == "contacts.csv"
    assert parts["file"].get_payload(decode=True) == b"phone_number\n+14155550123\n"


def test_schedule_call_matches_the_standard_library_formatting() -> None:
    """The payload's hand-formatted parts equal what ``uuid`` and ``datetime`` would give."""
    import random
    import uuid
    from datetime import timedelta

    f = factory(worker=7, user=321)
    twin = random.Random(f.namespace.label)  # the same seed: the same draws, in order
    for sequence in range(1, 501):
        before = datetime.now(UTC)
        body = f.schedule_call(delay_s=(0.0, 30.0))
        after = datetime.now(UTC)
        delay_s = twin.uniform(0.0, 30.0)
        campaign = twin.randrange(f.campaigns_per_user)
        request_id = str(uuid.UUID(int=twin.getrandbits(128), version=4))
        language = twin.choice(("en-US", "en-GB", "es-ES", "de-DE"))
        assert body["phone_number"] == f"+107{321:05d}{sequence:07d}"
        assert body["campaign_id"] == f"lk-abc123-w7-u321-c{campaign}"
        assert body["metadata"] == {
            "source": "loadkit", "request_id": request_id, "language": language,
        }  # fmt: skip
        due = datetime.fromisoformat(body["scheduled_at"])
        assert body["scheduled_at"] == due.isoformat(timespec="milliseconds")
        # now + delay, cut to the millisecond: within the clock reads either side of the call
        # (1 ms of slack each way for the cut and for datetime's microseconds)
        slack = timedelta(milliseconds=1)
        delay = timedelta(seconds=delay_s)
        assert before + delay - slack <= due <= after + delay + slack
