"""``--out influxdb=URL``: stream the time series to InfluxDB v1 while the run goes on.

k6's URL form: ``http://host:8086/DB`` (``http://user:password@host:8086/DB`` with credentials,
sent as HTTP basic auth and never logged). Points go to ``POST /write?db=DB&precision=ms`` in
line protocol (``loadkit.results.line_protocol``).

Never in the way of the load: records are encoded once a second, when the time series writes a
second, into a bounded buffer; a background greenlet posts the buffer every second in batches.
An InfluxDB that is down or slow costs one warning per outage and, once the buffer is full, the
oldest points (counted and reported at the end) -- never a failed run or a slower generator.
Rejected batches (4xx: unknown database, bad point) are dropped, not retried.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import gevent
import requests

from loadkit.results.line_protocol import encode_records

logger = logging.getLogger("loadkit.outputs")

DEFAULT_URL: Final = "http://localhost:8086/k6"
SEND_INTERVAL_S: Final = 1.0
#: About an hour of a 20-endpoint run at one point per endpoint and second, a few MB.
MAX_BUFFERED_LINES: Final = 200_000
#: InfluxDB's advice: batches of about 5,000 points.
BATCH_LINES: Final = 5000
#: Batches posted per second at most (a backlog after an outage drains over a few seconds).
MAX_BATCHES_PER_SEND: Final = 10
HTTP_TIMEOUT_S: Final = 2.0
#: How long the end of the run may wait for the last points.
CLOSE_TIMEOUT_S: Final = 5.0


class InfluxUrlError(ValueError):
    """An ``--out influxdb=URL`` that cannot be written to."""


@dataclass(frozen=True)
class InfluxTarget:
    """Where points go: the write endpoint, its database, credentials, a loggable form."""

    write_url: str
    database: str
    auth: tuple[str, str] | None
    display: str

    def __repr__(self) -> str:  # credentials stay out of reprs and tracebacks
        return f"InfluxTarget({self.display!r})"


def parse_influx_url(url: str) -> InfluxTarget:
    """``http[s]://[user:password@]host[:port]/DB`` -> an ``InfluxTarget`` (k6's form)."""
    parts = urlsplit(url.strip() or DEFAULT_URL)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InfluxUrlError(f"expected http(s)://host:port/DATABASE, got {_redact(url)!r}")
    database = parts.path.strip("/")
    if not database or "/" in database:
        raise InfluxUrlError(f"the URL's path must name the database: {_redact(url)!r}")
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # IPv6 literal
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    auth = (parts.username or "", parts.password or "") if parts.username else None
    base = urlunsplit((parts.scheme, netloc, "", "", ""))
    return InfluxTarget(
        write_url=f"{base}/write",
        database=database,
        auth=auth,
        display=f"{base}/{database}",
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"***@{netloc}", parts.path, parts.query, parts.fragment))


class InfluxWriter:
    """Buffers line-protocol points and posts them from a greenlet, once a second.

    ``write`` (the time series' sink interface) and ``add_lines`` only append to the buffer;
    ``start`` spawns the sender; ``close`` stops it and sends what is left, bounded in time.
    """

    def __init__(
        self,
        target: InfluxTarget,
        *,
        interval_s: float = SEND_INTERVAL_S,
        max_buffered_lines: int = MAX_BUFFERED_LINES,
        batch_lines: int = BATCH_LINES,
        timeout_s: float = HTTP_TIMEOUT_S,
        session: requests.Session | None = None,
    ) -> None:
        self.target = target
        self.interval_s = interval_s
        self.batch_lines = batch_lines
        self.timeout_s = timeout_s
        self._buffer: deque[str] = deque(maxlen=max_buffered_lines)
        self._session = session or requests.Session()
        self._sender: gevent.Greenlet | None = None
        self._failing = False
        #: Points InfluxDB accepted, points dropped (buffer full or rejected), batches posted.
        self.lines_written = 0
        self.lines_dropped = 0
        self.batches_posted = 0
        self._overflow_warned = False
        #: What went wrong, one line each, for the verdict's notes (``output_problems``).
        self.problems: list[str] = []
        #: Called with each new problem (the plugin prints the first one on the console).
        self.on_problem: Callable[[str], None] | None = None

    # -- sink interface -------------------------------------------------------------------------

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Encode time-series records and queue their points."""
        self.add_lines(encode_records(records))

    def add_lines(self, lines: Iterable[str]) -> None:
        """Queue points; when the buffer is full the oldest ones make room (and are counted)."""
        buffer = self._buffer
        for line in lines:
            if len(buffer) == buffer.maxlen:
                self.lines_dropped += 1
                if not self._overflow_warned:
                    self._overflow_warned = True
                    self._problem(
                        f"InfluxDB buffer full ({buffer.maxlen} points): dropping the oldest points"
                    )
            buffer.append(line)

    @property
    def buffered_lines(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        """Spawn the sender greenlet (idempotent)."""
        if self._sender is None:
            self._sender = gevent.spawn(self._run)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the sender and post what is left, giving up after ``timeout_s``."""
        if self._sender is not None:
            self._sender.kill(block=True)
            self._sender = None
        try:
            with gevent.Timeout(timeout_s):
                while self._buffer and self.send_batch():
                    pass
        except gevent.Timeout:
            pass
        if self._buffer:
            self.lines_dropped += len(self._buffer)
            self._buffer.clear()
        if self.lines_dropped:
            self._problem(
                f"{self.lines_dropped} points could not be written to InfluxDB at "
                f"{self.target.display} ({self.lines_written} written)"
            )
        self._session.close()

    # -- sending --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            gevent.sleep(self.interval_s)
            for _ in range(MAX_BATCHES_PER_SEND):
                if not self._buffer or not self.send_batch():
                    break

    def send_batch(self) -> bool:
        """Post up to ``batch_lines`` points; True if the batch is done with (written or
        rejected for good), False if it went back to the buffer to be retried."""
        if not self._buffer:
            return True
        batch = [self._buffer.popleft() for _ in range(min(self.batch_lines, len(self._buffer)))]
        try:
            response = self._session.post(
                self.target.write_url,
                params={"db": self.target.database, "precision": "ms"},
                data="\n".join(batch).encode("utf-8"),
                auth=self.target.auth,
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            self._requeue(batch)
            self._warn_once(f"is unreachable ({type(exc).__name__}){_RETRYING}")
            return False
        if response.status_code == 204 or response.ok:
            self.lines_written += len(batch)
            self.batches_posted += 1
            if self._failing:
                self._failing = False
                logger.info("loadkit: InfluxDB at %s accepts points again", self.target.display)
            return True
        if response.status_code >= 500:
            self._requeue(batch)
            self._warn_once(f"answered HTTP {response.status_code}{_RETRYING}")
            return False
        self.lines_dropped += len(batch)  # 4xx: sending it again would not help
        self._warn_once(
            f"rejected {len(batch)} points (HTTP {response.status_code}: {_error(response)}); "
            "the run goes on"
        )
        return True

    def _requeue(self, batch: list[str]) -> None:
        room = (self._buffer.maxlen or 0) - len(self._buffer)
        if room < len(batch):
            self.lines_dropped += len(batch) - room
            batch = batch[len(batch) - room :] if room > 0 else []
        self._buffer.extendleft(reversed(batch))

    def _warn_once(self, problem: str) -> None:
        """One warning per outage: the next one comes only after a successful write."""
        if self._failing:
            return
        self._failing = True
        self._problem(f"InfluxDB at {self.target.display} {problem}")

    def _problem(self, text: str) -> None:
        logger.warning("loadkit: %s", text)
        if text not in self.problems:
            self.problems.append(text)
        if self.on_problem is not None:
            self.on_problem(text)


_RETRYING: Final = "; the run goes on, points are kept and retried every second"


def _error(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:200]
    except ValueError:
        return response.text[:200]
