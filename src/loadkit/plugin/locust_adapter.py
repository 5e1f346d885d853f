"""Keeping the kit's non-HTTP rows out of Locust's own "Aggregated" total.

The kit reports two kinds of rows through Locust's request event that are not requests of their
own: ``JOB`` timings (a bulk import's upload-to-completed time) and ``INTENDED`` latencies (the
arrival rate's second view of each request). Locust adds every row to its total, so its console,
CSV, HTML report and web UI header would count them as traffic: a 50 calls/s scheduling run
showed as 100 requests/s. Here the ``RequestStats`` of each load-generating process logs those
rows to their own entries only. The master's total is the sum of the workers' totals, so it is
right too. (Locust 2.47's ``log_request`` / ``log_error``; the kit pins ``locust<2.48``.)
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from locust.stats import RequestStats, StatsError

from loadkit.endpoints import NON_HTTP_REQUEST_TYPES


def keep_out_of_total(
    stats: RequestStats, request_types: Collection[str] = NON_HTTP_REQUEST_TYPES
) -> None:
    """Make ``stats`` log rows of ``request_types`` to their own entries but not to the total."""
    log_request = stats.log_request
    log_error = stats.log_error

    def log_request_outside_total(
        method: str, name: str, response_time: int, content_length: int
    ) -> None:
        if method not in request_types:
            log_request(method, name, response_time, content_length)
            return
        stats.entries[(name, method)].log(response_time, content_length)

    def log_error_outside_total(method: str, name: str, error: Exception | str | None) -> None:
        if method not in request_types:
            log_error(method, name, error)
            return
        stats.entries[(name, method)].log_error(error)
        key = StatsError.create_key(method, name, error)
        entry = stats.errors.get(key)
        if entry is None:
            entry = stats.errors[key] = StatsError(method, name, error)
        entry.occurred()

    stats.log_request = log_request_outside_total  # type: ignore[method-assign]
    stats.log_error = log_error_outside_total  # type: ignore[method-assign]


def mask_errors_at_source(stats: RequestStats, runner: object, mask: Callable[[str], str]) -> None:
    """Pass every failure message and exception text through ``mask`` before Locust keeps it.

    What Locust keeps is what it writes everywhere: ``stats_failures.csv``,
    ``stats_exceptions.csv``, report.html, the web UI's tables and the worker->master reports.
    Masking where errors enter (``RequestStats.log_error``, ``Runner.log_exception``, both
    Locust 2.47) covers them all at once. An error object whose text needs no masking is passed
    on unchanged, so Locust's own display of it stays as it was.
    """
    log_error = stats.log_error

    def log_masked_error(method: str, name: str, error: Exception | str | None) -> None:
        if error is not None:
            text = StatsError.parse_error(error)
            masked = mask(text)
            if masked != text:
                error = masked
        log_error(method, name, error)

    stats.log_error = log_masked_error  # type: ignore[method-assign]
    log_exception = getattr(runner, "log_exception", None)
    if log_exception is None:
        return

    def log_masked_exception(node_id: str, msg: str, formatted_tb: str) -> None:
        log_exception(node_id, mask(str(msg)), mask(str(formatted_tb)))

    runner.log_exception = log_masked_exception  # type: ignore[attr-defined]
