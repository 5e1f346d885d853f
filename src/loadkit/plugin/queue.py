"""The queue sampler, wired into Locust: where it runs and when it samples.

Thin glue around ``queue_sampler`` and ``queue_sources``:

* only where the run is judged (the local runner or the master): workers never sample, or the
  platform would be asked N times a second and the series would not be one;
* sampling starts at ``test_start``; at ``test_stop`` one more reading says where the queue
  stood when the load stopped, and sampling goes on while due work drains (bounded by
  ``LOADKIT_QUEUE_DRAIN_MAX_S``), once per test in the web UI too;
* the readings become the verdict's queue gauges, counters and report (:func:`queue_inputs`,
  built by the pure ``observe.queue_run``); the series goes to the run's results folder and,
  with a web UI, to a "Queue depth" tab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.core.lifecycle import RunState
from loadkit.core.queue_report import QueueReport
from loadkit.core.verdict import GaugeSummary
from loadkit.observe import queue_run
from loadkit.observe.queue_sampler import QueueSampler
from loadkit.observe.queue_sources import depth_meaning_of, source_from_settings
from loadkit.plugin.context import KitContext, context_of
from loadkit.plugin.queue_web import register_queue_tab

SERIES_FILE: Final = "queue_depth.jsonl"
#: Runs whose queue is not followed after the load: a person or a criterion ended them.
NO_DRAIN_STATES: Final = frozenset({RunState.INTERRUPTED, RunState.ABORTED})
#: ``KitContext.extras`` key: why this run's drain was not followed ("" when it was).
DRAIN_SKIPPED: Final = "queue_drain_skipped"


def install_queue_sampler(environment: Environment, ctx: KitContext) -> QueueSampler | None:
    """Sample the queue during each test of ``environment``; None on workers or when off.

    Call it from ``init`` once the target is known and the settings hold the key that will be
    used (after the embedded platform, if any, was started). The API URL is looked up at each
    reading (``environment.host``, else ``API_URL``), so a host typed into the web UI is
    followed. The run control ends each test's sampling (``finish_queue_sampling``) before it
    judges, so the last reading is where the queue stood when the load stopped.
    Raises ``QueueSourceError`` for a source that cannot be built (bad queue keys).
    """
    if isinstance(environment.runner, WorkerRunner):
        return None
    settings = ctx.settings
    source = source_from_settings(settings, base_url=lambda: environment.host or settings.api_url)
    if source is None:
        return None
    sampler = QueueSampler(source, settings.queue_sample_interval_s)

    def on_test_start(**_: Any) -> None:
        sampler.start()

    def on_quitting(**_: Any) -> None:
        sampler.close()

    environment.events.test_start.add_listener(on_test_start)
    environment.events.quitting.add_listener(on_quitting)
    ctx.queue_sampler = sampler
    if environment.web_ui is not None:
        register_queue_tab(environment.web_ui, sampler)
    return sampler


def finish_queue_sampling(environment: Environment) -> None:
    """The load stopped: take the reading where the queue stood, follow the drain (bounded by
    ``LOADKIT_QUEUE_DRAIN_MAX_S``; not for an interrupted or aborted run, whose people or
    criteria want it over), then write the series to the run folder."""
    ctx = context_of(environment)
    sampler = ctx.queue_sampler
    if sampler is None:
        return
    sampler.end_of_load()
    skipped = _no_drain_because(ctx)
    ctx.extras[DRAIN_SKIPPED] = skipped
    if not skipped:
        sampler.drain(ctx.settings.queue_drain_max_s, cut=lambda: _interrupted(ctx))
    # Already stopped by end_of_load, so finish takes no further reading: it writes and reports.
    sampler.finish(ctx.run_dir / SERIES_FILE if ctx.run_dir is not None else None)


def _no_drain_because(ctx: KitContext) -> str:
    lifecycle = ctx.control.lifecycle if ctx.control is not None else None
    if lifecycle is not None and lifecycle.state in NO_DRAIN_STATES:
        return f"the run was {lifecycle.state.value}"
    if ctx.settings.queue_drain_max_s <= 0:
        return "LOADKIT_QUEUE_DRAIN_MAX_S is 0"
    return ""


def _interrupted(ctx: KitContext) -> bool:
    """A Ctrl-C or SIGTERM during the drain ends it: the person wants the verdict now."""
    return ctx.control is not None and ctx.control.interrupts > 0


def queue_sampler_of(environment: Environment) -> QueueSampler | None:
    """The sampler :func:`install_queue_sampler` attached to ``environment``, if any."""
    return context_of(environment).queue_sampler


def queue_gauges(environment: Environment) -> dict[str, GaugeSummary]:
    """The gauges for ``evaluate(..., gauges=...)`` (``queue_depth``, ``queue_overdue`` ...),
    over the load's readings; ``{}`` when nothing samples (a queue criterion is then "no data",
    as it should be)."""
    sampler = queue_sampler_of(environment)
    return {} if sampler is None else queue_run.queue_gauges(sampler.load_samples)


@dataclass(frozen=True)
class QueueInputs:
    """Everything the verdict takes from the queue, read at one moment."""

    gauges: dict[str, GaugeSummary] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    explanations: dict[str, str] = field(default_factory=dict)
    report: QueueReport | None = None


def queue_inputs(environment: Environment, *, report: bool = True) -> QueueInputs:
    """The queue's gauges, counters (jobs, rates, the worst stall), the stall's explanation and
    (unless ``report`` is False: an abort check needs none) the report, from the series so far;
    empty when nothing samples."""
    ctx = context_of(environment)
    sampler = ctx.queue_sampler
    if sampler is None:
        return QueueInputs()
    samples = sampler.samples
    window_s = ctx.settings.queue_stall_window_s
    return QueueInputs(
        gauges=queue_run.queue_gauges(sampler.load_samples),
        counters=queue_run.queue_counters(samples, stall_window_s=window_s),
        explanations=queue_run.stall_explanations(samples, stall_window_s=window_s),
        report=_report(ctx, sampler) if report else None,
    )


def _report(ctx: KitContext, sampler: QueueSampler) -> QueueReport:
    source = sampler.source
    state = getattr(source, "last_state", None)  # a BullMQ queue's: its meta names the version
    return queue_run.queue_report(
        sampler.samples,
        source=source.description,
        depth_meaning=depth_meaning_of(source),
        failed_samples=sampler.errors,
        load_ended_s=sampler.load_ended_s,
        drain_max_s=ctx.settings.queue_drain_max_s,
        drain_skipped=ctx.extras.get(DRAIN_SKIPPED, ""),
        stall_window_s=ctx.settings.queue_stall_window_s,
        version=state.meta.version if state is not None else None,
    )
