"""A profile's purpose, judged in the one verdict: the timeline's glue and the judge's inputs.

``RunControl`` judges a run once (and live for the web UI); this module hands it what the
profile-purpose criteria need, computed from the same collector at the same moment:

* gauges: ``generator_rss_bytes`` (the load generators' memory, from the collector's process
  samples) and every ``platform <series>`` scraped (``plugin.platform_metrics``), each with its
  rate and growth over the run's steady window;
* counters: ``held_users`` (``core.purposes.held_load`` over the timeline's user levels);
* figures: the spike phases, recovery and soak drift (``core.purposes.PurposeFigures``);
* notes: the held load in words, for stress runs; a load generator that was the limit (its CPU
  above 80% in the measured window, or arrival-rate iterations it reached too late).

The timeline (``measure.timeline``) is attached to the collector on the local runner or master,
and restarted at each test with the windows of that run's plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.core.purposes import PurposeFigures, held_load, level_criteria, purpose_windows
from loadkit.core.saturation import (
    busiest_per_second,
    generator_loads,
    late_drop_note,
    saturation_note,
)
from loadkit.core.series import growth_per_h, growth_window, rate_per_s
from loadkit.core.verdict import GaugeSummary, TimelineFigures
from loadkit.measure.timeline import Timeline
from loadkit.observe.queue_sampler import summarize
from loadkit.plugin.context import KitContext, context_of
from loadkit.plugin.platform_metrics import platform_points
from loadkit.plugin.verdict import measured_window

EXTRAS_KEY: Final = "timeline"
GENERATOR_RSS: Final = "generator_rss_bytes"
GENERATOR_CPU: Final = "generator_cpu_percent"
HELD_USERS: Final = "held_users"


def install_timeline(environment: Environment, ctx: KitContext) -> Timeline | None:
    """Keep the run's seconds by phase and level (local runner or master); call from ``init``
    after the run control subscribed (its ``test_start`` fixes the plan and starts the clock)."""
    if isinstance(environment.runner, WorkerRunner) or ctx.measurement is None:
        return None
    timeline = Timeline()
    collector = ctx.measurement.collector
    collector.observers.append(timeline)

    def on_test_start(**_: Any) -> None:
        plan = ctx.run
        windows = purpose_windows(plan.profile, plan.stages) if plan is not None else {}
        timeline.start(collector.start_epoch_s, windows)

    environment.events.test_start.add_listener(on_test_start)
    ctx.extras[EXTRAS_KEY] = timeline
    return timeline


@dataclass
class PurposeMeasures:
    """What the verdict needs beyond the whole-run rows, queue and arrival counters."""

    gauges: dict[str, GaugeSummary] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    figures: TimelineFigures | None = None
    notes: list[str] = field(default_factory=list)


def series_summary(
    points: list[tuple[float, float]], window: tuple[float, float] | None, why_missing: str
) -> GaugeSummary:
    """A gauge summary of ``points`` with the rate over ``window`` and the growth over its
    part after warm-up."""
    summary = summarize([value for _, value in sorted(points)])
    rate = rate_per_s(points, window)
    growth = growth_per_h(points, growth_window(window))
    missing = why_missing if not points else ""
    if points and (rate is None or growth is None):
        missing = "fewer than two samples in the steady window"
    return GaugeSummary(
        samples=summary.samples,
        min=summary.min,
        max=summary.max,
        avg=summary.avg,
        p95=summary.p95,
        final=summary.final,
        growth=growth,
        rate=rate,
        why_missing=missing,
    )


def purpose_measures(
    environment: Environment, now_s: float, stopped_at_s: float | None
) -> PurposeMeasures:
    """The inputs of the run's purpose criteria as measured so far."""
    ctx = context_of(environment)
    timeline = ctx.extras.get(EXTRAS_KEY)
    plan = ctx.run
    measures = PurposeMeasures()
    if not isinstance(timeline, Timeline) or plan is None or ctx.measurement is None:
        return measures
    end_s = stopped_at_s if stopped_at_s is not None else now_s
    window, _ = measured_window(plan, ctx.measurement.collector, end_s)
    generator = [(t_s, float(b)) for t_s, b in timeline.generator_rss.items()]
    measures.gauges[GENERATOR_RSS] = series_summary(
        generator, window, "no load generator memory was sampled"
    )
    measures.gauges[GENERATOR_CPU] = series_summary(
        busiest_per_second(timeline.generator_cpu, window),
        window,
        "no load generator CPU was sampled",
    )
    measures.notes.extend(generator_notes(environment, timeline, window))
    points, why = platform_points(environment)
    wanted = [c for c in (plan.baseline.criteria if plan.baseline else ()) if c.platform]
    for key in {*points, *(f"{c.platform_series}" for c in wanted)}:
        measures.gauges[f"platform {key}"] = series_summary(points.get(key, []), window, why)
    measures.figures = PurposeFigures(
        timeline.windows, timeline.by_window, timeline.recovery_p95_ms, stopped_at_s
    )
    if plan.baseline is not None:
        held = held_load(timeline.by_level, level_criteria(plan.baseline, plan.profile))
        if held is not None:
            measures.counters[HELD_USERS] = float(held.users or 0)
            if plan.profile == "stress" or any(
                c.counter == HELD_USERS for c in plan.baseline.criteria_for(plan.profile)
            ):
                measures.notes.append(f"load held: {held.describe()}")
    return measures


def generator_saturation(environment: Environment, end_s: float) -> list[str]:
    """Each saturated generator in words, for the web UI's status strip; ``end_s``: the run's
    elapsed time, or when its load stopped."""
    ctx = context_of(environment)
    timeline = ctx.extras.get(EXTRAS_KEY)
    if not isinstance(timeline, Timeline) or ctx.run is None or ctx.measurement is None:
        return []
    window, _ = measured_window(ctx.run, ctx.measurement.collector, end_s)
    loads = generator_loads(timeline.generator_cpu, window)
    return [load.describe() for load in loads if load.saturated]


def generator_notes(
    environment: Environment, timeline: Timeline, window: tuple[float, float] | None
) -> list[str]:
    """The verdict's notes when the load generator, not the platform, was the limit."""
    from loadkit.plugin.arrival import (
        DROPPED_ITERATIONS,
        LATE_ITERATIONS,
        STARTED_ITERATIONS,
        arrival_counters,
    )

    notes = [saturation_note(generator_loads(timeline.generator_cpu, window))]
    if arrival_counters(environment):
        counters = context_of(environment).measurement.collector.counters  # type: ignore[union-attr]
        notes.append(
            late_drop_note(
                int(counters.get(LATE_ITERATIONS, 0)),
                int(counters.get(STARTED_ITERATIONS, 0)),
                int(counters.get(DROPPED_ITERATIONS, 0)),
            )
        )
    return [note for note in notes if note]
