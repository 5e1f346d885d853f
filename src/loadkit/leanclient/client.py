"""The lean client: keep-alive HTTP/1.1 on gevent sockets, responses parsed by llhttp (httptools).

What it does, and what it leaves out on purpose (the kit's scenarios need none of it):

* requests: any method but HEAD; a body from ``json=`` (compact JSON), ``data=`` (bytes, text,
  or a mapping sent as a form); per-request ``headers=`` over the session's defaults; absolute
  URLs get a pool of their own. Headers that never change (``Host``, the defaults) are encoded
  once per session and every request is one ``bytes`` join and one ``sendall``. No redirects,
  no cookies, no proxies, no ``Accept-Encoding`` (a compressed reply is still decoded).
* responses: status, headers (a dict with lower-case names), the whole body (chunked or not);
  ``text``, ``json()``, and Locust's ``catch_response`` protocol (``success()``, ``failure()``,
  the ``with`` block reporting the request when it ends).
* connections: per origin a LIFO pool of at most ``concurrency`` sockets, each with its own
  llhttp parser reused across responses; ``TCP_NODELAY``; a pooled socket is checked with one
  non-blocking ``MSG_PEEK`` before reuse (a stale one is replaced). TLS through the context the
  session is given (certificates are not verified when ``insecure``).
* errors, labelled for Locust's failure table: ``LeanTimeout`` (connect or response took
  longer than the timeouts), ``LeanConnectionError`` (refused, reset, closed mid-response,
  TLS, unparsable reply) -- both with ``status_code`` 0 -- and ``LeanStatusError`` for a status
  outside 2xx/3xx, as ``FastHttpUser`` does.

Every request fires Locust's ``request`` event with the keys ``FastHttpUser`` uses
(``request_type``, ``name``, ``response_time`` in ms, ``response_length``, ``exception``,
``context``, ``response``, ``url``, ``start_time``), timed from before the send to after the
body, so stats, the web UI and distributed runs cannot tell the clients apart.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import socket
import ssl
import time
import zlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import gevent.socket
import gevent.ssl
import httptools
from gevent.lock import BoundedSemaphore
from locust.exception import CatchResponseError, LocustError, ResponseError

#: Statuses that are not failures by themselves (FastHttpUser's list).
OK_STATUSES: Final = frozenset(
    (200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 301, 302, 303, 304, 307, 308)
)
USER_AGENT: Final = "loadkit-lean/0.1"
_RECV_BYTES: Final = 65536
_METHODS_WITH_BODY: Final = frozenset(("POST", "PUT", "PATCH"))
#: Request heads cached per (method, URL); cleared when full (query strings vary per request).
_HEAD_CACHE_SIZE: Final = 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class LeanConnectionError(ConnectionError):
    """The request got no complete reply: refused, reset, closed mid-response, TLS, garbage."""


class LeanTimeout(TimeoutError):
    """Connecting or waiting for the reply took longer than the session's timeout."""


class LeanStatusError(Exception):
    """The reply's status is not 2xx/3xx (a failure unless a ``catch_response`` check says
    otherwise)."""


class _ClosedEarly(ConnectionError):
    """The server closed the connection before the reply was complete."""


def _reason(exc: BaseException) -> str:
    """A short, stable label for a socket error (the same text for the same kind of failure)."""
    if isinstance(exc, _ClosedEarly):
        return "closed before the reply ended"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "connection closed by peer"
    if isinstance(exc, socket.gaierror):
        return "host name not resolved"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or type(exc).__name__}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


class _Origin:
    """Scheme, host and port of a base URL, and the pool of connections to it."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        *,
        size: int,
        connect_timeout_s: float,
        network_timeout_s: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.label = f"{host}:{port}"
        self.connect_timeout_s = connect_timeout_s
        self.network_timeout_s = network_timeout_s
        self.ssl_context = ssl_context
        self.idle: list[_Connection] = []
        self.slots = BoundedSemaphore(size)
        self._addresses: list[tuple[int, Any]] | None = None
        default_port = _DEFAULT_PORTS.get(scheme)
        host_text = f"[{host}]" if ":" in host else host
        self.host_header = host_text if port == default_port else f"{host_text}:{port}"

    def get(self) -> tuple[_Connection, bool]:
        """A connection for one exchange and whether it was reused; blocks at ``size``."""
        self.slots.acquire()
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.idle_and_open():
                return connection, True
            connection.close()
        try:
            return self.connect(), False
        except BaseException:
            self.slots.release()
            raise

    def put(self, connection: _Connection) -> None:
        self.idle.append(connection)
        self.slots.release()

    def discard(self, connection: _Connection) -> None:
        connection.close()
        self.slots.release()

    def connect(self) -> _Connection:
        """A new connection (TLS handshake included) within the connect timeout."""
        if self._addresses is None:
            try:
                infos = gevent.socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)
            except OSError as exc:
                raise LeanConnectionError(f"{_reason(exc)} ({self.label})") from None
            self._addresses = [(family, address) for family, _, _, _, address in infos]
        last: BaseException | None = None
        for family, address in self._addresses:
            sock = gevent.socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.connect_timeout_s)
                sock.connect(address)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.ssl_context is not None:
                    sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
                sock.settimeout(self.network_timeout_s)
                return _Connection(sock)
            except TimeoutError:
                sock.close()
                raise LeanTimeout(
                    f"connect to {self.label} timed out after {self.connect_timeout_s:g} s"
                ) from None
            except OSError as exc:
                sock.close()
                last = exc
        assert last is not None
        raise LeanConnectionError(f"{_reason(last)} ({self.label})") from None


class _Connection:
    """One socket and its llhttp parser; the parser's callbacks fill in the current reply."""

    __slots__ = (
        "body",
        "complete",
        "got_bytes",
        "headers",
        "headers_done",
        "keep_alive",
        "parser",
        "raw",
        "sock",
    )

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        # The OS socket under gevent's wrapper: a non-blocking peek needs no event loop.
        self.raw = getattr(sock, "_sock", None) if not isinstance(sock, ssl.SSLSocket) else None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.complete = False
        self.headers_done = False
        self.keep_alive = False
        self.got_bytes = False

    # -- llhttp callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.headers = {}
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # Read here: llhttp resets its flags once the message is complete.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.complete = True

    # -- use -------------------------------------------------------------------------------------

    def idle_and_open(self) -> bool:
        """Whether a pooled connection can carry a request: nothing to read, not closed."""
        raw = self.raw
        if raw is None:  # TLS: an idle socket may hold a close_notify; let the request tell
            return True
        try:
            raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # end of file, or bytes nobody asked for: not reusable

    def exchange(self, request: bytes) -> None:
        """Send ``request`` and read one whole reply (raises ``OSError``, ``HttpParserError``)."""
        self.complete = False
        self.headers_done = False
        self.got_bytes = False
        sock, parser = self.sock, self.parser
        sock.sendall(request)
        while not self.complete:
            data = sock.recv(_RECV_BYTES)
            if not data:
                if self._ends_at_close():
                    self.complete = True
                    break
                raise _ClosedEarly()
            self.got_bytes = True
            parser.feed_data(data)

    def _ends_at_close(self) -> bool:
        """A reply without length or chunking ends when the server closes (HTTP/1.0 style)."""
        headers = self.headers
        return (
            self.headers_done
            and "content-length" not in headers
            and "transfer-encoding" not in headers
        )

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self._ends_at_close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class LeanResponse:
    """A reply (or the failure to get one), and Locust's ``catch_response`` protocol."""

    __slots__ = (
        "_entered",
        "_event",
        "_manual_result",
        "content",
        "encoding",
        "error",
        "headers",
        "request_meta",
        "sent_bytes",
        "status_code",
        "url",
    )

    def __init__(self, url: str) -> None:
        self.url = url
        self.status_code = 0
        self.headers: dict[str, str] = {}
        self.content: bytes | None = None
        self.error: BaseException | None = None
        self.encoding: str | None = None
        self.request_meta: dict[str, Any] = {}
        #: Bytes of the request as encoded for the wire (line, headers, body): the kit's
        #: "data transferred" counts them (``locust_adapter.request_bytes_sent``).
        self.sent_bytes = 0
        self._event: Any = None
        self._entered = False
        self._manual_result: bool | BaseException | None = None

    @property
    def text(self) -> str | None:
        """The body decoded by its charset (UTF-8 for JSON, ISO-8859-1 for other text)."""
        if self.content is None:
            return None
        if self.encoding is None:
            self.encoding = _charset(self.headers.get("content-type", ""))
        return str(self.content, self.encoding, errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content or b"")

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise self.error

    # -- catch_response --------------------------------------------------------------------------

    def __enter__(self) -> LeanResponse:
        if self._event is None:
            raise LocustError("a with-block needs catch_response=True")
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        meta = self.request_meta
        if self._manual_result is not None:
            meta["exception"] = None if self._manual_result is True else self._manual_result
            self._event.fire(**meta)
            return exc is None
        if exc is not None:
            if isinstance(exc, ResponseError):
                meta["exception"] = exc
                self._event.fire(**meta)
                return True
            return False
        meta["exception"] = self.error
        self._event.fire(**meta)
        return True

    def success(self) -> None:
        if not self._entered:
            raise LocustError("success() outside the with-block of a catch_response request")
        self._manual_result = True

    def failure(self, exc: Any) -> None:
        if not self._entered:
            raise LocustError("failure() outside the with-block of a catch_response request")
        self._manual_result = exc if isinstance(exc, BaseException) else CatchResponseError(exc)


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("'\"")
    if content_type.startswith("text/"):
        return "ISO-8859-1"
    return "utf-8"


def _decoded(content: bytes, encoding: str | None) -> bytes:
    """The body with its ``Content-Encoding`` undone (we never ask for one, but may get it)."""
    if not encoding or encoding == "identity":
        return content
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(content, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(content)
        except zlib.error:
            return zlib.decompress(content, -zlib.MAX_WBITS)
    raise LeanConnectionError(f"unsupported Content-Encoding {encoding!r}")


def _header_lines(headers: Mapping[str, str]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())


class LeanSession:
    """Requests against ``base_url`` (and any absolute URL), reported to Locust's ``request``
    event. One per user, like ``FastHttpSession``; not shared between greenlets' users."""

    def __init__(
        self,
        base_url: str,
        request_event: Any,
        user: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        connection_timeout: float = 60.0,
        network_timeout: float = 60.0,
        concurrency: int = 10,
        insecure: bool = True,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context``, if given, must be gevent's (``gevent.ssl.create_default_context()``);
        without it, ``https`` URLs get one that verifies certificates unless ``insecure``."""
        self.request_event = request_event
        self.user = user
        self.connection_timeout = connection_timeout
        self.network_timeout = network_timeout
        self.concurrency = concurrency
        self.insecure = insecure
        self._ssl_context = ssl_context
        self.default_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._default_names = {name.lower() for name in self.default_headers}
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._heads: dict[tuple[str, str], tuple[_Origin, bytes, str]] = {}
        split = urlsplit(base_url)
        if split.scheme not in _DEFAULT_PORTS or not split.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port][/path], got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._base_path = split.path.rstrip("/")
        self._base = self._origin(split.scheme, split.hostname, split.port)

    # -- Locust-style verbs ----------------------------------------------------------------------

    def get(self, url: str, **kwargs: Any) -> LeanResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> LeanResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> LeanResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> LeanResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> LeanResponse:
        return self.request("DELETE", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> LeanResponse:
        return self.request("OPTIONS", url, **kwargs)

    def request(
        self,
        method: str,
        url: str,
        name: str | None = None,
        data: bytes | str | Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        catch_response: bool = False,
        context: Mapping[str, Any] | None = None,
    ) -> LeanResponse:
        """Send one request and report it (at once, or when the ``with`` block ends)."""
        origin, head, full_url = self._head(method, url)
        body, extra = self._body(data, json, headers)
        if body is not None or method in _METHODS_WITH_BODY:
            extra += b"Content-Length: %d\r\n" % (len(body) if body is not None else 0)
        request = b"".join((head, extra, b"\r\n", body or b""))
        response = LeanResponse(full_url)
        start_time = time.time()
        started = time.perf_counter()
        try:
            self._exchange(origin, request, response)
            response.sent_bytes = len(request)
        except (LeanConnectionError, LeanTimeout) as exc:
            response.error = exc
        response_time_ms = (time.perf_counter() - started) * 1000
        user_context = self.user.context() if self.user is not None else {}
        meta = {
            "request_type": method,
            "name": name or url,
            "response_time": response_time_ms,
            "response_length": len(response.content) if response.content else 0,
            "exception": response.error,
            "context": {**user_context, **context} if context else user_context,
            "response": response,
            "url": full_url,
            "start_time": start_time,
        }
        if catch_response:
            response.request_meta = meta
            response._event = self.request_event
            return response
        self.request_event.fire(**meta)
        return response

    # -- internals -------------------------------------------------------------------------------

    def _exchange(self, origin: _Origin, request: bytes, response: LeanResponse) -> None:
        """One request/reply on a pooled connection; one retry on a fresh connection when a
        reused one turns out to be closed before any byte of the reply (never sent twice to a
        server that answered)."""
        for attempt in (1, 2):
            connection, reused = origin.get()
            try:
                connection.exchange(request)
            except TimeoutError:
                origin.discard(connection)
                raise LeanTimeout(
                    f"no reply from {origin.label} within {origin.network_timeout_s:g} s"
                ) from None
            except (OSError, httptools.HttpParserError) as exc:
                origin.discard(connection)
                if reused and not connection.got_bytes and attempt == 1:
                    continue
                if isinstance(exc, httptools.HttpParserError):
                    raise LeanConnectionError(f"unparsable reply from {origin.label}") from None
                raise LeanConnectionError(f"{_reason(exc)} ({origin.label})") from None
            except BaseException:  # killed mid-exchange (the test stopped): the slot is freed
                origin.discard(connection)
                raise
            if connection.reusable():
                origin.put(connection)
            else:
                origin.discard(connection)
            break
        status = connection.parser.get_status_code()
        response.status_code = status
        response.headers = connection.headers
        content = b"".join(connection.body)
        response.content = _decoded(content, connection.headers.get("content-encoding"))
        if status not in OK_STATUSES:
            response.error = LeanStatusError(f"HTTP {status}")

    def _head(self, method: str, url: str) -> tuple[_Origin, bytes, str]:
        """The request line and fixed headers of ``method url``, encoded (cached)."""
        key = (method, url)
        cached = self._heads.get(key)
        if cached is not None:
            return cached
        if method == "HEAD":
            raise ValueError("the lean client does not send HEAD requests")
        if url.startswith(("http://", "https://")):
            split = urlsplit(url)
            if not split.hostname:
                raise ValueError(f"no host in URL {url!r}")
            origin = self._origin(split.scheme, split.hostname, split.port)
            target = (split.path or "/") + (f"?{split.query}" if split.query else "")
            full_url = url
        else:
            origin = self._base
            target = self._base_path + (url if url.startswith("/") else f"/{url}")
            full_url = self.base_url + (url if url.startswith("/") else f"/{url}")
        if not target.isascii():
            target = quote(target, safe="/?&=%:+,;@!$'()*~[]#")
        head = f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n".encode(
            "latin-1"
        ) + _header_lines(self.default_headers)
        if len(self._heads) >= _HEAD_CACHE_SIZE:
            self._heads.clear()
        self._heads[key] = (origin, head, full_url)
        return origin, head, full_url

    def _body(
        self,
        data: bytes | str | Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> tuple[bytes | None, bytes]:
        """The body and the header lines this request adds to the session's defaults."""
        extra: dict[str, str] = {}
        body: bytes | None
        if data is None and json is not None:
            body = jsonlib.dumps(json, separators=(",", ":")).encode()
            extra["Content-Type"] = "application/json"
        elif isinstance(data, Mapping):
            body = urlencode(data).encode()
            extra["Content-Type"] = "application/x-www-form-urlencoded"
        elif isinstance(data, str):
            body = data.encode()
        else:
            body = data
        if headers:
            overridden = {name.lower() for name in headers} & self._default_names
            if overridden:
                raise ValueError(
                    f"header(s) {', '.join(sorted(overridden))} are session defaults; "
                    "set them on the user (default_headers), not per request"
                )
            lowered = {name.lower() for name in headers}
            extra = {k: v for k, v in extra.items() if k.lower() not in lowered}
            extra.update(headers)
        return body, _header_lines(extra) if extra else b""

    def _origin(self, scheme: str, host: str, port: int | None) -> _Origin:
        port = port or _DEFAULT_PORTS[scheme]
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = _Origin(
                scheme, host, port,
                size=self.concurrency,
                connect_timeout_s=self.connection_timeout,
                network_timeout_s=self.network_timeout,
                ssl_context=self._tls_context() if scheme == "https" else None,
            )  # fmt: skip
            self._origins[key] = origin
        return origin

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = gevent.ssl.create_default_context()
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context

    def close(self) -> None:
        """Close every pooled connection."""
        for origin in self._origins.values():
            while origin.idle:
                origin.idle.pop().close()
