"""The platform's own count of what it received, independent of the load generator's stats.

Tests compare these with Locust's numbers: if they disagree, requests were lost or miscounted
on one side. Keys are ``METHOD /grouped/path`` (and ``... STATUS`` for responses), the same
grouping the kit's request names use, so the two sets of numbers line up row by row.
"""

from __future__ import annotations

from typing import Any


class RequestCounters:
    """Counts requests by route key and responses by route key + status."""

    def __init__(self) -> None:
        self.total = 0
        self._requests: dict[str, int] = {}
        self._responses: dict[str, int] = {}
        self._response_bytes: dict[str, int] = {}

    def count_request(self, key: str) -> None:
        self.total += 1
        self._requests[key] = self._requests.get(key, 0) + 1

    def count_response(self, key: str, status: int, body_bytes: int = 0) -> None:
        response_key = f"{key} {status}"
        self._responses[response_key] = self._responses.get(response_key, 0) + 1
        self._response_bytes[key] = self._response_bytes.get(key, 0) + body_bytes

    def reset(self) -> None:
        self.total = 0
        self._requests.clear()
        self._responses.clear()
        self._response_bytes.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "requests": dict(self._requests),
            "responses": dict(self._responses),
            "response_bytes": dict(self._response_bytes),
        }
