"""The analytics dashboard: its query (a UTC day range, optionally one campaign) and its body.

The counts come from the store's per-day counters, so a query costs one lookup per day of the
range however many calls exist. The range is therefore day-granular: ``from`` and ``to`` select
their UTC dates, both included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from loadkit.platform.store import COMPLETED, DashboardTotals
from loadkit.platform.validation import FieldError, check_campaign_id

DEFAULT_RANGE: Final = timedelta(days=7)
MAX_RANGE: Final = timedelta(days=366)


@dataclass(frozen=True)
class DashboardQuery:
    start: datetime
    end: datetime
    campaign_id: str | None

    @property
    def first_day(self) -> date:
        return self.start.astimezone(UTC).date()

    @property
    def last_day(self) -> date:
        return self.end.astimezone(UTC).date()


def parse_bound(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO-8601 date-time; no offset means UTC.

    A ``+`` that reached us as a space (an unencoded ``+02:00`` in a query string) is restored.
    """
    text = text.strip()
    candidates = [text] if " " not in text else [text, text.replace(" ", "+")]
    for candidate in candidates:
        if candidate[-1:] in ("Z", "z"):
            candidate = candidate[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(candidate)
        except ValueError:
            try:
                parsed = datetime.combine(date.fromisoformat(candidate), time())
            except ValueError:
                continue
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise ValueError("must be an ISO-8601 date or date-time, e.g. 2030-01-31T00:00:00Z")


def parse_dashboard_query(
    params: Mapping[str, str], now: datetime
) -> tuple[DashboardQuery | None, list[FieldError]]:
    """The query, or the errors of every bad parameter."""
    errors: list[FieldError] = []
    bounds: dict[str, datetime | None] = {"from": None, "to": None}
    for name in bounds:
        text = params.get(name, "")
        if not text.strip():
            continue
        try:
            bounds[name] = parse_bound(text)
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
    campaign_id = params.get("campaign_id") or None
    if campaign_id is not None and (problem := check_campaign_id(campaign_id)) is not None:
        errors.append(FieldError("campaign_id", problem))
    if errors:
        return None, errors
    end = bounds["to"] or now
    start = bounds["from"] or end - DEFAULT_RANGE
    if start > end:
        errors.append(FieldError("from", "must not be after 'to'"))
    elif end - start > MAX_RANGE:
        errors.append(FieldError("to", "range must not exceed 366 days"))
    if errors:
        return None, errors
    return DashboardQuery(start, end, campaign_id), []


def dashboard_payload(query: DashboardQuery, totals: DashboardTotals) -> dict[str, Any]:
    return {
        "range": {"from": query.start.isoformat(), "to": query.end.isoformat()},
        "campaign_id": query.campaign_id,
        "total_calls": totals.total_calls,
        "by_status": totals.by_status,
        "by_day": [
            {"date": day.isoformat(), "total": total, COMPLETED: completed}
            for day, total, completed in totals.by_day
        ],
        "success_rate": round(totals.success_rate, 6),
    }
