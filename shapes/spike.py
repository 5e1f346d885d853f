"""Spike profile: 1 -> 100 -> 1 users in 90 s (k6 ``--stage 30s:1 --stage 30s:100 --stage 30s:1``),
then 30 s held at 1 user: the kit's recovery hold (``--recovery``, 0s drops it).

Proves the system survives a sudden burst (errors stay bounded at 100 users) and recovers:
P95 latency comes back to its pre-spike level in the hold, once the load has dropped. The first
stage ramps 0 -> 1 user, as k6 does with these stages.

    locust -f locustfiles/health.py,shapes/spike.py --headless
"""

from loadkit.plugin.staged_shape import StagedShape


class SpikeShape(StagedShape):
    """Ramp to 1 user over 30 s, to 100 over the next 30 s, back to 1 over 30 s, hold 30 s."""

    profile = "spike"
