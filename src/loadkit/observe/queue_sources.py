"""Where a queue-depth reading comes from: the platform's stats endpoint, or its Redis keys.

A reading is a flat mapping of numbers: ``depth`` first, then every other count the source
knows (``waiting``, ``overdue``, ``active``, ``delayed``, ``failed``, ``processing_rate_per_s``...),
so the time series keeps the whole picture, not only the gauge.

The depth is :data:`DEPTH_MEANING`. From a BullMQ queue in Redis that is ``waiting`` +
``overdue`` (``observe.bullmq``); from a stats answer shaped like BullMQ's ``getJobCounts()``
it is ``waiting`` plus ``prioritized``, ``paused`` and ``overdue`` where the answer has them,
since BullMQ counts those apart from ``waiting``. ``LOADKIT_QUEUE_DEPTH_FIELDS`` replaces that
definition with a sum of named fields.

Neither source goes through Locust's client: a sample is the kit watching, not load, and must
not show up in the request statistics. A failed reading raises :class:`QueueSourceError` with a
one-line reason that never holds the API key or a Redis password.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import requests

from loadkit.core.reasons import short_reason
from loadkit.core.redis_url import display_url
from loadkit.observe.bullmq import (
    GAUGE_NAMES,
    Discovery,
    QueueAddress,
    QueueLayoutError,
    QueueReader,
    QueueState,
    discover,
)
from loadkit.settings import QueueSourceKind, Settings

Reading = dict[str, float]
#: A sample must not hang the sampler: well under a few intervals, whatever the request timeout.
MAX_SAMPLE_TIMEOUT_S: Final = 2.0
DEPTH: Final = "depth"
#: What the depth is, in one sentence, wherever it is shown.
DEPTH_MEANING: Final = (
    "queue depth = work that is due and not being processed: jobs waiting for a worker "
    "plus delayed jobs whose due time has passed (overdue)"
)
#: What each field of a reading counts, where it is shown beside the numbers (the web UI tab).
FIELD_MEANINGS: Final = {
    DEPTH: DEPTH_MEANING,
    "waiting": "jobs ready for a worker (BullMQ: wait + prioritized + paused)",
    "overdue": "delayed jobs whose due time has passed: due, and no worker moved them",
    "active": "jobs a worker has taken and not finished",
    "delayed": "delayed jobs not due yet",
    "waiting-children": "flow parents waiting for their children",
    "completed": "completed jobs the queue keeps: its lifetime, not this run",
    "failed": "failed jobs the queue keeps: its lifetime, not this run",
    "completed_total": "every job ever completed (BullMQ metrics)",
    "failed_total": "every job ever failed (BullMQ metrics)",
    "wait": "the wait list alone (BullMQ's own `waiting`)",
    "prioritized": "jobs with a priority, waiting",
    "paused": "jobs added while the queue was paused (BullMQ 4/5)",
    "queue_paused": "1 when the queue is paused (meta.paused)",
}
#: The BullMQ source's depth: its ``waiting`` already holds the prioritized and paused jobs.
BULL_DEPTH_FIELDS: Final = ("waiting", "overdue")
#: The HTTP source's depth, unless told otherwise: ``waiting``, plus these where the answer has
#: them (BullMQ's ``getJobCounts()`` reports ``prioritized`` and ``paused`` apart from ``waiting``).
HTTP_DEPTH_FIELDS: Final = ("waiting",)
HTTP_OPTIONAL_DEPTH_FIELDS: Final = ("prioritized", "paused", "overdue")

#: How to count a key of each Redis type (Bull: lists and sorted sets; older Bull: sets).
LENGTH_COMMANDS: Final = {"list": "LLEN", "zset": "ZCARD", "set": "SCARD", "stream": "XLEN"}


class QueueSourceError(RuntimeError):
    """A reading failed; the message is one line, free of secrets."""


class QueueSource(Protocol):
    """Something that can say, right now, how many jobs are in each state."""

    @property
    def description(self) -> str:
        """What is read, for messages (``GET /api/queue/stats``, ``Redis ... bull:calls:*``)."""
        ...

    def read(self) -> Reading:
        """One reading; raises :class:`QueueSourceError`."""
        ...

    def close(self) -> None:
        """Release connections (a later ``read`` may reopen them)."""
        ...


class HttpQueueSource:
    """``GET <API_URL><path>`` with the API key; the JSON answer's numbers are the reading.

    Nested objects are flattened with dots (``{"counts": {"waiting": 3}}`` → ``counts.waiting``),
    so a platform whose stats are nested can still name its fields. ``depth_fields`` None: the
    depth is ``waiting`` plus ``prioritized``, ``paused`` and ``overdue`` where present.
    """

    def __init__(
        self,
        base_url: str | Callable[[], str | None],
        *,
        path: str,
        depth_fields: Sequence[str] | None = None,
        headers: Mapping[str, str],
        timeout_s: float = MAX_SAMPLE_TIMEOUT_S,
        verify_tls: bool = True,
    ) -> None:
        self._base_url = base_url
        self._path = path
        self._depth_fields = HTTP_DEPTH_FIELDS if depth_fields is None else tuple(depth_fields)
        self._optional_fields = HTTP_OPTIONAL_DEPTH_FIELDS if depth_fields is None else ()
        self._headers = dict(headers)
        self._timeout_s = timeout_s
        self._verify_tls = verify_tls
        self._session: requests.Session | None = None

    def __repr__(self) -> str:  # the headers hold the key: keep them out
        return f"HttpQueueSource(path={self._path!r}, depth_fields={self._depth_fields!r})"

    @property
    def description(self) -> str:
        return f"GET {self._path}"

    @property
    def depth_meaning(self) -> str:
        return _meaning(self._depth_fields, HTTP_DEPTH_FIELDS, self._optional_fields)

    def read(self) -> Reading:
        base_url = self._base_url() if callable(self._base_url) else self._base_url
        if not base_url:
            raise QueueSourceError(f"GET {self._path}: no API URL to read the queue stats from")
        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.get(
                base_url.rstrip("/") + self._path,
                headers=self._headers,
                timeout=self._timeout_s,
                verify=self._verify_tls,
            )
        except requests.RequestException as exc:
            raise QueueSourceError(f"GET {self._path}: {short_reason(exc)}") from None
        if response.status_code in (401, 403):
            raise QueueSourceError(
                f"GET {self._path}: API key rejected (HTTP {response.status_code})"
            )
        if response.status_code != 200:
            raise QueueSourceError(f"GET {self._path}: HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise QueueSourceError(f"GET {self._path}: the answer is not JSON") from None
        if not isinstance(payload, dict):
            raise QueueSourceError(f"GET {self._path}: the answer is not a JSON object")
        return with_depth(
            flatten_numbers(payload),
            self._depth_fields,
            f"GET {self._path}",
            optional_fields=self._optional_fields,
        )

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class RedisQueueSource:
    """The lengths of the queue's Redis keys, whatever their type (``TYPE``, then the count).

    For a queue laid out some other way than Bull's (``LOADKIT_QUEUE_KEYS``); a Bull or BullMQ
    queue is read by :class:`BullQueueSource`, which also tells overdue jobs from later ones.
    ``keys`` maps each state to the keys whose lengths add up to it. A key that does not exist
    counts 0: Redis deletes an empty list or set, so an idle queue has no keys at all. The depth
    is ``waiting`` unless ``depth_fields`` say otherwise. The lengths are read in one MULTI/EXEC,
    at one instant: a job moving from ``active`` to ``completed`` between two separate reads
    would be counted in neither, and the drain could end before its last job is counted.
    """

    def __init__(
        self,
        url: str,
        keys: Mapping[str, Sequence[str]],
        *,
        depth_fields: Sequence[str] | None = None,
        timeout_s: float = MAX_SAMPLE_TIMEOUT_S,
        label: str | None = None,
    ) -> None:
        depth_fields = ("waiting",) if depth_fields is None else depth_fields
        unknown = [name for name in depth_fields if name not in keys]
        if unknown:
            raise QueueSourceError(
                f"depth field {unknown[0]!r} is not one of the Redis states ({', '.join(keys)})"
            )
        self._url = url
        self._keys = {state: tuple(names) for state, names in keys.items()}
        self._depth_fields = tuple(depth_fields)
        self._timeout_s = timeout_s
        self._label = label or ", ".join(k for names in self._keys.values() for k in names)
        self._client: Any = None
        self.missing_keys: tuple[str, ...] = ()
        """Keys absent at the last reading (all of them: idle queue, or wrong prefix/name)."""

    def __repr__(self) -> str:  # the URL may hold a password
        return f"RedisQueueSource({self.description!r})"

    @property
    def description(self) -> str:
        return f"Redis {display_url(self._url)} {self._label}"

    @property
    def depth_meaning(self) -> str:
        fields = " + ".join(self._depth_fields)
        return (
            f"queue depth = the lengths of the {fields} keys (LOADKIT_QUEUE_KEYS): this source "
            "cannot tell overdue jobs from jobs delayed until later"
        )

    @property
    def all_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for names in self._keys.values() for k in names))

    def read(self) -> Reading:
        import redis

        keys = self.all_keys
        try:
            client = self._connect()
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.type(key)
            types = [_text(t) for t in pipe.execute()]
            pipe = client.pipeline(transaction=True)
            counted: list[str] = []
            for key, kind in zip(keys, types, strict=True):
                if kind == "none":
                    continue
                command = LENGTH_COMMANDS.get(kind)
                if command is None:
                    raise QueueSourceError(
                        f"Redis key {key!r} is a {kind}, not a list, sorted set, set or stream"
                    )
                pipe.execute_command(command, key)
                counted.append(key)
            lengths = dict(zip(counted, pipe.execute(), strict=True))
        except redis.ConnectionError as exc:
            raise QueueSourceError(
                f"Redis unreachable at {display_url(self._url)}: {short_reason(exc)}"
            ) from None
        except redis.RedisError as exc:
            raise QueueSourceError(
                f"Redis at {display_url(self._url)}: {short_reason(exc)}"
            ) from None
        self.missing_keys = tuple(k for k, kind in zip(keys, types, strict=True) if kind == "none")
        reading: Reading = {
            state: sum(int(lengths.get(key, 0)) for key in names)
            for state, names in self._keys.items()
        }
        return with_depth(reading, self._depth_fields, self.description)

    def ping_ms(self) -> float:
        """Round trip of a ``PING``, in ms; raises :class:`QueueSourceError`."""
        import time

        import redis

        try:
            client = self._connect()
            started_s = time.perf_counter()
            client.ping()
        except redis.RedisError as exc:
            raise QueueSourceError(
                f"Redis unreachable at {display_url(self._url)}: {short_reason(exc)}"
            ) from None
        return (time.perf_counter() - started_s) * 1000

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client.connection_pool.disconnect()
            self._client = None

    def _connect(self) -> Any:
        if self._client is None:
            self._client = redis_client(self._url, self._timeout_s)
        return self._client


class BullQueueSource:
    """A BullMQ (4+) or Bull 3 queue, read at one instant by :class:`QueueReader`.

    The reading holds every gauge of :meth:`QueueState.gauges` (``overdue`` included); the depth
    is ``waiting`` + ``overdue`` unless ``depth_fields`` name other gauges to add up.
    """

    def __init__(
        self,
        url: str,
        address: QueueAddress,
        *,
        depth_fields: Sequence[str] | None = None,
        timeout_s: float = MAX_SAMPLE_TIMEOUT_S,
    ) -> None:
        fields = BULL_DEPTH_FIELDS if depth_fields is None else tuple(depth_fields)
        unknown = [name for name in fields if name not in GAUGE_NAMES]
        if unknown:
            raise QueueSourceError(
                f"depth field {unknown[0]!r} is not one of the BullMQ gauges "
                f"({', '.join(GAUGE_NAMES)})"
            )
        self._url = url
        self.address = address
        self._depth_fields = fields
        self._timeout_s = timeout_s
        self._client: Any = None
        self._reader: QueueReader | None = None
        self.last_state: QueueState | None = None
        """The state behind the last reading (meta: version, paused; ``keys_found``)."""

    def __repr__(self) -> str:  # the URL may hold a password
        return f"BullQueueSource({self.description!r})"

    @property
    def description(self) -> str:
        return f"Redis {display_url(self._url)} {self.address}"

    @property
    def depth_meaning(self) -> str:
        return _meaning(self._depth_fields, BULL_DEPTH_FIELDS)

    def read(self) -> Reading:
        import redis

        try:
            state = self._connect().read()
        except redis.ConnectionError as exc:
            raise QueueSourceError(
                f"Redis unreachable at {display_url(self._url)}: {short_reason(exc)}"
            ) from None
        except redis.RedisError as exc:
            raise QueueSourceError(
                f"Redis at {display_url(self._url)}: {short_reason(exc)}"
            ) from None
        except QueueLayoutError as exc:
            raise QueueSourceError(str(exc)) from None
        self.last_state = state
        return with_depth(state.gauges(), self._depth_fields, self.description)

    def discover(self) -> Discovery:
        """Other queues in this Redis (a bounded ``SCAN``): for a queue whose keys are missing."""
        import redis

        try:
            return discover(self._connect().client, self.address)
        except redis.RedisError as exc:
            raise QueueSourceError(
                f"Redis at {display_url(self._url)}: {short_reason(exc)}"
            ) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client.connection_pool.disconnect()
            self._client = None
            self._reader = None

    def _connect(self) -> QueueReader:
        if self._reader is None:
            self._client = redis_client(self._url, self._timeout_s)
            self._reader = QueueReader(self._client, self.address)
        return self._reader


def redis_client(url: str, timeout_s: float) -> Any:
    """A client that fails fast: no retries (the sampler tries again at the next tick)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def bull_keys(prefix: str, queue: str) -> dict[str, tuple[str, ...]]:
    """Bull's and BullMQ's keys of ``queue``, by state, for counting key lengths alone (no
    overdue: :class:`BullQueueSource` reads these queues properly).

    Both keep ``wait``, ``paused`` and ``active`` as lists and ``delayed``, ``completed`` and
    ``failed`` as sorted sets; BullMQ (v4+) keeps jobs with a priority in the ``prioritized``
    sorted set instead of ``wait``, so they are waiting too. (Bull 3's ``priority`` set is an
    index over ``wait``, not more jobs: it is not counted.)
    """
    ns = f"{prefix}:{queue}:"
    return {
        "waiting": (ns + "wait", ns + "paused", ns + "prioritized"),
        "active": (ns + "active",),
        "delayed": (ns + "delayed",),
        "completed": (ns + "completed",),
        "failed": (ns + "failed",),
    }


def source_from_settings(
    settings: Settings, *, base_url: str | Callable[[], str | None] | None = None
) -> QueueSource | None:
    """The source ``settings`` ask for (``LOADKIT_QUEUE_SOURCE``), or None when sampling is off.

    ``base_url`` is where the API is (default ``API_URL``); a callable is asked at each reading,
    so a target chosen later (Locust's web UI form, the embedded platform) is followed.
    """
    kind = settings.queue_source
    if kind is QueueSourceKind.AUTO:
        kind = QueueSourceKind.REDIS if settings.redis_url_value else QueueSourceKind.HTTP
    timeout_s = min(settings.request_timeout_s, MAX_SAMPLE_TIMEOUT_S)
    if kind is QueueSourceKind.OFF:
        return None
    if kind is QueueSourceKind.REDIS:
        url = settings.redis_url_value
        if not url:
            raise QueueSourceError("LOADKIT_QUEUE_SOURCE=redis needs REDIS_URL")
        keys = settings.queue_key_map
        if keys is None:
            return BullQueueSource(
                url,
                QueueAddress(settings.bull_prefix, settings.bull_queue),
                depth_fields=settings.queue_depth_field_names,
                timeout_s=timeout_s,
            )
        return RedisQueueSource(
            url, keys, depth_fields=settings.queue_depth_field_names, timeout_s=timeout_s
        )
    return HttpQueueSource(
        base_url if base_url is not None else settings.api_url,
        path=settings.queue_stats_path,
        depth_fields=settings.queue_depth_field_names,
        headers=settings.auth_headers(),
        timeout_s=timeout_s,
        verify_tls=settings.verify_tls,
    )


def depth_meaning_of(source: object) -> str:
    """What ``source``'s depth counts, in one sentence (:data:`DEPTH_MEANING` by default)."""
    return str(getattr(source, "depth_meaning", DEPTH_MEANING))


def _meaning(fields: Sequence[str], default: Sequence[str], optional: Sequence[str] = ()) -> str:
    if tuple(fields) == tuple(default):
        return DEPTH_MEANING
    named = " + ".join([*fields, *(f"{name} (if answered)" for name in optional)])
    return f"queue depth = {named} (LOADKIT_QUEUE_DEPTH_FIELDS)"


def flatten_numbers(payload: Mapping[str, Any], prefix: str = "") -> Reading:
    """The numeric leaves of a JSON object (booleans excluded), nested names joined by dots."""
    numbers: Reading = {}
    for name, value in payload.items():
        key = f"{prefix}{name}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            numbers[key] = value
        elif isinstance(value, Mapping):
            numbers.update(flatten_numbers(value, key + "."))
    return numbers


def with_depth(
    counts: Reading,
    depth_fields: Sequence[str],
    where: str,
    *,
    optional_fields: Sequence[str] = (),
) -> Reading:
    """``counts`` with ``depth`` first: the sum of ``depth_fields`` (a missing one fails) and of
    those ``optional_fields`` that ``counts`` has."""
    missing = [name for name in depth_fields if name not in counts]
    if missing:
        known = ", ".join(sorted(counts)) or "none"
        raise QueueSourceError(f"{where}: no number {missing[0]!r} in the answer (has: {known})")
    summed = [*depth_fields, *(n for n in optional_fields if n in counts and n not in depth_fields)]
    reading: Reading = {DEPTH: sum(counts[name] for name in summed)}
    reading.update((k, v) for k, v in counts.items() if k != DEPTH)
    return reading


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
