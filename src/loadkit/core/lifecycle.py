"""How a run ended: one state, decided once, shown the same way everywhere.

A verdict is only as good as the run behind it. A spike stopped before its peak, a soak cut short
by Ctrl-C or a run that lost a worker can have every criterion "hold" on what little was measured;
calling that PASSED would be a lie. So every run carries a :class:`RunState`, set by whoever stopped
the load first (the planned end, a person, a signal, an abort, a lost worker), and the verdict's
headline, ``verdict.json``, ``junit.xml``, the console summary, the web UI and the exit code all
read it from here.

Pure: the caller passes the clock readings (seconds since the run started).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from loadkit.core.baselines import format_number
from loadkit.core.exit_codes import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_PASSED


class RunState(StrEnum):
    RUNNING = "running"
    """The load is on (a live verdict)."""
    COMPLETE = "complete"
    """The profile or the run time ran out: the only state a run can pass in."""
    STOPPED_EARLY = "stopped early"
    """Stopped before its planned end without a fault: the web UI's Stop, a shape that ended."""
    INTERRUPTED = "interrupted"
    """Ctrl-C, SIGTERM, or the process that started the run went away."""
    ABORTED = "aborted"
    """The kit stopped it: an ``abort_on_fail`` criterion, or a target that stopped answering."""
    LOST_WORKER = "lost worker"
    """A load generator of a distributed run disappeared."""


#: A stop this close to the planned end counts as the planned end (timer and tick jitter).
END_TOLERANCE_S: Final = 0.25


@dataclass
class Lifecycle:
    """The state of one run; the first stop cause wins, later ones are ignored."""

    planned_s: float | None
    """Seconds of load the run was planned for; None for an open-ended run (web UI, no shape)."""
    state: RunState = RunState.RUNNING
    reason: str = ""
    """One line: why the run ended the way it did (empty for a complete run)."""
    stopped_at_s: float | None = None
    """When the load stopped (the stop began), in seconds since the run started."""
    phase: str = "running"
    """Where the run was when it stopped: ``starting`` (spawning), ``running``, ``stopping``."""

    @property
    def ended(self) -> bool:
        return self.state is not RunState.RUNNING

    def stop(self, state: RunState, at_s: float, reason: str = "", phase: str = "running") -> bool:
        """Record the first cause of the stop; False when the run had already ended."""
        if self.ended:
            return False
        self.state, self.reason, self.stopped_at_s, self.phase = state, reason, at_s, phase
        return True

    def stopped(self, at_s: float, by: str) -> bool:
        """A stop with no cause of the kit's own (the web UI's Stop button, a shape's end).

        Complete when the planned end was reached (or the run had none: an open-ended web UI
        run ends when someone stops it), stopped early otherwise.
        """
        if self.planned_s is None or at_s >= self.planned_s - END_TOLERANCE_S:
            complete = self.planned_s is None and f"open-ended run, {by} after {_s(at_s)}"
            return self.stop(RunState.COMPLETE, at_s, complete or "")
        return self.stop(
            RunState.STOPPED_EARLY, at_s, f"{by} at {_s(at_s)} of {_s(self.planned_s)}"
        )

    @property
    def complete(self) -> bool:
        return self.state is RunState.COMPLETE

    def headline(self, criteria_held: bool) -> str:
        """``PASSED``, ``FAILED``, or what happened instead (``STOPPED EARLY``, ``INTERRUPTED``)."""
        if self.state in (RunState.RUNNING, RunState.COMPLETE):
            return "PASSED" if criteria_held else "FAILED"
        return self.state.value.upper()

    def exit_code(self, criteria_held: bool) -> int:
        """1 if anything failed (an abort is a failure), 3 if the run did not complete, else 0."""
        if not criteria_held or self.state is RunState.ABORTED:
            return EXIT_FAILED
        if self.state is RunState.COMPLETE:
            return EXIT_PASSED
        return EXIT_INCOMPLETE


def _s(seconds: float) -> str:
    return f"{format_number(round(seconds, 1))} s"
