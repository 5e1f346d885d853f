"""The recorder: windows and rates with a fake clock, distributed deltas, and end to end with real
Locust (local, then master + 2 workers) against a counting server on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgpack
import pytest

from loadkit.endpoints import JOB_REQUEST_TYPE
from loadkit.measure.recorder import RunRecorder

PROBE = Path(__file__).parent / "locustfiles" / "recorder_probe.py"
#: The fake clock's start: mid-second in wall-clock time, at an arbitrary monotonic reading.
START_EPOCH_S = 1_700_000_000.25
START_MONO_S = 500.0


def fake_recorder(run_id: str | None = None) -> RunRecorder:
    return RunRecorder(start_epoch_s=START_EPOCH_S, start_mono_s=START_MONO_S, run_id=run_id)


def at(run_s: float) -> float:
    """The monotonic reading ``run_s`` seconds after the fake start."""
    return START_MONO_S + run_s


# -- pure: windows and rates --------------------------------------------------------------------


def steady_run() -> RunRecorder:
    """10 requests per wall-clock second from run time 0.0 to 9.95 s, every 5th one failing."""
    recorder = fake_recorder()
    for i in range(200):
        recorder.record("GET", "/api/calls", 10.0 + i % 7, i % 5 == 0, at(i * 0.05))
    return recorder


def test_whole_run_rate_excludes_partial_edge_seconds() -> None:
    recorder = steady_run()
    # start at epoch ...000.25: the first whole second starts at ...001; the last request
    # (run 9.95 s = epoch ...010.2) is in second ...010, which is partial and excluded.
    seconds = recorder.counted_seconds()
    assert (seconds.start, seconds.stop) == (1_700_000_001, 1_700_000_010)
    row = recorder.snapshot()["GET /api/calls"]
    assert row.window_s == 9.0
    assert row.rps == 20.0
    assert (row.count, row.failures) == (200, 40)


def test_window_is_relative_to_the_start_and_counts_whole_seconds_only() -> None:
    recorder = steady_run()
    # run 2.0..6.5 s = epoch ...002.25..006.75: whole seconds 003, 004, 005
    seconds = recorder.counted_seconds((2.0, 6.5))
    assert list(seconds) == [1_700_000_003, 1_700_000_004, 1_700_000_005]
    row = recorder.snapshot((2.0, 6.5))["Aggregated"]
    assert (row.window_s, row.rps) == (3.0, 20.0)
    assert row.count == 200  # counts and latencies are whole-run figures


def test_window_too_short_for_a_whole_second() -> None:
    row = steady_run().snapshot((2.0, 2.9))["Aggregated"]
    assert (row.window_s, row.rps) == (0.0, 0.0)
    with pytest.raises(ValueError):
        steady_run().counted_seconds((3.0, 2.0))


def test_quiet_seconds_inside_the_window_count_as_zero() -> None:
    recorder = fake_recorder()
    recorder.record("GET", "/a", 1.0, False, at(1.0))
    recorder.record("GET", "/a", 1.0, False, at(5.0))
    recorder.record("GET", "/a", 1.0, False, at(9.0))
    row = recorder.snapshot()["GET /a"]
    # whole seconds 001..008 (009 holds the last request: partial); 002-004 and 006-008 empty
    assert (row.window_s, row.rps) == (8.0, 2 / 8)


def test_job_rows_stay_out_of_the_http_total() -> None:
    recorder = fake_recorder()
    recorder.record("POST", "/api/contacts/import", 30.0, False, at(0.5))
    recorder.record("GET", "/api/imports/[id]", 2.0, True, at(0.6))
    recorder.record(JOB_REQUEST_TYPE, "bulk import: upload to completed", 4000.0, False, at(4.5))
    snapshot = recorder.snapshot()
    assert list(snapshot) == [
        "GET /api/imports/[id]",
        "JOB bulk import: upload to completed",
        "POST /api/contacts/import",
        "Aggregated",
    ]
    total = snapshot["Aggregated"]
    assert (total.method, total.name, total.count, total.failures) == ("", "Aggregated", 2, 1)
    assert total.max_ms == 30.0
    assert snapshot["JOB bulk import: upload to completed"].p95_ms == 4000.0


def test_latencies_come_from_the_histogram() -> None:
    recorder = fake_recorder()
    for i in range(1, 101):
        recorder.record("GET", "/a", float(i), False, at(0.5))
    row = recorder.snapshot()["GET /a"]
    assert (row.min_ms, row.max_ms, row.avg_ms) == (1.0, 100.0, 50.5)
    assert (row.p50_ms, row.p90_ms, row.p95_ms, row.p99_ms) == (50.0, 90.0, 95.0, 99.0)


def test_per_second_counts() -> None:
    recorder = fake_recorder()
    recorder.record("GET", "/a", 1.0, False, at(0.8))  # epoch ...001.05
    recorder.record("GET", "/a", 1.0, True, at(0.9))
    recorder.record("POST", "/b", 1.0, False, at(0.1))  # epoch ...000.35
    recorder.record(JOB_REQUEST_TYPE, "job", 1.0, False, at(0.1))
    assert recorder.per_second("GET /a") == {1_700_000_001: (2, 1)}
    assert recorder.per_second("Aggregated") == {1_700_000_000: (1, 0), 1_700_000_001: (2, 1)}
    assert recorder.per_second("JOB job") == {1_700_000_000: (1, 0)}


def test_empty_snapshot_has_a_zero_total() -> None:
    snapshot = fake_recorder().snapshot()
    assert list(snapshot) == ["Aggregated"]
    assert (snapshot["Aggregated"].count, snapshot["Aggregated"].window_s) == (0, 0.0)


# -- pure: distributed deltas -------------------------------------------------------------------


def wire(payload: dict) -> dict:
    """What the master receives: Locust ships reports with msgpack (str keys are enough)."""
    return msgpack.loads(msgpack.dumps(payload), raw=False)


def test_worker_deltas_merge_to_the_same_result_as_one_recorder() -> None:
    """Workers' monotonic clocks differ; their wall-clock seconds align the per-second counts."""
    single = fake_recorder()
    master = fake_recorder(run_id="run-1")
    # worker name -> (its start's offset from the master's in wall-clock s, its monotonic start)
    clocks = {"w1": (0.4, 7.0), "w2": (0.1, 90_000.0)}
    workers = {
        name: RunRecorder(start_epoch_s=START_EPOCH_S + lag_s, start_mono_s=mono_s, run_id="run-1")
        for name, (lag_s, mono_s) in clocks.items()
    }
    for step in range(300):
        name = "w1" if step % 3 else "w2"
        lag_s, worker_start_mono_s = clocks[name]
        run_s = lag_s + step * 0.03  # on the master's run clock
        latency_ms = 1.0 + (step * 37) % 200 / 3
        failed = step % 11 == 0
        single.record("GET", "/x", latency_ms, failed, at(run_s))
        workers[name].record("GET", "/x", latency_ms, failed, worker_start_mono_s + step * 0.03)
        if step % 50 == 49:  # periodic reports
            master.merge_report(name, wire(workers[name].export_delta(final=False)))
    for name, worker in workers.items():
        assert master.merge_report(name, wire(worker.export_delta(final=True)))
        assert worker.export_delta(final=True)["rows"] == []  # each sample leaves once

    assert master.pending_sources() == set()
    assert master.per_second("GET /x") == single.per_second("GET /x")
    merged, expected = master.snapshot(), single.snapshot()
    assert merged.keys() == expected.keys()
    for key, row in merged.items():
        assert row.avg_ms == pytest.approx(expected[key].avg_ms, rel=1e-12)  # float sum order
        assert replace(row, avg_ms=0.0) == replace(expected[key], avg_ms=0.0)


def test_reports_of_another_run_are_dropped() -> None:
    master = fake_recorder(run_id="run-2")
    old = fake_recorder(run_id="run-1")
    old.record("GET", "/x", 1.0, False, at(1.0))
    assert not master.merge_report("w1", old.export_delta(final=True))
    assert master.stale_reports == 1
    assert master.reports_received == 0
    assert master.snapshot()["Aggregated"].count == 0


def test_pending_sources_until_each_final_report() -> None:
    master = fake_recorder(run_id="r")
    worker = fake_recorder(run_id="r")
    master.expect_sources(["w1", "w2"])
    assert master.pending_sources() == {"w1", "w2"}
    master.merge_report("w1", worker.export_delta(final=False))
    master.merge_report("w2", worker.export_delta(final=True))
    assert master.pending_sources() == {"w1"}
    master.merge_report("w1", worker.export_delta(final=True))
    master.expect_sources(["w1"])  # already final: stays final
    assert master.pending_sources() == set()
    assert master.reports_received == 3
    master.reset(run_id="next")
    assert (master.pending_sources(), master.reports_received) == (set(), 0)


# -- end to end: real Locust against a counting server on loopback ------------------------------


class CountingServer(ThreadingHTTPServer):
    """Answers ``/ok`` with 200 and anything else with 500, counting requests per path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API
    disable_nagle_algorithm = True  # TCP_NODELAY: without it loopback caps at ~225 rps
    server: CountingServer

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.counts[self.path] += 1
        status, body = (200, b"ok") if self.path == "/ok" else (500, b"fail")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[CountingServer]:
    srv = CountingServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_probe(tmp_path: Path, host: str, *extra: str) -> dict:
    """Run the probe headless for 4 s (hard timeout 40 s) and return what it wrote at quitting."""
    out = tmp_path / "probe.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env["LOADKIT_RECORDER_PROBE_OUT"] = str(out)
    cmd = [
        sys.executable, "-m", "locust", "-f", str(PROBE), "--headless",
        "-u", "5", "-r", "5", "-t", "4s", "--host", host,
        "--stop-timeout", "2",  # let in-flight requests finish: the server counted them
        "--exit-code-on-error", "0", "--only-summary",
        *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,  # no locust.conf / pyproject [tool.locust] from the repo
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"locust did not stop in time:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    assert out.exists(), output[-4000:]
    return json.loads(out.read_text())


def assert_counts_agree(result: dict, server: CountingServer) -> None:
    snapshot = result["snapshot"]
    total = snapshot["Aggregated"]
    served = server.counts
    assert set(served) == {"/ok", "/fail"}
    assert total["count"] == served.total() > 100
    assert total["failures"] == served["/fail"]
    assert snapshot["GET /ok"]["count"] == served["/ok"]
    assert snapshot["GET /fail"]["failures"] == snapshot["GET /fail"]["count"] == served["/fail"]

    # Locust's own rows agree row by row; its total includes the JOB row, ours does not
    locust_rows = result["locust_rows"]
    for key, row in snapshot.items():
        if key != "Aggregated":
            assert [row["count"], row["failures"]] == locust_rows[key], key
    job = snapshot[f"{JOB_REQUEST_TYPE} probe job"]
    assert job["count"] > 0
    assert result["locust_total"] == [total["count"] + job["count"], total["failures"]]

    assert 2.0 <= total["window_s"] <= 4.0
    assert 0 < total["rps"] * total["window_s"] <= total["count"]


@pytest.mark.slow
def test_local_run_counts_every_request(tmp_path: Path, server: CountingServer) -> None:
    result = run_probe(tmp_path, server.url)
    assert result["role"] == "local"
    assert_counts_agree(result, server)


@pytest.mark.slow
def test_distributed_run_merges_every_worker_report(tmp_path: Path, server: CountingServer) -> None:
    port = str(free_port())
    result = run_probe(
        tmp_path,
        server.url,
        "--processes", "2",
        "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--master-host", "127.0.0.1", "--master-port", port,
    )  # fmt: skip
    assert result["role"] == "master"
    assert_counts_agree(result, server)
    assert result["pending"] == []

    # Evidence for the final-report timing: at the master's test_stop the workers' last
    # samples had not arrived; each worker's final report came afterwards.
    at_stop = result["at_test_stop"]
    assert at_stop["count"] < result["snapshot"]["Aggregated"]["count"]
    finals = {r["worker"] for r in result["after_test_stop"] if r["final"]}
    assert len(finals) == 2, result["after_test_stop"]
    evidence = {k: result[k] for k in ("at_test_stop", "after_test_stop", "locust_total")}
    print(json.dumps(evidence))
