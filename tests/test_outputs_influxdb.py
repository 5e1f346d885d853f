"""``--out influxdb=URL``: line protocol, batching and failure handling against a loopback server
that records writes, then end to end: real Locust streaming to a real InfluxDB 1.x (Debian's
``influxdb`` package) on loopback, whose sums must equal Locust's counts."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gevent
import pytest
import requests
from test_outputs_timeseries import free_port, http_rows, run_probe

from loadkit.platform.launcher import RunningPlatform
from loadkit.results.influxdb import InfluxUrlError, InfluxWriter, parse_influx_url
from loadkit.results.line_protocol import encode_records, escape_key, format_line

T_MS = 1_700_000_001_000


# -- line protocol ------------------------------------------------------------------------------


def request_record(name: str, method: str, requests: int, failures: int, **extra: Any) -> dict:
    timed = requests > 0
    return {
        "kind": "requests", "t": 1_700_000_001, "elapsed_s": 1, "users": 5,
        "name": name, "method": method, "requests": requests, "failures": failures,
        "rps": float(requests),
        "p50_ms": 1.5 if timed else None, "p95_ms": 9.25 if timed else None,
        "p99_ms": 12.0 if timed else None, "max_ms": 30.125 if timed else None,
        **extra,
    }  # fmt: skip


def test_escaping_follows_the_line_protocol() -> None:
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    assert escape_key("line\nbreak\\") == r"line\ break/"
    line = format_line("m x", {"z": "1", "a": "v w", "empty": ""}, {"n": 3, "f": 0.5}, 7)
    assert line == r"m\ x,a=v\ w,z=1 n=3i,f=0.500 7"
    with pytest.raises(ValueError):
        format_line("m", {}, {}, 1)


def test_records_become_k6_like_measurements() -> None:
    lines = encode_records(
        [
            request_record("/api/calls/[id]/retry", "POST", 10, 2),
            request_record("bulk import", "JOB", 3, 0),
            request_record("Aggregated", "", 10, 2),
            request_record("Aggregated", "", 0, 0),
            {
                "kind": "process", "t": 1_700_000_001, "elapsed_s": 1,
                "process": "w 1", "role": "worker", "generator_rss_bytes": 5_000_000,
            },
        ]
    )  # fmt: skip
    durations = "p50=1.500,p95=9.250,p99=12.000,max=30.125"
    assert lines == [
        f"http_reqs,failed=false,method=POST,name=/api/calls/[id]/retry value=8i {T_MS}",
        f"http_reqs,failed=true,method=POST,name=/api/calls/[id]/retry value=2i {T_MS}",
        f"http_req_duration,method=POST,name=/api/calls/[id]/retry {durations} {T_MS}",
        f"loadkit_jobs,name=bulk\\ import count=3i,failures=0i,{durations} {T_MS}",
        f"vus value=5i {T_MS}",
        f"http_req_duration,name=Aggregated {durations} {T_MS}",
        f"vus value=5i {T_MS}",
        f"generator_rss_bytes,process=w\\ 1,role=worker value=5000000i {T_MS}",
    ]
    late = encode_records([request_record("/a", "GET", 1, 0, late=True)])
    assert late[0] == f"http_reqs,failed=false,late=true,method=GET,name=/a value=1i {T_MS}"


def test_influx_url_in_k6_form() -> None:
    target = parse_influx_url("http://admin:s3cret@127.0.0.1:8086/k6")
    assert (target.write_url, target.database) == ("http://127.0.0.1:8086/write", "k6")
    assert target.auth == ("admin", "s3cret")
    assert "s3cret" not in repr(target) and "s3cret" not in target.display
    assert parse_influx_url("https://[::1]:8086/db/").write_url == "https://[::1]:8086/write"
    with pytest.raises(InfluxUrlError, match=r"\*\*\*@"):
        parse_influx_url("ftp://u:s3cret@h/db")


# -- batching and failures, against a server that records writes ---------------------------------


class RecordingServer(ThreadingHTTPServer):
    """``POST /write`` answers ``status`` (204 by default) and keeps every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.writes: list[tuple[dict[str, list[str]], list[str], str | None]] = []
        self.status = 204

    @property
    def url(self) -> str:
        return f"http://user:pw@127.0.0.1:{self.server_address[1]}/k6"


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        query = parse_qs(urlsplit(self.path).query)
        self.server.writes.append((query, body.split("\n"), self.headers.get("Authorization")))
        payload = b"" if self.server.status == 204 else b'{"error":"database not found"}'
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def wait_until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        gevent.sleep(0.02)


def test_points_are_posted_in_batches_from_the_background(
    recording_server: RecordingServer,
) -> None:
    writer = InfluxWriter(parse_influx_url(recording_server.url), interval_s=0.1, batch_lines=4)
    writer.add_lines(f"m value={i}i {i}" for i in range(10))
    assert recording_server.writes == []  # adding never sends
    writer.start()
    wait_until(lambda: writer.lines_written == 10)
    assert [len(lines) for _, lines, _ in recording_server.writes] == [4, 4, 2]
    query, lines, authorization = recording_server.writes[0]
    assert query == {"db": ["k6"], "precision": ["ms"]}
    assert lines[0] == "m value=0i 0"
    assert authorization is not None and authorization.startswith("Basic ")
    writer.add_lines(["m value=99i 99"])
    writer.close()  # sends what is left
    assert recording_server.writes[-1][1] == ["m value=99i 99"]
    assert (writer.lines_written, writer.lines_dropped) == (11, 0)


def test_a_down_influxdb_warns_once_keeps_points_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    writer = InfluxWriter(
        parse_influx_url(f"http://127.0.0.1:{port}/k6"),
        interval_s=0.05, max_buffered_lines=5, timeout_s=0.5,
    )  # fmt: skip
    caplog.set_level(logging.WARNING, logger="loadkit.plugin.outputs")
    writer.start()
    writer.add_lines(f"m value={i}i {i}" for i in range(8))  # 3 too many: the oldest go
    gevent.sleep(0.4)  # several failed attempts
    assert writer.buffered_lines == 5
    writer.close(timeout_s=1.0)
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("is unreachable" in w for w in warnings) == 1, warnings
    assert sum("buffer full" in w for w in warnings) == 1, warnings
    assert (writer.lines_written, writer.lines_dropped) == (0, 8)
    assert any("8 points could not be written" in w for w in warnings), warnings
    # The same, once each, for the verdict's notes and the console (output_problems).
    assert [p.split(" (")[0] for p in writer.problems] == [
        "InfluxDB buffer full",
        f"InfluxDB at http://127.0.0.1:{port}/k6 is unreachable",
        f"8 points could not be written to InfluxDB at http://127.0.0.1:{port}/k6",
    ]


def test_rejected_batches_are_dropped_not_retried(
    recording_server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    recording_server.status = 404
    writer = InfluxWriter(parse_influx_url(recording_server.url), interval_s=0.05)
    caplog.set_level(logging.WARNING, logger="loadkit.plugin.outputs")
    writer.add_lines(["m value=1i 1"])
    writer.start()
    wait_until(lambda: writer.lines_dropped == 1)
    writer.add_lines(["m value=2i 2"])
    wait_until(lambda: writer.lines_dropped == 2)
    writer.close()
    assert len(recording_server.writes) == 2
    assert sum("database not found" in r.getMessage() for r in caplog.records) == 1


# -- end to end: a real InfluxDB ------------------------------------------------------------------

INFLUXD_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
"""


def require(available: bool, what: str, install: str) -> None:
    """Skip a test whose tool is missing -- except in CI (``CI`` set), where it must be there:
    ``scripts/test.sh`` installs it, and a silent skip would hide a missing install step."""
    if available:
        return
    message = f"{what} is not installed (install: {install})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Influx:
    """A running ``influxd`` on loopback."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def query(self, database: str, q: str) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.base_url}/query", params={"db": database, "q": q}, timeout=5
        )
        response.raise_for_status()
        result = response.json()["results"][0]
        assert "error" not in result, result
        return list(result.get("series", []))

    def create_database(self, name: str) -> None:
        response = requests.post(
            f"{self.base_url}/query", params={"q": f'CREATE DATABASE "{name}"'}, timeout=5
        )
        response.raise_for_status()


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx]:
    influxd = shutil.which("influxd")
    require(influxd is not None, "influxd (InfluxDB 1.x)", "apt-get install -y influxdb")
    assert influxd is not None
    root = tmp_path_factory.mktemp("influxdb")
    http_port, rpc_port = free_port(), free_port()
    config = root / "influxdb.conf"
    config.write_text(INFLUXD_CONFIG.format(root=root, http_port=http_port, rpc_port=rpc_port))
    log = (root / "influxd.log").open("wb")
    child = subprocess.Popen(
        [influxd, "-config", str(config)], stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        base_url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{base_url}/ping", timeout=1).status_code == 204:
                    break
            except requests.ConnectionError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"influxd did not start:\n{(root / 'influxd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield Influx(base_url)
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def test_escaped_names_round_trip_through_a_real_influxdb(influxdb: Influx) -> None:
    influxdb.create_database("escapes")
    awkward = "/api/a b,c=d"
    writer = InfluxWriter(parse_influx_url(influxdb.base_url + "/escapes"))
    writer.write([request_record(awkward, "GET", 3, 1)])
    writer.close()
    assert writer.lines_written == 3
    series = influxdb.query("escapes", 'SELECT sum("value") FROM "http_reqs" GROUP BY "name"')
    assert [(s["tags"]["name"], s["values"][0][1]) for s in series] == [(awkward, 3)]


@pytest.mark.slow
def test_a_run_streams_every_request_to_a_real_influxdb(
    tmp_path: Path, fresh_platform: RunningPlatform, influxdb: Influx
) -> None:
    influxdb.create_database("k6")
    # no --results-dir: streaming needs no folder
    evidence, output = run_probe(
        tmp_path, fresh_platform, "--out", f"influxdb={influxdb.base_url}/k6", run_time="3s"
    )
    assert "InfluxDB" not in output.replace("streaming metrics to InfluxDB", ""), output[-3000:]
    assert not list(tmp_path.rglob("timeseries.*"))

    series = influxdb.query("k6", 'SELECT sum("value") FROM "http_reqs" GROUP BY "method", "name"')
    streamed = {f"{s['tags']['method']} {s['tags']['name']}": s["values"][0][1] for s in series}
    expected = http_rows(evidence)
    assert streamed == expected and sum(expected.values()) > 300
    print(f"InfluxDB sum(http_reqs) per row: {streamed}; Locust: {expected}")

    jobs = influxdb.query("k6", 'SELECT sum("count") FROM "loadkit_jobs"')
    assert jobs[0]["values"][0][1] == evidence["locust_rows"]["JOB probe job"][0]
    vus = influxdb.query("k6", 'SELECT max("value"), count("value") FROM "vus"')
    max_users, seconds = vus[0]["values"][0][1:]
    assert max_users == 4 and seconds >= 3
    p95 = influxdb.query(
        "k6", 'SELECT max("p95") FROM "http_req_duration" WHERE "name" = \'Aggregated\''
    )
    assert 0 < p95[0]["values"][0][1] < 1000
    memory = influxdb.query("k6", 'SELECT min("value") FROM "generator_rss_bytes"')
    assert memory[0]["values"][0][1] > 10_000_000
