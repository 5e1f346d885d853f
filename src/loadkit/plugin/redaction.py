"""Every secret the kit knows, masked in everything a Locust process logs, writes or serves.

Three places, because Locust has three ways out:

* log records (console, ``locust.log``, the web UI's log view): a filter on every root handler;
* what Locust keeps of failures and exceptions (CSV files, report.html, the web UI's tables, the
  worker->master reports): masked where they enter (``locust_adapter.mask_errors_at_source``);
* files written whole at the end, with text the kit does not control: Locust writes the host,
  ``user:password@`` included, into report.html. At ``quit`` (after the report and the verdict
  files are written) the results folder's text files are read back and masked if needed.

The web UI's pages and JSON are masked on their way out by ``web_guard``.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from locust.env import Environment

from loadkit.core.redact import Redactor, install_secret_filter, refresh_secret_filter, url_secrets
from loadkit.plugin.context import context_of, existing_context
from loadkit.plugin.locust_adapter import mask_errors_at_source
from loadkit.settings import Settings

logger = logging.getLogger("loadkit")

#: Files of a results folder read back at the end (logs are masked as they are written).
SCRUBBED_SUFFIXES: Final = (".html", ".csv", ".json", ".jsonl", ".txt", ".xml")
#: Locust's ``--csv PREFIX`` files.
CSV_SUFFIXES: Final = ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv")
#: A file larger than this is not read back (per-second series of a day-long run stay fast).
MAX_SCRUBBED_BYTES: Final = 200_000_000


def redactor_of(environment: Environment) -> Redactor:
    """This process's redactor (an empty one, still masking URL passwords, before ``init``)."""
    redactor = existing_context(environment, "redactor")
    return redactor if isinstance(redactor, Redactor) else Redactor()


def install_redaction(environment: Environment, settings: Settings) -> Redactor:
    """Mask the settings' secrets and any ``--out`` URL password in every output."""
    options = environment.parsed_options
    out_urls = [str(spec).partition("=")[2] for spec in getattr(options, "out", None) or []]
    redactor = Redactor([*settings.secrets(), *(s for url in out_urls for s in url_secrets(url))])
    context_of(environment).extras["redactor"] = redactor
    secret_filter = install_secret_filter(redactor)
    if environment.runner is not None:
        mask_errors_at_source(environment.stats, environment.runner, redactor.mask)
    folders = _result_files(options)

    def scrub_at_end(**_: Any) -> None:
        refresh_secret_filter(secret_filter)
        for path in _files_in(folders):
            scrub_file(path, redactor)

    environment.events.quit.add_listener(scrub_at_end)
    # Files finalised at exit (Locust's CSVs) run after quit; they are masked at the source,
    # and this second pass is cheap insurance.
    atexit.register(scrub_at_end)
    return redactor


def add_secrets(environment: Environment, secrets: Iterable[str]) -> None:
    """Mask these too from now on (the embedded platform's random key)."""
    redactor_of(environment).add(secrets)


def scrub_file(path: Path, redactor: Redactor) -> bool:
    """Mask the secrets in a text file in place; True if it held any."""
    try:
        if path.stat().st_size > MAX_SCRUBBED_BYTES:
            return False
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    masked = redactor.mask(text)
    if masked == text:
        return False
    try:
        path.write_text(masked, encoding="utf-8")
    except OSError as exc:
        logger.error("loadkit: could not mask a secret in %s: %s", path, exc.strerror or exc)
        return False
    return True


def _result_files(options: Any) -> list[Path]:
    """The files and folders this process writes results to: the kit's results folder (all of
    it), ``--html``, and the ``--csv`` files (only those: their prefix may be in any folder)."""
    paths = []
    for attribute in ("results_dir", "html_file"):
        value = getattr(options, attribute, None)
        if value:
            paths.append(Path(str(value)))
    prefix = getattr(options, "csv_prefix", None)
    if prefix:
        paths += [Path(f"{prefix}{suffix}") for suffix in CSV_SUFFIXES]
    return paths


def _files_in(paths: list[Path]) -> list[Path]:
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_file():
            found[path] = None
        elif path.is_dir():  # a web UI session: one sub-folder per run
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix in SCRUBBED_SUFFIXES:
                    found[child] = None
    return list(found)
