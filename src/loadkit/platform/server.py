"""Serving: a gevent WSGI server tuned for loopback load tests, and the process entry point.

Two socket details decide whether the server can keep up with a load generator: gevent's
handler writes the response headers and body in separate ``send`` calls, so without
``TCP_NODELAY`` Nagle's algorithm holds the body back until the client's delayed ACK (~40 ms),
capping a keep-alive connection at a few hundred requests per second; and the access log, off
unless ``--access-log``, costs more than serving ``/health`` itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIHandler, WSGIServer

from loadkit.platform.app import PlatformApp
from loadkit.platform.config import (
    ConfigError,
    PlatformConfig,
    add_platform_arguments,
    config_from_args,
)
from loadkit.platform.protocol import LISTENING_PREFIX, PARENT_PID_ENV
from loadkit.platform.queue_backend import QueueBackendError

DEFAULT_PROG = "python -m loadkit.platform"
BACKLOG = 1024
STOP_TIMEOUT_S = 2.0
PARENT_CHECK_INTERVAL_S = 1.0


class _QuietHandler(WSGIHandler):
    """Skips formatting an access-log line (pywsgi formats it even for a no-op log)."""

    def log_request(self) -> None:
        pass


class PlatformServer(WSGIServer):
    """``WSGIServer`` that sets ``TCP_NODELAY`` on every accepted connection and counts the
    connections open (``handle`` runs for a connection's whole keep-alive life)."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        with contextlib.suppress(OSError):  # the peer may be gone already: the handler notices
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wear = getattr(self.application, "wear", None)
        if wear is None:
            super().handle(sock, address)
            return
        wear.connection_opened()
        try:
            super().handle(sock, address)
        finally:
            wear.connection_closed()


def build_server(app: PlatformApp, config: PlatformConfig) -> PlatformServer:
    """A server bound to the configured loopback address (not yet accepting)."""
    server = PlatformServer(
        (config.host, config.port),
        app,
        backlog=BACKLOG,
        log=sys.stderr if config.access_log else None,
        handler_class=WSGIHandler if config.access_log else _QuietHandler,
        # Set explicitly: pywsgi would otherwise resolve the FQDN of the address at startup.
        environ={"SERVER_NAME": config.host},
    )
    server.init_socket()
    return server


def server_url(server: WSGIServer) -> str:
    host, port = server.address[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(config: PlatformConfig) -> int:
    """Run the platform until SIGTERM or SIGINT; returns the exit code (1: cannot listen, or the
    queue's Redis cannot be used)."""
    app = PlatformApp(config)
    try:
        server = build_server(app, config)
    except OSError as exc:
        print(
            f"loadkit platform: error: cannot listen on {config.host}:{config.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        app.start()  # the queue's store first: a Redis that is down is one line, not a traceback
    except QueueBackendError as exc:
        print(f"loadkit platform: error: {exc}", file=sys.stderr)
        server.close()
        return 1
    stop_requested = Event()
    handlers = [
        gevent.signal_handler(sig, stop_requested.set) for sig in (signal.SIGTERM, signal.SIGINT)
    ]
    watcher = _watch_parent(stop_requested)
    try:
        server.start()
        _print_line(LISTENING_PREFIX + server_url(server))
        stop_requested.wait()
    finally:
        for handler in handlers:
            handler.cancel()
        if watcher is not None:
            watcher.kill(block=False)
        server.stop(timeout=STOP_TIMEOUT_S)
        app.stop()
    return 0


def _watch_parent(stop_requested: Event) -> gevent.Greenlet | None:
    """With ``PARENT_PID_ENV`` set, stop once the launching process has gone."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not parent.isdigit():
        return None

    def watch() -> None:
        while os.getppid() == int(parent):
            gevent.sleep(PARENT_CHECK_INTERVAL_S)
        stop_requested.set()

    return gevent.spawn(watch)


def _print_line(line: str) -> None:
    with contextlib.suppress(BrokenPipeError):  # nobody reads stdout: serve anyway
        print(line, flush=True)


def build_parser(prog: str = DEFAULT_PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the reference platform (the calling platform's API) on loopback.",
    )
    add_platform_arguments(parser)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = DEFAULT_PROG,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), serve until signalled; returns the exit code:
    0 after a clean shutdown, 2 for bad arguments (including a non-loopback host), 1 when the
    address cannot be bound."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage/help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        config = config_from_args(args, os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return serve(config)
