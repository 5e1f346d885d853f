"""Field validation shared by the platform's handlers and its CSV import.

Every check returns an error message (or ``None``) instead of raising, so a handler can collect
the errors of *every* bad field and answer them all in one 422: a client fixing its payload
should not have to discover the problems one request at a time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: E.164: "+", then 8 to 15 digits, the first not 0. ASCII digits only (``\d`` would take any
#: Unicode digit), and ``fullmatch`` so a trailing newline is not accepted.
_E164_RE = re.compile(r"\+[1-9][0-9]{7,14}")
E164_MESSAGE = "must be E.164: '+' then 8 to 15 digits, the first not 0 (e.g. +14155550123)"

_EMAIL_LOCAL_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EMAIL_LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

#: How far in the past a ``scheduled_at`` / ``retry_at`` may be: clock skew, not back-dating.
MAX_PAST_S = 300.0
CAMPAIGN_ID_MAX_CHARS = 64
#: Upper bound of ``delay_s``: far enough for any dialer back-off, small enough for datetime.
MAX_DELAY_S = 366 * 86400.0


@dataclass(frozen=True)
class FieldError:
    """One bad field of a request body or query, as listed in a 422's ``errors``."""

    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def check_phone_number(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if _E164_RE.fullmatch(value) is None:
        return E164_MESSAGE
    return None


def check_email(value: str) -> str | None:
    """Plain syntax check (no DNS): one ``@``, a dotted local part, a domain of valid labels."""
    if len(value) > 254 or value.count("@") != 1:
        return "must be an email address like name@example.com"
    local, domain = value.split("@")
    labels = domain.split(".")
    if (
        len(local) > 64
        or _EMAIL_LOCAL_RE.fullmatch(local) is None
        or len(labels) < 2
        or not all(_EMAIL_LABEL_RE.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        return "must be an email address like name@example.com"
    return None


def check_campaign_id(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "must not be empty"
    if len(value) > CAMPAIGN_ID_MAX_CHARS:
        return f"must be at most {CAMPAIGN_ID_MAX_CHARS} characters"
    return None


def parse_iso_datetime(value: str) -> datetime:
    """An aware datetime from ISO-8601 text; ``Z`` accepted on every Python (3.10 lacks it).

    Raises ``ValueError`` with a message fit for a 422 (no timezone, or not ISO-8601).
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "must be an ISO-8601 date-time with a timezone, e.g. 2030-01-31T09:30:00Z"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("must include a timezone offset, e.g. Z or +02:00")
    return parsed


def check_future_datetime(value: Any, now: datetime) -> tuple[datetime | None, str | None]:
    """Parse a schedule time: ISO-8601 with a timezone, not more than ``MAX_PAST_S`` ago."""
    if not isinstance(value, str):
        return None, "must be a string"
    try:
        parsed = parse_iso_datetime(value)
    except ValueError as exc:
        return None, str(exc)
    if parsed < now - timedelta(seconds=MAX_PAST_S):
        return None, f"is more than {int(MAX_PAST_S // 60)} minutes in the past"
    return parsed, None


def check_delay_s(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number of seconds"
    if not math.isfinite(value) or value < 0:
        return "must be a number >= 0"
    if value > MAX_DELAY_S:
        return f"must be at most {int(MAX_DELAY_S)} seconds (366 days)"
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def isoformat_utc(epoch_s: float) -> str:
    """Epoch seconds as ISO-8601 UTC text with a ``Z`` (the platform's own timestamps)."""
    stamp = datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
