"""The per-second time series: percentiles and counts with a fake clock, distributed deltas and
watermarks, the JSON-lines file, ``--out`` parsing, and end to end with real Locust (local, then
master + 2 workers) against the reference platform, checked against independent counts."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import configargparse
import msgpack
import pytest
from conftest import kit_env

from loadkit.endpoints import JOB_REQUEST_TYPE
from loadkit.measure.collector import Collector, ProcessSample
from loadkit.platform.launcher import RunningPlatform
from loadkit.plugin.outputs import add_output_arguments, parse_output_spec
from loadkit.results.timeseries import JsonlWriter, read_records

PROBE = Path(__file__).parent / "locustfiles" / "outputs_probe.py"
#: The fake clock's start: mid-second in wall-clock time, at an arbitrary monotonic reading.
START_EPOCH_S = 1_700_000_000.25
START_MONO_S = 500.0
T0 = 1_700_000_000


def fake_series(run_id: str | None = None) -> Collector:
    collector = Collector()
    collector.start(run_id=run_id, start_epoch_s=START_EPOCH_S, start_mono_s=START_MONO_S)
    return collector


def at(run_s: float) -> float:
    """The monotonic reading ``run_s`` seconds after the fake start."""
    return START_MONO_S + run_s


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def by_name(records: list[dict[str, Any]], name: str) -> dict[int, dict[str, Any]]:
    return {r["t"]: r for r in records if r["kind"] == "requests" and r["name"] == name}


# -- pure: one process ----------------------------------------------------------------------------


def test_each_second_has_the_percentiles_of_its_own_requests() -> None:
    """Second 1 is fast and second 2 slow: no sliding window blurs one into the other."""
    rng = random.Random(7)
    series = fake_series()
    samples: dict[int, list[float]] = {T0 + 1: [], T0 + 2: []}
    for i in range(400):
        run_s = 0.75 + i * 0.005  # epoch ...001.0 to ...002.995
        second = math.floor(START_EPOCH_S + run_s)
        latency_ms = rng.uniform(1, 20) if second == T0 + 1 else rng.uniform(200, 900)
        samples[second].append(latency_ms)
        series.record("GET", "/a", latency_ms, failed=i % 50 == 0, now_mono_s=at(run_s))
    rows = by_name(series.pop_records(T0 + 3), "/a")
    assert sorted(rows) == [T0 + 1, T0 + 2]
    for second, values in samples.items():
        row = rows[second]
        assert row["requests"] == row["rps"] == len(values) == 200
        assert row["failures"] == 4
        assert row["max_ms"] == pytest.approx(max(values), abs=1e-3)
        for p in (50, 95, 99):
            exact = nearest_rank(values, p)
            # the histogram's bound: never below the exact value, at most 1% (or 0.01 ms) above
            assert exact - 1e-3 <= row[f"p{p}_ms"] <= exact * 1.01 + 0.011, (second, p)
    assert rows[T0 + 1]["p99_ms"] < 21 < 199 < rows[T0 + 2]["p50_ms"]


def test_quiet_seconds_get_an_empty_total_and_nothing_after_the_end() -> None:
    series = fake_series()
    series.record("GET", "/a", 5.0, False, at(0.1))  # second 0
    series.record("GET", "/a", 7.0, False, at(3.1))  # second 3
    series.stop(at(3.5))
    series.record("GET", "/a", 9.0, False, at(6.0))  # an in-flight request ending after stop
    records = series.pop_all()
    total = by_name(records, "Aggregated")
    assert sorted(total) == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 6]
    quiet = total[T0 + 1]
    assert (quiet["requests"], quiet["failures"], quiet["rps"]) == (0, 0, 0.0)
    assert quiet["p50_ms"] is quiet["p95_ms"] is quiet["p99_ms"] is quiet["max_ms"] is None
    assert [total[s]["elapsed_s"] for s in sorted(total)] == [0, 1, 2, 3, 6]
    assert sorted(by_name(records, "/a")) == [T0, T0 + 3, T0 + 6]
    assert series.pop_all() == []


def test_job_timings_have_rows_but_stay_out_of_the_http_total() -> None:
    series = fake_series()
    series.record("GET", "/a", 2.0, True, at(0.1))
    series.record(JOB_REQUEST_TYPE, "bulk import", 4000.0, False, at(0.2))
    records = series.pop_records(T0 + 1)
    assert [(r["method"], r["name"]) for r in records if r["kind"] == "requests"] == [
        ("GET", "/a"),
        (JOB_REQUEST_TYPE, "bulk import"),
        ("", "Aggregated"),
    ]
    total = records[-1]
    assert (total["requests"], total["failures"], total["max_ms"]) == (1, 1, 2.0)


def test_users_and_memory_samples() -> None:
    series = fake_series()
    series.sample_users(3, T0)
    series.sample_users(5, T0)  # the last sample of a second wins
    series.sample_process("local", ProcessSample("local", 1234), T0)
    series.record("GET", "/a", 1.0, False, at(1.0))  # second 1: no users sample, carried over
    records = series.pop_records(T0 + 2)
    assert [r["users"] for r in by_name(records, "Aggregated").values()] == [5, 5]
    processes = [r for r in records if r["kind"] == "process"]
    assert processes == [
        {
            "kind": "process",
            "t": T0,
            "elapsed_s": 0,
            "process": "local",
            "role": "local",
            "generator_rss_bytes": 1234,
        }
    ]


def test_response_time_none_counts_without_a_timing() -> None:
    series = fake_series()
    series.record("GET", "/a", None, False, at(0.1))
    row = by_name(series.pop_records(T0 + 1), "/a")[T0]
    assert (row["requests"], row["p95_ms"]) == (1, None)


# -- pure: distributed --------------------------------------------------------------------------


def wire(payload: dict[str, Any]) -> dict[str, Any]:
    """What the master receives: Locust ships reports with msgpack."""
    return msgpack.loads(msgpack.dumps(payload), raw=False, strict_map_key=False)


def test_worker_deltas_merge_to_the_same_records_as_one_process() -> None:
    """Workers' monotonic clocks differ; their wall-clock seconds line the samples up."""
    rng = random.Random(3)
    single = fake_series()
    master = fake_series(run_id="run-1")
    clocks = {"w1": (0.4, 7.0), "w2": (0.1, 90_000.0)}  # lag behind the master, monotonic start
    workers = {name: Collector() for name in clocks}
    for name, (lag_s, mono_s) in clocks.items():  # told of the master's start lag_s late
        workers[name].start(
            run_id="run-1",
            start_epoch_s=START_EPOCH_S,
            start_mono_s=mono_s,
            now_epoch_s=START_EPOCH_S + lag_s,
        )
    for step in range(600):
        name = "w1" if step % 3 else "w2"
        lag_s, mono_s = clocks[name]
        latency_ms = rng.uniform(0.5, 80)
        failed = step % 13 == 0
        single.record("GET", "/x", latency_ms, failed, at(lag_s + step * 0.01))
        workers[name].record("GET", "/x", latency_ms, failed, mono_s + step * 0.01)
        if step % 100 == 99:
            master.merge_delta(name, wire(workers[name].export_delta(mono_s + step * 0.01)))
    for name, worker in workers.items():
        assert master.merge_delta(name, wire(worker.export_delta(clocks[name][1] + 7.0)))
    assert master.pop_all() == single.pop_all()


def test_a_second_is_final_once_every_worker_reported_past_it() -> None:
    master = fake_series(run_id="r")
    worker = fake_series(run_id="r")
    now = T0 + 20.5
    assert master.final_before([], now, max_lag_s=10) == T0 + 20  # local: the current second
    # a connected worker that has not reported yet: wait for it, at most max_lag_s
    assert master.final_before(["w1"], now, max_lag_s=10) == T0 + 10
    master.merge_delta("w1", worker.export_delta(at(15.0)))  # epoch ...015.25
    master.merge_delta("w2", worker.export_delta(at(18.0)))
    assert master.final_before(["w1", "w2"], now, max_lag_s=10) == T0 + 15
    assert master.final_before(["w2"], now, max_lag_s=10) == T0 + 18
    assert master.final_before(["w1", "w2"], T0 + 40.0, max_lag_s=10) == T0 + 30


def test_late_data_is_written_again_marked_late_and_no_count_is_lost() -> None:
    master = fake_series(run_id="r")
    worker = fake_series(run_id="r")
    worker.record("GET", "/a", 1.0, False, at(1.2))
    master.merge_delta("w1", worker.export_delta(at(1.5)))
    first = master.pop_records(T0 + 3)
    worker.record("GET", "/a", 2.0, True, at(1.4))  # a straggler for second 1, arriving late
    master.merge_delta("w1", worker.export_delta(at(5.0)))
    again = master.pop_records(T0 + 3)
    assert [r for r in first if r.get("late")] == []
    late = [r for r in again if r["kind"] == "requests"]
    assert [(r["name"], r["t"], r["requests"], r.get("late")) for r in late] == [
        ("/a", T0 + 1, 1, True),
        ("Aggregated", T0 + 1, 1, True),
    ]
    total = sum(r["requests"] for r in first + again if r["name"] == "Aggregated")
    assert total == 2


def test_deltas_of_another_run_are_dropped() -> None:
    master = fake_series(run_id="new")
    old = fake_series(run_id="old")
    old.record("GET", "/a", 1.0, False, at(0.5))
    assert not master.merge_delta("w1", old.export_delta(at(1.0)))
    assert master.stale_reports == 1
    assert by_name(master.pop_records(T0 + 1), "/a") == {}


# -- the file and the option --------------------------------------------------------------------


def test_jsonl_writer_writes_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "run" / "timeseries.jsonl"
    writer = JsonlWriter(path)
    writer.write([])
    assert not path.exists()
    writer.write([{"t": 1, "name": "a"}, {"t": 1, "name": "b"}])
    writer.close()
    writer.write([{"t": 2, "name": "a"}])  # reopened after close: appends
    writer.close()
    assert [r["name"] for r in read_records(path)] == ["a", "b", "a"]
    assert path.read_text().count("\n") == 3


def test_out_option_is_repeatable_validated_and_registered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = configargparse.ArgumentParser()
    add_output_arguments(parser)
    add_output_arguments(parser)  # the plugin and a locustfile may both call it
    url = "http://127.0.0.1:8086/k6"
    options = parser.parse_args(["--out", f"influxdb={url}", "--out", "influxdb=http://h:1/db2"])
    assert options.out == [f"influxdb={url}", "influxdb=http://h:1/db2"]
    assert parse_output_spec(options.out[0]).target == url
    monkeypatch.setenv("LOADKIT_OUT", f"influxdb={url}")
    assert parser.parse_args([]).out == [f"influxdb={url}"]
    for bad in ("json=out.json", "influxdb=ftp://h/db", "influxdb=http://h:8086/"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_output_spec(bad)
    secret = parse_output_spec("influxdb=http://u:hunter2@h:8086/db")
    assert "hunter2" not in repr(secret)


# -- end to end ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_probe(
    tmp_path: Path,
    platform: RunningPlatform,
    *extra: str,
    users: int = 4,
    run_time: str = "3s",
    env_extra: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """Run the outputs probe headless (hard timeout 40 s); its evidence and Locust's output."""
    evidence = tmp_path / "probe.json"
    # The probe's users call GET /api/queue/stats themselves: the kit's own queue sampler would
    # add requests to the platform's count that Locust never made.
    env = kit_env(
        platform.url,
        LOADKIT_OUTPUTS_PROBE_OUT=str(evidence),
        LOADKIT_QUEUE_SOURCE="off",
        **(env_extra or {}),
    )
    env = {k: v for k, v in env.items() if not k.startswith("LOCUST_")}
    command = [
        sys.executable, "-m", "locust", "-f", str(PROBE), "--headless",
        "-u", str(users), "-r", str(users), "-t", run_time,
        "--no-baseline", "--only-summary", *extra,
    ]  # fmt: skip
    child = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = child.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate()
        pytest.fail(f"locust did not stop in time:\n{output[-4000:]}")
    assert child.returncode == 0, output[-4000:]
    assert evidence.exists(), output[-4000:]
    return json.loads(evidence.read_text()), output


def http_rows(evidence: dict[str, Any]) -> dict[str, int]:
    """Locust's own request count per HTTP row (``"GET /health"``)."""
    return {
        key: count
        for key, (count, _failures) in evidence["locust_rows"].items()
        if not key.startswith(JOB_REQUEST_TYPE)
    }


def assert_series_matches_independent_counts(
    run_dir: Path, evidence: dict[str, Any], platform: RunningPlatform, users: int
) -> list[dict[str, Any]]:
    records = list(read_records(run_dir / "timeseries.jsonl"))
    requests = [r for r in records if r["kind"] == "requests"]
    assert not [r for r in records if r.get("late")]

    # every row: the sum of its per-second requests is Locust's count of that row
    summed: dict[str, list[int]] = {}
    for r in requests:
        counts = summed.setdefault(f"{r['method']} {r['name']}".strip(), [0, 0])
        counts[0] += r["requests"]
        counts[1] += r["failures"]
    for key, (count, failures) in evidence["locust_rows"].items():
        assert summed[key] == [count, failures], key
    assert summed["Aggregated"][0] == sum(http_rows(evidence).values()) > 300

    # the platform served each of them (plus at most one in-flight request per user)
    served = platform.counters()["requests"]
    for key, count in http_rows(evidence).items():
        assert count <= served[key] <= count + users, (key, count, served)

    # second by second, the kit's recorder (independent code, own clock anchor) agrees
    total = by_name(requests, "Aggregated")
    recorder = {int(s): counts[0] for s, counts in evidence["recorder_per_second"].items()}
    assert sum(recorder.values()) == summed["Aggregated"][0]
    for second in set(total) | set(recorder):
        assert abs(total.get(second, {"requests": 0})["requests"] - recorder.get(second, 0)) <= 2

    # one total per second, consecutive, with users; and a memory sample per second
    seconds = sorted(total)
    assert seconds == list(range(seconds[0], seconds[-1] + 1)) and len(seconds) >= 3
    assert [total[s]["elapsed_s"] for s in seconds] == list(range(len(seconds)))
    assert max(total[s]["users"] for s in seconds) == users
    for s in seconds[1:-1]:
        row = total[s]
        assert row["requests"] > 0 and row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["p99_ms"] <= row["max_ms"]
    memory = [r for r in records if r["kind"] == "process"]
    assert all(r["generator_rss_bytes"] > 10_000_000 for r in memory)
    return records


@pytest.mark.slow
def test_local_run_writes_a_series_that_adds_up(
    tmp_path: Path, fresh_platform: RunningPlatform
) -> None:
    run_dir = tmp_path / "results"
    evidence, output = run_probe(tmp_path, fresh_platform, "--results-dir", str(run_dir))
    assert evidence["role"] == "local"
    records = assert_series_matches_independent_counts(run_dir, evidence, fresh_platform, 4)
    seconds = {r["t"] for r in records if r["kind"] == "requests"}
    memory = {r["t"] for r in records if r["kind"] == "process" and r["process"] == "local"}
    assert memory == seconds
    assert (run_dir / "timeseries.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Traceback" not in output


@pytest.mark.slow
def test_distributed_run_writes_the_merged_series_on_the_master(
    tmp_path: Path, fresh_platform: RunningPlatform
) -> None:
    run_dir = tmp_path / "results"
    port = str(free_port())
    evidence, output = run_probe(
        tmp_path, fresh_platform, "--results-dir", str(run_dir),
        "--processes", "2",
        "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
        "--master-host", "127.0.0.1", "--master-port", port,
    )  # fmt: skip
    assert evidence["role"] == "master"
    records = assert_series_matches_independent_counts(run_dir, evidence, fresh_platform, 4)
    workers = {r["process"] for r in records if r["kind"] == "process" and r["role"] == "worker"}
    assert len(workers) == 2
    assert not list(tmp_path.rglob("timeseries.jsonl"))[1:], "only the master writes files"
    assert "Traceback" not in output
