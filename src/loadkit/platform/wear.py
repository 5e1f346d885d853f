"""Faults that last: memory the platform never gives back, and damage a surge leaves behind.

``faults`` degrades every request the same way from start to end; the profiles' purposes need
faults that change with time. A soak exists to find a leak, so ``--leak-bytes-per-request N``
keeps N bytes per request forever; a spike exists to show recovery, so ``--surge-latency C=MS``
adds MS to every request once more than C client connections have been open at once (a surge
that exhausted a pool and left it broken), and the latency stays after the surge has gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The fill byte of leaked blocks: non-zero, so the pages are written and count in RSS (a zero
#: block from calloc can stay unmapped until touched).
_FILL: Final = b"\x5a"


class WearSpecError(ValueError):
    """A ``--surge-latency`` value that cannot be used; one line."""


@dataclass(frozen=True)
class SurgeLatency:
    """After more than ``connections`` connections were open at once, add ``latency_ms``."""

    connections: int
    latency_ms: float


def parse_surge_latency(spec: str) -> SurgeLatency:
    """``CONNECTIONS=MS`` (``10=50``): 50 ms more on every request once 11 connections were open."""
    connections_text, equals, latency_text = spec.partition("=")
    try:
        connections = int(connections_text)
        latency_ms = float(latency_text)
    except ValueError:
        raise WearSpecError(f"expected CONNECTIONS=MS (e.g. 10=50), got {spec!r}") from None
    if not equals or connections < 1 or not 0 < latency_ms <= 600_000:
        raise WearSpecError(f"expected CONNECTIONS >= 1 and 0 < MS <= 600000, got {spec!r}")
    return SurgeLatency(connections, latency_ms)


class Wear:
    """What the platform has kept and suffered so far; one per app."""

    def __init__(self, leak_bytes_per_request: int = 0, surge: SurgeLatency | None = None) -> None:
        self.leak_bytes_per_request = leak_bytes_per_request
        self.surge = surge
        self.open_connections = 0
        self.most_connections = 0
        self.damaged = False
        """True once the surge threshold was crossed: from then on every request is slower."""
        self._kept: list[bytes] = []
        self.leaked_bytes = 0

    def connection_opened(self) -> None:
        self.open_connections += 1
        if self.open_connections > self.most_connections:
            self.most_connections = self.open_connections
            if self.surge is not None and self.open_connections > self.surge.connections:
                self.damaged = True

    def connection_closed(self) -> None:
        self.open_connections -= 1

    def on_request(self) -> float:
        """Keep this request's leak; the seconds of latency the request must now add."""
        if self.leak_bytes_per_request:
            self._kept.append(_FILL * self.leak_bytes_per_request)
            self.leaked_bytes += self.leak_bytes_per_request
        if self.damaged and self.surge is not None:
            return self.surge.latency_ms / 1000.0
        return 0.0

    @property
    def active(self) -> bool:
        """Whether any lasting fault is configured (the hot path skips this object otherwise)."""
        return bool(self.leak_bytes_per_request) or self.surge is not None
