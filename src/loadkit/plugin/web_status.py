"""What the web UI says about the run right now: live or final, which state, which window.

Locust's page refreshes every two seconds from a cached answer, and the kit's verdict used to
ride on that answer: for about two seconds after START the Baseline tab still showed the previous
run, and a start that failed left the previous PASSED up. The session's state is kept here
instead, changed the moment a start is accepted or refused (``plugin.web_start``) and when the
run really begins (``test_start``), and served at ``/loadkit/status``:

* ``phase``: ``idle`` (nothing run yet), ``starting`` (accepted, the run not begun: no verdict),
  ``running`` (a LIVE snapshot), ``stopping`` (the load stopped, requests in flight finishing),
  ``final`` (the run's verdict), ``refused`` (the last start was refused: its reason, no verdict);
* ``run``: the run's number and folder, its profile, planned and elapsed seconds;
* ``verdict``: the ``verdict.json`` document of the run (live or final), or None;
* ``arrival``: an arrival-rate run's rate and iteration counts (its load is the rate, not users);
* ``generator``: each load generator that ran out of CPU in the measured window (its latencies
  are suspect), in words; empty when none did.

``/loadkit/verdict`` serves the verdict alone, as before (None while starting or after a refusal).
"""

from __future__ import annotations

import time
from typing import Any, Final

from locust.env import Environment

from loadkit.core.verdict import Verdict
from loadkit.plugin.run_control import RunControl
from loadkit.results.verdict_files import verdict_to_dict

STATUS_ROUTE: Final = "/loadkit/status"
VERDICT_ROUTE: Final = "/loadkit/verdict"
#: A live verdict is judged at most this often (each judgement reads the whole collector).
MIN_EVALUATION_INTERVAL_S: Final = 1.0


class WebSession:
    """The web UI session's view of its runs: what to show, and when to stop showing it."""

    def __init__(self, environment: Environment, control: RunControl) -> None:
        self.environment = environment
        self.control = control
        self.starting = False
        """A start was accepted and its run has not begun: show nothing of the previous run."""
        self.refused: str | None = None
        """Why the last start was refused (cleared by the next run that begins)."""
        self.generation = 0
        self._cached: tuple[int, float, Verdict | None] = (-1, float("-inf"), None)
        environment.events.test_start.add_listener(self.on_test_start)

    # -- what happened -----------------------------------------------------------------------------

    def on_test_start(self, **_: Any) -> None:
        self.starting = False
        self.refused = None
        self.generation += 1

    def start_accepted(self, was_running: bool) -> None:
        """``POST /swarm`` succeeded; a new run begins unless one was running (Locust then only
        changes the user count of the run in progress)."""
        if not was_running:
            self.starting = True
            self.refused = None
        self.generation += 1

    def start_refused(self, reason: str) -> None:
        self.refused = reason
        self.generation += 1

    # -- what to show ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        lifecycle = self.control.lifecycle
        return lifecycle is not None and not lifecycle.ended

    def phase(self) -> str:
        if self.starting:
            return "starting"
        if self.running:
            return "running"
        if self.refused is not None:
            return "refused"
        if self.control.lifecycle is None:
            return "idle"
        return "final" if self.control.verdict is not None else "stopping"

    def verdict(self) -> Verdict | None:
        """The verdict to show: the current run's (live or final); None while a start is pending
        or after a refused one, so an old verdict never stays up."""
        if self.phase() in ("starting", "refused", "idle"):
            return None
        generation, at_s, cached = self._cached
        now_s = time.monotonic()
        if generation == self.generation and now_s - at_s < MIN_EVALUATION_INTERVAL_S:
            return cached
        verdict = self.control.live_verdict()
        self._cached = (self.generation, now_s, verdict)
        return verdict

    def status(self) -> dict[str, Any]:
        phase = self.phase()
        verdict = self.verdict()
        return {
            "phase": phase,
            "marker": _MARKERS.get(phase),
            "run": self._run() if phase in ("running", "stopping", "final") else None,
            "refused": self.refused,
            "verdict": verdict_to_dict(verdict) if verdict is not None else None,
            "criteria": criterion_rows(verdict) if verdict is not None else [],
            "arrival": self._arrival() if phase in ("running", "stopping", "final") else None,
            "generator": self._generator() if phase in ("running", "stopping", "final") else [],
        }

    def _run(self) -> dict[str, Any] | None:
        control = self.control
        plan, lifecycle = control.ctx.run, control.lifecycle
        if plan is None or lifecycle is None:
            return None
        folder = control.ctx.run_dir.name if control.ctx.run_dir is not None else None
        elapsed_s = lifecycle.stopped_at_s if lifecycle.ended else control.elapsed_s()
        return {
            "number": control.runs_started,
            "folder": folder,
            "scenario": plan.scenario,
            "profile": plan.profile,
            "planned_s": plan.planned_duration_s,
            "elapsed_s": round(elapsed_s or 0.0, 1),
        }

    def _generator(self) -> list[str]:
        from loadkit.plugin.purposes import generator_saturation

        lifecycle = self.control.lifecycle
        if lifecycle is None:
            return []
        ended = lifecycle.ended and lifecycle.stopped_at_s is not None
        end_s = lifecycle.stopped_at_s if ended else self.control.elapsed_s()
        return generator_saturation(self.environment, end_s or 0.0)

    def _arrival(self) -> str | None:
        from loadkit.core.arrival_schedule import ArrivalError
        from loadkit.plugin.arrival import arrival_classes, summary_line

        if not arrival_classes(self.environment):
            return None
        try:
            return summary_line(self.environment).removeprefix("loadkit: ")
        except ArrivalError as exc:
            return str(exc)


def criterion_rows(verdict: Verdict) -> list[dict[str, str]]:
    """One row per criterion, formatted in its own unit, with why it holds, fails or is skipped
    (``applies to smoke, average, soak, not spike``)."""
    rows = []
    for result in verdict.results:
        criterion = result.criterion
        rows.append(
            {
                "criterion": f"{criterion.subject} {criterion.metric}",
                "threshold": f"{criterion.op} {criterion.format(criterion.threshold)}",
                "measured": "" if result.measured is None else criterion.format(result.measured),
                "status": result.status,
                "reason": result.reason,
            }
        )
    return rows


_MARKERS: Final = {"running": "LIVE", "stopping": "STOPPING", "final": "FINAL"}
