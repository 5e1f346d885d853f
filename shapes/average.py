"""Average-load profile: 10 users for 5 min (k6 ``--vus 10 --duration 5m``).

A run within the baseline proves the system meets its latency and error targets under normal
daily load; its steady throughput is the number later runs are compared with.

    locust -f locustfiles/health.py,shapes/average.py --headless
"""

from loadkit.plugin.staged_shape import StagedShape


class AverageShape(StagedShape):
    """10 users from the first second, for 5 minutes."""

    profile = "average"
