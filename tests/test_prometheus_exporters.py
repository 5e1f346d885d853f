"""The metrics parser against real exporters: a Node service with prom-client (npm, pinned in
tests/fixtures/prom_client) and the reference platform's prometheus_client endpoint."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from loadkit.core.series import SeriesSelector
from loadkit.observe.prometheus import MetricsSourceError, PrometheusSource, parse_exposition

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "prom_client"
INSTALL_HINT = "run `npm ci` in tests/fixtures/prom_client (scripts/test.sh does this)"


class NodeService:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def observe_again(self) -> None:
        """The app records its fixed observations once more (counters double)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("observe\n")
        self.process.stdin.flush()
        assert json.loads(self.process.stdout.readline()) == {"ok": True}


@contextmanager
def node_service() -> Iterator[NodeService]:
    node = shutil.which("node")
    if node is None or not (FIXTURE_DIR / "node_modules" / "prom-client").is_dir():
        pytest.fail(f"Node 20+ and prom-client are needed: {INSTALL_HINT}", pytrace=False)
    process = subprocess.Popen(
        [node, "server.mjs"],
        cwd=FIXTURE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = json.loads(process.stdout.readline())["port"]
        yield NodeService(process, f"http://127.0.0.1:{port}/metrics")
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_prom_client_output_parses_with_labels_histograms_and_nan() -> None:
    with node_service() as service:
        page = requests.get(service.url, timeout=5).text
        assert "# HELP" in page and "# TYPE app_request_duration_seconds histogram" in page
        assert "app_cache_hit_ratio Nan" in page  # prom-client's spelling of NaN
        samples = parse_exposition(page)
        names = {name for name, _, _ in samples}
        assert {
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "nodejs_heap_size_used_bytes",
            "nodejs_eventloop_lag_seconds",
        } <= names
        ratio = [value for name, _, value in samples if name == "app_cache_hit_ratio"]
        assert len(ratio) == 1 and math.isnan(ratio[0])

        health = SeriesSelector.of("app_requests_total", {"route": "/health"})
        every_route = SeriesSelector.of("app_requests_total")
        weird = SeriesSelector.of("app_requests_total", {"route": 'we"ird\\route'})
        fast = SeriesSelector.of(
            "app_request_duration_seconds_bucket", {"le": "0.05", "route": "/health"}
        )
        pool = SeriesSelector.of("app_db_pool_connections")
        idle = SeriesSelector.of("app_db_pool_connections", {"state": "idle"})
        nan = SeriesSelector.of("app_cache_hit_ratio")
        source = PrometheusSource(service.url, [health, every_route, weird, fast, pool, idle, nan])
        try:
            first = source.read()
            service.observe_again()
            second = source.read()
        finally:
            source.close()
    assert first[health.key] == 5 and first[every_route.key] == 8 and first[weird.key] == 1
    assert first[fast.key] == 3  # observations <= 50 ms: 1, 2 and 10 ms
    assert first[pool.key] == 10 and first[idle.key] == 7  # a gauge set, not added
    assert nan.key not in first  # NaN is not a reading
    assert second[health.key] == 10 and second[fast.key] == 6 and second[pool.key] == 10


def test_a_page_that_is_not_prometheus_text_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a Prometheus text exposition"):
        parse_exposition('{"status": "ok"}\n')
    source = PrometheusSource("http://127.0.0.1:9/metrics", [SeriesSelector.of("x")])
    with pytest.raises(MetricsSourceError, match=r"^GET http://127\.0\.0\.1:9/metrics: "):
        source.read()
