"""Data transferred: bytes sent counted as the server received them, and bytes in every output."""

from __future__ import annotations

import json
from pathlib import Path

import gevent
import pytest
from conftest import kit_env, run_kit
from gevent.server import StreamServer
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from loadkit.leanclient import LeanSession
from loadkit.platform.launcher import RunningPlatform
from loadkit.plugin.locust_adapter import request_bytes_sent
from loadkit.results.line_protocol import encode_records
from loadkit.results.timeseries import read_records

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


@pytest.mark.parametrize("client", [FastHttpSession, LeanSession], ids=["fast", "lean"])
def test_bytes_sent_are_what_the_server_received(client: type) -> None:
    received = [0]

    def serve(sock: object, _address: object) -> None:
        buffer = b""
        while True:
            chunk = sock.recv(65536)  # type: ignore[attr-defined]
            if not chunk:
                return
            received[0] += len(chunk)
            buffer += chunk
            while b"\r\n\r\n" in buffer:  # one answer per request head (+ its body)
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                if len(rest) < length:
                    break
                buffer = rest[length:]
                sock.sendall(ANSWER)  # type: ignore[attr-defined]

    server = StreamServer(("127.0.0.1", 0), serve)
    server.start()
    try:
        session = client(
            f"http://127.0.0.1:{server.server_port}", Environment().events.request, user=None
        )
        responses = [
            session.get("/health"),
            session.post("/api/calls", json={"phone_number": "+14155550100", "note": "héllo ✓"}),
            session.post("/upload", data=b"x" * 5000, headers={"X-API-Key": "k" * 20}),
        ]
        gevent.sleep(0.1)
    finally:
        server.stop()
    counted = [request_bytes_sent(r) for r in responses]
    assert all(n > 0 for n in counted)
    assert sum(counted) == received[0]
    assert counted[2] > 5000


@pytest.mark.slow
def test_bytes_in_the_verdict_time_series_and_influx_lines(
    fresh_platform: RunningPlatform, tmp_path: Path
) -> None:
    result = run_kit(
        # --skip-preflight: its own GET /health would be served but not counted by the kit.
        ["health", "-u", "2", "-t", "3s", "--no-baseline", "--skip-preflight"],
        kit_env(fresh_platform.url),
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    verdict = result.verdict()
    total = verdict["data"]["total"]
    health = verdict["data"]["requests"]["GET /health"]
    requests = verdict["totals"]["requests"]
    counters = fresh_platform.counters()
    served, served_bytes = (
        counters["requests"]["GET /health"],
        counters["response_bytes"]["GET /health"],
    )
    # The platform's own count of the bodies it sent; a request cut off at the end of the run
    # (at most one per user) is served but not counted by the kit.
    assert total["bytes_received"] == health["bytes_received"]
    assert requests <= served <= requests + 2
    longest = len(b'{"status":"ok","uptime_s":99999.999}')
    assert served_bytes - (served - requests) * longest <= total["bytes_received"] <= served_bytes
    # Every request of a user sends the same head: bytes sent are a whole multiple.
    assert total["bytes_sent"] % requests == 0 and 80 < total["bytes_sent"] / requests < 400
    assert total["sent_per_s"] == pytest.approx(
        verdict["totals"]["rps"] * total["bytes_sent"] / requests, rel=0.01
    )
    records = list(read_records(result.run_dir / "timeseries.jsonl"))
    rows = [r for r in records if r["kind"] == "requests" and r["name"] == "/health"]
    assert sum(r["bytes_received"] for r in rows) == total["bytes_received"]
    assert sum(r["bytes_sent"] for r in rows) == total["bytes_sent"]
    lines = encode_records(records)
    sent = sum(
        int(line.split("value=")[1].split("i")[0])
        for line in lines
        if line.startswith("data_sent,")
    )
    assert sent == total["bytes_sent"]
    assert "data: received" in result.output and "/s), sent" in result.output
    assert json.dumps(verdict)  # strict JSON
