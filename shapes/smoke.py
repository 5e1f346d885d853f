"""Smoke profile: 1 user for 30 s (k6 ``--vus 1 --duration 30s``).

A clean run proves the scenario works end to end (every request it makes succeeds) before
anyone spends minutes on a bigger profile. It proves nothing about capacity.

    locust -f locustfiles/health.py,shapes/smoke.py --headless
"""

from loadkit.plugin.staged_shape import StagedShape


class SmokeShape(StagedShape):
    """1 user from the first second, for 30 s."""

    profile = "smoke"
