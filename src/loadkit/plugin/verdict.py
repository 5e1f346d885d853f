"""The verdict's inputs and outputs inside Locust: the baseline options, judging, the files.

``RunControl`` (``plugin.run_control``) decides *when* a run is judged; this module knows *how*:
which baseline, which window, which gauges and counters, and where the verdict is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from loadkit import registry
from loadkit.core.baselines import Baseline, BaselineError, default_baseline_path, load_baseline
from loadkit.core.lifecycle import Lifecycle, RunState
from loadkit.core.plan import RunPlan
from loadkit.core.profiles import main_steady_window
from loadkit.core.queue_report import QueueReport
from loadkit.core.verdict import TimelineFigures, Verdict, evaluate
from loadkit.measure.collector import Collector
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.plugin.locust_adapter import has_option
from loadkit.results.verdict_files import render_console, write_junit_xml, write_verdict_json

RUN_DIR_ENV: Final = "LOADKIT_RUN_DIR"
SCENARIO_ENV: Final = "LOADKIT_SCENARIO"
BASELINE_ENV: Final = "LOADKIT_BASELINE"
VERDICT_FILE: Final = "verdict.json"
JUNIT_FILE: Final = "junit.xml"
SUMMARY_FILE: Final = "summary.txt"


def add_verdict_arguments(parser: argparse.ArgumentParser) -> None:
    """``--baseline``, ``--no-baseline``, ``--scenario``, ``--results-dir`` on Locust's parser."""
    if has_option(parser, "--baseline"):
        return
    group = parser.add_argument_group("loadkit verdict")
    group.add_argument(
        "--baseline",
        env_var=BASELINE_ENV,
        default=None,
        help="baseline file (default: baselines/<scenario>.toml)",
    )
    group.add_argument(
        "--no-baseline",
        action="store_true",
        default=False,
        help="run without criteria (like k6 --no-thresholds); the run's state is still reported",
    )
    group.add_argument(
        "--scenario",
        env_var=SCENARIO_ENV,
        default=None,
        help="scenario name for the baseline (default: the locustfile's name)",
    )
    group.add_argument(
        "--results-dir",
        env_var=RUN_DIR_ENV,
        default=None,
        help="folder for the verdict and the time series (a web UI session: one sub-folder "
        "per run)",
    )


def scenario_of(options: Any) -> str | None:
    """``--scenario``, else the scenario whose locustfile is loaded."""
    if options is not None and getattr(options, "scenario", None):
        return str(options.scenario)
    for part in str(getattr(options, "locustfile", "") or "").split(","):
        name = registry.scenario_of_locustfile(part.strip())
        if name is not None:
            return name
    return None


def baseline_from_options(options: Any, scenario: str | None) -> Baseline | None:
    """The session's baseline (plain ``locust -f`` and the web UI); a bad one exits 2."""
    if options is None or getattr(options, "no_baseline", False):
        return None
    if scenario is None:
        exit_invalid(
            "cannot tell which scenario this is: pass --scenario NAME "
            f"(one of {', '.join(registry.SCENARIOS)}) or --no-baseline"
        )
    path = getattr(options, "baseline", None) or default_baseline_path(scenario)
    try:
        return load_baseline(path, scenario)
    except BaselineError as exc:
        exit_invalid(f"invalid baseline: {exc}")


def measured_window(
    plan: RunPlan, collector: Collector, stopped_at_s: float, measure_from_s: float = 0.0
) -> tuple[tuple[float, float] | None, str]:
    """The span rates are measured over: the profile's main plateau, else the load period
    from the first request; cut at the moment the load stopped (never into the shutdown) and
    at a Reset. ``(None, why)`` when nothing was sent."""
    plateau = main_steady_window(plan.stages) if plan.stages else None
    if plateau is not None and plateau[0] < stopped_at_s:
        start_s = max(plateau[0], measure_from_s)
        end_s = min(plateau[1], stopped_at_s)
        what = f"steady part of the {plan.profile} profile"
    else:
        first_s = collector.first_request_s
        if first_s is None:
            return None, "no request was sent"
        start_s, end_s = max(first_s, measure_from_s), stopped_at_s
        what = "load period, from the first request to the end of the load"
    if measure_from_s > 0 and start_s == measure_from_s:
        what += ", since the statistics were reset"
    return (start_s, max(start_s, end_s)), what


def judge(
    plan: RunPlan,
    collector: Collector,
    lifecycle: Lifecycle,
    now_s: float,
    *,
    gauges: dict[str, Any],
    counters: dict[str, float],
    figures: TimelineFigures | None = None,
    notes: tuple[str, ...] = (),
    measure_from_s: float = 0.0,
    explanations: Mapping[str, str] | None = None,
    queue: QueueReport | None = None,
) -> Verdict:
    """The verdict of ``plan``'s run as measured so far (live while ``lifecycle`` runs)."""
    live = not lifecycle.ended
    stopped_at_s = now_s if live else (lifecycle.stopped_at_s or now_s)
    window, description = measured_window(plan, collector, stopped_at_s, measure_from_s)
    baseline = plan.baseline or _no_criteria(plan)
    return evaluate(
        collector.snapshot(window),
        baseline,
        profile=plan.profile,
        window=window,
        window_description=description,
        gauges=gauges,
        counters=counters,
        figures=figures,
        state=RunState.RUNNING if live else lifecycle.state,
        state_reason="" if live else lifecycle.reason,
        notes=notes,
        live=live,
        explanations=explanations,
        queue=queue,
        reference=plan.reference,
        started_at_s=collector.start_epoch_s or None,
    )


def _no_criteria(plan: RunPlan) -> Baseline:
    """An empty baseline for ``--no-baseline`` runs: the run's state is still judged."""
    return Baseline.model_construct(
        scenario=plan.scenario or "custom", description="", criteria=(), reference=()
    )


def write_verdict(verdict: Verdict, run_dir: Path) -> None:
    """``verdict.json``, ``junit.xml`` and ``summary.txt`` in the run's folder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_verdict_json(verdict, run_dir / VERDICT_FILE)
    write_junit_xml(verdict, run_dir / JUNIT_FILE)
    (run_dir / SUMMARY_FILE).write_text(render_console(verdict), encoding="utf-8")
