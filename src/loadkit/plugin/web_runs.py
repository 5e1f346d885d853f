"""The session's runs, listed and served read-only: every start of a web UI session is kept.

A web UI session keeps each run in its own folder (``<session>/<n>-<profile>/``, made by
``RunControl``). ``/loadkit/runs`` lists them, newest first, each with its state and verdict
headline (from its ``verdict.json``; the run in progress says so) and its files;
``/loadkit/runs/<folder>/<file>`` serves one file of one run, nothing else: only the session's
run folders, only the files directly in them, no listing of anything above.

Files are served as written, except that text passes through the secret mask on its way out
(a run's report shows the host, which may carry a password, until the files are scrubbed at
exit), and every answer is sandboxed (``Content-Security-Policy: sandbox``): a run's HTML report
runs its scripts in an origin of its own, with no access to the UI's session or its routes.
"""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from typing import Any, Final

from flask import Response, abort, jsonify, send_file
from locust.env import Environment

from loadkit.plugin.context import context_of
from loadkit.plugin.redaction import redactor_of
from loadkit.plugin.web_routes import add_kit_route, kit_path

RUNS_ROUTE: Final = "/loadkit/runs"
RUN_FOLDER: Final = re.compile(r"(?P<number>[1-9]\d*)-(?P<profile>[A-Za-z0-9_]+)")
#: Served as text (masked), with these types; anything else is sent as bytes.
TEXT_TYPES: Final = {
    ".json": "application/json",
    ".jsonl": "text/plain",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".csv": "text/csv",
    ".log": "text/plain",
    ".html": "text/html",
}
#: Larger text files are not read into memory to be masked (a day-long run's series).
MAX_TEXT_BYTES: Final = 50_000_000
SANDBOX_HEADERS: Final = {
    "Content-Security-Policy": "sandbox allow-scripts",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def register_runs(environment: Environment) -> None:
    """``/loadkit/runs`` and ``/loadkit/runs/<folder>/<file>`` under the base path."""
    web_ui = environment.web_ui
    assert web_ui is not None

    def runs() -> Response:
        root = context_of(environment).results_root
        return jsonify(
            {
                "folder": str(root) if root is not None else None,
                "runs": list_runs(root, kit_path(web_ui, RUNS_ROUTE), _current(environment)),
            }
        )

    def run_file(folder: str, name: str) -> Response:
        root = context_of(environment).results_root
        path = run_file_path(root, folder, name)
        if path is None:
            abort(404)
        return _serve(path, environment)

    add_kit_route(web_ui, RUNS_ROUTE, "loadkit_runs", runs)
    add_kit_route(web_ui, RUNS_ROUTE + "/<folder>/<name>", "loadkit_run_file", run_file)


def list_runs(
    root: Path | None, files_url: str, current: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every run folder of the session, newest first: number, profile, state, headline, files.

    ``current``: ``(folder, state)`` of the run in progress, whose ``verdict.json`` is not
    written yet (or is the previous one's: never, a folder belongs to one run).
    """
    if root is None or not root.is_dir():
        return []
    runs = []
    for folder in root.iterdir():
        match = RUN_FOLDER.fullmatch(folder.name)
        if match is None or not folder.is_dir():
            continue
        verdict = _read_verdict(folder / "verdict.json")
        in_progress = current is not None and current[0] == folder.name and verdict is None
        runs.append(
            {
                "number": int(match["number"]),
                "folder": folder.name,
                "profile": match["profile"],
                "state": current[1] if in_progress and current else _state(verdict),
                "summary": (verdict or {}).get("summary") or ("" if in_progress else "no verdict"),
                "passed": (verdict or {}).get("passed"),
                "files": [
                    {"name": f.name, "url": f"{files_url}/{folder.name}/{f.name}"}
                    for f in sorted(folder.iterdir())
                    if f.is_file() and not f.name.startswith(".")
                ],
            }
        )
    return sorted(runs, key=lambda run: run["number"], reverse=True)


def run_file_path(root: Path | None, folder: str, name: str) -> Path | None:
    """The file ``name`` directly inside the session's run folder ``folder``, or None."""
    if root is None or RUN_FOLDER.fullmatch(folder) is None:
        return None
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        return None
    path = root / folder / name
    return path if path.is_file() and not path.is_symlink() else None


def _current(environment: Environment) -> tuple[str, str] | None:
    ctx = context_of(environment)
    control = ctx.control
    if control is None or ctx.run_dir is None or control.verdict is not None:
        return None
    lifecycle = control.lifecycle
    running = lifecycle is not None and not lifecycle.ended
    return ctx.run_dir.name, "running" if running else "stopping"


def _read_verdict(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _state(verdict: dict[str, Any] | None) -> str:
    return str(verdict.get("state") or "") if verdict is not None else "no verdict"


def _serve(path: Path, environment: Environment) -> Response:
    mimetype = TEXT_TYPES.get(path.suffix)
    if mimetype is not None and path.stat().st_size <= MAX_TEXT_BYTES:
        text = path.read_text(encoding="utf-8", errors="replace")
        response = Response(redactor_of(environment).mask(text), mimetype=mimetype)
    elif mimetype is not None:
        abort(413)
    else:
        guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        response = send_file(path, mimetype=guessed, max_age=0)
    response.headers.update(SANDBOX_HEADERS)
    return response
