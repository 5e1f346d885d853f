"""``timeseries.jsonl``: the run second by second, one JSON object a line, for machines.

Written while the run goes on (a crashed or interrupted soak keeps what it measured), a few
seconds behind it (``loadkit.measure.collector`` explains when a second is final). Two kinds of
line, both with ``t`` (epoch second the line covers, ``[t, t+1)``) and ``elapsed_s`` (``t`` minus
the second the test started in):

* ``"kind": "requests"`` -- one per row that saw requests that second, plus the ``Aggregated``
  HTTP total (``method`` ``""``) for every second of the run, quiet ones included: ``users``
  (running users, sampled once a second on the local runner or master), ``name``, ``method``,
  ``requests`` and ``failures`` completed in that second, ``rps`` (the same count, per second),
  and ``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms`` of those requests (``null`` when none);
* ``"kind": "process"`` -- one per load-generating process and second: ``process`` (``local``,
  ``master`` or the worker's id), ``role`` and ``generator_rss_bytes`` (resident memory).

A line with ``"late": true`` holds data that reached the master after its second was written
(a worker that fell silent for longer than the wait): add it to the line of the same ``t``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

FILE_NAME: Final = "timeseries.jsonl"


class JsonlWriter:
    """Appends records to a JSON-lines file, flushed after every batch (one batch a second)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self.lines_written = 0
        self._mode = "w"  # a new file per run; reopened after ``close``, it appends

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open(self._mode, encoding="utf-8")
            self._mode = "a"
        self._file.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        self._file.flush()
        self.lines_written += len(records)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a ``timeseries.jsonl`` file, in file order."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
