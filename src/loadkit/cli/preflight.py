"""Preflight: the guide's prerequisites, checked before any load is sent.

A load test against a platform that is down, a key that is refused or a Redis that is not
running produces a wall of failures that says nothing about performance. These checks say it
in one line each, and ``loadkit run`` runs them first:

* the API answers ``GET /health`` with 200 and ``{"status": "ok"}``;
* the API key is accepted by an authenticated, cheap GET, when the run sends authenticated
  requests: the queue stats path when the run reads the queue over HTTP anyway, else the status
  of an import that does not exist (404 means the key got past authentication);
* Redis answers ``PING``, when ``REDIS_URL`` is set (the guide: "Ensure Redis is running");
* the queue depth source can be read, when queue sampling is on; for a BullMQ queue in Redis
  the line names its version (``meta.version``) and says when it is paused, and a queue with no
  keys at the configured prefix/name while Redis holds ``*:<queue>:meta`` elsewhere fails with
  the prefix to set (a wrong prefix would otherwise read as an idle queue: depth 0, passing).

Preflight asks only for what the run needs (:class:`PreflightNeeds`): the queue is required when
a criterion of the run's scenario and profile reads it. Otherwise, with
``LOADKIT_QUEUE_SOURCE=auto``, a queue (or Redis) that cannot be read is one warning line and
the run goes on without sampling it (``Preflight.sample_queue`` is False); a source named
explicitly (``http``, ``redis``) is still required.

A check that depends on a failed one is reported as not checked, not as a second failure.
No line ever holds the API key, and URLs are shown with any password masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, TextIO

import requests

from loadkit import registry
from loadkit.core.plan import RunPlan
from loadkit.core.reasons import short_reason
from loadkit.core.redact import mask
from loadkit.core.redis_url import display_url
from loadkit.endpoints import HEALTH, HEALTH_CHECK, IMPORT_STATUS
from loadkit.observe.bullmq import Discovery, QueueState
from loadkit.observe.queue_sources import (
    BullQueueSource,
    QueueSource,
    QueueSourceError,
    RedisQueueSource,
    redis_client,
    source_from_settings,
)
from loadkit.settings import QueueSourceKind, Settings

PASS: Final = "✓"
FAIL: Final = "✗"
NOT_CHECKED: Final = "-"
#: Preflight must answer quickly, whatever the run's own (long) request timeout is.
MAX_CHECK_TIMEOUT_S: Final = 5.0
#: The key check when the queue stats path is not read: an import that does not exist. A 404
#: means the request got past authentication; 401/403 mean the key was refused.
KEY_PROBE_PATH: Final = IMPORT_STATUS.format(job_id="loadkit-preflight-key-check")
KEY_PROBE_ACCEPTED: Final = frozenset({200, 404})


@dataclass(frozen=True)
class PreflightNeeds:
    """What the run needs from the platform; the default (everything) is ``loadkit preflight``'s."""

    api_key: bool = True
    """The run sends requests that need the key (every scenario but health)."""
    queue: bool = True
    """A criterion of the run reads the queue, so it must be readable."""
    run: str = ""
    """The run, for messages (``scheduling custom``)."""


@dataclass(frozen=True)
class CheckLine:
    """One check's outcome: ``ok`` is True, False, or None when it could not be checked."""

    ok: bool | None
    text: str
    drops_queue: bool = False
    """The queue cannot be read and the run does not need it: sample nothing."""

    def __str__(self) -> str:
        mark = PASS if self.ok else FAIL if self.ok is False else NOT_CHECKED
        return f"{mark} {self.text}"


@dataclass(frozen=True)
class Preflight:
    """The checks' outcome for the run."""

    passed: bool
    sample_queue: bool
    """False when the queue could not be read and the run goes on without it."""


def run_preflight(
    settings: Settings,
    *,
    out: TextIO,
    api_url: str | None = None,
    needs: PreflightNeeds | None = None,
) -> bool:
    """Print one line per check to ``out`` as it completes; True when none failed.

    ``api_url`` overrides ``settings.api_url`` (e.g. the embedded platform's address).
    """
    return check_platform(settings, out=out, api_url=api_url, needs=needs).passed


def check_platform(
    settings: Settings,
    *,
    out: TextIO,
    api_url: str | None = None,
    needs: PreflightNeeds | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> Preflight:
    """:func:`run_preflight`, also saying whether the run should sample the queue. Once
    ``stopped()`` is true (a Ctrl-C or SIGTERM arrived), no further check is sent."""
    passed = sample_queue = True
    secrets = [settings.api_key_value or ""]
    for line in preflight_lines(settings, api_url=api_url, needs=needs):
        if stopped():
            return Preflight(False, sample_queue)
        passed = passed and line.ok is not False
        sample_queue = sample_queue and not line.drops_queue
        print(mask(str(line), secrets), file=out, flush=True)
    return Preflight(passed, sample_queue)


def preflight_lines(
    settings: Settings, *, api_url: str | None = None, needs: PreflightNeeds | None = None
) -> Iterator[CheckLine]:
    """The checks, in order, each yielded as soon as it is done."""
    needs = needs or PreflightNeeds()
    base_url = (api_url or settings.api_url or "").rstrip("/")
    timeout_s = min(settings.request_timeout_s, MAX_CHECK_TIMEOUT_S)
    optional_queue = not needs.queue and settings.queue_source is QueueSourceKind.AUTO
    session = requests.Session()
    try:
        api = _check_health(session, base_url, settings, timeout_s)
        yield api
        key_ok: bool | None = True
        if not needs.api_key:
            yield CheckLine(
                None, f"API key not checked: {needs.run} sends no request that needs it"
            )
        elif not api.ok:
            key_ok = None
            yield CheckLine(None, "API key not checked: the API did not answer")
        else:
            key = _check_key(session, base_url, settings, timeout_s, _key_path(settings, needs))
            key_ok = key.ok
            yield key
        redis_ok: bool | None = None
        if settings.redis_url_value:
            redis_line = _check_redis(settings.redis_url_value, timeout_s)
            redis_ok = redis_line.ok
            if optional_queue and not redis_ok:
                yield _optional(redis_line, needs)  # one warning: no queue line after it
                return
            yield redis_line
        queue_lines = _check_queue_source(settings, base_url, bool(api.ok and key_ok), redis_ok)
        for line in queue_lines:
            yield _optional(line, needs) if optional_queue else line
    finally:
        session.close()


def needs_of(plan: RunPlan) -> PreflightNeeds:
    """What ``plan``'s run needs: the key unless it only calls ``GET /health``; the queue when a
    criterion that applies to its profile reads it."""
    assert plan.scenario is not None
    requests_sent = registry.get_scenario(plan.scenario).requests
    criteria = plan.baseline.criteria_for(plan.profile) if plan.baseline is not None else ()
    return PreflightNeeds(
        api_key=any(name != HEALTH_CHECK for name in requests_sent),
        queue=any(criterion.reads_queue for criterion in criteria),
        run=f"{plan.scenario} {plan.profile}",
    )


def _key_path(settings: Settings, needs: PreflightNeeds) -> tuple[str, frozenset[int]]:
    """The path the key is checked with, and the statuses that mean it was accepted."""
    if needs.queue and _reads_http(settings):
        return settings.queue_stats_path, frozenset({200})
    return KEY_PROBE_PATH, KEY_PROBE_ACCEPTED


def _reads_http(settings: Settings) -> bool:
    kind = settings.queue_source
    return kind is QueueSourceKind.HTTP or (
        kind is QueueSourceKind.AUTO and not settings.redis_url_value
    )


def _optional(line: CheckLine, needs: PreflightNeeds) -> CheckLine:
    """A failed (or unchecked) queue line of a run that does not need the queue: a warning."""
    if line.ok:
        return line
    what = needs.run or "this run"
    return CheckLine(
        None,
        f"{line.text}; no criterion of {what} reads the queue: the run goes on without sampling it",
        drops_queue=True,
    )


def _check_health(
    session: requests.Session, base_url: str, settings: Settings, timeout_s: float
) -> CheckLine:
    if not base_url:
        return CheckLine(False, "API_URL is not set: no platform to check")
    shown = display_url(base_url)
    try:
        response, elapsed_ms = _get(session, base_url + HEALTH, {}, settings, timeout_s)
    except requests.RequestException as exc:
        return CheckLine(False, f"API unreachable: {shown} (GET {HEALTH}: {short_reason(exc)})")
    timing = f"GET {HEALTH} {response.status_code} in {elapsed_ms:.0f} ms"
    if response.status_code != 200:
        return CheckLine(False, f"API unhealthy: {shown} ({timing})")
    try:
        status = response.json().get("status")
    except (ValueError, AttributeError):
        return CheckLine(False, f"API unhealthy: {shown} ({timing}, the answer is not JSON)")
    if status != "ok":
        return CheckLine(False, f"API unhealthy: {shown} ({timing}, status {status!r})")
    return CheckLine(True, f"API reachable: {shown} ({timing})")


def _check_key(
    session: requests.Session,
    base_url: str,
    settings: Settings,
    timeout_s: float,
    probe: tuple[str, frozenset[int]],
) -> CheckLine:
    if not settings.api_key_value:
        return CheckLine(False, "API key missing: set API_KEY")
    path, accepted = probe
    try:
        response, elapsed_ms = _get(
            session, base_url + path, settings.auth_headers(), settings, timeout_s
        )
    except requests.RequestException as exc:
        return CheckLine(False, f"API key not confirmed: GET {path}: {short_reason(exc)}")
    status = response.status_code
    if status in (401, 403):
        return CheckLine(False, f"API key rejected (HTTP {status}): GET {path}")
    if status not in accepted:
        return CheckLine(False, f"API key not confirmed: GET {path} answered HTTP {status}")
    return CheckLine(True, f"API key accepted (GET {path} {status} in {elapsed_ms:.0f} ms)")


def _check_redis(url: str, timeout_s: float) -> CheckLine:
    import redis

    client = redis_client(url, timeout_s)
    try:
        started_s = time.perf_counter()
        client.ping()
        elapsed_ms = (time.perf_counter() - started_s) * 1000
    except redis.RedisError as exc:
        return CheckLine(False, f"Redis unreachable at {display_url(url)}: {short_reason(exc)}")
    finally:
        client.close()
        client.connection_pool.disconnect()
    return CheckLine(True, f"Redis reachable: {display_url(url)} (PING in {elapsed_ms:.0f} ms)")


def _check_queue_source(
    settings: Settings, base_url: str, api_ok: bool, redis_ok: bool | None
) -> Iterator[CheckLine]:
    try:
        source = source_from_settings(settings, base_url=base_url or None)
    except QueueSourceError as exc:
        yield CheckLine(False, f"queue depth unreadable: {exc}")
        return
    if source is None:
        return  # sampling is off: nothing to check
    try:
        if isinstance(source, RedisQueueSource | BullQueueSource):
            if redis_ok is False:
                yield CheckLine(None, "queue depth not checked: Redis did not answer")
                return
        elif not api_ok:
            yield CheckLine(None, "queue depth not checked: the API did not accept the key")
            return
        yield _read_source(source)
    finally:
        source.close()


def _read_source(source: QueueSource) -> CheckLine:
    try:
        reading = source.read()
    except QueueSourceError as exc:
        return CheckLine(False, f"queue depth unreadable: {exc}")
    if isinstance(source, BullQueueSource) and source.last_state is not None:
        return _bull_line(source, source.last_state, reading)
    counts = ", ".join(f"{k} {v:g}" for k, v in reading.items() if k != "depth")
    text = f"queue depth readable: {source.description} (depth {reading['depth']:g}; {counts})"
    if isinstance(source, RedisQueueSource) and set(source.missing_keys) == set(source.all_keys):
        text += "; none of its keys exist yet: an idle queue, or check LOADKIT_BULL_PREFIX/QUEUE"
    return CheckLine(True, text)


def _bull_line(source: BullQueueSource, state: QueueState, reading: dict[str, float]) -> CheckLine:
    """The BullMQ queue's line: version, paused, the gauges; or where the queue really is."""
    if state.keys_found == 0:
        try:
            found = source.discover()
        except QueueSourceError as exc:
            found = None
            searched = f"; looking for it elsewhere failed: {exc}"
        else:
            searched = "" if found.complete else " (searched part of the keyspace)"
        if found is not None and (found.same_queue or found.same_prefix):
            return CheckLine(False, f"queue not found: {source.description}: {_where(found)}")
        return CheckLine(
            True,
            f"queue depth readable: {source.description} (depth 0); none of its keys exist "
            f"yet: an idle queue, or check LOADKIT_BULL_PREFIX/QUEUE{searched}",
        )
    meta = state.meta
    version = meta.version or "no meta hash (Bull 3, or not written by BullMQ)"
    counts = ", ".join(
        f"{name} {reading[name]:g}"
        for name in ("active", "delayed", "waiting-children", "completed", "failed")
    )
    text = (
        f"queue depth readable: {source.description} ({version}; depth {reading['depth']:g}: "
        f"waiting {state.waiting} + overdue {state.overdue}; {counts})"
    )
    if meta.paused:
        text += "; PAUSED (meta.paused is set): no worker takes its jobs until it is resumed"
    return CheckLine(True, text)


def _where(found: Discovery) -> str:
    """One clause naming the queues found instead, and the setting to change."""
    parts = []
    if found.same_queue:
        if len(found.same_queue) == 1:
            setting = f"set LOADKIT_BULL_PREFIX={found.same_queue[0]}"
        else:
            setting = "set LOADKIT_BULL_PREFIX to one of them"
        parts.append(f"Redis holds this queue under prefix {_names(found.same_queue)} ({setting})")
    if found.same_prefix:
        parts.append(
            f"other queues under this prefix: {_names(found.same_prefix)} (set LOADKIT_BULL_QUEUE)"
        )
    return "; ".join(parts)


def _names(names: tuple[str, ...], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _get(
    session: requests.Session,
    url: str,
    headers: dict[str, str],
    settings: Settings,
    timeout_s: float,
) -> tuple[requests.Response, float]:
    started_s = time.perf_counter()
    response = session.get(
        url,
        headers=headers,
        timeout=(min(settings.connect_timeout_s, timeout_s), timeout_s),
        verify=settings.verify_tls,
        allow_redirects=False,
    )
    return response, (time.perf_counter() - started_s) * 1000
