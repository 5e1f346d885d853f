"""The run history: one record per finished run, in one SQLite file beside the run folders.

Why SQLite (the standard library's): two runs that finish at once must both be kept, and a
process killed in the middle of a write must leave the history as it was. SQLite gives both
with its rollback journal: a writer takes the file's write lock (``BEGIN IMMEDIATE``; others wait
up to ``BUSY_TIMEOUT_S``), and a transaction is on disk entirely or not at all; the journal a
killed writer leaves behind is rolled back by the next one to open the file. The default journal
mode keeps the history one file at rest, which CI can cache or upload as it is.

A record is JSON (``run_record.build_record``) kept whole, plus the columns the queries need.
``run_id`` is unique: recording a run twice keeps the first record, so a retried write can never
duplicate a run.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

HISTORY_FILE: Final = "history.sqlite"
#: ``PRAGMA user_version`` of the layout below; a file from a newer kit is refused, not changed.
SCHEMA_VERSION: Final = 1
#: How long a writer waits for another one to finish (they hold the lock for milliseconds).
BUSY_TIMEOUT_S: Final = 30.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    scenario TEXT NOT NULL,
    profile TEXT NOT NULL,
    load_key TEXT NOT NULL,
    started_at TEXT NOT NULL,
    passed INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_test ON runs (scenario, profile, load_key, started_at);
CREATE TABLE IF NOT EXISTS reference_marks (
    scenario TEXT NOT NULL,
    profile TEXT NOT NULL,
    load_key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    PRIMARY KEY (scenario, profile, load_key)
);
"""


class HistoryError(RuntimeError):
    """The history cannot be used (unreadable, from a newer kit); one line."""


def utc_now() -> str:
    """``2026-05-01T02:00:03Z``: how the history writes times (sortable as text)."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class HistoryStore:
    """The history file at ``path``; each call opens, does its work and closes the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"HistoryStore({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        return self.path.is_file()

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise HistoryError(f"no run history at {self.path}")
        try:
            with closing(
                sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            ) as db:
                db.row_factory = sqlite3.Row
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise HistoryError(
                        f"{self.path} was written by a newer loadkit (history schema {version})"
                    )
                if write:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        if version < SCHEMA_VERSION:
                            for statement in _SCHEMA.split(";"):
                                if statement.strip():
                                    db.execute(statement)
                            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                        yield db
                        db.execute("COMMIT")
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                else:
                    yield db
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"cannot use the run history {self.path}: {exc}") from None

    # -- writing ----------------------------------------------------------------------------------

    def append(self, record: Mapping[str, Any]) -> bool:
        """Add ``record`` (``run_record.build_record``); False if its run was already recorded."""
        with self._connection(write=True) as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO runs "
                "(run_id, scenario, profile, load_key, started_at, passed, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record["run_id"],
                    record["scenario"],
                    record["profile"],
                    record["load"]["key"],
                    record["started_at"],
                    int(bool(record["verdict"]["passed"])),
                    json.dumps(record, ensure_ascii=False, allow_nan=False),
                ),
            )
            return cursor.rowcount == 1

    def mark_reference(self, run_id: str) -> Mapping[str, Any]:
        """Make the recorded run ``run_id`` the reference of its scenario, profile and load."""
        with self._connection(write=True) as db:
            row = db.execute(
                "SELECT scenario, profile, load_key FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise HistoryError(f"run {run_id[:8]} is not in {self.path}")
            db.execute(
                "INSERT OR REPLACE INTO reference_marks VALUES (?, ?, ?, ?, ?)",
                (row["scenario"], row["profile"], row["load_key"], run_id, utc_now()),
            )
            return dict(row)

    # -- reading ----------------------------------------------------------------------------------

    def records(
        self,
        scenario: str | None = None,
        profile: str | None = None,
        load_key: str | None = None,
        *,
        passed: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Matching records, oldest first (by start time, then by when they were recorded)."""
        if not self.exists:
            return []
        where, args = [], []
        for column, value in (("scenario", scenario), ("profile", profile), ("load_key", load_key)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if passed is not None:
            where.append("passed = ?")
            args.append(int(passed))
        query = "SELECT record FROM runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY started_at, seq"
        with self._connection(write=False) as db:
            return [json.loads(row["record"]) for row in db.execute(query, args)]

    def find(self, run_id_prefix: str) -> list[dict[str, Any]]:
        """Records whose run id starts with ``run_id_prefix``."""
        if not self.exists:
            return []
        pattern = run_id_prefix.replace("\\", "").replace("%", "").replace("_", "") + "%"
        with self._connection(write=False) as db:
            rows = db.execute(
                "SELECT record FROM runs WHERE run_id LIKE ? ORDER BY seq", (pattern,)
            )
            return [json.loads(row["record"]) for row in rows]

    def marked_reference(self, scenario: str, profile: str, load_key: str) -> str | None:
        """The run id marked with ``--save-reference`` for this scenario, profile and load."""
        if not self.exists:
            return None
        with self._connection(write=False) as db:
            try:
                row = db.execute(
                    "SELECT run_id FROM reference_marks "
                    "WHERE scenario = ? AND profile = ? AND load_key = ?",
                    (scenario, profile, load_key),
                ).fetchone()
            except sqlite3.OperationalError:  # a history with no marks table yet
                return None
            return None if row is None else str(row["run_id"])

    def marked_run_ids(self) -> set[str]:
        if not self.exists:
            return set()
        with self._connection(write=False) as db:
            try:
                return {str(r["run_id"]) for r in db.execute("SELECT run_id FROM reference_marks")}
            except sqlite3.OperationalError:
                return set()
