"""What each profile exists to show, computed at the end of a run from Locust's per-second history.

Input is the ``PREFIX_stats_history.csv`` that ``--csv PREFIX --csv-full-history`` writes: one
row per second with the user count, Locust's *current* RPS and percentiles, and the cumulative
request and failure counts. Two properties of that file shape every number here:

* Counts over a window are differences of the cumulative ``Total Request Count`` and ``Total
  Failure Count`` columns, never sums of the ``Requests/s`` column: Locust's current RPS is an
  average of the seconds t-12 .. t-2, so it lags and smooths.
* P95 exists only as Locust's "current" P95 (with ``--csv-full-history``): a percentile over a
  sliding window of roughly the last 10 s. A window's P95 here is the median (and max) of those
  per-second samples, and any "when did P95 change" answer lags by up to ~10 s. Without
  ``--csv-full-history`` the column is the cumulative P95 since the start and these reports
  are not meaningful.

Everything is pure except :func:`load_history` and :func:`rss_bytes`; times in the reports are
seconds since the run started.
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadkit.core.profiles import Stage, stage_ends_s

_COLUMNS = {
    "timestamp": "Timestamp",
    "users": "User Count",
    "name": "Name",
    "rps": "Requests/s",
    "failures_per_s": "Failures/s",
    "p95": "95%",
    "total_requests": "Total Request Count",
    "total_failures": "Total Failure Count",
}


@dataclass(frozen=True)
class HistoryRow:
    """One "Aggregated" row of Locust's stats history (one per second)."""

    timestamp_s: float
    """Unix time of the sample, truncated to whole seconds by Locust."""
    users: int
    """Users running at the sample (the runner's count; on a master, as workers last reported)."""
    rps: float
    """Locust's current RPS: the mean of seconds t-12 .. t-2 (smoothed and lagging)."""
    failures_per_s: float
    """Locust's current failures per second, averaged like ``rps``."""
    p95_ms: float | None
    """Current P95 over a ~10 s sliding window, in ms; None before the first request ("N/A")."""
    total_requests: int
    """Requests since the stats were last reset (cumulative)."""
    total_failures: int
    """Failures since the stats were last reset (cumulative)."""


def _number(value: str) -> float | None:
    """A CSV cell as a float; None for Locust's "N/A" or an empty cell."""
    value = value.strip()
    if not value or value.upper() == "N/A":
        return None
    return float(value)


def load_history(path: str | os.PathLike[str]) -> list[HistoryRow]:
    """The "Aggregated" rows of a ``*_stats_history.csv`` file, in time order.

    Raises ValueError naming the missing columns if the file is not a stats history.
    """
    with Path(path).open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [
            column for column in _COLUMNS.values() if column not in (reader.fieldnames or [])
        ]
        if missing:
            raise ValueError(f"{path}: not a Locust stats history, missing columns {missing}")
        rows = [
            HistoryRow(
                timestamp_s=float(record[_COLUMNS["timestamp"]]),
                users=int(record[_COLUMNS["users"]]),
                rps=_number(record[_COLUMNS["rps"]]) or 0.0,
                failures_per_s=_number(record[_COLUMNS["failures_per_s"]]) or 0.0,
                p95_ms=_number(record[_COLUMNS["p95"]]),
                total_requests=int(record[_COLUMNS["total_requests"]]),
                total_failures=int(record[_COLUMNS["total_failures"]]),
            )
            for record in reader
            if record[_COLUMNS["name"]] == "Aggregated"
        ]
    return sorted(rows, key=lambda row: row.timestamp_s)


def rss_bytes() -> int:
    """This process's resident memory in bytes, for the soak report's memory samples.

    Reads VmRSS from /proc/self/status (current RSS, Linux). Elsewhere falls back to
    ``resource``'s ru_maxrss, which is the *peak* RSS: it can show growth but never a drop.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # not on Windows; only needed off Linux

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ----------------------------------------------------------------------------- shared helpers


def _cumulative(rows: Sequence[HistoryRow]) -> list[tuple[int, int]]:
    """(requests, failures) so far at each row, made monotonic across stats resets.

    A drop in Locust's counters means the stats were reset (a new test start or --reset-stats);
    the count after the drop is then all new.
    """
    out: list[tuple[int, int]] = []
    requests = failures = 0
    last_requests = last_failures = 0
    for row in rows:
        requests += (
            row.total_requests - last_requests
            if row.total_requests >= last_requests
            else row.total_requests
        )
        failures += (
            row.total_failures - last_failures
            if row.total_failures >= last_failures
            else row.total_failures
        )
        last_requests, last_failures = row.total_requests, row.total_failures
        out.append((requests, failures))
    return out


def _running(rows: Sequence[HistoryRow]) -> list[HistoryRow]:
    """The rows from the first to the last sample with users running (drops idle head/tail)."""
    busy = [i for i, row in enumerate(rows) if row.users > 0]
    return list(rows[busy[0] : busy[-1] + 1]) if busy else []


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.2f}%"


def _ms(value: float | None) -> str:
    """Whole ms from 10 ms up; below that the kit's per-second P95 has 0.01 ms resolution."""
    if value is None:
        return "n/a"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.2g} ms"


@dataclass(frozen=True)
class WindowStats:
    """Traffic in one time window of a run (seconds since the run started)."""

    start_s: float
    end_s: float
    requests: int
    """Difference of the cumulative request count across the window."""
    failures: int
    """Difference of the cumulative failure count across the window."""
    p95_median_ms: float | None
    """Median of Locust's per-second current-P95 samples inside the window (each ~10 s wide)."""
    p95_max_ms: float | None
    """Largest of those samples."""
    samples: int
    """Number of P95 samples in the window."""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def rps(self) -> float:
        """Requests per second from the counters: ``requests / duration_s`` (0 if empty)."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_rate(self) -> float | None:
        """``failures / requests`` in the window; None with no requests."""
        return self.failures / self.requests if self.requests else None

    def describe(self) -> str:
        p95 = _ms(self.p95_median_ms)
        if self.p95_max_ms is not None and self.p95_max_ms != self.p95_median_ms:
            p95 += f" (max {_ms(self.p95_max_ms)})"
        return (
            f"{self.start_s:.0f}-{self.end_s:.0f} s: P95 {p95}, errors {_percent(self.error_rate)}"
            f" of {self.requests} requests, {self.rps:.1f} rps"
        )


def _window(
    times_s: Sequence[float],
    rows: Sequence[HistoryRow],
    counts: Sequence[tuple[int, int]],
    start_s: float,
    end_s: float,
) -> WindowStats:
    """Stats for [start_s, end_s] from rows at ``times_s`` (relative, ascending).

    The counts are differences between the last rows at or before each edge, so the window is
    reported as the span between those two rows: requests / span is then the true rate (a
    5.5 s window over rows one second apart counts 5 s of requests).
    """

    def row_at(t_s: float) -> tuple[float, tuple[int, int]]:
        before = [i for i, row_t in enumerate(times_s) if row_t <= t_s]
        return (times_s[before[-1]], counts[before[-1]]) if before else (0.0, (0, 0))

    (t0_s, (req0, fail0)), (t1_s, (req1, fail1)) = row_at(start_s), row_at(end_s)
    p95s = [
        row.p95_ms
        for row_t, row in zip(times_s, rows, strict=True)
        if start_s <= row_t <= end_s and row.p95_ms is not None
    ]
    return WindowStats(
        start_s=t0_s,
        end_s=t1_s,
        requests=req1 - req0,
        failures=fail1 - fail0,
        p95_median_ms=statistics.median(p95s) if p95s else None,
        p95_max_ms=max(p95s) if p95s else None,
        samples=len(p95s),
    )


# ----------------------------------------------------------------------------- spike


def first_user_s(stages: Sequence[Stage]) -> float | None:
    """When the profile first asks for at least one user (``users_at`` rounds 0.5 up)."""
    previous = 0
    start_s = 0.0
    for stage in stages:
        if stage.target_users >= 1:
            if stage.duration_s == 0:
                return start_s
            return start_s + stage.duration_s * (0.5 - previous) / (stage.target_users - previous)
        previous = stage.target_users
        start_s += stage.duration_s
    return None


def estimate_start_s(rows: Sequence[HistoryRow], stages: Sequence[Stage]) -> float:
    """Unix time the run started, lining the first row with users up with the profile.

    Locust's history has no "test started" marker and writes idle rows before it; this is
    accurate to a couple of seconds (whole-second timestamps, ~1 s ticks). Pass an exact start
    time to the reports when one was recorded.
    """
    if not rows:
        raise ValueError("empty stats history")
    offset_s = first_user_s(stages) or 0.0
    for row in rows:
        if row.users > 0:
            return row.timestamp_s - offset_s
    return rows[0].timestamp_s


@dataclass(frozen=True)
class SpikePhases:
    """The spike's phases in profile time, derived from the stages."""

    rise_start_s: float
    """Start of the stage that ramps (or jumps) to the peak: the end of "before"."""
    peak_end_s: float
    """End of the last stage at the peak: the load starts coming down; "after" starts."""
    peak_users: int
    base_users: int
    """The target before the rise (the pre-spike level)."""


def spike_phases(stages: Sequence[Stage]) -> SpikePhases:
    """Before = up to the start of the rise to the peak; during = the rise and any time held at
    the peak; after = from when the load starts coming down to the end of the run."""
    if not stages or max(stage.target_users for stage in stages) == 0:
        raise ValueError("the stages have no peak: not a spike profile")
    ends_s = stage_ends_s(stages)
    peak = max(stage.target_users for stage in stages)
    first = next(i for i, stage in enumerate(stages) if stage.target_users == peak)
    last = first
    while last + 1 < len(stages) and stages[last + 1].target_users == peak:
        last += 1
    return SpikePhases(
        rise_start_s=ends_s[first] - stages[first].duration_s,
        peak_end_s=ends_s[last],
        peak_users=peak,
        base_users=stages[first - 1].target_users if first > 0 else 0,
    )


@dataclass(frozen=True)
class SpikeReport:
    """P95 and errors before, during and after a spike, and how long P95 took to recover."""

    phases: SpikePhases
    before: WindowStats
    during: WindowStats
    after: WindowStats
    tolerance: float
    """Allowed relative excess over the pre-spike P95 for "recovered" (0.2 = 20 %)."""
    recovery_limit_ms: float | None
    """P95 counted as recovered: max(pre-spike x (1 + tolerance), pre-spike + slack)."""
    recovery_s: float | None
    """Seconds from the start of the descent until P95 was back within the limit and stayed
    there (includes Locust's ~10 s P95 window); None if it did not recover or was not measured."""
    last_p95_ms: float | None
    """The last P95 sample after the peak; None if there was none (recovery not measured)."""

    @property
    def recovered(self) -> bool:
        return self.recovery_s is not None

    def summary_lines(self) -> list[str]:
        lines = [
            f"spike {self.phases.base_users} -> {self.phases.peak_users} users:",
            f"  before  {self.before.describe()}",
            f"  during  {self.during.describe()}",
            f"  after   {self.after.describe()}",
        ]
        if self.before.p95_median_ms is None:
            lines.append("  recovery not measured: no P95 samples before the spike")
        elif self.last_p95_ms is None:
            lines.append("  recovery not measured: no P95 samples after the peak")
        elif self.recovery_s is not None:
            lines.append(
                f"  recovered in {self.recovery_s:.0f} s: P95 back within {self.tolerance:.0%}"
                f" of the pre-spike {_ms(self.before.p95_median_ms)}"
                f" (<= {_ms(self.recovery_limit_ms)})"
            )
        else:
            lines.append(
                f"  did not recover: P95 {_ms(self.last_p95_ms)} at the end, limit"
                f" {_ms(self.recovery_limit_ms)} ({self.tolerance:.0%} above the pre-spike"
                f" {_ms(self.before.p95_median_ms)})"
            )
        return lines


def spike_report(
    rows: Sequence[HistoryRow],
    stages: Sequence[Stage],
    tolerance: float = 0.2,
    *,
    start_timestamp_s: float | None = None,
    slack_ms: float = 1.0,
) -> SpikeReport:
    """Spike analysis of a run's history against the (effective, scaled) stages it played.

    ``slack_ms`` keeps a 1 ms pre-spike P95 from demanding 1.2 ms: Locust rounds times under
    100 ms to whole ms. The run start is estimated from the rows unless given.
    """
    t0_s = start_timestamp_s if start_timestamp_s is not None else estimate_start_s(rows, stages)
    phases = spike_phases(stages)
    running = _running(rows)
    times_s = [row.timestamp_s - t0_s for row in running]
    counts = _cumulative(running)
    end_s = max(times_s[-1], phases.peak_end_s) if times_s else phases.peak_end_s
    before = _window(times_s, running, counts, 0.0, phases.rise_start_s)
    during = _window(times_s, running, counts, phases.rise_start_s, phases.peak_end_s)
    after = _window(times_s, running, counts, phases.peak_end_s, end_s)

    limit_ms: float | None = None
    recovery_s: float | None = None
    after_samples = [
        (t_s, row.p95_ms)
        for t_s, row in zip(times_s, running, strict=True)
        if t_s > phases.peak_end_s and row.p95_ms is not None
    ]
    if before.p95_median_ms is not None:
        baseline_ms = before.p95_median_ms
        limit_ms = max(baseline_ms * (1 + tolerance), baseline_ms + slack_ms)
        for t_s, _ in after_samples:
            if all(p95 <= limit_ms for later_t_s, p95 in after_samples if later_t_s >= t_s):
                recovery_s = max(0.0, t_s - phases.peak_end_s)
                break
    return SpikeReport(
        phases=phases,
        before=before,
        during=during,
        after=after,
        tolerance=tolerance,
        recovery_limit_ms=limit_ms,
        recovery_s=recovery_s,
        last_p95_ms=after_samples[-1][1] if after_samples else None,
    )


# ----------------------------------------------------------------------------- soak


@dataclass(frozen=True)
class MemoryGrowth:
    """Load-generator memory over the run, from (t_s, rss_bytes) samples recorded elsewhere."""

    first_bytes: int
    last_bytes: int
    duration_s: float
    slope_bytes_per_h: float
    """Least-squares slope over all samples: steady growth, unlike first/last, ignores noise."""

    @property
    def growth_bytes(self) -> int:
        return self.last_bytes - self.first_bytes


def memory_growth(samples: Sequence[tuple[float, int]]) -> MemoryGrowth | None:
    """Growth of the (t_s, rss_bytes) samples; None with fewer than two distinct times."""
    points = sorted(samples)
    if len(points) < 2 or points[-1][0] == points[0][0]:
        return None
    times = [t for t, _ in points]
    values = [float(v) for _, v in points]
    mean_t, mean_v = statistics.fmean(times), statistics.fmean(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    slope_per_s = (
        sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread
    )
    return MemoryGrowth(
        first_bytes=points[0][1],
        last_bytes=points[-1][1],
        duration_s=points[-1][0] - points[0][0],
        slope_bytes_per_h=slope_per_s * 3600.0,
    )


@dataclass(frozen=True)
class SoakReport:
    """Drift between the first and last window of a long steady run, and memory growth."""

    first: WindowStats
    last: WindowStats
    window_s: float
    """Window length used: the requested one, or half the run if the run was shorter."""
    memory: MemoryGrowth | None

    @property
    def p95_drift_ms(self) -> float | None:
        """Last window's median P95 minus the first's."""
        if self.first.p95_median_ms is None or self.last.p95_median_ms is None:
            return None
        return self.last.p95_median_ms - self.first.p95_median_ms

    @property
    def error_rate_drift(self) -> float | None:
        """Last window's error rate minus the first's (0.01 = one percentage point)."""
        if self.first.error_rate is None or self.last.error_rate is None:
            return None
        return self.last.error_rate - self.first.error_rate

    @property
    def rps_drift_ratio(self) -> float | None:
        """Relative change of throughput, last vs first window (-0.1 = 10 % fewer rps)."""
        return self.last.rps / self.first.rps - 1 if self.first.rps > 0 else None

    def summary_lines(self) -> list[str]:
        def signed(value: float | None, unit: str, scale: float = 1.0) -> str:
            return "n/a" if value is None else f"{value * scale:+.1f}{unit}"

        lines = [
            f"soak (first vs last {self.window_s:.0f} s):",
            f"  first  {self.first.describe()}",
            f"  last   {self.last.describe()}",
            f"  drift  P95 {signed(self.p95_drift_ms, ' ms')},"
            f" errors {signed(self.error_rate_drift, ' points', 100)},"
            f" rps {signed(self.rps_drift_ratio, '%', 100)}",
        ]
        if self.memory is None:
            lines.append("  generator memory: not sampled")
        else:
            mib = 1024 * 1024
            lines.append(
                f"  generator memory: {self.memory.first_bytes / mib:.1f} -> "
                f"{self.memory.last_bytes / mib:.1f} MiB over {self.memory.duration_s:.0f} s"
                f" ({self.memory.slope_bytes_per_h / mib:+.1f} MiB/h)"
            )
        return lines


def soak_report(
    rows: Sequence[HistoryRow],
    window_s: float = 300.0,
    rss_samples: Sequence[tuple[float, int]] | None = None,
) -> SoakReport:
    """Compare the first and last ``window_s`` of the run (the rows with users running).

    Windows shrink to half the run if it is shorter than two windows, so a scaled CI soak still
    gets a report. ``rss_samples`` are (t_s, rss_bytes) pairs, e.g. from :func:`rss_bytes`.
    """
    running = _running(rows)
    if len(running) < 2:
        raise ValueError("soak report needs at least two samples with users running")
    t0_s = running[0].timestamp_s
    times_s = [row.timestamp_s - t0_s for row in running]
    counts = _cumulative(running)
    span_s = times_s[-1]
    width_s = min(window_s, span_s / 2)
    return SoakReport(
        first=_window(times_s, running, counts, 0.0, width_s),
        last=_window(times_s, running, counts, span_s - width_s, span_s),
        window_s=width_s,
        memory=memory_growth(rss_samples) if rss_samples else None,
    )


# ----------------------------------------------------------------------------- stress


@dataclass(frozen=True)
class StressPoint:
    """The load and its outcome at one history row."""

    t_s: float
    users: int
    rps: float
    """Requests per second over the preceding window, from the cumulative counter."""
    p95_ms: float
    """Locust's current P95 (~10 s window) at the row."""
    error_rate: float
    """Failures / requests over the preceding window, from the cumulative counters."""


@dataclass(frozen=True)
class StressReport:
    """The highest load at which P95 and the error rate stayed within limits."""

    p95_limit_ms: float
    error_rate_limit: float
    max_ok: StressPoint | None
    """The most users (then most rps) seen before the first breach; None if none was ok."""
    first_breach: StressPoint | None
    """The first row over a limit; None if the limits held for the whole run."""
    breach_reasons: tuple[str, ...]
    peak_users: int

    def summary_lines(self) -> list[str]:
        limits = f"P95 <= {self.p95_limit_ms:.0f} ms, errors <= {_percent(self.error_rate_limit)}"
        if self.max_ok is None:
            lines = [f"stress: limits ({limits}) exceeded from the first sample"]
        else:
            ok = self.max_ok
            lines = [
                f"stress: limits ({limits}) held up to {ok.users} users at {ok.rps:.1f} rps"
                f" (P95 {_ms(ok.p95_ms)}, errors {_percent(ok.error_rate)})"
            ]
        if self.first_breach is None:
            lines.append(f"  limits held for the whole run (peak {self.peak_users} users)")
        else:
            breach = self.first_breach
            lines.append(
                f"  first breach at {breach.t_s:.0f} s with {breach.users} users:"
                f" {'; '.join(self.breach_reasons)} (P95 lags the load by up to ~10 s)"
            )
        return lines


def stress_report(
    rows: Sequence[HistoryRow],
    p95_limit_ms: float,
    error_rate_limit: float,
    *,
    window_s: float = 10.0,
) -> StressReport:
    """Walk the run in time order until the first row over a limit (the knee).

    Each row is judged on Locust's current P95 and on the error rate over the preceding
    ``window_s`` (10 s, about the P95's own window) from the cumulative counters. Rows with no
    requests in their window are skipped: they say nothing about the limits.
    """
    running = _running(rows)
    counts = _cumulative(running)
    t0_s = running[0].timestamp_s if running else 0.0
    times_s = [row.timestamp_s - t0_s for row in running]
    max_ok: StressPoint | None = None
    breach: StressPoint | None = None
    reasons: list[str] = []
    for i, row in enumerate(running):
        j = max((k for k in range(i) if times_s[k] <= times_s[i] - window_s), default=0)
        elapsed_s = times_s[i] - times_s[j]
        requests = counts[i][0] - counts[j][0]
        if elapsed_s <= 0 or requests <= 0 or row.p95_ms is None:
            continue
        point = StressPoint(
            t_s=times_s[i],
            users=row.users,
            rps=requests / elapsed_s,
            p95_ms=row.p95_ms,
            error_rate=(counts[i][1] - counts[j][1]) / requests,
        )
        if point.p95_ms > p95_limit_ms:
            reasons.append(f"P95 {_ms(point.p95_ms)} > {_ms(p95_limit_ms)}")
        if point.error_rate > error_rate_limit:
            reasons.append(f"errors {_percent(point.error_rate)} > {_percent(error_rate_limit)}")
        if reasons:
            breach = point
            break
        if max_ok is None or (point.users, point.rps) > (max_ok.users, max_ok.rps):
            max_ok = point
    return StressReport(
        p95_limit_ms=p95_limit_ms,
        error_rate_limit=error_rate_limit,
        max_ok=max_ok,
        first_breach=breach,
        breach_reasons=tuple(reasons),
        peak_users=max((row.users for row in running), default=0),
    )
