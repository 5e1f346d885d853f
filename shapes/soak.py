"""Soak profile: 20 users for 1 h (k6 ``--vus 20 --duration 1h``).

Proves nothing degrades with time at a moderate, steady load: P95 latency, error rate and
throughput at the end match the start, and memory does not keep growing (leaks, exhausted
pools, filling disks show up here, not in short runs).

    locust -f locustfiles/health.py,shapes/soak.py --headless
"""

from loadkit.plugin.staged_shape import StagedShape


class SoakShape(StagedShape):
    """20 users from the first second, for 1 hour."""

    profile = "soak"
