"""End-of-run profile reports on constructed per-second histories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loadkit import registry
from loadkit.core.profile_report import (
    HistoryRow,
    estimate_start_s,
    load_history,
    memory_growth,
    rss_bytes,
    soak_report,
    spike_phases,
    spike_report,
    stress_report,
)
from loadkit.core.profiles import Stage, scale, users_at

T0 = 1_700_000_000.0
SPIKE = registry.PROFILES["spike"].stages


def history(
    seconds: int,
    users: Callable[[int], int],
    rps: Callable[[int], float],
    p95_ms: Callable[[int], float | None],
    error_rate: Callable[[int], float] = lambda t: 0.0,
    t0: float = T0,
) -> list[HistoryRow]:
    """One row per second; the cumulative counters add each second's requests and failures."""
    rows = []
    requests = failures = 0.0
    for t in range(seconds + 1):
        running = users(t)
        done = rps(t) if running else 0.0
        requests += done
        failures += done * error_rate(t)
        rows.append(
            HistoryRow(
                timestamp_s=t0 + t,
                users=running,
                rps=done,
                failures_per_s=done * error_rate(t),
                p95_ms=p95_ms(t) if requests else None,
                total_requests=round(requests),
                total_failures=round(failures),
            )
        )
    return rows


# ----------------------------------------------------------------------------- loading

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)
NA = ",".join(["N/A"] * 11)


def test_load_history_reads_aggregated_rows(tmp_path: Path) -> None:
    path = tmp_path / "run_stats_history.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                f"1700000001,0,,Aggregated,0.000000,0.000000,{NA},0,0,0,0.0,0,0,0.0",
                "1700000002,5,GET,/health,2.000000,0.000000,4,5,5,6,7,9,9,9,9,9,9,10,1,4,4.2,1,9,2.0",
                "1700000002,5,,Aggregated,2.500000,0.500000,4,5,5,6,7,12,13,13,13,13,13,12,1,4,4.5,1,13,2.0",
            ]
        )
        + "\n"
    )
    rows = load_history(path)
    assert rows == [
        HistoryRow(T0 + 1, 0, 0.0, 0.0, None, 0, 0),
        HistoryRow(T0 + 2, 5, 2.5, 0.5, 12.0, 12, 1),
    ]


def test_load_history_rejects_other_csv(tmp_path: Path) -> None:
    path = tmp_path / "run_stats.csv"
    path.write_text("Type,Name,Request Count\nGET,/,3\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_history(path)


# ----------------------------------------------------------------------------- spike


def spike_history(
    after_p95: Callable[[int], float], errors_at_peak: float = 0.0
) -> list[HistoryRow]:
    """The guide's spike plus 30 s of holding 1 user: P95 10 ms at low load, 200 ms during."""
    stages = (*SPIKE, Stage(30, 1))
    return history(
        120,
        users=lambda t: users_at(stages, t) or 0,
        rps=lambda t: float(users_at(stages, t) or 0),
        p95_ms=lambda t: 10.0 if t < 30 else 200.0 if t <= 60 else after_p95(t),
        error_rate=lambda t: errors_at_peak if 50 <= t <= 60 else 0.0,
    )


def test_spike_phases_from_the_stages() -> None:
    phases = spike_phases(SPIKE)
    assert (phases.rise_start_s, phases.peak_end_s) == (30.0, 60.0)
    assert (phases.base_users, phases.peak_users) == (1, 100)
    held = spike_phases((Stage(10, 5), Stage(0, 80), Stage(20, 80), Stage(5, 5)))
    assert (held.rise_start_s, held.peak_end_s, held.base_users) == (10.0, 30.0, 5)


def test_spike_recovered() -> None:
    rows = spike_history(after_p95=lambda t: 150.0 if t < 72 else 11.0, errors_at_peak=0.1)
    stages = (*SPIKE, Stage(30, 1))
    report = spike_report(rows, stages, start_timestamp_s=T0)
    assert report.before.p95_median_ms == 10.0
    assert report.during.p95_max_ms == 200.0
    assert report.recovery_limit_ms == pytest.approx(12.0)
    assert report.recovered and report.recovery_s == 12.0
    assert report.before.failures == 0 and report.during.failures > 0
    assert report.during.error_rate == pytest.approx(
        report.during.failures / report.during.requests
    )
    lines = report.summary_lines()
    assert lines[-1].startswith("  recovered in 12 s")
    assert "pre-spike 10 ms" in lines[-1]


def test_spike_start_is_estimated_from_the_first_user() -> None:
    rows = spike_history(after_p95=lambda t: 150.0 if t < 72 else 11.0)
    stages = (*SPIKE, Stage(30, 1))
    idle_head = [HistoryRow(T0 - k, 0, 0.0, 0.0, None, 0, 0) for k in (3, 2, 1)]
    assert estimate_start_s(idle_head + rows, stages) == T0  # first user at 15 s, as planned
    assert spike_report(idle_head + rows, stages).recovery_s == 12.0


def test_spike_not_recovered() -> None:
    rows = spike_history(after_p95=lambda t: 150.0 if t < 72 else 40.0)
    report = spike_report(rows, (*SPIKE, Stage(30, 1)), start_timestamp_s=T0)
    assert not report.recovered and report.last_p95_ms == 40.0
    assert report.summary_lines()[-1] == (
        "  did not recover: P95 40 ms at the end, limit 12 ms (20% above the pre-spike 10 ms)"
    )


def test_spike_recovery_must_last() -> None:
    # Back to normal at 65 s, but worse again at the end: recovery counts from the last return.
    rows = spike_history(after_p95=lambda t: 11.0 if t < 100 or t > 110 else 90.0)
    report = spike_report(rows, (*SPIKE, Stage(30, 1)), start_timestamp_s=T0)
    assert report.recovery_s == 51.0


def test_spike_tolerance_has_a_floor_for_tiny_latencies() -> None:
    rows = history(
        90,
        users=lambda t: users_at(SPIKE, t) or 0,
        rps=lambda t: 50.0,
        p95_ms=lambda t: 1.0 if t < 30 or t > 70 else 30.0,
    )
    report = spike_report(rows, SPIKE, start_timestamp_s=T0 - 15)
    assert report.recovery_limit_ms == 2.0  # 1 ms * 1.2 would fail on Locust's 1 ms buckets
    assert report.recovered


def test_spike_without_samples_after_the_peak() -> None:
    rows = history(
        60, users=lambda t: users_at(SPIKE, t) or 0, rps=lambda t: 5.0, p95_ms=lambda t: 9.0
    )
    report = spike_report(rows, SPIKE, start_timestamp_s=T0)
    assert report.recovery_s is None
    assert report.summary_lines()[-1] == "  recovery not measured: no P95 samples after the peak"


def test_spike_needs_a_peak() -> None:
    with pytest.raises(ValueError, match="no peak"):
        spike_phases((Stage(10, 0),))


# ----------------------------------------------------------------------------- soak


def test_soak_drift_and_memory() -> None:
    hour = 3600
    rows = history(
        hour,
        users=lambda t: 20,
        rps=lambda t: 100.0 - 20.0 * t / hour,  # throughput sags
        p95_ms=lambda t: 20.0 + 40.0 * t / hour,  # latency creeps up
        error_rate=lambda t: 0.0 if t < hour / 2 else 0.02,
    )
    memory = [(float(t), 100 * 2**20 + t * 2**20 // 60) for t in range(0, hour + 1, 60)]
    report = soak_report(rows, window_s=300, rss_samples=memory)
    assert report.window_s == 300
    assert report.first.p95_median_ms == pytest.approx(21.7, abs=0.1)
    assert report.last.p95_median_ms == pytest.approx(58.3, abs=0.1)
    assert report.p95_drift_ms == pytest.approx(36.7, abs=0.2)
    assert report.error_rate_drift == pytest.approx(0.02, abs=0.001)
    assert report.rps_drift_ratio == pytest.approx(-0.18, abs=0.01)
    assert report.memory is not None
    assert report.memory.growth_bytes == 60 * 2**20
    assert report.memory.slope_bytes_per_h == pytest.approx(60 * 2**20, rel=0.01)
    lines = report.summary_lines()
    assert lines[0] == "soak (first vs last 300 s):"
    assert "P95 +36.7 ms" in lines[3] and "errors +2.0 points" in lines[3]
    assert "rps -18." in lines[3]
    assert lines[4] == "  generator memory: 100.0 -> 160.0 MiB over 3600 s (+60.0 MiB/h)"


def test_soak_short_run_shrinks_the_windows_and_skips_idle_rows() -> None:
    rows = history(
        70, users=lambda t: 20 if 5 <= t <= 65 else 0, rps=lambda t: 10.0, p95_ms=lambda t: 5.0
    )
    report = soak_report(rows, window_s=300)
    assert report.window_s == 30.0
    assert report.first.rps == pytest.approx(10.0, rel=0.05)
    assert report.p95_drift_ms == 0 and report.memory is None
    assert report.summary_lines()[-1] == "  generator memory: not sampled"


def test_soak_needs_running_rows() -> None:
    with pytest.raises(ValueError, match="at least two samples"):
        soak_report(history(10, users=lambda t: 0, rps=lambda t: 0.0, p95_ms=lambda t: None))


def test_counter_reset_is_not_negative_traffic() -> None:
    rows = history(20, users=lambda t: 5, rps=lambda t: 10.0, p95_ms=lambda t: 5.0)
    reset = [
        row
        if row.timestamp_s < T0 + 10
        else HistoryRow(row.timestamp_s, 5, 10.0, 0.0, 5.0, row.total_requests - 100, 0)
        for row in rows
    ]
    report = soak_report(reset, window_s=10)
    assert report.last.requests == 100 and report.last.rps == 10.0


# ----------------------------------------------------------------------------- stress


def ramp_users(t: int) -> int:
    """10 more users every 20 s: 10, 20, ... 100."""
    return min(100, 10 * (t // 20 + 1))


def test_stress_knee_on_latency() -> None:
    rows = history(
        200,
        users=ramp_users,
        rps=lambda t: 10.0 * min(ramp_users(t), 60),  # throughput flattens at 60 users
        p95_ms=lambda t: 50.0 if ramp_users(t) <= 60 else 800.0,
        error_rate=lambda t: 0.0 if ramp_users(t) <= 80 else 0.05,
    )
    report = stress_report(rows, p95_limit_ms=500, error_rate_limit=0.01)
    assert report.max_ok is not None and report.max_ok.users == 60
    assert report.max_ok.rps == pytest.approx(600.0)
    assert report.first_breach is not None and report.first_breach.users == 70
    assert report.breach_reasons == ("P95 800 ms > 500 ms",)
    assert report.peak_users == 100
    lines = report.summary_lines()
    assert lines[0] == (
        "stress: limits (P95 <= 500 ms, errors <= 1.00%) held up to 60 users at 600.0 rps"
        " (P95 50 ms, errors 0.00%)"
    )
    assert lines[1].startswith("  first breach at 120 s with 70 users: P95 800 ms > 500 ms")


def test_stress_knee_on_errors_uses_the_window() -> None:
    rows = history(
        200,
        users=ramp_users,
        rps=lambda t: 100.0,
        p95_ms=lambda t: 50.0,
        error_rate=lambda t: 0.0 if ramp_users(t) <= 40 else 0.1,
    )
    # errors start at 80 s (50 users); a 2 s window sees 10 of 200 requests fail at once
    report = stress_report(rows, p95_limit_ms=500, error_rate_limit=0.01, window_s=2)
    assert report.max_ok is not None and report.max_ok.users == 40
    assert report.first_breach is not None
    assert (report.first_breach.t_s, report.first_breach.users) == (80, 50)
    assert report.breach_reasons == ("errors 5.00% > 1.00%",)
    # the default 10 s window dilutes the first second of errors: the knee shows a second later
    lagging = stress_report(rows, p95_limit_ms=500, error_rate_limit=0.01)
    assert lagging.first_breach is not None and lagging.first_breach.t_s == 81


def test_stress_limits_held() -> None:
    rows = history(60, users=lambda t: 50, rps=lambda t: 300.0, p95_ms=lambda t: 80.0)
    report = stress_report(rows, p95_limit_ms=500, error_rate_limit=0.01)
    assert report.first_breach is None and report.max_ok is not None
    assert report.max_ok.rps == pytest.approx(300.0)
    assert report.summary_lines()[1] == "  limits held for the whole run (peak 50 users)"


def test_stress_over_limits_from_the_start() -> None:
    rows = history(30, users=lambda t: 50, rps=lambda t: 300.0, p95_ms=lambda t: 900.0)
    report = stress_report(rows, p95_limit_ms=500, error_rate_limit=0.01)
    assert report.max_ok is None and report.first_breach is not None
    assert "exceeded from the first sample" in report.summary_lines()[0]


# ----------------------------------------------------------------------------- memory


def test_rss_bytes_and_memory_growth() -> None:
    assert rss_bytes() > 1_000_000
    assert memory_growth([(0.0, 5)]) is None
    growth = memory_growth([(10.0, 300), (0.0, 100), (5.0, 200)])
    assert growth is not None and growth.growth_bytes == 200
    assert growth.slope_bytes_per_h == pytest.approx(20.0 * 3600)


def test_reports_on_a_scaled_profile() -> None:
    # The reports take the effective (scaled) stages the run played.
    scaled = scale(SPIKE, time_scale=0.1)
    assert spike_phases(scaled).peak_end_s == pytest.approx(6.0)
