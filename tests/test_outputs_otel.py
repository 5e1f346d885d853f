"""Locust's own ``--otel`` with the kit: real Locust, console exporters, no collector, no network.

The kit adds nothing to OpenTelemetry; this checks that Locust's ``--otel`` works with a kit
locustfile (FastHttpUser-based ``PlatformUser``) and says what it exports: the
``locust.client.duration`` histogram per request name (its final cumulative count equals
Locust's own count) and the ``locust.users.count`` gauge. Needs the ``otel`` extra.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from test_outputs_influxdb import require
from test_outputs_timeseries import run_probe

from loadkit.platform.launcher import RunningPlatform

pytestmark = pytest.mark.slow

CONSOLE_METRICS = {
    "OTEL_METRICS_EXPORTER": "console",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",  # ms
    "OTEL_SERVICE_NAME": "loadkit-probe",
}


def console_documents(output: str, key: str) -> list[dict[str, Any]]:
    """The JSON documents the console exporter printed (pretty-printed, among Locust's lines)."""
    decoder = json.JSONDecoder()
    marker = f'{{\n    "{key}"'
    documents: list[dict[str, Any]] = []
    start = output.find(marker)
    while start != -1:
        document, end = decoder.raw_decode(output, start)
        documents.append(document)
        start = output.find(marker, end)
    return documents


def metric_points(documents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [
        point
        for document in documents
        for resource in document["resource_metrics"]
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
        if metric["name"] == name
        for point in metric["data"]["data_points"]
    ]


def test_otel_console_export_counts_every_request(
    tmp_path: Path, fresh_platform: RunningPlatform
) -> None:
    installed = importlib.util.find_spec("opentelemetry.sdk") is not None
    require(installed, "the OpenTelemetry SDK", "pip install -e '.[otel]'")
    evidence, output = run_probe(
        tmp_path, fresh_platform, "--otel", run_time="2s", env_extra=CONSOLE_METRICS
    )
    assert "OpenTelemetry enabled" in output, output[-3000:]
    documents = console_documents(output, "resource_metrics")
    assert len(documents) >= 2, output[-3000:]
    resource = documents[-1]["resource_metrics"][0]["resource"]["attributes"]
    assert resource["service.name"] == "loadkit-probe"

    # cumulative temporality: the last export (at shutdown) holds the run's totals
    final: dict[str, int] = {}
    for point in metric_points(documents, "locust.client.duration"):
        final[point["attributes"]["name"]] = point["count"]
    # Every HTTP request; the kit's own JOB timings are rows in Locust's tables, not requests
    # of Locust's client, so they stay out of the client's duration metric.
    locust_counts = {
        key.split(" ", 1)[1]: n
        for key, (n, _) in evidence["locust_rows"].items()
        if not key.startswith("JOB ")
    }
    assert final == locust_counts
    assert final["/health"] > 100

    users = metric_points(documents, "locust.users.count")
    assert max(point["value"] for point in users) == 4
