"""Records of runs no parent waits for: the web UI's, and plain ``locust -f`` with a results folder.

``loadkit run`` looks up the reference and records the run in its own process (``cli.records``),
so a Locust process started with a plan file does neither. Without one, each start of a test is
a run of its own: at ``test_start`` (after the run control has fixed the run's plan) the
reference of the run's scenario, profile and load is looked up when a ``[[regression]]``
criterion will judge it; at ``test_stop`` (after the run control has judged and written the
verdict) the run is recorded, once, if it has a results folder.

The history is ``LOADKIT_HISTORY_FILE`` (``loadkit ui`` sets it to the one ``loadkit run`` would
use), else ``history.sqlite`` beside the session's folder (``--results-dir``): for
``locust --results-dir results/x`` that is ``results/history.sqlite``, where ``loadkit run``
keeps it too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from locust.env import Environment

from loadkit.core.reference import ReferenceLookup
from loadkit.plugin.context import KitContext
from loadkit.results.history import HISTORY_FILE, HistoryError, HistoryStore, utc_now
from loadkit.results.references import RunNotFound, lookup_reference
from loadkit.results.run_record import Provenance, record_run
from loadkit.results.verdict_files import verdict_to_dict

logger = logging.getLogger("loadkit.records")


def history_path(ctx: KitContext) -> Path | None:
    """Where this session keeps its records; None without a results folder (nothing kept)."""
    if ctx.settings.history_file is not None:
        return ctx.settings.history_file
    if ctx.results_root is None:
        return None
    return ctx.results_root.resolve().parent / HISTORY_FILE


def install_records(environment: Environment, ctx: KitContext) -> None:
    """Look up references and record runs for a session without a parent; call it from
    ``init`` after the run control subscribed (its listeners must run first)."""
    if ctx.planned is not None:
        return
    recorded: set[str] = set()
    started_at: dict[str, str] = {}

    def on_test_start(**_: Any) -> None:
        plan = ctx.run
        if plan is None:
            return
        started_at[plan.run_id] = utc_now()
        baseline = plan.baseline
        if baseline is None or plan.scenario is None:
            return
        if not any(rule.applies_to(plan.profile) for rule in baseline.regression):
            return
        path = history_path(ctx)
        if path is None:
            ctx.run = replace(
                plan, reference=ReferenceLookup(None, "no results folder, no history")
            )
            return
        store = HistoryStore(path)
        spread_runs = baseline.regression_policy.spread_runs
        try:
            lookup = lookup_reference(store, plan, None, spread_runs, ctx.settings.http_client)
        except (HistoryError, RunNotFound) as exc:
            lookup = ReferenceLookup(None, str(exc))
        ctx.run = replace(plan, reference=lookup)

    def on_test_stop(**_: Any) -> None:
        control, plan, run_dir, path = ctx.control, ctx.run, ctx.run_dir, history_path(ctx)
        if control is None or control.verdict is None or plan is None:
            return
        if run_dir is None or path is None:
            return
        if plan.run_id in recorded:
            return
        recorded.add(plan.run_id)
        try:
            message = record_run(
                path,
                plan,
                verdict_to_dict(control.verdict),
                Provenance(environment.host, ctx.settings.target_version, ctx.settings.http_client),
                run_dir=run_dir,
                started_at=started_at.get(plan.run_id) or utc_now(),
            )
        except (HistoryError, OSError) as exc:
            logger.warning("loadkit: the run was not recorded in the history: %s", exc)
            return
        logger.info("loadkit: %s", message)

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_test_stop)
