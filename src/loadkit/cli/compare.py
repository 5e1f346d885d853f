"""``loadkit compare A B``: two runs side by side per request, judged against tolerances.

Exit codes, as ``git diff --exit-code`` has them: 0 nothing got worse beyond the tolerances;
1 something did (``--fail-on change``: something changed beyond them, better or worse); 2 a run
or an option could not be used. ``loadkit compare B`` compares B with the reference a new run
of B's scenario, profile and load would get (``results.references``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from loadkit.core.comparison import (
    Comparison,
    MetricRow,
    ToleranceError,
    compare,
    describe_tolerances,
    parse_tolerances,
)
from loadkit.core.exit_codes import EXIT_FAILED, EXIT_INVALID, EXIT_PASSED
from loadkit.core.reference import http_client_change, rows_by_request
from loadkit.core.regression import IMPROVEMENT, REGRESSION, format_value, tolerance_text
from loadkit.results.history import HistoryError, HistoryStore
from loadkit.results.references import (
    RunNotFound,
    SeriesKey,
    is_series_name,
    pick_reference,
    resolve_run,
    spread_among,
)
from loadkit.settings import load_settings

COMPARE_SCHEMA: Final = "loadkit.compare/1"
DEFAULT_SPREAD_RUNS: Final = 5
RUN_HELP: Final = (
    "a run folder, a run id (its first characters will do), or SCENARIO/PROFILE[@WHICH] with "
    "WHICH one of pass (the last passing run, the default), latest, reference"
)


def add_compare_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare two runs per request, against tolerances (exit 1 on a regression)",
        description="Compare run B with run A per request: absolute and relative change, and "
        "whether it exceeds the tolerance (and, with earlier runs in the history, their "
        "spread). With one run, compare it with its reference. A run is " + RUN_HELP + ".",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="[A] B")
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="override a tolerance, repeatable: p95=30%%, rps=5%%, error_rate=0.1%% (points); "
        "defaults: " + describe_tolerances(parse_tolerances([])).replace("%", "%%"),
    )
    parser.add_argument(
        "--spread-runs",
        type=int,
        default=DEFAULT_SPREAD_RUNS,
        metavar="N",
        help=f"earlier passing runs whose spread a change must also exceed (default "
        f"{DEFAULT_SPREAD_RUNS}; 0: the tolerance alone)",
    )
    parser.add_argument(
        "--fail-on",
        choices=("regression", "change"),
        default="regression",
        help="exit 1 on a change for the worse (default), or on any change beyond a tolerance",
    )
    parser.add_argument(
        "--no-reference",
        choices=("fail", "pass"),
        default="fail",
        help="when A names no run (the first run of a series): exit 2 (default) or exit 0",
    )
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_history_option(parser)


def add_history_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        type=Path,
        help="the results folder whose history.sqlite to read (default: results/, or "
        "LOADKIT_HISTORY_FILE)",
    )


def run_compare(args: argparse.Namespace) -> int:
    if len(args.runs) > 2:
        print("loadkit compare: give one or two runs", file=sys.stderr)
        return EXIT_INVALID
    if args.spread_runs < 0:
        print("loadkit compare: --spread-runs must be >= 0", file=sys.stderr)
        return EXIT_INVALID
    try:
        tolerances = parse_tolerances(args.tolerance)
        store = HistoryStore(_history_path(args))
        b = resolve_run(args.runs[-1], store)
        a = _side_a(args, store, b)
    except (ToleranceError, HistoryError) as exc:
        print(f"loadkit compare: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except NoReference as exc:
        print(f"loadkit compare: nothing to compare with: {exc}", file=sys.stderr)
        return EXIT_PASSED if args.no_reference == "pass" else EXIT_INVALID
    except RunNotFound as exc:
        print(f"loadkit compare: {exc}", file=sys.stderr)
        return EXIT_INVALID
    same = SeriesKey.of(a) == SeriesKey.of(b) and SeriesKey.of(b).load_key is not None
    b_rows = rows_by_request(b.get("requests") or ())
    spread = spread_among(store, SeriesKey.of(b), list(b_rows), args.spread_runs, b) if same else {}
    result = compare(rows_by_request(a.get("requests") or ()), b_rows, tolerances, spread)
    failing = result.regressions if args.fail_on == "regression" else _beyond(result)
    code = EXIT_FAILED if failing else EXIT_PASSED
    spread_runs = max((s.runs for m in spread.values() for s in m.values()), default=0)
    if args.json:
        document = _document(a, b, result, same, spread_runs, code)
        print(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(render(a, b, result, same, spread_runs))
    return code


def _history_path(args: argparse.Namespace) -> Path:
    return load_settings(results_dir=args.results).history_path


class NoReference(RunNotFound):
    """A names a series (or is left out) and the series has no run to compare with yet."""


def _side_a(args: argparse.Namespace, store: HistoryStore, b: Mapping[str, Any]) -> dict:
    """A as named, or B's reference; ``NoReference`` when a series has nothing to offer."""
    if len(args.runs) == 2:
        spec = args.runs[0]
        try:
            return resolve_run(spec, store, other=b)
        except RunNotFound as exc:
            if is_series_name(spec):
                raise NoReference(str(exc)) from None
            raise
    found = pick_reference(store, SeriesKey.of(b), b)
    if found is None:
        raise NoReference(f"no reference for {SeriesKey.of(b)} with B's load in {store.path}")
    return found[0]


def _beyond(result: Comparison) -> tuple[MetricRow, ...]:
    """Every change beyond a tolerance, better or worse (``--fail-on change``)."""
    return tuple(r for r in result.rows if r.judgement in (REGRESSION, IMPROVEMENT))


def _run_line(side: str, record: Mapping[str, Any]) -> str:
    verdict = "passed" if record["verdict"]["passed"] else "FAILED"
    state = record.get("state") or "-"
    return "  ".join(
        [
            side,
            f"run {str(record['run_id'])[:8]}",
            f"{record['scenario']}/{record['profile']}",
            record.get("started_at") or "-",
            f"{verdict} ({state})",
            str(record.get("run_dir") or "-"),
        ]
    )


def render(
    a: Mapping[str, Any], b: Mapping[str, Any], result: Comparison, same: bool, spread_runs: int
) -> str:
    """The table for people: one block of rows per request, ``total`` first."""
    lines = [_run_line("A", a), _run_line("B", b)]
    tolerances = f"tolerances: {describe_tolerances(result.tolerances)}"
    if spread_runs:
        tolerances += f"; and the spread of {spread_runs} earlier passing runs"
    lines.append(tolerances)
    if not same:
        lines.append(
            "note: A and B are not runs of the same scenario, profile and load: "
            "read the changes with care"
        )
    client_change = http_client_change(
        ("A", (a.get("kit") or {}).get("http_client")),
        ("B", (b.get("kit") or {}).get("http_client")),
    )
    if client_change is not None:
        lines.append(f"note: {client_change}")
    header = ("request", "metric", "A", "B", "change", "judgement")
    table = [header]
    previous = None
    for row in result.rows:
        judgement = row.judgement
        if row.judgement == REGRESSION and row.tolerance is not None:
            judgement += f" (allowed {tolerance_text(row.metric, row.tolerance)})"
        table.append(
            (
                row.request if row.request != previous else "",
                row.metric,
                format_value(row.metric, row.a),
                format_value(row.metric, row.b),
                row.change,
                judgement,
            )
        )
        previous = row.request
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines.append("")
    for i, cells in enumerate(table):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    regressions = result.regressions
    if regressions:
        names = ", ".join(f"{r.request} {r.metric} {r.change}" for r in regressions)
        plural = "s" if len(regressions) > 1 else ""
        lines.append(f"{len(regressions)} regression{plural} beyond the tolerances: {names}")
    else:
        lines.append("no regression beyond the tolerances")
    return "\n".join(lines)


def _summary(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": record["run_id"],
        "scenario": record["scenario"],
        "profile": record["profile"],
        "load": record.get("load"),
        "started_at": record.get("started_at"),
        "passed": record["verdict"]["passed"],
        "state": record.get("state"),
        "run_dir": record.get("run_dir"),
        "kit": record.get("kit"),
        "target": record.get("target"),
    }


def _document(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    result: Comparison,
    same: bool,
    spread_runs: int,
    code: int,
) -> dict[str, Any]:
    return {
        "schema": COMPARE_SCHEMA,
        "a": _summary(a),
        "b": _summary(b),
        "same_series": same,
        "tolerances": dict(result.tolerances),
        "spread_runs": spread_runs,
        "rows": [row.to_dict() for row in result.rows],
        "regressions": len(result.regressions),
        "improvements": len(result.improvements),
        "exit_code": code,
    }
