"""The lean client against real servers on loopback: keep-alive, chunked replies, labelled
connection errors and timeouts, TLS with a self-signed certificate, and Locust's request events
and ``catch_response`` checked against the reference platform's own counters.

The small servers here are real sockets on 127.0.0.1 that misbehave on purpose (close early,
never answer, answer in chunks); the platform is the kit's embedded one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.server
import pytest
from conftest import TEST_API_KEY, kit_env, run_kit
from locust import FastHttpUser, constant, task
from locust.env import Environment
from locust.event import Events

from loadkit import endpoints
from loadkit.leanclient import (
    LeanConnectionError,
    LeanHttpUser,
    LeanSession,
    LeanStatusError,
    LeanTimeout,
)
from loadkit.platform.launcher import RunningPlatform, start_platform
from loadkit.workload.checks import expect_json
from loadkit.workload.datagen import DataFactory, Namespace, multipart_form

Handler = Callable[[socket.socket], None]


class Events_:
    """Every ``request`` event fired, as the keyword arguments it carried."""

    def __init__(self) -> None:
        self.events = Events()
        self.fired: list[dict[str, Any]] = []
        self.events.request.add_listener(lambda **kw: self.fired.append(kw))


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], tuple[str, list[int]]]]:
    """Start a loopback server running ``handler`` per connection; returns (URL, accepts)."""
    servers: list[gevent.server.StreamServer] = []

    def start(handler: Handler) -> tuple[str, list[int]]:
        accepted: list[int] = []

        def on_connection(sock: socket.socket, _address: Any) -> None:
            accepted.append(1)
            try:
                handler(sock)
            finally:
                sock.close()

        server = gevent.server.StreamServer(("127.0.0.1", 0), on_connection)
        server.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", accepted

    yield start
    for server in servers:
        server.stop(timeout=1)


def read_request(sock: socket.socket, buffer: bytearray) -> bool:
    """Read one request (head + Content-Length body) from ``sock``; False at end of file."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            return False
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(65536)
    buffer[:] = rest[length:]
    return True


def keep_alive_json(sock: socket.socket) -> None:
    """Answer every request on the connection with a small JSON body."""
    buffer = bytearray()
    while read_request(sock, buffer):
        body = b'{"status":"ok"}'
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )


def test_keep_alive_reuses_one_connection(serve: Any) -> None:
    url, accepted = serve(keep_alive_json)
    recorder = Events_()
    session = LeanSession(url, recorder.events.request)
    for _ in range(20):
        response = session.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    assert len(accepted) == 1
    assert [e["exception"] for e in recorder.fired] == [None] * 20


def test_a_connection_the_server_closed_is_replaced_not_failed(serve: Any) -> None:
    def one_answer_then_close(sock: socket.socket) -> None:
        buffer = bytearray()
        if read_request(sock, buffer):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # closes while the client keeps the connection for its next request

    url, accepted = serve(one_answer_then_close)
    session = LeanSession(url, Events().request)
    assert session.get("/a").content == b"ok"
    gevent.sleep(0.05)  # the close reaches the client's socket
    assert session.get("/b").content == b"ok"
    assert len(accepted) == 2


def test_chunked_reply_is_reassembled(serve: Any) -> None:
    def chunked(sock: socket.socket) -> None:
        buffer = bytearray()
        read_request(sock, buffer)
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"hello ", b"chunked ", b"world"):
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            gevent.sleep(0.01)  # separate reads on the client
        sock.sendall(b"0\r\n\r\n")
        keep_alive_json(sock)  # the connection stays usable after a chunked reply

    url, accepted = serve(chunked)
    session = LeanSession(url, Events().request)
    assert session.get("/").content == b"hello chunked world"
    assert session.get("/").json() == {"status": "ok"}
    assert len(accepted) == 1


def test_refused_connection_is_labelled_with_status_0(serve: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    recorder = Events_()
    response = LeanSession(f"http://127.0.0.1:{port}", recorder.events.request).get("/x")
    assert response.status_code == 0
    assert isinstance(response.error, LeanConnectionError)
    assert str(response.error) == f"connection refused (127.0.0.1:{port})"
    assert recorder.fired[0]["exception"] is response.error


def test_reply_cut_off_is_a_connection_error(serve: Any) -> None:
    def half_reply(sock: socket.socket) -> None:
        read_request(sock, bytearray())
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")

    url, _ = serve(half_reply)
    response = LeanSession(url, Events().request).get("/x")
    assert isinstance(response.error, LeanConnectionError)
    assert "closed before the reply ended" in str(response.error)
    assert response.status_code == 0


def test_silent_server_is_a_timeout(serve: Any) -> None:
    def silent(sock: socket.socket) -> None:
        read_request(sock, bytearray())
        gevent.sleep(2)

    url, _ = serve(silent)
    recorder = Events_()
    session = LeanSession(url, recorder.events.request, network_timeout=0.2)
    response = session.get("/slow")
    assert isinstance(response.error, LeanTimeout)
    assert str(response.error) == f"no reply from {url.removeprefix('http://')} within 0.2 s"
    assert 150 <= recorder.fired[0]["response_time"] < 1000


def test_connect_that_never_completes_is_a_connect_timeout() -> None:
    # A listening socket whose accept queue is full: Linux drops further SYNs, so a connect
    # hangs until its timeout (all on loopback).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    gevent.sleep(0.05)
    try:
        session = LeanSession(f"http://127.0.0.1:{port}", Events().request, connection_timeout=0.3)
        response = session.get("/")
        assert isinstance(response.error, LeanTimeout)
        assert str(response.error) == f"connect to 127.0.0.1:{port} timed out after 0.3 s"
    finally:
        for sock in (*fillers, listener):
            sock.close()


def test_status_outside_2xx_3xx_is_a_failure_unless_a_check_accepts_it(serve: Any) -> None:
    def not_found(sock: socket.socket) -> None:
        buffer = bytearray()
        while read_request(sock, buffer):
            sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}")

    url, _ = serve(not_found)
    recorder = Events_()
    session = LeanSession(url, recorder.events.request)
    assert isinstance(session.get("/a").error, LeanStatusError)
    with session.get("/b", catch_response=True) as response:
        expect_json(response, 404)
    assert str(recorder.fired[0]["exception"]) == "HTTP 404"
    assert recorder.fired[1]["exception"] is None


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found (scripts/test.sh installs it)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_url(certificate: tuple[Path, Path]) -> Iterator[tuple[str, list[int]]]:
    cert, key = certificate
    accepted: list[int] = []

    def on_connection(sock: socket.socket, _address: Any) -> None:
        accepted.append(1)
        with contextlib.suppress(OSError, ssl.SSLError):
            keep_alive_json(sock)

    import gevent.ssl

    context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = gevent.server.StreamServer(("127.0.0.1", 0), on_connection, ssl_context=context)
    server.start()
    yield f"https://127.0.0.1:{server.server_port}", accepted
    server.stop(timeout=1)


def test_tls_with_a_self_signed_certificate(
    tls_url: tuple[str, list[int]], certificate: tuple[Path, Path]
) -> None:
    url, accepted = tls_url
    insecure = LeanSession(url, Events().request, insecure=True)
    assert [insecure.get("/").json() for _ in range(3)] == [{"status": "ok"}] * 3
    assert len(accepted) == 1  # keep-alive over TLS too

    verifying = LeanSession(url, Events().request, insecure=False)
    refused = verifying.get("/")
    assert isinstance(refused.error, LeanConnectionError)
    assert "TLS error: CERTIFICATE_VERIFY_FAILED" in str(refused.error)

    import gevent.ssl

    trusting = gevent.ssl.create_default_context(cafile=str(certificate[0]))
    trusted = LeanSession(url, Events().request, insecure=False, ssl_context=trusting)
    assert trusted.get("/").json() == {"status": "ok"}


# -- in Locust, against the reference platform ---------------------------------------------------


@pytest.fixture(scope="module")
def platform() -> Iterator[RunningPlatform]:
    with start_platform(TEST_API_KEY) as running:
        yield running


class LeanPlatformUser(LeanHttpUser):
    """The kit's scenarios' three request shapes on the lean client."""

    wait_time = constant(0)
    default_headers = {"X-API-Key": TEST_API_KEY}  # noqa: RUF012
    network_timeout = 5.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        self.data = DataFactory(Namespace("leantest", 0, 0))

    @task
    def health(self) -> None:
        with self.client.get(endpoints.HEALTH, catch_response=True) as response:
            expect_json(response, 200, equals={"status": "ok"})

    @task
    def schedule(self) -> None:
        with self.client.post(
            endpoints.CALLS, json=self.data.schedule_call(), catch_response=True
        ) as response:
            expect_json(response, 201, required=("id",), equals={"status": "scheduled"})

    @task
    def wrong_expectation(self) -> None:
        with self.client.get(endpoints.HEALTH, name="health-as-404", catch_response=True) as r:
            expect_json(r, 404)  # a 200 where a 404 is expected: a failure with a reason


def test_locust_stats_match_the_platforms_own_count(platform: RunningPlatform) -> None:
    platform.reset_counters()
    environment = Environment(user_classes=[LeanPlatformUser], host=platform.url, stop_timeout=5)
    runner = environment.create_local_runner()  # stop_timeout: each user ends its task first
    runner.start(3, spawn_rate=100)
    gevent.sleep(1.0)
    runner.quit()
    counts = platform.counters()["requests"]
    stats = environment.stats
    health = stats.get(endpoints.HEALTH, "GET")
    wrong = stats.get("health-as-404", "GET")
    calls = stats.get(endpoints.CALLS, "POST")
    # Every request the platform received is one row count in Locust's stats, and vice versa.
    assert health.num_requests + wrong.num_requests == counts[f"GET {endpoints.HEALTH}"]
    assert calls.num_requests == counts[f"POST {endpoints.CALLS}"] > 0
    assert health.num_failures == calls.num_failures == 0
    assert wrong.num_failures == wrong.num_requests > 0
    reasons = [str(e.error) for e in stats.errors.values() if e.name == "health-as-404"]
    assert reasons and all("HTTP 200 (expected 404)" in reason for reason in reasons)


def test_multipart_upload_is_accepted(platform: RunningPlatform) -> None:
    data = DataFactory(Namespace("leantest", 0, 1))
    body, content_type = multipart_form(
        {"campaign_id": data.campaign_id()}, {"file": ("c.csv", data.contacts_csv(20), "text/csv")}
    )
    session = LeanSession(platform.url, Events().request, headers={"X-API-Key": TEST_API_KEY})
    response = session.post(
        endpoints.CONTACTS_IMPORT, data=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 202, response.text
    assert "job_id" in response.json()


def test_request_events_carry_what_fasthttpuser_sends(platform: RunningPlatform) -> None:
    fired: dict[str, dict[str, Any]] = {}

    class Fast(FastHttpUser):
        host = platform.url

    for name, make in (
        ("fast", lambda env: Fast(env).client),
        ("lean", lambda env: LeanSession(platform.url, env.events.request)),
    ):
        environment = Environment(events=Events())
        environment.events.request.add_listener(lambda n=name, **kw: fired.setdefault(n, kw))
        make(environment).get(endpoints.HEALTH)
    assert set(fired["lean"]) == set(fired["fast"])
    assert fired["lean"]["name"] == fired["fast"]["name"] == endpoints.HEALTH
    assert fired["lean"]["url"] == fired["fast"]["url"]
    lean = fired["lean"]
    assert lean["response_length"] == len(lean["response"].content) > 0


# -- wired under PlatformUser (--http-client lean) ---------------------------------------------


def _platform_route(request: str) -> str:
    """The verdict's request name as the platform counts it (``[id]`` is a concrete id there)."""
    return request.replace("[id]", "{id}").replace("[job_id]", "{job_id}")


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["full_system", "bulk_import"])
def test_every_scenario_request_reaches_the_platform_through_the_lean_client(
    fresh_platform: RunningPlatform, tmp_path: Path, scenario: str
) -> None:
    """``--http-client lean`` runs the real locustfiles (JSON, query strings, retries by id,
    multipart uploads, import polling) with the verdict's counts equal to the platform's own,
    every check passing, and the client named in the run's history record."""
    result = run_kit(
        [scenario, "-u", "3", "-t", "4s", "--no-baseline", "--skip-preflight",
         "--http-client", "lean"],
        kit_env(fresh_platform.url, LOADKIT_QUEUE_SOURCE="off"),
        tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    verdict = result.verdict()
    served: dict[str, int] = {
        _platform_route(name): count
        for name, count in fresh_platform.counters()["requests"].items()
    }
    measured = {
        _platform_route(row["request"]): row["count"]
        for row in verdict["requests"]
        if row["request"] != "total" and not row["request"].startswith("JOB ")
    }
    assert measured and measured == served, (measured, served)
    assert verdict["totals"]["failures"] == 0
    assert verdict["totals"]["requests"] == sum(served.values()) > 10
    assert verdict["data"]["total"]["bytes_sent"] > 0
    history = sqlite3.connect(tmp_path / "history.sqlite")
    (record,) = [json.loads(row[0]) for row in history.execute("SELECT record FROM runs")]
    assert record["kit"]["http_client"] == "lean"
    assert record["data"] == verdict["data"]
