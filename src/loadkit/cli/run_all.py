"""``loadkit run-all``'s summary: one row per step (scenario x profile), read from its verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadkit.core.baselines import format_number


@dataclass(frozen=True)
class StepOutcome:
    scenario: str
    profile: str
    exit_code: int
    run_dir: Path | None
    verdict: dict[str, Any] | None

    @classmethod
    def read(cls, scenario: str, profile: str, exit_code: int, run_dir: Path | None) -> StepOutcome:
        path = run_dir / "verdict.json" if run_dir is not None else None
        verdict = None
        if path is not None and path.exists():
            verdict = json.loads(path.read_text(encoding="utf-8"))
        return cls(scenario, profile, exit_code, run_dir, verdict)

    @property
    def result(self) -> str:
        """``pass``, ``fail``, the state of a run that did not complete, or the exit code."""
        if self.exit_code == 0:
            return "pass"
        if self.exit_code == 1:
            return "fail"
        state = (self.verdict or {}).get("state")
        if self.exit_code == 3 and state:
            return str(state)
        return (
            "not run (bad input or preflight)"
            if self.exit_code == 2
            else f"error ({self.exit_code})"
        )


def render_steps(outcomes: list[StepOutcome], planned: int) -> str:
    """A fixed-width table: scenario, profile, result, RPS, P95, error rate, results folder."""
    header = ("scenario", "profile", "result", "rps", "p95", "errors", "results")
    rows = [header]
    for o in outcomes:
        totals = (o.verdict or {}).get("totals", {})
        rps = totals.get("rps")
        p95 = totals.get("p95_ms")
        errors = totals.get("error_rate")
        rows.append(
            (
                o.scenario,
                o.profile,
                o.result,
                "-" if rps is None else format_number(rps),
                "-" if p95 is None else f"{format_number(p95)} ms",
                "-" if errors is None else f"{format_number(errors * 100)}%",
                str(o.run_dir) if o.run_dir is not None else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    passed = sum(o.exit_code == 0 for o in outcomes)
    skipped = planned - len(outcomes)
    tail = f"{passed} of {planned} steps passed" + (f", {skipped} not run" if skipped else "")
    return "\n".join([*(line.rstrip() for line in lines), tail])
