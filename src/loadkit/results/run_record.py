"""One finished run as a history record: what ran, against what, how it ended, what it measured.

Built from the run's plan and its ``verdict.json`` document, by whichever process knows the run
is over: the ``loadkit`` parent for ``loadkit run`` and ``run-all`` (it always outlives Locust,
and writes a verdict of its own when Locust died without one), the Locust process for runs no
parent waits for (the web UI, plain ``locust -f``). Exactly one of them records a run.

Nothing secret goes in: the target is its scheme, host and port (no user, password, path or
query), and the key is never in the plan or the verdict.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from loadkit import __version__
from loadkit.core.plan import RunPlan
from loadkit.core.reference import rows_by_request
from loadkit.core.verdict import FAILED, REGRESSION_TABLE
from loadkit.results.history import HistoryStore, utc_now

RECORD_SCHEMA: Final = "loadkit.record/1"
#: The kit's source tree (for its git commit, when it is a checkout).
_KIT_ROOT: Final = Path(__file__).resolve().parents[3]
GIT_TIMEOUT_S: Final = 5.0


def load_key(plan: RunPlan) -> str:
    """Twelve hex digits that are equal exactly when two runs had the same load: the same
    effective stages (scales applied), run time and arrival rate. Runs are compared, and a
    reference is chosen, only among runs with the same key."""
    arrival = plan.arrival
    load = {
        "stages": [[s.duration_s, s.target_users] for s in plan.stages],
        "run_time_s": plan.run_time_s,
        "arrival": None
        if arrival is None
        else {
            "rate_stages": [[s.duration_s, s.target_rate_per_s] for s in arrival.rate_stages],
            "rate_per_s": arrival.rate_per_s,
            "max_in_flight": arrival.max_in_flight,
        },
    }
    canonical = json.dumps(load, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def describe_load(plan: RunPlan) -> str:
    """``30s:1 60s:10``-style stages (durations after --time-scale), and the rate if any."""
    stages = " ".join(f"{s.duration_s:g}s:{s.target_users}" for s in plan.stages)
    text = stages or "no stages"
    if plan.run_time_s is not None:
        text += f", -t {plan.run_time_s:g}s"
    arrival = plan.arrival
    if arrival is not None:
        if arrival.rate_stages:
            text += ", rate " + " ".join(
                f"{s.duration_s:g}s:{s.target_rate_per_s:g}/s" for s in arrival.rate_stages
            )
        elif arrival.rate_per_s is not None:
            text += f", rate {arrival.rate_per_s:g}/s"
    return text


def target_origin(url: str | None) -> str | None:
    """``https://staging.example.com:8443``: scheme, host and port only (no user or password,
    no path or query)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" if parts.scheme and host else None


@functools.lru_cache(maxsize=1)
def kit_commit() -> str | None:
    """The kit's git commit (``-dirty`` when tracked files changed); None outside a checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(_KIT_ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(_KIT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if head and dirty else head or None


@functools.lru_cache(maxsize=1)
def _locust_version() -> str | None:
    try:
        return metadata.version("locust")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Provenance:
    """Which kit measured which platform: the versions a trend must be read against."""

    target_url: str | None
    target_version: str | None = None
    #: ``PlatformUser``'s client (``fast``/``lean``): the same platform loads the generator
    #: differently under each, so a trend must know which one measured it.
    http_client: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kit": {
                "version": __version__,
                "commit": kit_commit(),
                "locust": _locust_version(),
                "http_client": self.http_client,
            },
            "target": {"url": target_origin(self.target_url), "version": self.target_version},
        }


def relative_run_dir(run_dir: Path | None, history_path: Path) -> str | None:
    """The run folder as the record names it: relative to the history's folder when inside it
    (so a history moved with its folders, as CI does, still finds them), else absolute."""
    if run_dir is None:
        return None
    base = history_path.resolve().parent
    resolved = run_dir.resolve()
    try:
        return str(resolved.relative_to(base))
    except ValueError:
        return str(resolved)


def build_record(
    plan: RunPlan,
    verdict: Mapping[str, Any],
    provenance: Provenance,
    *,
    run_dir: str | None,
    started_at: str,
) -> dict[str, Any]:
    """The record of one finished run; ``verdict`` is its ``verdict.json`` document and
    ``started_at`` the start time to use when the verdict has none (nothing was measured)."""
    criteria = [
        {
            "label": c.get("label", f"criteria[{c.get('index')}]"),
            "describe": c.get("describe"),
            "table": c.get("table", "criteria"),
            "status": c.get("status"),
            "measured": c.get("measured"),
        }
        for c in verdict.get("criteria", ())
    ]
    regressions = sum(c["table"] == REGRESSION_TABLE and c["status"] == FAILED for c in criteria)
    reference = (verdict.get("reference") or {}).get("run") or {}
    return {
        "schema": RECORD_SCHEMA,
        "run_id": plan.run_id,
        "recorded_at": utc_now(),
        "started_at": verdict.get("started_at") or started_at,
        "scenario": plan.scenario or verdict.get("scenario") or "custom",
        "profile": plan.profile,
        "load": {
            "key": load_key(plan),
            "description": describe_load(plan),
            "time_scale": plan.time_scale,
            "user_scale": plan.user_scale,
            "planned_duration_s": plan.planned_duration_s,
        },
        "run_dir": run_dir,
        **provenance.to_dict(),
        "baseline": verdict.get("baseline"),
        "state": verdict.get("state"),
        "state_reason": verdict.get("state_reason", ""),
        "verdict": {
            "passed": bool(verdict.get("passed")),
            "exit_code": verdict.get("exit_code"),
            "criteria_held": verdict.get("criteria_held"),
            "summary": verdict.get("summary"),
            "criteria": criteria,
            "regressions": regressions,
        },
        "reference_run_id": reference.get("run_id"),
        "window": verdict.get("window"),
        "totals": verdict.get("totals"),
        "requests": list(rows_by_request(verdict.get("requests") or ()).values()),
        "gauges": verdict.get("gauges") or {},
        "counters": verdict.get("counters") or {},
        "data": verdict.get("data"),
    }


def record_run(
    history_path: Path,
    plan: RunPlan,
    verdict: Mapping[str, Any],
    provenance: Provenance,
    *,
    run_dir: Path | None,
    started_at: str,
    save_reference: bool = False,
) -> str:
    """Add the run to the history (and mark it as the reference of its scenario, profile and
    load when asked and it passed); returns one line saying what was done. Raises
    ``HistoryError`` (or ``OSError``) when the history cannot be written."""
    store = HistoryStore(history_path)
    record = build_record(
        plan,
        verdict,
        provenance,
        run_dir=relative_run_dir(run_dir, history_path),
        started_at=started_at,
    )
    added = store.append(record)
    text = f"run {plan.run_id[:8]} {'recorded in' if added else 'was already in'} {history_path}"
    if save_reference:
        if record["verdict"]["passed"]:
            store.mark_reference(plan.run_id)
            text += f"; now the reference of {record['scenario']}/{record['profile']} with its load"
        else:
            text += "; not marked as the reference: the run did not pass"
    return text
