"""The platform's own metrics, scraped beside the load: where, when, and what is kept.

Thin glue around ``observe.prometheus`` (one scrape, reduced to the series wanted) and the queue
sampler's greenlet (``observe.queue_sampler``: a reading every interval, failures counted and
logged, never the reason a run fails):

* only where the run is judged (local runner or master), like the queue sampler;
* from ``test_start`` to the run control's ``test_stop`` (one last scrape, so ``final`` is where
  the platform stood when the load stopped);
* the series kept are the ones the run's baseline names (``platform = ...``, with ``labels``)
  plus CPU seconds and resident memory, so a page of hundreds of series costs a few floats a
  second; they are written to ``platform_metrics.jsonl`` in the run's folder.

``LOADKIT_METRICS_URL`` says where to scrape: an absolute URL, or a path under the target
(``/metrics``); with the embedded reference platform and nothing set, its ``/metrics``.
"""

from __future__ import annotations

from typing import Any, Final

from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.core.baselines import Baseline
from loadkit.core.hosts import HostNotAllowedError
from loadkit.core.series import SeriesSelector
from loadkit.observe.prometheus import CPU_SECONDS, RESIDENT_MEMORY, PrometheusSource, metrics_url
from loadkit.observe.queue_sampler import QueueSampler
from loadkit.plugin.context import KitContext, context_of
from loadkit.plugin.host_guard import allow_list_of
from loadkit.plugin.invalid_input import exit_invalid

SERIES_FILE: Final = "platform_metrics.jsonl"
EXTRAS_KEY: Final = "platform_metrics"
#: Kept in every run: the two series the guide names (CPU below 80 %, memory not unbounded).
DEFAULT_SERIES: Final = (SeriesSelector.of(CPU_SECONDS), SeriesSelector.of(RESIDENT_MEMORY))


class PlatformSampler(QueueSampler):
    what = "platform metrics"


def wanted_series(baseline: Baseline | None) -> tuple[SeriesSelector, ...]:
    """The defaults plus every series the baseline's criteria name."""
    named = [] if baseline is None else [c.platform_selector for c in baseline.criteria]
    return tuple(dict.fromkeys([*DEFAULT_SERIES, *(s for s in named if s is not None)]))


def install_platform_metrics(environment: Environment, ctx: KitContext) -> PlatformSampler | None:
    """Scrape the platform during each test of ``environment``; None on workers or when no
    metrics URL is known. Call from ``init`` after the target is set."""
    if isinstance(environment.runner, WorkerRunner):
        return None
    settings = ctx.settings
    if settings.metrics_url is None:
        return None
    if "://" in settings.metrics_url:  # a path under the target is checked with the target
        try:
            allow_list_of(environment).check_url(
                settings.metrics_url, what="LOADKIT_METRICS_URL host"
            )
        except HostNotAllowedError as exc:
            exit_invalid(str(exc))

    def url() -> str | None:
        return metrics_url(str(settings.metrics_url), environment.host or settings.api_url)

    source = PrometheusSource(url, DEFAULT_SERIES, verify_tls=settings.verify_tls)
    sampler = PlatformSampler(source, settings.metrics_sample_interval_s)

    def on_test_start(**_: Any) -> None:
        plan = ctx.run
        source.selectors = wanted_series(plan.baseline if plan is not None else None)
        sampler.start()

    def on_quitting(**_: Any) -> None:
        sampler.close()

    environment.events.test_start.add_listener(on_test_start)
    environment.events.quitting.add_listener(on_quitting)
    ctx.extras[EXTRAS_KEY] = sampler
    return sampler


def platform_sampler_of(environment: Environment) -> PlatformSampler | None:
    sampler = context_of(environment).extras.get(EXTRAS_KEY)
    return sampler if isinstance(sampler, PlatformSampler) else None


def finish_platform_sampling(environment: Environment) -> None:
    """Stop this test's scraping (one last scrape) and write its series to the run folder."""
    ctx = context_of(environment)
    sampler = platform_sampler_of(environment)
    if sampler is None:
        return
    sampler.finish(ctx.run_dir / SERIES_FILE if ctx.run_dir is not None else None)


def platform_points(environment: Environment) -> tuple[dict[str, list[tuple[float, float]]], str]:
    """``{series key: [(t_s, value)]}`` of this test's scrapes, and why a series may be missing
    (for "no data" reasons)."""
    sampler = platform_sampler_of(environment)
    if sampler is None:
        return {}, "no metrics source: set LOADKIT_METRICS_URL to the platform's /metrics"
    points: dict[str, list[tuple[float, float]]] = {}
    for t_s, reading in sampler.samples:
        for key, value in reading.items():
            points.setdefault(key, []).append((t_s, value))
    if sampler.samples:
        return points, f"not in the answers of {sampler.source.description}"
    if sampler.errors:
        return points, f"every scrape failed (last: {sampler.last_error})"
    return points, "no scrape was taken yet"
