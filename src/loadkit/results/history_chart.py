"""The trend of one series of runs as a chart: P95, request rate and error rate per run.

One point per recorded run, oldest on the left, in three panels sharing the run axis. A failed
run is a red cross, a run whose ``[[regression]]`` criteria failed is circled in orange, the
run marked as the reference is a green star. Drawn with matplotlib's object API (Agg, no pyplot
state), like ``results.plot``; ``.png`` and ``.svg`` are the figure itself, ``.html`` a page with
the SVG and the table, readable without anything but a browser.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from loadkit.core.baselines import TOTAL
from loadkit.core.reference import metric_value, rows_by_request

WIDTH_IN: Final = 10.0
HEIGHT_IN: Final = 7.5
DPI: Final = 80
FORMATS: Final = (".png", ".svg", ".html")


@dataclass(frozen=True)
class TrendPoint:
    """One run, as the chart and the table show it."""

    run_id: str
    started_at: str
    passed: bool
    state: str
    regressions: int
    reference: bool
    p95_ms: float | None
    p99_ms: float | None
    rps: float | None
    error_rate: float | None
    requests: int | None
    kit: str | None
    target_version: str | None

    @classmethod
    def of(cls, record: Mapping[str, Any], marked: set[str]) -> TrendPoint:
        total = rows_by_request(record.get("requests") or ()).get(TOTAL)
        count = metric_value(total, "count")
        kit = record.get("kit") or {}
        commit = kit.get("commit")
        return cls(
            run_id=str(record["run_id"]),
            started_at=str(record.get("started_at") or ""),
            passed=bool(record["verdict"]["passed"]),
            state=str(record.get("state") or ""),
            regressions=int(record["verdict"].get("regressions") or 0),
            reference=record["run_id"] in marked,
            p95_ms=metric_value(total, "p95"),
            p99_ms=metric_value(total, "p99"),
            rps=metric_value(total, "rps"),
            error_rate=metric_value(total, "error_rate"),
            requests=None if count is None else int(count),
            # ``3f2a1c9e`` or ``3f2a1c9e-dirty``: the short commit and what follows the 40 digits.
            kit=(commit[:8] + commit[40:]) if commit else kit.get("version"),
            target_version=(record.get("target") or {}).get("version"),
        )

    @property
    def label(self) -> str:
        """``05-01 02:00 3f2a1c9e``: the run's tick label."""
        when = self.started_at[5:16].replace("T", " ") if self.started_at else "?"
        return f"{when}\n{self.run_id[:8]}"


#: Which runs get a mark of their own, and how it looks.
_MARKS: Final = (
    (lambda p: not p.passed, {"marker": "x", "s": 80, "color": "tab:red", "label": "failed run"}),
    (
        lambda p: p.regressions > 0,
        {"marker": "o", "s": 220, "facecolors": "none", "edgecolors": "tab:orange",
         "linewidths": 2, "label": "regression"},
    ),
    (lambda p: p.reference, {"marker": "*", "s": 160, "color": "tab:green", "label": "reference"}),
)  # fmt: skip


def _draw(points: Sequence[TrendPoint], title: str) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    axes = figure.subplots(3, 1, sharex=True)
    figure.suptitle(title, fontsize=12)
    x = list(range(len(points)))
    errors_pct = [None if p.error_rate is None else p.error_rate * 100 for p in points]
    panels = (
        (axes[0], "P95 (ms)", [p.p95_ms for p in points], "black"),
        (axes[1], "requests/s", [p.rps for p in points], "tab:blue"),
        (axes[2], "errors (%)", errors_pct, "tab:red"),
    )
    for ax, label, values, color in panels:
        xs = [i for i, v in zip(x, values, strict=True) if v is not None]
        ys = [v for v in values if v is not None]
        ax.plot(xs, ys, color=color, linewidth=1.2, marker="o", markersize=4)
        for flagged, style in _MARKS:
            chosen = [(i, v) for i, v in zip(xs, ys, strict=True) if flagged(points[i])]
            ax.scatter(*(zip(*chosen, strict=True) if chosen else ([], [])), zorder=3, **style)
        ax.set_ylabel(label)
        # From zero, with room above the highest point; an error panel of zeros still reads 0-1%.
        floor = 1.0 if ax is axes[2] else 0.0
        ax.set_ylim(0, max([*ys, floor]) * 1.15 or 1.0)
        ax.margins(x=0.05)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axes[-1].xaxis.set_major_locator(FixedLocator(x))
    axes[-1].set_xticklabels([p.label for p in points], fontsize=7)
    axes[-1].set_xlabel("run (start time UTC, run id)")
    return figure


def write_chart(points: Sequence[TrendPoint], path: Path, title: str, table: str = "") -> Path:
    """Draw ``points`` into ``path`` (``.png``, ``.svg`` or ``.html`` with ``table`` below)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: a chart is {', '.join(FORMATS)}")
    figure = _draw(points, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix != ".html":
        figure.savefig(path, format=suffix[1:], metadata=_no_dates(suffix))
        return path
    svg = io.StringIO()
    figure.savefig(svg, format="svg", metadata=_no_dates(".svg"))
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{svg.getvalue()}\n"
        f"<pre>{html.escape(table)}</pre>\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path


def _no_dates(suffix: str) -> dict[str, Any]:
    """No creation date in the file, so the same history draws the same bytes."""
    return {"Date": None} if suffix == ".svg" else {"Software": None}
