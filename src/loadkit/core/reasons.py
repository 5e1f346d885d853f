"""One short reason for a failed network call, fit for a one-line message.

``requests`` and ``redis`` wrap the operating system's error in layers of text
(``HTTPConnectionPool(host=..., port=...): Max retries exceeded ... [Errno 111] Connection
refused``). A person reading a preflight line or a sampler warning needs the last part only, and
the layers can quote URLs with credentials in them, so the reason is taken from the innermost
``OSError`` when there is one.
"""

from __future__ import annotations

import socket

import requests

MAX_REASON_CHARS = 160


def short_reason(exc: BaseException) -> str:
    """``Connection refused``, ``timed out``, ``Name or service not known``, or the error's text."""
    if _is_timeout(exc):
        return "timed out"
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return str(cause.strerror)
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.args and isinstance(cause.args[-1], str):
            return _last_clause(cause.args[-1])
    text = str(exc).strip() or type(exc).__name__
    return _last_clause(text)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, innermost last; also the errors urllib3 keeps in ``reason``."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend([current.__context__, current.__cause__])
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException):
                pending.append(arg)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return seen[::-1]


def _is_timeout(exc: BaseException) -> bool:
    timeouts = (requests.Timeout, socket.timeout, TimeoutError)
    if isinstance(exc, timeouts):
        return True
    return type(exc).__name__ == "TimeoutError"  # redis.exceptions.TimeoutError


def _last_clause(text: str) -> str:
    """The part after the last ``]`` or ``:`` of a wrapped message, trimmed."""
    for marker in ("] ", ": "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    text = text.strip().strip("'\")(").rstrip(".")
    return text[:MAX_REASON_CHARS] or "error"
