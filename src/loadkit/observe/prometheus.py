"""The platform's own metrics: one scrape of a Prometheus text endpoint, reduced to the series
the run's criteria name.

Services expose ``/metrics`` in Prometheus' text format (Node: ``prom-client``; Python:
``prometheus_client``): process CPU seconds and resident memory, heap, event-loop lag, and
whatever the app adds (queue gauges, pool sizes, request histograms). The text is parsed with
``prometheus_client``'s own parser, which knows the format's corners (escaped label values,
``NaN``/``+Inf``, histogram and summary suffixes, ``# HELP``/``# TYPE`` lines) better than a regex.

A *series selector* names one exposed sample name (``process_cpu_seconds_total``,
``http_request_duration_seconds_bucket``) and, optionally, labels it must carry
(``{le="0.1", route="/health"}``). Its value in a scrape is the **sum** of every sample with that
name whose labels include the selector's (PromQL's ``sum(name{labels})``): a selector without
labels over a labelled metric adds the labels up (all heap spaces, all routes). ``NaN`` samples
(a summary with no observations yet) are not values; a selector that matched nothing in a
scrape has no value in it.

Scraping is the kit watching, not load: it never goes through Locust's client, sends no API
key (the endpoint may belong to another process), and a failure raises
:class:`MetricsSourceError` with one line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import requests
from prometheus_client.parser import text_string_to_metric_families

from loadkit.core.reasons import short_reason
from loadkit.core.series import SeriesSelector

#: A scrape must not hang the sampler: well under a few intervals.
MAX_SCRAPE_TIMEOUT_S: Final = 2.0
#: A metrics page is a few hundred lines; a page this large is something else.
MAX_SCRAPE_BYTES: Final = 20_000_000
CPU_SECONDS: Final = "process_cpu_seconds_total"
RESIDENT_MEMORY: Final = "process_resident_memory_bytes"


class MetricsSourceError(RuntimeError):
    """A scrape failed; the message is one line."""


Sample = tuple[str, dict[str, str], float]


def parse_exposition(text: str) -> list[Sample]:
    """Every sample of a text exposition as ``(name, labels, value)``; ``ValueError`` if the text
    is not Prometheus' format."""
    try:
        return [
            (sample.name, dict(sample.labels), float(sample.value))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"not a Prometheus text exposition: {short_reason(exc)}") from None


def select(samples: Iterable[Sample], selectors: Sequence[SeriesSelector]) -> dict[str, float]:
    """``{selector.key: summed value}`` for the selectors that matched a finite sample."""
    by_name: dict[str, list[SeriesSelector]] = {}
    for selector in selectors:
        by_name.setdefault(selector.name, []).append(selector)
    values: dict[str, float] = {}
    for name, labels, value in samples:
        wanted = by_name.get(name)
        if not wanted or math.isnan(value):
            continue
        for selector in wanted:
            if selector.matches(name, labels):
                values[selector.key] = values.get(selector.key, 0.0) + value
    return values


def metrics_url(setting: str, api_url: str | None) -> str | None:
    """An absolute URL as is; a path (``/metrics``) under ``api_url``; None without a base."""
    if "://" in setting:
        return setting
    if not api_url:
        return None
    return api_url.rstrip("/") + "/" + setting.lstrip("/")


class PrometheusSource:
    """Scrapes ``url`` and reads the selected series; a queue-sampler source (``read()``)."""

    def __init__(
        self,
        url: str | Callable[[], str | None],
        selectors: Sequence[SeriesSelector] = (),
        *,
        timeout_s: float = MAX_SCRAPE_TIMEOUT_S,
        verify_tls: bool = True,
    ) -> None:
        self._url = url
        self.selectors: tuple[SeriesSelector, ...] = tuple(dict.fromkeys(selectors))
        self._timeout_s = timeout_s
        self._verify_tls = verify_tls
        self._session: requests.Session | None = None

    @property
    def url(self) -> str | None:
        return self._url() if callable(self._url) else self._url

    @property
    def description(self) -> str:
        return f"GET {self.url or '(no metrics URL)'}"

    def scrape(self) -> list[Sample]:
        """Every sample the endpoint exposes now."""
        url = self.url
        if not url:
            raise MetricsSourceError("no metrics URL: set LOADKIT_METRICS_URL")
        if self._session is None:
            self._session = requests.Session()
        try:
            response = self._session.get(url, timeout=self._timeout_s, verify=self._verify_tls)
        except requests.RequestException as exc:
            raise MetricsSourceError(f"GET {url}: {short_reason(exc)}") from None
        if response.status_code != 200:
            raise MetricsSourceError(f"GET {url}: HTTP {response.status_code}")
        if len(response.content) > MAX_SCRAPE_BYTES:
            raise MetricsSourceError(f"GET {url}: {len(response.content):,} bytes, not a page")
        try:
            return parse_exposition(response.text)
        except ValueError as exc:
            raise MetricsSourceError(f"GET {url}: {exc}") from None

    def read(self) -> dict[str, float]:
        """The selected series' values now (``{selector.key: value}``)."""
        return select(self.scrape(), self.selectors)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
