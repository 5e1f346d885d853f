"""Test data that looks like a real client's and never collides between users, workers or runs.

Every simulated user gets a ``DataFactory`` with its own namespace (run token, worker index, user
index). Phone numbers encode that namespace, so two users of the same run can never produce the
same number, and campaign ids carry the run token, so parallel runs stay apart on a shared
platform. Generation is seeded per user, so a failing run can be replayed with the same data.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

FIRST_NAMES = (
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Chloe", "Mateo",
    "Aiko", "Kwame", "Sofia", "Ethan", "Priya", "Lucas", "Nora", "Jonas", "Amara", "Diego",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Garcia", "Nguyen", "Okafor", "Müller", "Rossi", "Kowalski", "Tanaka", "Patel",
    "Silva", "Johansson", "O'Brien", "Dubois", "Haddad", "Kim", "Novak", "Moreau", "Ali",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
TIMEZONES = ("America/New_York", "America/Chicago", "Europe/London", "Europe/Berlin", "Asia/Tokyo")
CSV_COLUMNS = ("phone_number", "first_name", "last_name", "email", "timezone")

#: Digits available to each field of the phone-number namespace (E.164 allows 15 in all).
_WORKER_DIGITS = 2
_USER_DIGITS = 5
_SEQUENCE_DIGITS = 7
USER_INDEX_LIMIT = 10**_USER_DIGITS

#: Seconds formatted for ``scheduled_at`` kept per factory before the cache starts over.
_SECONDS_CACHE_SIZE = 256

RUN_TOKEN = secrets.token_hex(3)
"""Identifies this run (this process, and the workers it was forked into) in campaign ids."""


@dataclass(frozen=True)
class Namespace:
    """Who is generating: keeps data of different users, workers and runs apart."""

    run_token: str
    worker_index: int
    user_index: int

    def __post_init__(self) -> None:
        if not 0 <= self.worker_index < 10**_WORKER_DIGITS:
            raise ValueError(f"worker index {self.worker_index} out of range")
        if not 0 <= self.user_index < 10**_USER_DIGITS:
            raise ValueError(f"user index {self.user_index} out of range")

    @property
    def label(self) -> str:
        return f"{self.run_token}-w{self.worker_index}-u{self.user_index}"


@dataclass
class DataFactory:
    """Payloads for one simulated user."""

    namespace: Namespace
    campaigns_per_user: int = 3
    rng: random.Random = field(init=False)
    _sequence: itertools.count = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.namespace.label)
        self._sequence = itertools.count(1)
        # The parts that never change for this user, formatted once: a scenario may build a
        # payload per request at thousands of requests a second (see docs/performance.md).
        ns = self.namespace
        self._phone_prefix = (
            f"+1{ns.worker_index:0{_WORKER_DIGITS}d}{ns.user_index:0{_USER_DIGITS}d}"
        )
        self._campaign_prefix = f"lk-{ns.label}-c"
        self._seconds_text: dict[int, str] = {}

    def phone_number(self) -> str:
        """A unique E.164 number: +1, then worker, user and sequence digits."""
        sequence = next(self._sequence)
        if sequence >= 10**_SEQUENCE_DIGITS:
            raise RuntimeError("phone number sequence exhausted for this user")
        return self._phone_prefix + str(sequence).zfill(_SEQUENCE_DIGITS)

    def campaign_id(self) -> str:
        """One of this user's few campaigns (so analytics by campaign has something to find)."""
        return f"{self._campaign_prefix}{self.rng.randrange(self.campaigns_per_user)}"

    def schedule_call(self, *, delay_s: tuple[float, float] = (0.0, 30.0)) -> dict[str, Any]:
        """Body of ``POST /api/calls``: a call due within ``delay_s`` seconds from now."""
        due_s = time.time() + self.rng.uniform(*delay_s)
        return {
            "phone_number": self.phone_number(),
            "scheduled_at": self._utc_text_ms(due_s),
            "campaign_id": self.campaign_id(),
            "metadata": {
                "source": "loadkit",
                "request_id": _uuid4_text(self.rng.getrandbits(128)),
                "language": self.rng.choice(("en-US", "en-GB", "es-ES", "de-DE")),
            },
        }

    def _utc_text_ms(self, epoch_s: float) -> str:
        """``epoch_s`` as ISO 8601 UTC with milliseconds, like ``datetime.isoformat(timespec=
        "milliseconds")`` (``2026-12-04T00:55:09.123+00:00``); each second formatted once."""
        whole_s = math.floor(epoch_s)
        text = self._seconds_text.get(whole_s)
        if text is None:
            if len(self._seconds_text) >= _SECONDS_CACHE_SIZE:
                self._seconds_text.clear()
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_s))
            self._seconds_text[whole_s] = text
        millis = min(999, int((epoch_s - whole_s) * 1000))
        return f"{text}.{millis:03d}+00:00"

    def retry(self) -> dict[str, Any]:
        """Body of ``POST /api/calls/{id}/retry``: a delay, the way a dialer backs off."""
        return {"delay_s": self.rng.choice((60, 300, 900, 3600))}

    def analytics_query(self) -> dict[str, str]:
        """Query of the dashboard: a realistic range (today .. 90 days), sometimes one campaign."""
        days = self.rng.choice((1, 1, 7, 7, 7, 30, 30, 90))
        end = datetime.now(UTC)
        params = {
            "from": (end - timedelta(days=days)).isoformat(timespec="seconds"),
            "to": end.isoformat(timespec="seconds"),
        }
        if self.rng.random() < 0.5:
            params["campaign_id"] = self.campaign_id()
        return params

    def contacts_csv(self, rows: int) -> bytes:
        """A CSV of ``rows`` unique, valid contacts, as a CRM export would give it."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for _ in range(rows):
            first = self.rng.choice(FIRST_NAMES)
            last = self.rng.choice(LAST_NAMES)
            phone = self.phone_number()
            local = f"{first}.{last}".lower().replace("'", "")
            email = f"{local}.{phone[-6:]}@{self.rng.choice(EMAIL_DOMAINS)}"
            writer.writerow((phone, first, last, email, self.rng.choice(TIMEZONES)))
        return buffer.getvalue().encode("utf-8")


def _uuid4_text(bits: int) -> str:
    """The text of ``uuid.UUID(int=bits, version=4)``, at half its cost (same bits set)."""
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    bits = (bits & ~(0xF000 << 64)) | (4 << 76)  # version 4
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def multipart_form(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """Encode a multipart/form-data body; returns ``(body, content_type)``.

    FastHttpUser has no ``files=`` argument, so the upload is encoded here once per request.
    ``files`` maps a field name to ``(filename, content, content_type)``.
    """
    boundary = f"loadkit-{secrets.token_hex(12)}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    for name, (filename, content, content_type) in files.items():
        header = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(header.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
