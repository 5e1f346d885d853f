"""The verdict for people (console summary) and for machines (verdict.json, JUnit XML).

Kept apart from ``verdict`` so the judgement stays pure and each output can change on its own.
The JSON layout is versioned (``"schema": "loadkit.verdict/1"``) and documented in
docs/baselines.md: add keys freely, but rename or remove one only with a new schema version.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from loadkit.core.baselines import AGGREGATED_KEY, Reference, format_number
from loadkit.core.reference import requests_section
from loadkit.core.verdict import (
    FAILED,
    NO_DATA,
    PASSED,
    REGRESSION_TABLE,
    SKIPPED,
    CriterionResult,
    Transfer,
    Verdict,
)
from loadkit.results.queue_section import queue_to_dict, render_queue

VERDICT_SCHEMA: Final = "loadkit.verdict/1"

_MARKS: Final = {PASSED: "✓", FAILED: "✗", NO_DATA: "✗", SKIPPED: "–"}
_NAME_WIDTH: Final = 28
_MEASURED_WIDTH: Final = 12
_THRESHOLD_WIDTH: Final = 14


def _measured_text(result: CriterionResult) -> str:
    if result.status == SKIPPED:
        return "skipped"
    if result.measured is None:
        return "no data"
    if not math.isfinite(result.measured):
        return "never" if result.criterion.metric == "recovery" else str(result.measured)
    return result.criterion.format(result.measured)


def _reference_text(ref: Reference) -> str:
    figures = []
    if ref.target is not None:
        figures.append(f"target {format_number(ref.target)}")
    if ref.maximum is not None:
        figures.append(f"maximum {format_number(ref.maximum)}")
    text = f"{ref.name}: {', '.join(figures)}{' ' + ref.unit if ref.unit else ''}"
    return f"{text} — {ref.note}" if ref.note else text


def render_console(verdict: Verdict) -> str:
    """A k6-style end-of-run summary: one line per criterion, grouped by request, then the verdict.

    ✓ passed, ✗ failed or no data, – skipped (not judged in this profile).
    """
    source = f" ({verdict.baseline_path})" if verdict.baseline_path else ""
    lines = [
        f"loadkit verdict: scenario {verdict.scenario}, profile {verdict.profile}{source}",
        f"run: {_state_text(verdict)}",
        f"rates measured over: {verdict.window.description}",
    ]
    subjects: dict[str, list[CriterionResult]] = {}
    for result in verdict.results:
        subjects.setdefault(result.criterion.subject, []).append(result)
    for subject, results in subjects.items():
        lines.append("")
        lines.append(f"  {subject}")
        for r in results:
            c = r.criterion
            name = f"{c.metric} ".ljust(_NAME_WIDTH, ".")
            measured = _measured_text(r).ljust(_MEASURED_WIDTH)
            threshold = f"{c.op} {c.format(c.threshold)}".ljust(_THRESHOLD_WIDTH)
            explained = r.status in (SKIPPED, NO_DATA) or r.table == REGRESSION_TABLE
            notes = [r.reason] if explained else []
            if r.detail and r.status in (PASSED, FAILED):
                notes.append(r.detail)
            if c.abort_on_fail:
                notes.append("aborts the run when it fails")
            line = f"    {_MARKS[r.status]} {name} {measured} {threshold}"
            lines.append(f"{line} {'; '.join(notes)}".rstrip())
    t = verdict.totals
    lines.append("")
    if t.rps is not None:
        rate = f"{format_number(t.rps)}/s"
    else:
        rate = "no rate (window under 1 s)" if t.requests else "no rate (nothing was measured)"
    lines.append(
        f"  totals: {t.requests} requests, {t.failures} failed "
        f"({format_number(t.error_rate * 100)}%), {rate}"
    )
    if verdict.queue is not None:
        lines.extend(render_queue(verdict.queue))
    if verdict.transfer:
        lines.append("")
        for data in verdict.transfer:
            name = "data" if data.name == AGGREGATED_KEY else f"  {data.name}"
            lines.append(f"  {name}: {_transfer_text(data)}")
    if verdict.references:
        lines.append("")
        lines.append("  reference figures (shown, not judged):")
        lines.extend(f"    · {_reference_text(ref)}" for ref in verdict.references)
    if verdict.notes:
        lines.append("")
        lines.extend(f"  note: {note}" for note in verdict.notes)
    lines.append("")
    lines.append(verdict.summary)
    return "\n".join(lines) + "\n"


def format_bytes(amount: float) -> str:
    """``12.3 MB``: decimal units, as k6 prints data_received."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(amount) >= size:
            return f"{amount / size:.1f} {unit}"
    return f"{amount:.0f} B"


def _transfer_text(data: Transfer) -> str:
    def rate(per_s: float | None) -> str:
        return "" if per_s is None else f" ({format_bytes(per_s)}/s)"

    return (
        f"received {format_bytes(data.bytes_received)}{rate(data.received_per_s)}, "
        f"sent {format_bytes(data.bytes_sent)}{rate(data.sent_per_s)}"
    )


def _state_text(verdict: Verdict) -> str:
    """``complete`` or ``stopped early — web UI stop at 22.8 s of 45 s``."""
    state = "running (live)" if verdict.live else verdict.state.value
    return f"{state} — {verdict.state_reason}" if verdict.state_reason else state


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    """The ``loadkit.verdict/1`` document (what ``write_verdict_json`` writes)."""
    criteria = []
    for r in verdict.results:
        c = r.criterion
        criteria.append(
            {
                "index": r.index,
                "request": c.request,
                "gauge": c.gauge,
                "counter": c.counter,
                "platform": c.platform,
                "labels": dict(c.labels) if c.labels is not None else None,
                "during": c.during,
                "tolerance": c.tolerance_fraction if c.metric == "recovery" else None,
                "metric": c.metric,
                "op": c.op,
                "threshold": c.threshold,
                "unit": c.unit,
                "threshold_text": c.threshold_text,
                "profiles": list(c.profiles) if c.profiles is not None else None,
                "abort_on_fail": c.abort_on_fail,
                "source": c.source,
                "measured": _finite(r.measured),
                "status": r.status,
                "reason": r.reason,
                "table": r.table,
                "label": r.label,
                "describe": c.describe(),
                **_regression_keys(r),
            }
        )
    t = verdict.totals
    return {
        "schema": VERDICT_SCHEMA,
        "scenario": verdict.scenario,
        "profile": verdict.profile,
        "baseline": verdict.baseline_path,
        "window": {
            "start_s": verdict.window.start_s,
            "end_s": verdict.window.end_s,
            "description": verdict.window.description,
        },
        "criteria": criteria,
        "totals": {
            "requests": t.requests,
            "failures": t.failures,
            "error_rate": _finite(t.error_rate),
            "rps": _finite(t.rps),
            "p95_ms": _finite(t.p95_ms),
        },
        "data": _transfer_dict(verdict.transfer),
        "references": [ref.model_dump(mode="json") for ref in verdict.references],
        "queue": queue_to_dict(verdict.queue),
        "state": "running" if verdict.live else verdict.state.value,
        "state_reason": verdict.state_reason,
        "live": verdict.live,
        "criteria_held": verdict.criteria_held,
        "aborted": verdict.aborted,
        "interrupted": verdict.interrupted,
        "notes": list(verdict.notes),
        "passed": verdict.passed,
        "exit_code": verdict.exit_code,
        "summary": verdict.summary,
        "started_at": _iso_utc(verdict.started_at_s),
        "requests": requests_section(verdict.metrics),
        "gauges": {name: _finite_values(asdict(g)) for name, g in verdict.gauges.items()},
        "counters": _finite_values(verdict.counters),
        "reference": _reference_keys(verdict),
    }


def _finite_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Strict JSON: a non-finite number becomes null."""
    return {k: _finite(v) if isinstance(v, float) else v for k, v in values.items()}


def _iso_utc(epoch_s: float | None) -> str | None:
    if epoch_s is None or epoch_s <= 0:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _regression_keys(result: CriterionResult) -> dict[str, Any]:
    """What a ``[[regression]]`` result was judged against (nothing for fixed criteria)."""
    if result.table != REGRESSION_TABLE:
        return {}
    check: Any = result.criterion
    spread = check.spread
    return {
        "reference_value": _finite(check.reference_value),
        "reference_run": check.reference_run,
        "spread": None
        if spread is None
        else {"low": spread.low, "high": spread.high, "runs": spread.runs},
    }


def _reference_keys(verdict: Verdict) -> dict[str, Any] | None:
    """The reference run of the ``[[regression]]`` criteria: who it is, not its numbers."""
    lookup = verdict.reference
    if lookup is None:
        return None
    run = lookup.run
    found = None
    if run is not None:
        found = {
            "run_id": run.run_id,
            "chosen_by": run.chosen_by,
            "started_at": run.started_at,
            "run_dir": run.run_dir,
        }
    return {"searched": lookup.searched, "run": found}


def _transfer_dict(transfer: tuple[Transfer, ...]) -> dict[str, Any]:
    """``{"total": {...}, "requests": {"GET /health": {...}}}``: bytes and bytes per second."""

    def entry(data: Transfer) -> dict[str, Any]:
        return {
            "bytes_received": data.bytes_received,
            "bytes_sent": data.bytes_sent,
            "received_per_s": _finite(data.received_per_s),
            "sent_per_s": _finite(data.sent_per_s),
        }

    total = next((data for data in transfer if data.name == AGGREGATED_KEY), None)
    return {
        "total": None if total is None else entry(total),
        "requests": {d.name: entry(d) for d in transfer if d.name != AGGREGATED_KEY},
    }


def write_verdict_json(verdict: Verdict, path: str | os.PathLike[str]) -> Path:
    """Write ``verdict.json`` (UTF-8, strict JSON: no NaN); returns the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(verdict_to_dict(verdict), indent=2, ensure_ascii=False, allow_nan=False)
    out.write_text(text + "\n", encoding="utf-8")
    return out


def junit_tree(verdict: Verdict) -> ET.ElementTree[ET.Element]:
    """One testsuite: one testcase per criterion, and "run completed", failed unless it did."""
    suite_name = f"loadkit.{verdict.scenario}.{verdict.profile}"
    suite = ET.Element("testsuite", name=suite_name)
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("scenario", verdict.scenario),
        ("profile", verdict.profile),
        ("window", verdict.window.description),
        ("baseline", verdict.baseline_path or ""),
    ):
        ET.SubElement(props, "property", name=key, value=value)
    tests = failures = skipped = 0
    for r in verdict.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=suite_name,
            name=f"{r.label} {r.criterion.describe()}",
        )
        tests += 1
        if r.status == SKIPPED:
            skipped += 1
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.status in (FAILED, NO_DATA):
            failures += 1
            failure = ET.SubElement(case, "failure", message=r.reason, type=r.status)
            failure.text = f"{r.criterion.describe()}: {r.reason}"
    case = ET.SubElement(suite, "testcase", classname=suite_name, name="run completed")
    tests += 1
    if not verdict.complete:
        failures += 1
        ET.SubElement(case, "failure", message=_state_text(verdict), type=verdict.state.value)
    counts = {
        "tests": str(tests),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
    }
    suite.attrib.update(counts)
    root = ET.Element("testsuites", {"name": "loadkit", **counts})
    root.append(suite)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit_xml(verdict: Verdict, path: str | os.PathLike[str]) -> Path:
    """Write the verdict as JUnit XML for CI test reports; returns the path written."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(verdict).write(out, encoding="utf-8", xml_declaration=True)
    return out
