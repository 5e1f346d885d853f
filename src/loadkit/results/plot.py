"""``timeseries.png``: throughput, P95 and users over the run, for CI artifacts and pull requests.

Drawn with matplotlib (Agg, through ``matplotlib.figure.Figure`` -- no pyplot global state, no
display needed) from ``timeseries.jsonl`` alone, so a plot can be redrawn from any kept run:
``python -m loadkit.results.plot results/<run>/timeseries.jsonl``. Three panels share the time
axis (seconds since the test started): requests and failures per second; P95 of the HTTP total
(with P50 and P99, and each endpoint's P95 when there are several); running users.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from loadkit.measure.collector import AGGREGATED_NAME
from loadkit.results.timeseries import read_records

#: Endpoints whose own P95 line is drawn at most (the busiest ones): more would be unreadable.
MAX_ENDPOINT_LINES: Final = 6
WIDTH_IN: Final = 10.0
HEIGHT_IN: Final = 8.0
DPI: Final = 100


@dataclass
class _Series:
    """What the plot needs, per ``elapsed_s``."""

    requests: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    failures: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    users: dict[int, int] = field(default_factory=dict)
    p50_ms: dict[int, float] = field(default_factory=dict)
    p95_ms: dict[int, float] = field(default_factory=dict)
    p99_ms: dict[int, float] = field(default_factory=dict)
    endpoint_p95_ms: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    endpoint_requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _collect(records: Iterable[Mapping[str, Any]]) -> _Series:
    series = _Series()
    for record in records:
        if record.get("kind") != "requests":
            continue
        second = int(record["elapsed_s"])
        late = bool(record.get("late"))
        if record["name"] == AGGREGATED_NAME and not record["method"]:
            series.requests[second] += int(record["requests"])
            series.failures[second] += int(record["failures"])
            if late:
                continue  # a late line's latencies cover only the stragglers
            if record["users"] is not None:
                series.users[second] = int(record["users"])
            for target, key in (
                (series.p50_ms, "p50_ms"),
                (series.p95_ms, "p95_ms"),
                (series.p99_ms, "p99_ms"),
            ):
                if record[key] is not None:
                    target[second] = float(record[key])
        elif record["method"] != "JOB":
            label = f"{record['method']} {record['name']}"
            series.endpoint_requests[label] += int(record["requests"])
            if not late and record["p95_ms"] is not None:
                series.endpoint_p95_ms[label][second] = float(record["p95_ms"])
    return series


def _xy(values: Mapping[int, float]) -> tuple[list[int], list[float]]:
    seconds = sorted(values)
    return seconds, [values[s] for s in seconds]


def plot_timeseries(jsonl_path: Path, png_path: Path, title: str | None = None) -> Path:
    """Draw ``png_path`` from the records in ``jsonl_path``; returns ``png_path``.

    ``title`` defaults to the results folder's name (``<scenario>-<profile>-<time>``).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    jsonl_path, png_path = Path(jsonl_path), Path(png_path)
    series = _collect(read_records(jsonl_path))
    total = sum(series.requests.values())
    failed = sum(series.failures.values())
    seconds = sorted(series.requests)
    duration_s = (seconds[-1] - seconds[0] + 1) if seconds else 0

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    # Only the renderer is needed: no pyplot, no GUI backend, no global state.
    rate_ax, latency_ax, users_ax = figure.subplots(3, 1, sharex=True)
    figure.suptitle(title or f"loadkit run {jsonl_path.parent.name}", fontsize=13)
    rate_ax.set_title(
        f"{total:,} requests, {failed:,} failed ({failed / total:.2%}) in {duration_s} s"
        if total
        else "no requests recorded",
        fontsize=10,
    )

    rate_ax.plot(*_xy(series.requests), color="tab:blue", label="requests/s")
    rate_ax.plot(*_xy(series.failures), color="tab:red", label="failures/s")
    rate_ax.set_ylabel("per second")
    rate_ax.set_ylim(bottom=0)

    busiest = sorted(series.endpoint_requests, key=lambda k: -series.endpoint_requests[k])
    if len(busiest) > 1:
        for label in busiest[:MAX_ENDPOINT_LINES]:
            latency_ax.plot(
                *_xy(series.endpoint_p95_ms[label]), linewidth=0.8, alpha=0.6, label=f"P95 {label}"
            )
    latency_ax.plot(*_xy(series.p50_ms), color="tab:green", linewidth=1.0, label="P50 (all)")
    latency_ax.plot(*_xy(series.p95_ms), color="black", linewidth=2.0, label="P95 (all)")
    latency_ax.plot(
        *_xy(series.p99_ms), color="tab:purple", linewidth=1.0, linestyle="--", label="P99 (all)"
    )
    latency_ax.set_ylabel("latency (ms)")
    latency_ax.set_ylim(bottom=0)

    users_ax.step(*_xy(series.users), where="post", color="tab:orange", label="users")
    users_ax.set_ylabel("users")
    users_ax.set_ylim(bottom=0)
    users_ax.set_xlabel("time since the test started (s)")
    users_ax.xaxis.set_major_locator(MaxNLocator(integer=True))

    for ax in (rate_ax, latency_ax, users_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path, format="png")
    return png_path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m loadkit.results.plot TIMESERIES.jsonl [OUT.png]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print("usage: python -m loadkit.results.plot TIMESERIES.jsonl [OUT.png]", file=sys.stderr)
        return 2
    jsonl = Path(args[0])
    png = Path(args[1]) if len(args) == 2 else jsonl.with_suffix(".png")
    print(plot_timeseries(jsonl, png))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
