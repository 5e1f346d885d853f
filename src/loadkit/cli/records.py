"""The parent's part of keeping records: the reference goes into the plan, the record comes out.

``loadkit run`` looks the reference up before Locust starts (a ``--reference`` that names no run
is bad input: exit 2, nothing sent), so the Locust process that judges gets the reference's
numbers in ``plan.json`` and never reads the history itself. When Locust has exited and a
verdict is sure to exist (Locust's, or the parent's own when Locust died without one), the
parent records the run: it is the one process that always knows the run is over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from loadkit.cli.planning import UsageError
from loadkit.core.plan import RunPlan
from loadkit.results.history import HistoryError, HistoryStore
from loadkit.results.references import RunNotFound, lookup_reference
from loadkit.results.run_record import Provenance, record_run
from loadkit.settings import Settings

VERDICT_FILE = "verdict.json"
#: The Settings field ``history_file`` as an environment variable (for a child process).
HISTORY_ENV = "LOADKIT_HISTORY_FILE"


def history_env(settings: Settings) -> dict[str, str]:
    """What a Locust process that records its own runs (the web UI) needs to find the history
    the parent would use, whatever its working directory and ``--results-dir``."""
    return {HISTORY_ENV: str(settings.history_path.resolve())}


def needs_reference(plan: RunPlan) -> bool:
    """Whether a ``[[regression]]`` criterion of the plan's baseline applies to its profile."""
    baseline = plan.baseline
    return baseline is not None and any(r.applies_to(plan.profile) for r in baseline.regression)


def with_reference(plan: RunPlan, settings: Settings, explicit: str | None) -> RunPlan:
    """``plan`` with its reference looked up in the history, when something will judge it."""
    if explicit is None and not needs_reference(plan):
        return plan
    spread_runs = plan.baseline.regression_policy.spread_runs if plan.baseline else 0
    try:
        lookup = lookup_reference(
            HistoryStore(settings.history_path), plan, explicit, spread_runs, settings.http_client
        )
    except (RunNotFound, HistoryError) as exc:
        raise UsageError(f"--reference: {exc}" if explicit else str(exc)) from None
    return replace(plan, reference=lookup)


def keep_record(
    settings: Settings,
    plan: RunPlan,
    run_dir: Path,
    target_url: str,
    started_at: str,
    announce: Callable[[str], None],
    *,
    save_reference: bool = False,
) -> None:
    """Record the finished run in the history; a history that cannot be written is said, and
    changes nothing about the run's verdict or exit code."""
    try:
        verdict = json.loads((run_dir / VERDICT_FILE).read_text(encoding="utf-8"))
        message = record_run(
            settings.history_path,
            plan,
            verdict,
            Provenance(target_url, settings.target_version, settings.http_client),
            run_dir=run_dir,
            started_at=started_at,
            save_reference=save_reference,
        )
    except (OSError, ValueError, HistoryError) as exc:
        announce(f"the run was not recorded in the history: {exc}")
        return
    announce(message)
