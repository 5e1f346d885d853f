"""``GET /metrics``: the platform's own state in Prometheus' text format, for the kit to scrape.

A real service exposes its CPU, memory and queue this way (Node: ``prom-client``); the reference
platform does the same with ``prometheus_client`` so every scenario can judge platform metrics
end to end. Everything is read when the endpoint is scraped, never on a request's path: the
platform serves thousands of ``/health`` calls a second and a metric update on each would show
up in the very latencies being measured.

Exposed: ``process_*`` (CPU seconds, resident memory, open files: ``prometheus_client``'s
process collector, read from ``/proc``), ``python_gc_*``, and the platform's own
``loadkit_platform_*`` gauges and counters (queue by state, calls stored, import jobs by status,
requests by route and status, open connections, bytes leaked on purpose).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

PREFIX: Final = "loadkit_platform"
#: Queue states that are counts of jobs now (the others are totals since the start).
_QUEUE_GAUGES: Final = ("waiting", "active", "delayed")
_QUEUE_COUNTERS: Final = ("completed", "failed")


class PlatformCollector(Collector):
    """Reads the app's state at scrape time (``app`` is a ``PlatformApp``)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        app = self._app
        queue = GaugeMetricFamily(
            f"{PREFIX}_queue_jobs", "Calls in the dialer queue, by state.", labels=["state"]
        )
        finished = CounterMetricFamily(
            f"{PREFIX}_queue_finished_jobs", "Dials that ended, by outcome.", labels=["state"]
        )
        stats = app.queue.stats()
        for state in _QUEUE_GAUGES:
            queue.add_metric([state], float(stats.get(state, 0)))
        for state in _QUEUE_COUNTERS:
            finished.add_metric([state], float(stats.get(state, 0)))
        yield queue
        yield finished
        yield GaugeMetricFamily(
            f"{PREFIX}_calls_stored", "Calls the platform holds in memory.", value=len(app.store)
        )
        jobs = GaugeMetricFamily(
            f"{PREFIX}_import_jobs", "Contact import jobs, by status.", labels=["status"]
        )
        for status, count in sorted(app.imports.status_counts().items()):
            jobs.add_metric([status], float(count))
        yield jobs
        requests = CounterMetricFamily(
            f"{PREFIX}_requests",
            "Requests answered, by route and status (the harness counters).",
            labels=["route", "status"],
        )
        for key, count in sorted(app.counters.snapshot()["responses"].items()):
            route, _, status = key.rpartition(" ")
            requests.add_metric([route, status], float(count))
        yield requests
        yield GaugeMetricFamily(
            f"{PREFIX}_open_connections",
            "Client connections open now.",
            value=app.wear.open_connections,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_leaked_bytes",
            "Bytes kept on purpose by --leak-bytes-per-request (a fault knob).",
            value=app.wear.leaked_bytes,
        )


def metrics_registry(app: Any) -> CollectorRegistry:
    """A registry of its own (not the global one): one per app, so tests can run several."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(PlatformCollector(app))
    return registry


def serve_metrics(
    registry: CollectorRegistry, start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> list[bytes]:
    """The text exposition of ``registry`` as a WSGI answer."""
    body = generate_latest(registry)
    start_response(
        "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
    )
    return [body]
