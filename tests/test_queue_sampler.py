"""Queue depth sampling: the summary math, the HTTP source against the real platform, a burst
that fills the queue, surviving a platform that goes away, and the Locust glue (web UI tab,
headless series file, never on workers)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import TEST_API_KEY, kit_env, schedule_calls
from fixtures_redis import free_port
from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.observe.queue_sampler import QueueSampler, nearest_rank, summarize
from loadkit.observe.queue_sources import (
    DEPTH_MEANING,
    HttpQueueSource,
    QueueSourceError,
    Reading,
    flatten_numbers,
    source_from_settings,
)
from loadkit.platform.launcher import RunningPlatform, start_platform
from loadkit.plugin.queue import install_queue_sampler, queue_gauges
from loadkit.settings import Settings

KIT_VARS = ("REDIS_URL", "API_URL", "API_KEY")
LOCUST = [sys.executable, "-m", "locust"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*KIT_VARS, *(n for n in os.environ if n.startswith("LOADKIT_"))]:
        monkeypatch.delenv(name, raising=False)


def settings_for(url: str | None, key: str | None = TEST_API_KEY, **extra: object) -> Settings:
    return Settings(_env_file=None, api_url=url, api_key=key, **extra)  # type: ignore[arg-type]


class ListSource:
    """A source that replays readings (an ``Exception`` entry fails that reading)."""

    description = "replay"

    def __init__(self, readings: list[Reading | Exception]) -> None:
        self._readings = list(readings)

    def read(self) -> Reading:
        item = self._readings.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


# -- summary math --------------------------------------------------------------------------------


def test_nearest_rank_is_an_observed_value() -> None:
    values = list(range(1, 21))  # 20 values: rank ceil(0.95 * 20) = 19
    assert nearest_rank(values, 95) == 19
    assert nearest_rank(list(range(1, 101)), 95) == 95
    assert nearest_rank([7], 95) == 7
    assert nearest_rank([1, 2], 95) == 2  # ceil(1.9) = 2
    assert nearest_rank([1, 2, 3], 0) == 1  # rank never below 1


def test_summary_of_a_series() -> None:
    summary = summarize([3, 10, 1, 4])
    assert summary.samples == 4
    assert (summary.min, summary.max, summary.final) == (1, 10, 4)
    assert summary.avg == pytest.approx(4.5)
    assert summary.p95 == 10


def test_no_samples_is_no_data() -> None:
    summary = summarize([])
    assert summary.samples == 0  # the verdict's "no data"


def test_failed_readings_are_counted_and_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    down = QueueSourceError("GET /api/queue/stats: Connection refused")
    source = ListSource([{"depth": 5}, down, down, down, {"depth": 2}])
    sampler = QueueSampler(source, 1.0, clock=clock)
    caplog.set_level(logging.WARNING, logger="loadkit.queue")
    for step_s in (0, 1, 1, 61, 1):
        clock.now_s += step_s
        sampler.sample_once()
    assert sampler.errors == 3
    assert sampler.last_error == "GET /api/queue/stats: Connection refused"
    assert [t for t, _ in sampler.samples] == [0.0, 64.0]
    assert sampler.summary().final == 2
    warnings = [r for r in caplog.records if "queue depth sample failed" in r.getMessage()]
    assert len(warnings) == 2  # at t=1 and t=63, not at t=2


def test_a_sampler_that_never_succeeded_has_no_data() -> None:
    sampler = QueueSampler(ListSource([QueueSourceError("down")] * 3), 1.0, clock=FakeClock())
    for _ in range(3):
        assert sampler.sample_once() is False
    assert sampler.summary().samples == 0
    assert sampler.errors == 3


class CountingDown:
    """Depth 3, 2, 1, 0, 0 ... one step per reading."""

    description = "countdown"

    def __init__(self, start: int) -> None:
        self.depth = start + 1

    def read(self) -> Reading:
        self.depth = max(0, self.depth - 1)
        return {"depth": self.depth}

    def close(self) -> None:
        pass


def test_drain_goes_on_until_nothing_is_due() -> None:
    sampler = QueueSampler(CountingDown(3), 0.02)
    sampler.sample_once()  # a reading during the load
    sampler.end_of_load()
    assert sampler.load_ended_s is not None
    sampler.drain(5.0)
    depths = [reading["depth"] for _, reading in sampler.samples]
    assert depths == [3, 2, 1, 0]  # stopped at the first empty reading, not at the bound
    assert [r["depth"] for _, r in sampler.load_samples] == [3, 2]
    assert sampler.samples[-1][0] - sampler.load_ended_s < 1.0


def test_drain_stops_at_its_bound_or_when_cut() -> None:
    sampler = QueueSampler(ListSource([{"depth": 9}] * 500), 0.05)
    sampler.sample_once()
    sampler.end_of_load()
    started_s = time.monotonic()
    sampler.drain(0.3)
    assert 0.25 <= time.monotonic() - started_s < 1.0
    assert sampler.samples[-1][0] - sampler.load_ended_s == pytest.approx(0.3, abs=0.06)
    before = len(sampler.samples)
    sampler.drain(30.0, cut=lambda: True)
    assert len(sampler.samples) == before


def test_series_file_is_one_json_object_per_sample(tmp_path: Path) -> None:
    clock = FakeClock()
    sampler = QueueSampler(
        ListSource([{"depth": 1, "active": 2}, {"depth": 3, "active": 0}]), clock=clock
    )
    sampler.sample_once()
    clock.now_s += 1.5
    sampler.sample_once()
    path = sampler.write_jsonl(tmp_path / "run" / "queue_depth.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"t_s": 0.0, "depth": 1, "active": 2}, {"t_s": 1.5, "depth": 3, "active": 0}]


# -- sources -----------------------------------------------------------------------------------


def test_nested_stats_are_flattened_and_booleans_ignored() -> None:
    numbers = flatten_numbers({"queue": {"waiting": 3, "paused": True}, "rate": 1.5, "name": "x"})
    assert numbers == {"queue.waiting": 3, "rate": 1.5}


def test_http_source_reads_the_platform(fresh_platform: RunningPlatform) -> None:
    source = source_from_settings(settings_for(fresh_platform.url, queue_depth_fields="waiting"))
    assert isinstance(source, HttpQueueSource)
    reading = source.read()
    source.close()
    assert reading["depth"] == reading["waiting"]
    for field in ("active", "delayed", "completed", "failed", "processing_rate_per_s"):
        assert field in reading


def test_http_source_errors_are_one_line_without_the_key(fresh_platform: RunningPlatform) -> None:
    wrong = source_from_settings(settings_for(fresh_platform.url, key="not-the-key-0123"))
    assert wrong is not None
    with pytest.raises(QueueSourceError, match=r"API key rejected \(HTTP 403\)") as caught:
        wrong.read()
    assert "not-the-key-0123" not in str(caught.value)
    missing = source_from_settings(settings_for(fresh_platform.url, queue_depth_fields="backlog"))
    assert missing is not None
    with pytest.raises(QueueSourceError, match="no number 'backlog'"):
        missing.read()


def test_sampling_off_gives_no_source() -> None:
    assert source_from_settings(settings_for("http://127.0.0.1:1", queue_source="off")) is None


# -- against the real platform -----------------------------------------------------------------


def test_depth_rises_under_a_burst_and_the_summary_shows_it() -> None:
    args = ["--agents", "2", "--call-duration-ms", "500", "--call-jitter-ms", "0"]
    with start_platform(TEST_API_KEY, extra_args=args) as platform:
        sampler = QueueSampler(source_from_settings(settings_for(platform.url)), 0.2)  # type: ignore[arg-type]
        sampler.start()
        time.sleep(0.3)
        schedule_calls(platform, 40, campaign_id="queue-test")
        time.sleep(1.2)
        sampler.stop()
    summary = sampler.summary()
    assert summary.samples >= 6
    assert summary.min == 0  # before the burst
    # 40 calls, 2 agents, 0.5 s each: at most ~6 dialled by the end of the window.
    assert summary.max >= 30
    assert summary.final >= 25
    assert max(sampler.values("active")) == 2
    assert sampler.errors == 0


def test_sampler_survives_the_platform_going_away() -> None:
    with start_platform(TEST_API_KEY) as platform:
        sampler = QueueSampler(source_from_settings(settings_for(platform.url)), 0.1)  # type: ignore[arg-type]
        sampler.start()
        time.sleep(0.35)
        before = len(sampler.samples)
    time.sleep(0.4)  # the platform is gone; the sampler keeps trying
    assert sampler.running
    sampler.stop()
    assert before >= 2
    assert len(sampler.samples) == before
    assert sampler.errors >= 3
    assert sampler.last_error is not None
    assert "Connection refused" in sampler.last_error
    assert sampler.summary().samples == before


# -- Locust glue ---------------------------------------------------------------------------------


def test_no_sampler_on_workers() -> None:
    environment = Environment()
    runner = object.__new__(WorkerRunner)  # only its type matters here
    runner.greenlet = None  # what Runner.__del__ looks at
    environment.runner = runner
    assert install_queue_sampler(environment, settings_for("http://127.0.0.1:1")) is None
    assert queue_gauges(environment) == {}


LOCUSTFILE = """
from locust import User, constant, task

import loadkit.plugin.setup  # noqa: F401  (the kit's plugin: the queue sampler comes with it)


class Idle(User):
    wait_time = constant(0.5)

    @task
    def idle(self):
        pass
"""


@pytest.fixture
def locustfile(tmp_path: Path) -> Path:
    path = tmp_path / "queue_locustfile.py"
    path.write_text(LOCUSTFILE)
    return path


def test_headless_run_writes_the_series_and_keeps_samples_out_of_the_stats(
    platform: RunningPlatform, locustfile: Path, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    env = kit_env(platform.url, LOADKIT_QUEUE_SAMPLE_INTERVAL_S="0.25")
    done = subprocess.run(
        [
            *LOCUST,
            *["-f", str(locustfile), "--headless", "-u", "1", "-r", "1", "-t", "2s"],
            *["--no-baseline", "--results-dir", str(results)],
            *["--csv", str(tmp_path / "stats"), "--only-summary"],
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in (results / "queue_depth.jsonl").read_text().splitlines()]
    assert len(lines) >= 5
    assert {"t_s", "depth", "waiting", "active", "delayed"} <= set(lines[0])
    assert "/api/queue/stats" not in (tmp_path / "stats_stats.csv").read_text()
    assert TEST_API_KEY not in done.stdout + done.stderr


@pytest.fixture
def web_locust(platform: RunningPlatform, locustfile: Path) -> Iterator[str]:
    port = free_port()
    env = kit_env(platform.url, LOADKIT_QUEUE_SAMPLE_INTERVAL_S="0.2")
    process = subprocess.Popen(
        [
            *LOCUST,
            *["-f", str(locustfile), "--web-host", "127.0.0.1", "--web-port", str(port)],
            *["--host", platform.url, "--no-baseline"],
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline_s = time.monotonic() + 15
        while True:
            try:
                requests.get(url + "/loadkit/queue", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, "locust exited"
                assert time.monotonic() < deadline_s, "locust web UI did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_web_ui_shows_a_queue_tab_and_serves_the_series(web_locust: str) -> None:
    page = requests.get(web_locust + "/", timeout=5).text
    assert '"extended_tabs": [{"key": "loadkit-queue"' in page or "loadkit-queue" in page
    started = requests.post(
        web_locust + "/swarm", data={"user_count": 1, "spawn_rate": 1}, timeout=5
    )
    assert started.status_code == 200
    time.sleep(1.0)
    queue = requests.get(web_locust + "/loadkit/queue", timeout=5).json()
    assert queue["running"] is True
    assert queue["samples"] >= 3
    assert queue["source"] == "GET /api/queue/stats"
    assert {"samples", "min", "max", "avg", "p95", "final", "growth_per_s"} <= set(
        queue["summary"]["depth"]
    )
    assert {"t_s", "depth", "waiting"} <= set(queue["series"][0])
    stats = requests.get(web_locust + "/stats/requests", timeout=5).json()
    tab = [entry for entry in stats["extended_stats"] if entry["key"] == "loadkit-queue"]
    assert tab and tab[0]["data"][0]["name"] == "depth"
    assert tab[0]["data"][0]["meaning"] == DEPTH_MEANING  # what depth means, where it shows
    per_run = {row["name"]: row for row in tab[0]["data"][-3:]}
    assert list(per_run) == [
        "jobs completed this run", "jobs failed this run", "processing rate (jobs/s)",
    ]  # fmt: skip
    assert per_run["jobs completed this run"]["current"] == 0  # an idle queue: a delta of 0
    assert per_run["processing rate (jobs/s)"]["current"] == 0
    csv_text = requests.get(web_locust + "/loadkit/queue.csv", timeout=5).text
    assert csv_text.splitlines()[0].startswith("t_s,depth,")
    assert requests.post(web_locust + "/stop", timeout=5).json()["success"]
    deadline_s = time.monotonic() + 5
    while requests.get(web_locust + "/loadkit/queue", timeout=5).json()["running"]:
        assert time.monotonic() < deadline_s, "sampling did not stop with the test"
        time.sleep(0.1)
