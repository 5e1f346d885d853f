"""The route table: which method and path template reach which handler.

Paths come from :mod:`loadkit.endpoints` so the platform and the scenarios can't drift apart,
and each route's key (``METHOD /grouped/path``) is the name the counters and fault specs use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from loadkit import endpoints
from loadkit.endpoints import stats_name

UNMATCHED_NAME: Final = "[unmatched]"
"""Grouped name of every path no route matches (one counter row, however many paths)."""


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: str
    """Name of the :class:`~loadkit.platform.handlers.Handlers` method serving the route."""
    needs_auth: bool = True

    @property
    def key(self) -> str:
        return f"{self.method} {stats_name(self.template)}"


ROUTES: Final = (
    Route("GET", endpoints.HEALTH, "health", needs_auth=False),
    Route("POST", endpoints.CALLS, "create_call"),
    Route("POST", endpoints.CALL_RETRY, "retry_call"),
    Route("POST", endpoints.CONTACTS_IMPORT, "import_contacts"),
    Route("GET", endpoints.IMPORT_STATUS, "import_status"),
    Route("GET", endpoints.ANALYTICS_DASHBOARD, "dashboard"),
    Route("GET", endpoints.QUEUE_STATS, "queue_stats"),
)
ROUTE_KEYS: Final = frozenset(route.key for route in ROUTES)


@dataclass(frozen=True)
class PathMatch:
    """A path that names a resource: its grouped name, its routes by method, its parameters."""

    name: str
    by_method: dict[str, Route]
    params: dict[str, str]

    @property
    def allow(self) -> str:
        return ", ".join(sorted(self.by_method))


class Router:
    """Exact paths by dict lookup (the hot ``/health`` path costs one lookup); templated paths
    by segment comparison."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self._exact: dict[str, PathMatch] = {}
        self._templated: dict[str, tuple[list[str], PathMatch]] = {}
        for route in routes:
            name = stats_name(route.template)
            if "{" not in route.template:
                entry = self._exact.setdefault(route.template, PathMatch(name, {}, {}))
            else:
                segments = route.template.split("/")
                entry = self._templated.setdefault(
                    route.template, (segments, PathMatch(name, {}, {}))
                )[1]
            entry.by_method[route.method] = route

    def match(self, path: str) -> PathMatch | None:
        exact = self._exact.get(path)
        if exact is not None:
            return exact
        parts = path.split("/")
        for segments, entry in self._templated.values():
            params = _match_segments(segments, parts)
            if params is not None:
                return PathMatch(entry.name, entry.by_method, params)
        return None


def _match_segments(segments: list[str], parts: list[str]) -> dict[str, str] | None:
    if len(segments) != len(parts):
        return None
    params: dict[str, str] = {}
    for segment, part in zip(segments, parts, strict=True):
        if segment.startswith("{") and segment.endswith("}"):
            if not part:
                return None
            params[segment[1:-1]] = part
        elif segment != part:
            return None
    return params
