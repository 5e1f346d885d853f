"""The run's outputs beyond Locust's own: a per-second time series, its plot, InfluxDB streaming.

Two calls wire everything into Locust (the kit's plugin makes them; a locustfile may too, both
are idempotent)::

    @events.init_command_line_parser.add_listener
    def _(parser): add_output_arguments(parser)

    @events.init.add_listener
    def _(environment, **kw): install_outputs(environment)

What a run then produces (local runner or master; workers only ship samples):

* with a results folder (``--results-dir``, which ``loadkit run`` always sets):
  ``timeseries.jsonl`` (``loadkit.results.timeseries``), written while the run goes on, and
  ``timeseries.png`` (``loadkit.results.plot``), drawn from it when the run ends;
* with ``--out influxdb=URL`` (repeatable, k6 style): the same per-second data streamed to
  InfluxDB v1 (``loadkit.results.influxdb``); needs no results folder.

OpenTelemetry is Locust's own ``--otel`` (see ``docs/outputs.md``); nothing to install here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import configargparse
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import WorkerRunner

from loadkit.measure.series_listener import Collector, Sink
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.results.influxdb import InfluxUrlError, InfluxWriter, parse_influx_url
from loadkit.results.timeseries import FILE_NAME as TIMESERIES_FILE
from loadkit.results.timeseries import JsonlWriter

__all__ = [
    "PLOT_FILE",
    "TIMESERIES_FILE",
    "OutputSpec",
    "add_output_arguments",
    "install_outputs",
    "output_problems",
    "parse_output_spec",
]

logger = logging.getLogger("loadkit.outputs")

PLOT_FILE: Final = "timeseries.png"
OUT_ENV: Final = "LOADKIT_OUT"
#: ``--out`` kinds and what their target means.
OUTPUT_KINDS: Final = {"influxdb": "URL of an InfluxDB v1 database, e.g. http://localhost:8086/k6"}


@dataclass(frozen=True)
class OutputSpec:
    """One ``--out KIND[=TARGET]``."""

    kind: str
    target: str

    def __repr__(self) -> str:  # a target URL may hold a password
        return f"OutputSpec(kind={self.kind!r})"


def parse_output_spec(text: str) -> OutputSpec:
    """``influxdb=http://host:8086/db`` -> ``OutputSpec``; ``ArgumentTypeError`` if invalid."""
    kind, _, target = text.partition("=")
    kind = kind.strip().lower()
    if kind not in OUTPUT_KINDS:
        known = ", ".join(f"{k}=..." for k in OUTPUT_KINDS)
        raise argparse.ArgumentTypeError(f"unknown output {kind!r} (known: {known})")
    if kind == "influxdb":
        try:
            parse_influx_url(target)
        except InfluxUrlError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return OutputSpec(kind, target.strip())


def _checked_spec(text: str) -> str:
    """``--out``'s argparse type: validates, but keeps the text (``parsed_options`` travel to
    the workers as msgpack, which knows no ``OutputSpec``)."""
    parse_output_spec(text)
    return text.strip()


def add_output_arguments(parser: Any) -> None:
    """Register ``--out KIND=TARGET`` (repeatable; env ``LOADKIT_OUT``, ``[a, b]`` for several).

    Call it from an ``@events.init_command_line_parser`` listener; safe to call twice.
    """
    if "--out" in parser._option_string_actions:
        return
    kwargs: dict[str, Any] = {}
    if isinstance(parser, LocustArgumentParser):
        kwargs["include_in_web_ui"] = False  # a list with possible credentials: not a form field
    if isinstance(parser, configargparse.ArgumentParser):
        kwargs["env_var"] = OUT_ENV
    parser.add_argument(
        "--out",
        action="append",
        type=_checked_spec,
        default=None,
        metavar="KIND=TARGET",
        help="also stream metrics to an output, repeatable (k6 style): "
        "influxdb=http://localhost:8086/k6 writes per-second aggregates to InfluxDB v1. "
        f"[env var: {OUT_ENV}]",
        **kwargs,
    )


def install_outputs(environment: Environment) -> None:
    """Set up the time series, its plot and the ``--out`` streams for this process.

    Call it from an ``@events.init`` listener (after ``add_output_arguments``); a second call
    for the same environment does nothing. Workers get a collector that records only when the
    master asks for it; the master or local runner gets the sinks, or nothing when there is
    nothing to produce. The collector is kept as ``environment.loadkit_outputs``.
    """
    if getattr(environment, "loadkit_outputs", None) is not None:
        return
    options = environment.parsed_options
    if options is None or environment.runner is None:
        return
    if isinstance(environment.runner, WorkerRunner):
        collector = Collector(environment)
    else:
        sinks, at_end = _outputs(options)
        environment.loadkit_output_sinks = sinks  # type: ignore[attr-defined]
        if not sinks:
            return
        collector = Collector(environment, sinks, at_end)
    environment.loadkit_outputs = collector  # type: ignore[attr-defined]


def _outputs(options: Any) -> tuple[list[Sink], list[Callable[[], None]]]:
    """The sinks and end-of-run hooks the options ask for (local runner or master)."""
    sinks: list[Sink] = []
    at_end: list[Callable[[], None]] = []
    results_dir = getattr(options, "results_dir", None)
    if results_dir:
        folder = Path(results_dir)
        sinks.append(JsonlWriter(folder / TIMESERIES_FILE))

        def draw_plot() -> None:
            from loadkit.results.plot import plot_timeseries

            jsonl = folder / TIMESERIES_FILE
            if jsonl.exists():
                plot_timeseries(jsonl, folder / PLOT_FILE)

        at_end.append(draw_plot)
    for text in getattr(options, "out", None) or []:
        try:
            spec = parse_output_spec(str(text))
        except argparse.ArgumentTypeError as exc:  # set without the parser (locust.conf is parsed)
            exit_invalid(f"invalid --out: {exc}")
        if spec.kind == "influxdb":
            writer = InfluxWriter(parse_influx_url(spec.target))
            writer.on_problem = _on_console_once()
            writer.start()
            logger.info("loadkit: streaming metrics to InfluxDB at %s", writer.target.display)
            sinks.append(writer)
    return sinks, at_end


def output_problems(environment: Environment) -> list[str]:
    """What went wrong with this run's outputs, one line each (for the verdict's notes).

    Empty when every output worked, or on a worker (the outputs live on the master). The lines
    name the output by its address without credentials.
    """
    problems: list[str] = []
    for sink in getattr(environment, "loadkit_output_sinks", None) or []:
        for problem in getattr(sink, "problems", ()):
            if problem not in problems:
                problems.append(problem)
    return problems


def _on_console_once() -> Callable[[str], None]:
    """Print an output's first problem on stderr: Locust logs to locust.log only, and a sink
    that fails silently loses the run's metrics without anyone noticing."""
    told = False

    def tell(problem: str) -> None:
        nonlocal told
        if not told:
            told = True
            print(f"loadkit: output problem: {problem}", file=sys.stderr, flush=True)

    return tell
