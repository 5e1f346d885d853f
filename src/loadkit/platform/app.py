"""The WSGI application: route, count, inject faults, authenticate, then call the handler.

Hand-written WSGI rather than a framework, because this sits in the hot path of every load test
the kit runs against it and must not be the bottleneck. The platform's state (calls, queue,
imports) is built here from one :class:`PlatformConfig`; ``start()`` and ``stop()`` run and end
its background greenlets.
"""

from __future__ import annotations

import random
import sys
import traceback
from collections.abc import Callable
from typing import Any

import gevent

from loadkit.endpoints import PLATFORM_COUNTERS, PLATFORM_METRICS
from loadkit.platform.auth import check_api_key
from loadkit.platform.call_queue import CallQueue
from loadkit.platform.config import PlatformConfig
from loadkit.platform.counters import RequestCounters
from loadkit.platform.faults import FaultPlan
from loadkit.platform.handlers import Handlers
from loadkit.platform.imports import ImportManager
from loadkit.platform.metrics import metrics_registry, serve_metrics
from loadkit.platform.routes import ROUTES, UNMATCHED_NAME, PathMatch, Router
from loadkit.platform.store import CallStore
from loadkit.platform.wear import Wear
from loadkit.platform.wsgi_io import Headers, HttpError, Request, StartResponse, respond

COUNTERS_RESET_PATH = PLATFORM_COUNTERS + "/reset"


def _rng(seed: int | None, purpose: str) -> random.Random:
    """An independent stream per purpose, reproducible when ``seed`` is given."""
    return random.Random(None if seed is None else f"{seed}:{purpose}")


class PlatformApp:
    """The reference platform as a WSGI callable."""

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.store = CallStore()
        self.queue = CallQueue(self.store, config.dialer, _rng(config.seed, "dialer"))
        self.imports = ImportManager(
            config.import_rows_per_s, config.import_fail_ratio, _rng(config.seed, "imports")
        )
        self.faults = FaultPlan(config.latencies, config.failures, _rng(config.seed, "faults"))
        self.counters = RequestCounters()
        self.wear = Wear(config.leak_bytes_per_request, config.surge_latency)
        self.metrics = metrics_registry(self)
        self._router = Router()
        self._expected_key = config.api_key.encode("utf-8")
        handlers = Handlers(config, self.store, self.queue, self.imports)
        self._handle: dict[str, Callable[[Request], tuple[int, Any]]] = {
            route.key: getattr(handlers, route.handler) for route in ROUTES
        }

    def start(self) -> None:
        self.queue.start()

    def stop(self) -> None:
        self.queue.stop()
        self.imports.stop()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method: str = environ["REQUEST_METHOD"]
        path: str = environ.get("PATH_INFO", "")
        if path.startswith(PLATFORM_COUNTERS):
            return self._serve_counters(method, path, start_response)
        if path == PLATFORM_METRICS and method == "GET":  # not counted, no auth: like counters
            return serve_metrics(self.metrics, start_response)
        match = self._router.match(path)
        key = f"{method} {match.name if match is not None else UNMATCHED_NAME}"
        self.counters.count_request(key)
        headers: Headers = ()
        try:
            status, payload = self._dispatch(environ, method, match, key)
        except HttpError as error:
            status, payload, headers = error.status, error.payload, error.headers
        except Exception:
            # The traceback names code, not request data: no header (so no key) is printed.
            print(f"loadkit platform: unhandled error serving {key}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            status, payload = 500, {"detail": "internal error"}
        body = respond(start_response, status, payload, headers)
        self.counters.count_response(key, status, len(body[0]))
        return body

    def _dispatch(
        self, environ: dict[str, Any], method: str, match: PathMatch | None, key: str
    ) -> tuple[int, Any]:
        if match is None:
            raise HttpError(404, "not found")
        route = match.by_method.get(method)
        if route is None:
            raise HttpError(405, "method not allowed", headers=(("Allow", match.allow),))
        if self.wear.active:
            delay_s = self.wear.on_request()
            if delay_s:
                gevent.sleep(delay_s)
        if self.faults:
            faults = self.faults.for_route(key)
            if faults is not None:
                if faults.latency is not None:
                    gevent.sleep(faults.latency.sample_s(self.faults.rng))
                failure = faults.failure
                if failure is not None and self.faults.rng.random() < failure.ratio:
                    raise HttpError(failure.status, "injected fault")
        if route.needs_auth:
            denial = check_api_key(environ, self._expected_key)
            if denial is not None:
                raise denial
        return self._handle[key](Request(environ, match.params))

    def _serve_counters(self, method: str, path: str, start_response: StartResponse) -> list[bytes]:
        """The harness's own endpoints: not counted, no auth (they expose counts, not data)."""
        if path == PLATFORM_COUNTERS:
            if method != "GET":
                return respond(
                    start_response, 405, {"detail": "method not allowed"}, (("Allow", "GET"),)
                )
            return respond(start_response, 200, self.counters.snapshot())
        if path == COUNTERS_RESET_PATH:
            if method != "POST":
                return respond(
                    start_response, 405, {"detail": "method not allowed"}, (("Allow", "POST"),)
                )
            self.counters.reset()
            return respond(start_response, 200, {"status": "reset"})
        return respond(start_response, 404, {"detail": "not found"})
