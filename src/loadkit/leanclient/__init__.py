"""A lean HTTP/1.1 client for Locust users: keep-alive on gevent sockets, llhttp.

Why: one load-generator core drives as many requests as its client's CPU per request allows.
Locust's ``FastHttpUser`` (geventhttpclient) spends most of its ~150 µs per request in Python
layers a load test does not need (a urllib3-style user agent, a cookie jar, redirects, a
``select()`` per request to check the pooled socket). This client does only what the kit's
scenarios do -- JSON bodies, multipart uploads as bytes, TLS, keep-alive -- with requests
encoded in one ``bytes`` join and responses parsed by llhttp (``httptools``), and it fires
Locust's ``request`` event exactly as ``FastHttpUser`` does, so stats, the web UI and
distributed runs work unchanged.

* :mod:`loadkit.leanclient.client` -- ``LeanSession`` (``get``/``post``/... with
  ``catch_response``), ``LeanResponse``, the connection pool, and the errors it labels;
* :mod:`loadkit.leanclient.user` -- ``LeanHttpUser``, the Locust user class.

``PlatformUser`` runs on it with ``--http-client lean`` (``LOADKIT_HTTP_CLIENT=lean``); Locust's
``FastHttpUser`` stays the default. Measured in ``docs/performance.md``.
"""

from loadkit.leanclient.client import (
    LeanConnectionError,
    LeanResponse,
    LeanSession,
    LeanStatusError,
    LeanTimeout,
)
from loadkit.leanclient.user import LeanHttpUser

__all__ = [
    "LeanConnectionError",
    "LeanHttpUser",
    "LeanResponse",
    "LeanSession",
    "LeanStatusError",
    "LeanTimeout",
]
