"""The run's outputs beyond Locust's own: a per-second time series, its plot, InfluxDB streaming.

The kit's plugin registers ``--out`` (``add_output_arguments``) and installs the outputs on the
local runner or master (``install_outputs``); the numbers come from the one collector
(``plugin.measurement``). What a run produces:

* with a results folder (``loadkit run`` always has one; ``--results-dir`` for plain Locust):
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import configargparse
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment

from loadkit.plugin.context import context_of
from loadkit.plugin.invalid_input import exit_invalid
from loadkit.plugin.locust_adapter import has_option
from loadkit.plugin.measurement import Sink
from loadkit.results.influxdb import InfluxUrlError, InfluxWriter, parse_influx_url
from loadkit.results.timeseries import FILE_NAME as TIMESERIES_FILE
from loadkit.results.timeseries import JsonlWriter

if TYPE_CHECKING:
    from loadkit.plugin.run_control import RunControl

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
    if has_option(parser, "--out"):
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


def install_outputs(environment: Environment, control: RunControl) -> None:
    """Set up the time series, its plot and the ``--out`` streams (local runner or master).

    Per run: ``timeseries.jsonl`` in the run's folder, written while the run goes on, and
    ``timeseries.png`` drawn from it when the run ends. Per process: each ``--out`` stream.
    """
    options = environment.parsed_options
    if options is None:
        return
    measurement = context_of(environment).measurement
    assert measurement is not None
    control.run_sinks_for = run_sinks
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
            measurement.sinks.append(writer)

    def close_streams(**_: Any) -> None:
        measurement.close()

    environment.events.quit.add_listener(close_streams)


def run_sinks(run_dir: Path) -> list[Sink]:
    """The outputs written into one run's folder: the JSON-lines series, then its plot."""
    return [JsonlWriter(run_dir / TIMESERIES_FILE), PlotWhenClosed(run_dir)]


class PlotWhenClosed:
    """Draws ``timeseries.png`` from the run's ``timeseries.jsonl`` when the run's sinks close."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Nothing to do per second: the plot is drawn once, from the file."""

    def close(self) -> None:
        jsonl = self.run_dir / TIMESERIES_FILE
        if jsonl.exists():
            from loadkit.results.plot import plot_timeseries

            plot_timeseries(jsonl, self.run_dir / PLOT_FILE)


def output_problems(environment: Environment) -> list[str]:
    """What went wrong with this run's outputs, one line each (for the verdict's notes).

    Empty when every output worked, or on a worker (the outputs live on the master). The lines
    name the output by its address without credentials.
    """
    measurement = context_of(environment).measurement
    problems: list[str] = []
    for sink in measurement.sinks if measurement is not None else []:
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
