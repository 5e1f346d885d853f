"""Fault injection: extra latency and failure ratios per route, from ``ROUTE=VALUE`` specs.

A load test has to prove its thresholds trip when the platform degrades, so the stand-in can be
told to degrade on purpose: ``POST /api/calls=500`` (500 ms more), ``*=20~5`` (20 ms ± 5 ms,
uniform, on every route), ``GET /api/analytics/dashboard=0.3`` (30% of requests answer 503;
``=0.3:500`` picks the status). A route-specific spec overrides ``*`` for its route. Routes are
written the way the stats name them (``POST /api/calls/[id]/retry``; the ``{call_id}`` template
form is accepted too) and must be routes the platform serves, so a typo fails at startup instead
of silently injecting nothing.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from loadkit.endpoints import stats_name

ANY_ROUTE: Final = "*"
DEFAULT_FAILURE_STATUS: Final = 503
_METHODS: Final = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))


class FaultSpecError(ValueError):
    """A spec that cannot be used; the message says what is wrong with it (one line)."""


@dataclass(frozen=True)
class LatencyFault:
    """``base_ms`` ± ``jitter_ms`` (uniform) of added latency, never below 0."""

    base_ms: float
    jitter_ms: float = 0.0

    def sample_s(self, rng: random.Random) -> float:
        jitter_ms = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.base_ms + jitter_ms) / 1000.0


@dataclass(frozen=True)
class FailureFault:
    """Answer ``status`` with ``{"detail": "injected fault"}`` to a ``ratio`` of requests."""

    ratio: float
    status: int = DEFAULT_FAILURE_STATUS


@dataclass(frozen=True)
class RouteFaults:
    latency: LatencyFault | None
    failure: FailureFault | None


def split_spec_list(value: str) -> list[str]:
    """The specs of a comma-separated environment variable (empty items ignored)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_route_key(text: str, known_routes: Collection[str]) -> str:
    """``*`` or ``METHOD /grouped/path`` naming one of ``known_routes``."""
    words = text.split()
    if words == [ANY_ROUTE]:
        return ANY_ROUTE
    if len(words) != 2 or words[0].upper() not in _METHODS or not words[1].startswith("/"):
        raise FaultSpecError(f"route must be '*' or 'METHOD /path', got {text.strip()!r}")
    key = f"{words[0].upper()} {stats_name(words[1])}"
    if key not in known_routes:
        raise FaultSpecError(f"unknown route {key!r}; routes: {', '.join(sorted(known_routes))}")
    return key


def _split_spec(spec: str) -> tuple[str, str]:
    route, equals, value = spec.rpartition("=")
    if not equals or not route.strip() or not value.strip():
        raise FaultSpecError("expected ROUTE=VALUE")
    return route, value.strip()


def parse_latency_spec(spec: str, known_routes: Collection[str]) -> tuple[str, LatencyFault]:
    """``ROUTE=MS`` or ``ROUTE=MS~JITTER_MS`` → (route key, fault)."""
    route, value = _split_spec(spec)
    key = parse_route_key(route, known_routes)
    base_text, tilde, jitter_text = value.partition("~")
    try:
        base_ms = float(base_text)
        jitter_ms = float(jitter_text) if tilde else 0.0
    except ValueError:
        raise FaultSpecError(f"latency must be MS or MS~JITTER_MS, got {value!r}") from None
    if not (0 <= base_ms <= 600_000 and 0 <= jitter_ms <= 600_000):
        raise FaultSpecError(f"latency must be between 0 and 600000 ms, got {value!r}")
    return key, LatencyFault(base_ms, jitter_ms)


def parse_failure_spec(spec: str, known_routes: Collection[str]) -> tuple[str, FailureFault]:
    """``ROUTE=RATIO`` or ``ROUTE=RATIO:STATUS`` (status 500..599, default 503)."""
    route, value = _split_spec(spec)
    key = parse_route_key(route, known_routes)
    ratio_text, colon, status_text = value.partition(":")
    try:
        ratio = float(ratio_text)
        status = int(status_text) if colon else DEFAULT_FAILURE_STATUS
    except ValueError:
        raise FaultSpecError(f"failure must be RATIO or RATIO:STATUS, got {value!r}") from None
    if not 0 <= ratio <= 1:
        raise FaultSpecError(f"failure ratio must be between 0 and 1, got {ratio_text!r}")
    if not 500 <= status <= 599:
        raise FaultSpecError(f"failure status must be 500..599, got {status_text!r}")
    return key, FailureFault(ratio, status)


class FaultPlan:
    """Which faults apply to which route; the ``*`` entries fill in for routes without their own."""

    def __init__(
        self,
        latencies: Mapping[str, LatencyFault],
        failures: Mapping[str, FailureFault],
        rng: random.Random,
    ) -> None:
        self._latencies = dict(latencies)
        self._failures = dict(failures)
        self.rng = rng
        self._cache: dict[str, RouteFaults | None] = {}

    def __bool__(self) -> bool:
        return bool(self._latencies or self._failures)

    def for_route(self, route_key: str) -> RouteFaults | None:
        """The faults of ``METHOD /grouped/path``, or ``None`` when it has none."""
        try:
            return self._cache[route_key]
        except KeyError:
            pass
        latency = self._latencies.get(route_key, self._latencies.get(ANY_ROUTE))
        failure = self._failures.get(route_key, self._failures.get(ANY_ROUTE))
        faults = RouteFaults(latency, failure) if latency or failure else None
        self._cache[route_key] = faults
        return faults
