"""API-key check for ``/api/*``: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

The comparison is constant-time (``hmac.compare_digest``) on bytes, so it neither leaks the key
through timing nor raises on non-ASCII input. Nothing here logs or echoes the presented or the
expected key: error details are fixed strings.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from loadkit.platform.wsgi_io import HttpError


def presented_key(environ: Mapping[str, Any]) -> bytes | None:
    """The key the client sent, as raw header bytes (``X-API-Key`` wins over a Bearer token)."""
    value = environ.get("HTTP_X_API_KEY", "").strip()
    if not value:
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
        value = token.strip() if scheme.lower() == "bearer" else ""
    # WSGI decodes headers as Latin-1: encoding back gives the bytes that were sent.
    return value.encode("latin-1", "replace") if value else None


def check_api_key(environ: Mapping[str, Any], expected_key: bytes) -> HttpError | None:
    """``None`` when the request carries the key, else the 401 or 403 to answer."""
    key = presented_key(environ)
    if key is None:
        return HttpError(401, "missing API key", headers=(("WWW-Authenticate", "Bearer"),))
    if not hmac.compare_digest(key, expected_key):
        return HttpError(403, "invalid API key")
    return None
