"""Making Locust's own result files final and present, however the run ended.

Two gaps in Locust 2.47 that would make the kit's files disagree with its verdict:

* the ``--csv`` stats files are rewritten by a greenlet once a second, so the files left on disk
  can miss the run's last second (seen: 9,517 requests in the CSV, 13,977 served). The kit
  writes them once more, from the final stats, when the process exits -- after Locust has closed
  its own handles, so nothing overwrites the final numbers.
* on SIGTERM Locust shuts down without writing the ``--html`` report; the kit writes it at
  ``quitting`` when the run did not end by itself.
"""

from __future__ import annotations

import atexit
import csv
import logging
from collections.abc import Callable
from pathlib import Path

from locust import stats as locust_stats
from locust.env import Environment
from locust.html import get_html_report

logger = logging.getLogger("loadkit")


def finalize_csv_at_exit(environment: Environment) -> None:
    """Rewrite ``PREFIX_stats.csv``, ``_failures.csv`` and ``_exceptions.csv`` at process exit."""
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None)
    if not prefix:
        return
    atexit.register(write_final_csv, environment, str(prefix))


def write_final_csv(environment: Environment, prefix: str) -> None:
    writer = locust_stats.StatsCSV(environment, locust_stats.PERCENTILES_TO_REPORT)
    outputs = {
        "_stats.csv": writer.requests_csv,
        "_failures.csv": writer.failures_csv,
        "_exceptions.csv": writer.exceptions_csv,
    }
    for suffix, write in outputs.items():
        try:
            with open(prefix + suffix, "w", newline="", encoding="utf-8") as handle:
                write(csv.writer(handle))
        except OSError as exc:  # a results folder removed under us must not mask the exit code
            logger.warning("loadkit: could not finalise %s%s: %s", prefix, suffix, exc)


def write_html_report(
    environment: Environment, path: Path | None = None, mask: Callable[[str], str] = str
) -> Path | None:
    """Write Locust's HTML report to ``path``, else to ``--html`` (Locust skips it on SIGTERM,
    and a web UI session has no ``--html``: each of its runs gets one in its folder), passed
    through ``mask`` (the report shows the host, password included)."""
    if path is None:
        html_file = getattr(environment.parsed_options, "html_file", None)
        if not html_file:
            return None
        path = Path(html_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    report = get_html_report(environment, show_download_link=False)
    path.write_text(mask(report), encoding="utf-8")
    return path
