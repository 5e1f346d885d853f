"""The queue sampler, wired into Locust: where it runs and when it samples.

Thin glue around ``queue_sampler`` and ``queue_sources``:

* only where the run is judged (the local runner or the master): workers never sample, or the
  platform would be asked N times a second and the series would not be one;
* sampling starts at ``test_start`` and stops at ``test_stop`` (one last reading, so ``final``
  is where the queue stood when the load stopped), once per test in the web UI too;
* the summary is what the verdict judges as the ``queue_depth`` gauge (:func:`queue_gauges`);
  the series goes to the run's results folder and, with a web UI, to a "Queue depth" tab.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.core.verdict import GaugeSummary
from loadkit.observe.queue_sampler import QueueSampler
from loadkit.observe.queue_sources import source_from_settings
from loadkit.plugin.context import KitContext, context_of
from loadkit.plugin.queue_web import register_queue_tab

logger = logging.getLogger("loadkit.queue")

GAUGE_NAME: Final = "queue_depth"
SERIES_FILE: Final = "queue_depth.jsonl"


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
    """Stop this test's sampling (one last reading) and write its series to the run folder."""
    ctx = context_of(environment)
    sampler = ctx.queue_sampler
    if sampler is None:
        return
    sampler.finish(ctx.run_dir / SERIES_FILE if ctx.run_dir is not None else None)


def queue_sampler_of(environment: Environment) -> QueueSampler | None:
    """The sampler :func:`install_queue_sampler` attached to ``environment``, if any."""
    return context_of(environment).queue_sampler


def queue_gauges(environment: Environment) -> dict[str, GaugeSummary]:
    """The gauges for ``evaluate(..., gauges=...)``: ``{"queue_depth": summary}``, or ``{}``
    when nothing samples (a ``queue_depth`` criterion is then "no data", as it should be)."""
    sampler = queue_sampler_of(environment)
    return {} if sampler is None else {GAUGE_NAME: sampler.summary()}
