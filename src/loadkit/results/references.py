"""Finding runs in the history: a reference for a new run, and the two sides of a comparison.

A reference is chosen among runs of the same scenario, profile and load (``run_record.load_key``):
the run marked with ``--save-reference``, else the last passing one. ``--reference RUN`` names
one instead: a run folder or a run id. The spread of the last ``spread_runs`` passing runs goes
with it (``core.regression`` says how it is used).

A run is named on the command line as a folder (``results/health-average-20260501-020003``), a
run id or its first characters (``3f2a1c9e``), or ``SCENARIO/PROFILE[@WHICH]``: ``@pass`` (the
default) the last passing run, ``@latest`` the last run whatever its verdict, ``@reference`` the
reference a new run would get.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from loadkit.core.baselines import REGRESSION_METRICS
from loadkit.core.plan import PLAN_FILE, RunPlan
from loadkit.core.reference import ReferenceLookup, ReferenceRun, Spread, rows_by_request, spread_of
from loadkit.results.history import HistoryError, HistoryStore
from loadkit.results.run_record import Provenance, build_record, describe_load, load_key

VERDICT_FILE: Final = "verdict.json"
SELECTORS: Final = ("pass", "latest", "reference")
_RUN_ID: Final = re.compile(r"^[0-9a-f]{4,32}$")
_NAME: Final = re.compile(r"^(?P<scenario>[\w-]+)/(?P<profile>[\w-]+)(?:@(?P<which>\w+))?$")

CHOSEN_MARKED: Final = "marked with --save-reference"
CHOSEN_LAST_PASS: Final = "the last passing run"


class RunNotFound(LookupError):
    """A run that was named cannot be found; one line saying what was searched."""


@dataclass(frozen=True)
class SeriesKey:
    """What makes runs comparable, one series of the history: scenario, profile and load."""

    scenario: str
    profile: str
    load_key: str | None

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> SeriesKey:
        return cls(record["scenario"], record["profile"], (record.get("load") or {}).get("key"))

    def __str__(self) -> str:
        return f"{self.scenario}/{self.profile}"


def _earlier(
    records: Sequence[dict[str, Any]], before: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """``records`` (oldest first) that started before ``before``, which itself is left out."""
    if before is None:
        return list(records)
    ids = [r["run_id"] for r in records]
    if before["run_id"] in ids:
        return list(records[: ids.index(before["run_id"])])
    return [r for r in records if r["started_at"] <= before["started_at"]]


def pick_reference(
    store: HistoryStore, key: SeriesKey, before: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], str] | None:
    """``(record, why)``: the marked reference of ``key``, else its last passing run; only runs
    before ``before`` when it is given."""
    candidates = _earlier(
        store.records(key.scenario, key.profile, key.load_key, passed=True), before
    )
    if not candidates:
        return None
    marked = store.marked_reference(key.scenario, key.profile, key.load_key or "")
    for record in candidates:
        if record["run_id"] == marked:
            return record, CHOSEN_MARKED
    return candidates[-1], CHOSEN_LAST_PASS


def spread_among(
    store: HistoryStore,
    key: SeriesKey,
    requests: Sequence[str],
    spread_runs: int,
    before: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Spread]]:
    """Per request and metric, the spread of the last ``spread_runs`` passing runs of ``key``."""
    if spread_runs <= 0:
        return {}
    passing = _earlier(store.records(key.scenario, key.profile, key.load_key, passed=True), before)
    runs = [rows_by_request(r.get("requests") or ()) for r in passing[-spread_runs:]]
    out: dict[str, dict[str, Spread]] = {}
    for request in requests:
        for metric in REGRESSION_METRICS:
            spread = spread_of(runs, request, metric)
            if spread is not None:
                out.setdefault(request, {})[metric] = spread
    return out


def reference_run(record: Mapping[str, Any], why: str) -> ReferenceRun:
    return ReferenceRun(
        run_id=record["run_id"],
        requests=rows_by_request(record.get("requests") or ()),
        chosen_by=why,
        started_at=record.get("started_at"),
        run_dir=record.get("run_dir"),
        http_client=(record.get("kit") or {}).get("http_client"),
    )


def lookup_reference(
    store: HistoryStore,
    plan: RunPlan,
    explicit: str | None,
    spread_runs: int,
    http_client: str | None = None,
) -> ReferenceLookup:
    """The reference of a new run of ``plan`` on ``http_client``; ``RunNotFound`` when
    ``explicit`` names none."""
    assert plan.scenario is not None
    key = SeriesKey(plan.scenario, plan.profile, load_key(plan))
    if explicit is not None:
        record = resolve_run(explicit, store)
        found: tuple[dict[str, Any], str] | None = (record, "--reference")
    else:
        found = pick_reference(store, key)
    if found is None:
        searched = (
            f"{store.path}: no passing run of {key} with this load ({describe_load(plan)})"
        )  # fmt: skip
        return ReferenceLookup(None, searched, http_client)
    record, why = found
    run = reference_run(record, why)
    spread = spread_among(store, key, list(run.requests), spread_runs)
    return ReferenceLookup(
        replace(run, spread=spread), f"{store.path}: {key}", http_client=http_client
    )


# -- naming runs on the command line ---------------------------------------------------------


def record_of_folder(folder: Path, store: HistoryStore) -> dict[str, Any]:
    """The history's record of the run in ``folder``, or one built from its files."""
    verdict_path = folder / VERDICT_FILE
    try:
        verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunNotFound(f"{folder}: no readable {VERDICT_FILE} ({exc})") from None
    plan = None
    if (folder / PLAN_FILE).is_file():
        try:
            plan = RunPlan.read(folder / PLAN_FILE)
        except (OSError, ValueError, KeyError) as exc:
            raise RunNotFound(f"{folder / PLAN_FILE}: {exc}") from None
        for record in store.find(plan.run_id):
            return record
    else:  # a web UI run's folder has no plan.json: find its record by the folder
        for record in store.records(verdict.get("scenario"), verdict.get("profile")):
            kept = record.get("run_dir")
            if kept and (store.path.parent / kept).resolve() == folder.resolve():
                return record
    if "requests" not in verdict:
        raise RunNotFound(
            f"{verdict_path} has no per-request numbers (written before loadkit kept them)"
        )
    if plan is None:
        plan = RunPlan(verdict.get("scenario"), str(verdict.get("profile")), (), run_id="")
    started_at = verdict.get("started_at") or ""
    record = build_record(
        plan, verdict, Provenance(None), run_dir=str(folder), started_at=started_at
    )
    if not plan.run_id:
        record["run_id"] = folder.name
        record["load"]["key"] = None
    return record


def is_series_name(spec: str) -> bool:
    """Whether ``spec`` is ``SCENARIO/PROFILE[@WHICH]`` rather than a folder."""
    return _NAME.match(spec) is not None and not Path(spec).is_dir()


def resolve_run(
    spec: str, store: HistoryStore, *, other: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The record named by ``spec`` (a folder, a run id, ``SCENARIO/PROFILE[@WHICH]``).

    ``other`` is the run it will be compared with: a name then means a run before it, with the
    same load, and never ``other`` itself.
    """
    path = Path(spec)
    if path.is_dir():
        return record_of_folder(path, store)
    match = _NAME.match(spec)
    if match is not None:
        return _by_name(match["scenario"], match["profile"], match["which"] or "pass", store, other)
    if _RUN_ID.match(spec):
        found = store.find(spec)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise RunNotFound(f"{spec!r} names {len(found)} runs in {store.path}: give more of it")
    raise RunNotFound(
        f"{spec!r} is not a run folder, a run id in {store.path}, or SCENARIO/PROFILE[@WHICH]"
    )


def _by_name(
    scenario: str,
    profile: str,
    which: str,
    store: HistoryStore,
    other: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if which not in SELECTORS:
        raise RunNotFound(f"@{which}: say @{', @'.join(SELECTORS)}")
    load = SeriesKey.of(other).load_key if other is not None else None
    key = SeriesKey(scenario, profile, load)
    if which == "reference":
        found = pick_reference(store, key, other)
        if found is not None:
            return found[0]
        what = "passing run"
    else:
        records = store.records(scenario, profile, load, passed=True if which == "pass" else None)
        records = _earlier(records, other)
        if records:
            return records[-1]
        what = "passing run" if which == "pass" else "run"
    before = " before the run it is compared with" if other is not None else ""
    same = " with the same load" if load else ""
    raise RunNotFound(f"no {what} of {scenario}/{profile}{same}{before} in {store.path}")


__all__ = ["HistoryError", "RunNotFound", "lookup_reference", "resolve_run"]
