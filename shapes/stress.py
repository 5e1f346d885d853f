"""Stress profile: 50 users for 10 min (k6 ``--vus 50 --duration 10m``).

Shows where the system stops keeping up: the highest load at which P95 latency and the error
rate stayed within limits, and what fails first beyond it. Add ``--stage`` ramps to find the
knee instead of holding one level.

    locust -f locustfiles/health.py,shapes/stress.py --headless
"""

from loadkit.plugin.staged_shape import StagedShape


class StressShape(StagedShape):
    """50 users from the first second, for 10 minutes."""

    profile = "stress"
