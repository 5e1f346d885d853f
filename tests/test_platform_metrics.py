"""The reference platform's /metrics and its lasting faults, read as the kit reads them."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import requests
from conftest import TEST_API_KEY

from loadkit.core.series import SeriesSelector
from loadkit.endpoints import HEALTH, PLATFORM_METRICS
from loadkit.observe.prometheus import PrometheusSource, parse_exposition, select
from loadkit.platform.launcher import RunningPlatform, start_platform

PAGE_SIZE = 4096


def vm_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_metrics_page_counts_what_the_platform_served(fresh_platform: RunningPlatform) -> None:
    with requests.Session() as session:
        for _ in range(37):
            assert session.get(fresh_platform.url + HEALTH, timeout=5).status_code == 200
    routes = SeriesSelector.of("loadkit_platform_requests_total", {"route": "GET /health"})
    rss = SeriesSelector.of("process_resident_memory_bytes")
    source = PrometheusSource(fresh_platform.url + PLATFORM_METRICS, [routes, rss])
    try:
        before = vm_rss_bytes(fresh_platform.process.pid)
        values = source.read()
        after = vm_rss_bytes(fresh_platform.process.pid)
    finally:
        source.close()
    assert values[routes.key] == fresh_platform.counters()["responses"]["GET /health 200"] == 37
    # The platform's own RSS, read independently from /proc just before and after the scrape
    # (the kernel's per-thread RSS counters may lag by up to 64 pages each).
    assert before - 256 * PAGE_SIZE <= values[rss.key] <= after + 256 * PAGE_SIZE
    page = requests.get(fresh_platform.url + PLATFORM_METRICS, timeout=5).text
    names = {name for name, _, _ in parse_exposition(page)}
    assert {"process_cpu_seconds_total", "loadkit_platform_queue_jobs"} <= names
    assert fresh_platform.counters()["total"] == 37  # scrapes are not counted as requests


def test_labels_select_and_sum_series() -> None:
    page = (
        "# HELP q Jobs.\n# TYPE q gauge\n"
        'q{state="waiting"} 3\nq{state="active"} 4\nq{state="weird \\"x\\""} 5\n'
        "# TYPE s summary\n"
        's{quantile="0.5"} NaN\ns_sum 0\ns_count 0\n'
    )
    samples = parse_exposition(page)
    chosen = select(
        samples,
        [
            SeriesSelector.of("q"),
            SeriesSelector.of("q", {"state": "active"}),
            SeriesSelector.of("q", {"state": 'weird "x"'}),
            SeriesSelector.of("s"),
        ],
    )
    assert chosen == {"q": 12.0, 'q{state="active"}': 4.0, 'q{state="weird \\"x\\""}': 5.0}


def test_leak_knob_grows_the_platform_memory_by_what_it_keeps() -> None:
    leak = 200_000
    with start_platform(TEST_API_KEY, extra_args=["--leak-bytes-per-request", str(leak)]) as p:
        before = vm_rss_bytes(p.process.pid)
        with requests.Session() as session:
            for _ in range(150):
                session.get(p.url + HEALTH, timeout=5)
        grown = vm_rss_bytes(p.process.pid) - before
    assert 0.9 * 150 * leak < grown < 1.5 * 150 * leak


def test_surge_latency_stays_after_the_surge_is_gone() -> None:
    with start_platform(TEST_API_KEY, extra_args=["--surge-latency", "3=80"]) as p:
        host, port = p.url.removeprefix("http://").split(":")

        def timed_health() -> float:
            started = time.monotonic()
            requests.get(p.url + HEALTH, timeout=5)
            return time.monotonic() - started

        assert timed_health() < 0.05
        surge = [socket.create_connection((host, int(port))) for _ in range(4)]
        time.sleep(0.2)
        for sock in surge:
            sock.close()
        time.sleep(0.2)
        assert all(timed_health() >= 0.08 for _ in range(3))
