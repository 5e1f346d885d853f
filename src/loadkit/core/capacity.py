"""How many Locust worker processes (and cores) a request rate needs: the plan's arithmetic.

Pure: the measured figures arrive as plain data (``capacity_figures.json``, written by the
benchmarks in bench/) and the plan is returned as values and lines of text.

The model, stated once here and printed with every plan:

* A Locust worker is one process doing its work on one thread (gevent), so it uses at most one
  core. It is planned at ``TARGET_UTILISATION`` of that core, not 100 %: a saturated generator
  sends late and reports its own queueing as the platform's latency (Locust warns at 90 %).
* One request of scenario S costs the worker ``cpu_ms_per_request(S)`` of CPU, as measured by
  ``bench/generator_cost.py`` (the scenario's payloads, checks and waits included). So a worker
  drives ``1000 / cpu_ms_per_request x TARGET_UTILISATION`` requests/s, and a rate R needs
  ``ceil(R / that)`` workers.
* Every worker reports to the master every ``WORKER_REPORT_INTERVAL_S``; the master spends
  ``cpu_ms_per_report`` on each (``bench/master_cost.py``), all on one thread: W workers cost it
  ``W / 3 s x cpu_ms_per_report`` of one core.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Share of a core a worker (or the master) is planned to use.
TARGET_UTILISATION = 0.7
#: Locust workers send their stats to the master this often (locust.runners).
WORKER_REPORT_INTERVAL_S = 3.0
#: Kubernetes CPU requests are rounded up to this many millicores.
MILLICORE_STEP = 50
#: The master's CPU request before any report: its own work (the shape's tick, a CSV row per
#: second, the web UI, the report and plot at the end) measured under 1 % of a core during a run
#: (bench/scale_out.py); the rest is room for the end-of-run burst. The manifests request this.
MIN_MASTER_MILLICORES = 250
TEXT_WIDTH = 100


class CapacityError(ValueError):
    """Bad input to a plan, or a figures file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Measured:
    """A repeated measurement: its median and the range of the repeats."""

    median: float
    low: float
    high: float
    repeats: int


@dataclass(frozen=True)
class ScenarioCost:
    scenario: str
    cpu_ms_per_request: Measured


@dataclass(frozen=True)
class MasterCost:
    """The master's CPU per worker report, when the cluster has ``workers`` workers."""

    workers: int
    cpu_ms_per_report: Measured


@dataclass(frozen=True)
class CapacityFigures:
    scenarios: Mapping[str, ScenarioCost]
    #: Sorted by worker count; empty if the master was not measured.
    master: Sequence[MasterCost]
    measured_on: str
    machine: str
    command: str


@dataclass(frozen=True)
class Plan:
    scenario: str
    rate_per_s: float
    workers: int
    #: Workers the same rate needs at the cheapest and dearest repeat of the measurement.
    workers_range: tuple[int, int]
    rate_per_worker_per_s: float
    cpu_ms_per_request: Measured
    master_cores: float
    master_cpu_ms_per_report: Measured | None
    #: The master measurement used was made with fewer workers than planned.
    master_extrapolated: bool

    @property
    def worker_millicores(self) -> int:
        return 1000

    @property
    def master_millicores(self) -> int:
        needed = math.ceil(self.master_cores * 1000 / MILLICORE_STEP) * MILLICORE_STEP
        return MIN_MASTER_MILLICORES + needed

    @property
    def total_cores(self) -> float:
        return self.workers + self.master_cores


def figures_from_data(data: Mapping[str, Any]) -> CapacityFigures:
    """Read the figures file's content; a missing or malformed part is one-line CapacityError."""
    try:
        generator = data["generator"]
        scenarios = {
            name: ScenarioCost(name, _measured(entry["cpu_ms_per_request"]))
            for name, entry in generator["scenarios"].items()
        }
        master = sorted(
            (
                MasterCost(int(workers), _measured(entry["cpu_ms_per_report"]))
                for workers, entry in data.get("master", {}).get("replay", {}).items()
            ),
            key=lambda cost: cost.workers,
        )
        return CapacityFigures(
            scenarios=scenarios,
            master=master,
            measured_on=str(generator["measured_on"]),
            machine=str(generator["machine"]),
            command=str(generator["command"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CapacityError(f"capacity figures: missing or malformed entry ({exc})") from None


def _measured(entry: Mapping[str, Any]) -> Measured:
    measured = Measured(
        float(entry["median"]), float(entry["min"]), float(entry["max"]), int(entry["n"])
    )
    if not 0 < measured.low <= measured.median <= measured.high or not math.isfinite(measured.high):
        raise ValueError(f"not 0 < min <= median <= max: {dict(entry)}")
    return measured


def plan_capacity(
    figures: CapacityFigures,
    scenario: str,
    rate_per_s: float,
    utilisation: float = TARGET_UTILISATION,
) -> Plan:
    """Workers and master CPU for ``rate_per_s`` HTTP requests per second of ``scenario``."""
    if not math.isfinite(rate_per_s) or rate_per_s <= 0:
        raise CapacityError(f"the rate must be a number of requests/s above 0, got {rate_per_s:g}")
    if not 0 < utilisation <= 1:
        raise CapacityError(f"utilisation must be in (0, 1], got {utilisation:g}")
    cost = figures.scenarios.get(scenario)
    if cost is None:
        known = ", ".join(figures.scenarios)
        raise CapacityError(f"no measured figures for scenario '{scenario}' (have: {known})")
    measured = cost.cpu_ms_per_request

    def workers_at(cpu_ms: float) -> int:
        return math.ceil(rate_per_s / _rate_per_worker(cpu_ms, utilisation) - 1e-9)

    workers = workers_at(measured.median)
    master = _master_cost(figures.master, workers)
    master_cores = 0.0
    if master is not None:
        reports_per_s = workers / WORKER_REPORT_INTERVAL_S
        master_cores = reports_per_s * master.cpu_ms_per_report.median / 1000 / utilisation
    return Plan(
        scenario=scenario,
        rate_per_s=rate_per_s,
        workers=workers,
        workers_range=(workers_at(measured.low), workers_at(measured.high)),
        rate_per_worker_per_s=_rate_per_worker(measured.median, utilisation),
        cpu_ms_per_request=measured,
        master_cores=master_cores,
        master_cpu_ms_per_report=None if master is None else master.cpu_ms_per_report,
        master_extrapolated=master is not None and master.workers < workers,
    )


def _rate_per_worker(cpu_ms_per_request: float, utilisation: float) -> float:
    return 1000.0 / cpu_ms_per_request * utilisation


def _master_cost(costs: Sequence[MasterCost], workers: int) -> MasterCost | None:
    """The measurement made with the fewest workers that is still at least ``workers`` (the
    master's cost per report grows with the cluster); the largest one beyond that."""
    for cost in costs:
        if cost.workers >= workers:
            return cost
    return costs[-1] if costs else None


def render_plan(
    plan: Plan, figures: CapacityFigures, utilisation: float = TARGET_UTILISATION
) -> list[str]:
    """The plan as lines for people, the assumption included."""
    cost = plan.cpu_ms_per_request
    low, high = plan.workers_range
    spread = f" ({low}-{high} over the measured spread)" if low != high else ""
    workers = (
        f"{plan.workers} Locust worker processes, one core each"
        if plan.workers != 1
        else "1 Locust worker process, one core"
    )
    lines = [
        f"{plan.scenario} at {_rate_text(plan.rate_per_s)} requests/s:",
        f"  workers  {workers}{spread}",
        f"           each {plan.rate_per_worker_per_s:,.0f} requests/s at {utilisation:.0%} of a "
        f"core ({cost.median:.3g} ms CPU per request; measured {cost.low:.3g}-{cost.high:.3g}, "
        f"{cost.repeats} runs)",
    ]
    if plan.master_cpu_ms_per_report is None:
        lines.append("  master   not measured (run bench/master_cost.py)")
    else:
        report = plan.master_cpu_ms_per_report
        lines.append(
            f"  master   {_cores_text(plan.master_cores)} for the reports of {plan.workers} "
            f"worker{'s' if plan.workers != 1 else ''} "
            f"({report.median:.3g} ms CPU per report, one per worker every "
            f"{WORKER_REPORT_INTERVAL_S:g} s)"
        )
        if plan.master_extrapolated:
            lines.append(
                "           (more workers than the master measurement simulated: extrapolated)"
            )
        if plan.master_cores > 1:
            lines.append(
                "           one master uses one core: above 1.00, split the load across clusters"
            )
    lines.append(
        f"  total    {_cores_text(plan.total_cores)}; Kubernetes: loadkit-worker replicas "
        f"{plan.workers} (cpu {plan.worker_millicores}m each), master cpu "
        f"{plan.master_millicores}m"
    )
    assumption = (
        f"assumes: one worker process uses at most one core, planned at {utilisation:.0%} of it; "
        f"CPU per request as measured on {figures.machine} on {figures.measured_on} "
        f"({figures.command}) against a platform on loopback, on the default client "
        "(FastHttpUser; --http-client lean needs about half the CPU per request, so this plan "
        "is then on the safe side: docs/performance.md). A slower CPU, TLS or bigger "
        "responses cost more per request; the platform's own capacity and the network are not "
        "part of this plan."
    )
    return [*lines, *textwrap.wrap(assumption, width=TEXT_WIDTH, subsequent_indent="  ")]


def _rate_text(rate_per_s: float) -> str:
    return f"{rate_per_s:,.0f}" if rate_per_s >= 100 else f"{rate_per_s:g}"


def _cores_text(cores: float) -> str:
    return "under 0.01 cores" if 0 < cores < 0.01 else f"{cores:.2f} cores"


def render_table(figures: CapacityFigures, utilisation: float = TARGET_UTILISATION) -> list[str]:
    """The per-core figures of every measured scenario, one row each."""
    lines = [
        f"{'scenario':<12} {'CPU ms/request':>15} {'range':>14} {'requests/s per worker':>22}",
    ]
    for cost in figures.scenarios.values():
        m = cost.cpu_ms_per_request
        lines.append(
            f"{cost.scenario:<12} {m.median:>15.3f} {f'{m.low:.3f}-{m.high:.3f}':>14} "
            f"{_rate_per_worker(m.median, utilisation):>22,.0f}"
        )
    lines.append(
        f"(a worker planned at {utilisation:.0%} of one core; measured on {figures.machine} "
        f"on {figures.measured_on} by {figures.command})"
    )
    return lines
