"""The run history survives what real runs do to it: writers at the same moment, writers killed.

Every writer here is its own process (as two ``loadkit run`` finishing at once are), and crashes
are SIGKILL: no handler, no cleanup, the file as the kernel left it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loadkit.results.history import HistoryError, HistoryStore

WRITER_PRELUDE = """
import os, sys, time, uuid
from pathlib import Path
from loadkit.results.history import HistoryStore

def record(run_id, payload=""):
    return {"run_id": run_id, "scenario": "health", "profile": "smoke", "load": {"key": "k"},
            "started_at": "2026-01-01T00:00:00Z", "verdict": {"passed": True}, "pad": payload}

store = HistoryStore(Path(sys.argv[1]))
"""


def writer(code: str, *args: str) -> list[str]:
    prelude = textwrap.dedent(WRITER_PRELUDE)
    return [sys.executable, "-c", prelude + textwrap.dedent(code), *args]


def record(run_id: str, *, passed: bool = True, started_at: str = "2026-01-01T00:00:00Z") -> dict:
    return {
        "run_id": run_id,
        "scenario": "health",
        "profile": "smoke",
        "load": {"key": "k"},
        "started_at": started_at,
        "verdict": {"passed": passed},
    }


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def test_writers_finishing_at_once_lose_no_record(tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite"
    go = tmp_path / "go"
    processes, per_process = 4, 40
    code = """
        go = Path(sys.argv[2])
        while not go.exists():
            time.sleep(0.001)
        for i in range(int(sys.argv[3])):
            assert store.append(record(f"{sys.argv[4]}-{i}"))
    """
    writers = [
        subprocess.Popen(writer(code, str(history), str(go), str(per_process), f"w{n}"))
        for n in range(processes)
    ]
    time.sleep(1.0)  # every interpreter started and waiting
    go.touch()
    for process in writers:
        assert process.wait(timeout=60) == 0
    ids = {r["run_id"] for r in HistoryStore(history).records()}
    assert ids == {f"w{n}-{i}" for n in range(processes) for i in range(per_process)}
    assert integrity(history) == "ok"


def test_a_writer_killed_inside_its_transaction_leaves_the_history_as_it_was(
    tmp_path: Path,
) -> None:
    history = tmp_path / "history.sqlite"
    store = HistoryStore(history)
    store.append(record("before"))
    code = """
        import signal
        with store._connection(write=True) as db:
            db.execute(
                "INSERT INTO runs (run_id, scenario, profile, load_key, started_at, passed, record)"
                " VALUES ('torn', 'health', 'smoke', 'k', 'x', 1, ?)", ("x" * 2_000_000,))
            os.kill(os.getpid(), signal.SIGKILL)
    """
    done = subprocess.run(writer(code, str(history)), timeout=60)
    assert done.returncode == -signal.SIGKILL
    # It died with its change half made: the journal to undo it is still there.
    assert (tmp_path / "history.sqlite-journal").exists()
    assert [r["run_id"] for r in store.records()] == ["before"]
    assert integrity(history) == "ok"
    assert store.append(record("after"))
    assert [r["run_id"] for r in store.records()] == ["before", "after"]


def test_a_writer_killed_at_any_moment_keeps_every_record_it_finished(tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite"
    code = """
        payload = "x" * 300_000  # big records: the kill lands inside a write more often
        for i in range(100_000):
            run_id = f"{sys.argv[2]}-{i}"
            store.append(record(run_id, payload))
            print(run_id, flush=True)
    """
    acknowledged: list[str] = []
    for round_, delay_s in enumerate((0.4, 0.7, 1.1)):
        process = subprocess.Popen(
            writer(code, str(history), f"r{round_}"), stdout=subprocess.PIPE, text=True
        )
        time.sleep(delay_s)
        process.send_signal(signal.SIGKILL)
        out, _ = process.communicate(timeout=30)
        acknowledged += out.split()
        kept = [r["run_id"] for r in HistoryStore(history).records()]
        assert integrity(history) == "ok"
        # Every write that returned is kept; at most the one in flight also made it.
        assert set(acknowledged) <= set(kept)
        assert len(kept) - len(acknowledged) in (0, 1), round_
        acknowledged = kept
    assert len(acknowledged) > 3  # the writer did get work done between kills


def test_a_run_is_recorded_once_however_often_it_is_written(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    assert store.append(record("a"))
    assert not store.append(record("a") | {"verdict": {"passed": False}})
    (kept,) = store.records()
    assert kept["verdict"]["passed"] is True


def test_records_come_oldest_first_and_filter_by_series(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    store.append(record("late", started_at="2026-01-03T00:00:00Z"))
    store.append(record("early", started_at="2026-01-01T00:00:00Z", passed=False))
    store.append(record("other") | {"profile": "average"})
    assert [r["run_id"] for r in store.records("health", "smoke")] == ["early", "late"]
    assert [r["run_id"] for r in store.records("health", "smoke", passed=True)] == ["late"]
    assert [r["run_id"] for r in store.find("ear")] == ["early"]


def test_a_mark_names_one_reference_per_series(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    for run_id in ("a", "b"):
        store.append(record(run_id))
    store.mark_reference("a")
    store.mark_reference("b")
    assert store.marked_reference("health", "smoke", "k") == "b"
    with pytest.raises(HistoryError, match="is not in"):
        store.mark_reference("nope")


def test_a_history_from_a_newer_kit_is_refused_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    HistoryStore(path).append(record("a"))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    before = path.read_bytes()
    with pytest.raises(HistoryError, match="newer loadkit"):
        HistoryStore(path).append(record("b"))
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_history_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    path.write_text("not a database, " * 100)
    with pytest.raises(HistoryError, match="cannot use the run history"):
        HistoryStore(path).records()


def test_the_history_never_imports_locust() -> None:
    """The parent records runs and never imports Locust; neither does the history."""
    code = "import sys; import loadkit.results.run_record, loadkit.results.references; "
    code += "print(json.dumps(sorted(m for m in sys.modules if m.startswith('locust'))))"
    done = subprocess.run(
        [sys.executable, "-c", "import json; " + code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
