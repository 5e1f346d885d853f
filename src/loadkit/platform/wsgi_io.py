"""Requests and JSON responses over raw WSGI, kept small because it runs on every request.

Handlers raise :class:`HttpError` for every non-2xx answer, so error bodies have one shape
(``{"detail": ...}``, plus ``errors`` for a 422) and handlers read as the happy path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from loadkit.platform.validation import FieldError

StartResponse = Callable[..., Any]
Headers = Sequence[tuple[str, str]]

_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


class HttpError(Exception):
    """A non-2xx answer. ``detail`` must never contain a secret: it is sent to the client."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: Headers = (),
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.payload: dict[str, Any] = {"detail": detail, **(extra or {})}
        self.headers = headers


def validation_failed(errors: Iterable[FieldError]) -> HttpError:
    """The 422 listing every bad field."""
    return HttpError(
        422, "validation failed", extra={"errors": [error.to_json() for error in errors]}
    )


class Request:
    """The parts of a WSGI environ the handlers use, plus path parameters from the router."""

    __slots__ = ("environ", "params")

    def __init__(self, environ: dict[str, Any], params: dict[str, str]) -> None:
        self.environ = environ
        self.params = params

    @property
    def content_type(self) -> str | None:
        return self.environ.get("CONTENT_TYPE")

    def query(self) -> dict[str, str]:
        """Query parameters, the last value winning when one is repeated."""
        parsed = parse_qs(self.environ.get("QUERY_STRING", ""), keep_blank_values=True)
        return {name: values[-1] for name, values in parsed.items()}

    def read_body(self, limit_bytes: int) -> bytes:
        """The whole body, or 413 when it is larger than ``limit_bytes``."""
        length_text = self.environ.get("CONTENT_LENGTH")
        stream = self.environ["wsgi.input"]
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                raise HttpError(400, "invalid Content-Length") from None
            if length > limit_bytes:
                raise HttpError(413, f"request body is larger than {limit_bytes} bytes")
            body: bytes = stream.read(length) if length > 0 else b""
            return body
        body = stream.read(limit_bytes + 1)  # chunked: no length to check up front
        if len(body) > limit_bytes:
            raise HttpError(413, f"request body is larger than {limit_bytes} bytes")
        return body

    def read_json(self, limit_bytes: int) -> Any:
        """The body parsed as JSON (NaN and Infinity refused), or 400."""
        body = self.read_body(limit_bytes)
        if not body.strip():
            raise HttpError(400, "request body is empty: expected JSON")
        try:
            return json.loads(body, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 included
            raise HttpError(400, f"request body is not valid JSON: {_short(exc)}") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def respond(
    start_response: StartResponse, status: int, payload: Any, headers: Headers = ()
) -> list[bytes]:
    """Send ``payload`` as JSON with an exact Content-Length (keeps the connection alive)."""
    body = dumps(payload)
    start_response(
        _STATUS_LINES.get(status, f"{status} Unknown"),
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]
