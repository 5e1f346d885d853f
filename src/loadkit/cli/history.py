"""``loadkit history SCENARIO/PROFILE``: the recorded runs of one series, as a table and a chart.

A series is one scenario, one profile and one load (``run_record.load_key``): by default the
load of the newest run, since a trend across different loads shows the loads, not the platform.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadkit.cli.compare import add_history_option
from loadkit.core.baselines import format_number
from loadkit.core.exit_codes import EXIT_INVALID, EXIT_PASSED
from loadkit.results.history import HistoryError, HistoryStore
from loadkit.results.history_chart import FORMATS, TrendPoint, write_chart
from loadkit.settings import load_settings

DEFAULT_LAST = 30


def add_history_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "history",
        help="the trend of a scenario/profile over the recorded runs (table, chart)",
        description="The recorded runs of one scenario, profile and load, oldest first: "
        "verdict, P95, P99, rps and errors of the HTTP total, with failed runs, regressions "
        "and the marked reference flagged.",
    )
    parser.add_argument("series", metavar="SCENARIO[/PROFILE]")
    parser.add_argument(
        "--last", type=int, default=DEFAULT_LAST, help=f"runs shown (default {DEFAULT_LAST})"
    )
    parser.add_argument(
        "--all-loads",
        action="store_true",
        help="every load of the profile (default: the newest run's load only)",
    )
    parser.add_argument(
        "--chart", type=Path, help=f"also draw the trend into this file ({', '.join(FORMATS)})"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the rows as JSON")
    output.add_argument("--markdown", action="store_true", help="the table as Markdown (for CI)")
    add_history_option(parser)


def fail(message: str) -> int:
    print(f"loadkit history: {message}", file=sys.stderr)
    return EXIT_INVALID


def run_history(args: argparse.Namespace) -> int:
    if args.last < 1:
        return fail("--last must be >= 1")
    if args.chart is not None and args.chart.suffix.lower() not in FORMATS:
        return fail(f"--chart {args.chart}: say a {', '.join(FORMATS)} file")
    scenario, _, profile = str(args.series).partition("/")
    store = HistoryStore(load_settings(results_dir=args.results).history_path)
    try:
        records = store.records(scenario, profile or None)
        marked = store.marked_run_ids()
    except HistoryError as exc:
        return fail(str(exc))
    if not records:
        return fail(f"no recorded runs of {args.series} in {store.path}")
    profiles = sorted({r["profile"] for r in records})
    if not profile and len(profiles) > 1:
        return fail(f"{scenario} has runs of {', '.join(profiles)}: say {scenario}/PROFILE")
    profile = profile or profiles[0]
    load = records[-1]["load"]
    hidden = 0
    if not args.all_loads:
        hidden = sum(r["load"]["key"] != load["key"] for r in records)
        records = [r for r in records if r["load"]["key"] == load["key"]]
    shown = records[-args.last :]
    points = [TrendPoint.of(r, marked) for r in shown]
    title = f"{scenario}/{profile}: {len(points)} runs"
    if not args.all_loads:
        title += f" (load {load['description']})"
    if args.json:
        print(json.dumps([_json_row(p) for p in points], indent=2, ensure_ascii=False))
    else:
        print(title)
        print(render_table(points, markdown=args.markdown))
        if hidden:
            print(f"({hidden} runs with other loads not shown: --all-loads shows them)")
    if args.chart is not None:
        write_chart(points, args.chart, title, render_table(points))
        print(f"chart: {args.chart}", file=sys.stderr)
    return EXIT_PASSED


def _result(point: TrendPoint) -> str:
    if point.passed:
        return "pass"
    return "FAIL" if point.state == "complete" else point.state or "FAIL"


def _notes(point: TrendPoint) -> str:
    notes = []
    if point.regressions:
        notes.append(f"{point.regressions} regression{'s' if point.regressions > 1 else ''}")
    if point.reference:
        notes.append("reference")
    return ", ".join(notes)


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{format_number(value)}{unit}"


def _cells(point: TrendPoint, index: int) -> tuple[str, ...]:
    errors = None if point.error_rate is None else point.error_rate * 100
    return (
        str(index),
        point.started_at.replace("T", " ").removesuffix("Z"),
        point.run_id[:8],
        point.kit or "-",
        point.target_version or "-",
        _result(point),
        _number(point.requests),
        _number(point.rps, "/s"),
        _number(point.p95_ms, " ms"),
        _number(point.p99_ms, " ms"),
        _number(errors, "%"),
        _notes(point),
    )


HEADER = ("#", "started (UTC)", "run", "kit", "target", "result", "requests", "rps", "p95",
          "p99", "errors", "notes")  # fmt: skip


def render_table(points: Sequence[TrendPoint], *, markdown: bool = False) -> str:
    rows = [HEADER, *(_cells(p, i + 1) for i, p in enumerate(points))]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---" for _ in HEADER) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _json_row(point: TrendPoint) -> dict[str, Any]:
    return {
        "run_id": point.run_id,
        "started_at": point.started_at,
        "passed": point.passed,
        "state": point.state,
        "regressions": point.regressions,
        "reference": point.reference,
        "requests": point.requests,
        "rps": point.rps,
        "p95_ms": point.p95_ms,
        "p99_ms": point.p99_ms,
        "error_rate": point.error_rate,
        "kit": point.kit,
        "target_version": point.target_version,
    }
