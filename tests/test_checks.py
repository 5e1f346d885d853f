"""Response checks decide success from status *and* body."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from loadkit.workload.checks import NoResponseError, expect_json, parse_json


@dataclass
class Reply:
    """The part of Locust's ResponseContextManager a check uses."""

    status_code: int
    text: str | None
    outcome: str | None = None

    def success(self) -> None:
        self.outcome = "success"

    def failure(self, exc: object) -> None:
        self.outcome = f"failure: {exc}"


def test_right_status_and_body_is_a_success() -> None:
    reply = Reply(201, '{"id": "c1", "status": "scheduled"}')
    body = expect_json(reply, 201, required=("id",), equals={"status": "scheduled"})
    assert body == {"id": "c1", "status": "scheduled"}
    assert reply.outcome == "success"


def test_expected_non_2xx_is_a_success() -> None:
    reply = Reply(409, '{"detail": "call already completed"}')
    assert expect_json(reply, (202, 409)) is not None
    assert reply.outcome == "success"


def test_200_with_wrong_body_is_a_failure() -> None:
    cases = [
        (Reply(200, "<html>oops</html>"), "body is not JSON: <html>oops</html>"),
        (Reply(200, "[1, 2]"), "expected a JSON object"),
        (Reply(200, '{"status": "down"}'), "status='down', expected 'ok'"),
        (Reply(200, "{}"), "missing field(s) status"),
    ]
    for reply, reason in cases:
        assert expect_json(reply, 200, required=("status",), equals={"status": "ok"}) is None
        assert reply.outcome is not None and reason in reply.outcome


def test_unexpected_status_and_connection_error() -> None:
    reply = Reply(503, '{"detail": "injected fault"}')
    expect_json(reply, 200)
    assert reply.outcome == 'failure: HTTP 503 (expected 200): {"detail": "injected fault"}'
    reply = Reply(0, None)
    expect_json(reply, 200)
    assert reply.outcome == "failure: no response (connection failed), expected HTTP 200"
    long_reply = Reply(500, "x" * 500)
    expect_json(long_reply, 200)
    assert long_reply.outcome is not None and len(long_reply.outcome) < 200


def test_no_response_is_labelled_by_what_happened() -> None:

    import gevent

    cases = [
        (TimeoutError("timed out"), "timed out (no response), expected HTTP 200", True),
        (TimeoutError("read timed out"), "timed out (no response), expected HTTP 200", True),
        (gevent.Timeout(5), "timed out (no response), expected HTTP 200", True),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "no response (connection refused)",
            False,
        ),
        (ConnectionResetError(104, "reset by peer"), "no response (connection reset)", False),
    ]
    for error, text, timed_out in cases:
        reply = Reply(0, None)
        reply.error = error  # type: ignore[attr-defined]  (FastHttpUser's ErrorResponse.error)
        captured: list[object] = []
        reply.failure = captured.append  # type: ignore[method-assign]
        expect_json(reply, 200)
        (exc,) = captured
        assert isinstance(exc, NoResponseError) and str(exc).startswith(text), exc
        assert exc.timed_out is timed_out and exc.no_response


PARSE_CASES = [
    b'{"status":"ok","uptime_s":1.0}',
    b'  {"status": "ok"}\r\n',  # whitespace before and after: the json.loads path
    b'{"a": [1, 2.5, null, true, "\\u00e9"]}\n',
    '{"caf\u00e9": "na\u00efve"}'.encode(),
    '\ufeff{"bom": 1}'.encode(),  # a UTF-8 byte-order mark
    '{"wide": "utf-16"}'.encode("utf-16"),  # json.loads detects UTF-16 and UTF-32
    b"[1, 2]",
    b'"just a string"',
    b"42",
    '{"text": "given as str"}',
]
PARSE_ERRORS = [
    b"",
    b"<html>oops</html>",
    b'{"status": "ok"} trailing',
    b'{"status": "ok"}{"again": 1}',
    b'{"status": "ok"}\x0b',  # \v is whitespace to Python, not to JSON
    b'{"status": "ok"',
    b"\xff\xfe\xfd",
    b"NaNa",
]


@pytest.mark.parametrize("source", PARSE_CASES)
def test_parse_json_agrees_with_json_loads(source: bytes | str) -> None:
    assert parse_json(source) == json.loads(source)


@pytest.mark.parametrize("source", PARSE_ERRORS)
def test_parse_json_refuses_what_json_loads_refuses(source: bytes) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(source)
    with pytest.raises(ValueError) as got:
        parse_json(source)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)


def test_status_given_as_a_set_and_a_passing_body_with_no_criteria() -> None:
    reply = Reply(204, "{}")
    assert expect_json(reply, {200, 204}) == {}
    assert reply.outcome == "success"
    reply = Reply(200, '{"id": "c1"}')
    assert expect_json(reply, 201, required=("id",)) is None
    assert reply.outcome == 'failure: HTTP 200 (expected 201): {"id": "c1"}'
