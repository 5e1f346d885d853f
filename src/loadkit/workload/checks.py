"""Per-response checks: a reply only counts as a success when its status *and* body are right.

These run inside ``catch_response`` blocks. They mark the response themselves (``success()`` or
``failure(reason)``) so that a 200 with a wrong body is a failure and an expected non-2xx status
is a success. Reasons are short and never quote request headers (the API key lives there).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Protocol

_BODY_EXCERPT_CHARS = 120


class NoResponseError(Exception):
    """The target did not answer at all: a timeout, a refused or reset connection.

    Kept apart from HTTP errors so reports say what happened ("timed out", "connection
    refused") and so the run can end when the target stops answering altogether
    (``LOADKIT_ABORT_WHEN_UNREACHABLE_S``): an HTTP 500 is an answer, this is not.
    """

    no_response = True

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


def no_response(error: BaseException | None, expected: str) -> NoResponseError:
    """A one-line failure for a request that got no answer, naming the kind of failure."""
    timed_out = _is_timeout(error)
    if timed_out:
        what = "timed out (no response)"
    elif isinstance(error, ConnectionRefusedError):
        what = "no response (connection refused)"
    elif isinstance(error, ConnectionResetError):
        what = "no response (connection reset)"
    elif error is not None:
        what = f"no response ({type(error).__name__}: {str(error)[:80]})"
    else:
        what = "no response (connection failed)"
    return NoResponseError(f"{what}, expected HTTP {expected}", timed_out=timed_out)


def _is_timeout(error: BaseException | None) -> bool:
    if error is None:
        return False
    if isinstance(error, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return True
    import gevent

    return isinstance(error, gevent.Timeout) or "timed out" in str(error).lower()


class CheckedResponse(Protocol):
    """What Locust's ``ResponseContextManager`` (both HTTP clients) offers to a check."""

    status_code: int
    text: str | None

    def success(self) -> None: ...

    def failure(self, exc: Any) -> None: ...


def expect_json(
    response: CheckedResponse,
    status: int | Collection[int],
    *,
    required: Collection[str] = (),
    equals: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Accept the response if its status is expected and its JSON object has the given fields.

    Returns the parsed body on success and ``None`` (response marked failed) otherwise. It runs
    once per request, so the passing path does no work it does not need (no tuples, no lists);
    the failing paths build their reasons.
    """
    code = response.status_code
    if code != status if isinstance(status, int) else code not in status:
        allowed = (status,) if isinstance(status, int) else tuple(status)
        response.failure(_status_reason(response, allowed))
        return None
    try:
        body = parse_json(_json_source(response))
    except ValueError:
        response.failure(f"HTTP {code}: body is not JSON: {_excerpt(response)}")
        return None
    if not isinstance(body, dict):
        response.failure(f"HTTP {code}: expected a JSON object, got {_excerpt(response)}")
        return None
    for name in required:
        if name not in body:
            missing = [name for name in required if name not in body]
            response.failure(f"HTTP {code}: missing field(s) {', '.join(missing)}")
            return None
    if equals:
        for name, expected in equals.items():
            if body.get(name) != expected:
                response.failure(f"HTTP {code}: {name}={body.get(name)!r}, expected {expected!r}")
                return None
    response.success()
    return body


_scan_json_value = json.JSONDecoder().scan_once


def parse_json(source: bytes | bytearray | str) -> Any:
    """``json.loads``, at a quarter of its cost for a well-formed UTF-8 body.

    ``json.loads`` on bytes first guesses the encoding in Python (UTF-8, -16 or -32 from the
    first bytes) and then goes through two layers of Python before the C scanner; for the
    platform's short replies that was two thirds of the check (2.1 µs of 3 µs per response).
    Here a UTF-8 body goes straight to the C scanner; anything it does not take at once (leading
    whitespace, a byte-order mark, another encoding, bad JSON, text after the value) goes
    through ``json.loads``, which gives the same result or the same error it always did.
    """
    try:
        text = source if isinstance(source, str) else source.decode()
        value, end = _scan_json_value(text, 0)
    except (StopIteration, ValueError):
        return json.loads(source)
    if end != len(text) and text[end:].strip(" \t\n\r"):
        return json.loads(source)  # raises: extra data after the value
    return value


def _json_source(response: CheckedResponse) -> bytes | str:
    """The body as bytes when the response has them (``content``), else its text.

    ``json.loads`` reads UTF-8 bytes itself (JSON is UTF-8, RFC 8259); going through ``text``
    first made the clients look up the charset in the headers on every response, which cost
    about as much as parsing the JSON (callgrind: ``expect_json`` 37k instructions, 38% of them
    in the ``text`` property).
    """
    content = getattr(response, "content", None)
    if isinstance(content, bytes | bytearray):
        return content
    return response.text or ""


def _status_reason(response: CheckedResponse, allowed: tuple[int, ...]) -> str | NoResponseError:
    expected = "/".join(str(code) for code in allowed)
    if response.status_code == 0:
        return no_response(getattr(response, "error", None), expected)
    return f"HTTP {response.status_code} (expected {expected}): {_excerpt(response)}"


def _excerpt(response: CheckedResponse) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    if len(text) > _BODY_EXCERPT_CHARS:
        text = text[:_BODY_EXCERPT_CHARS] + "…"
    return text or "<empty body>"
