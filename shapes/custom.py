"""Custom profile: the stages given with ``--stage`` (or ``LOADKIT_STAGES``), k6 style.

For a question none of the named profiles asks, e.g. a slow ramp to find a knee:

    locust -f locustfiles/health.py,shapes/custom.py --headless --stage 2m:50 --stage 1m:50
"""

from loadkit.plugin.staged_shape import StagedShape


class CustomShape(StagedShape):
    """No stages of its own: a run without ``--stage`` stops at the first tick."""

    stages = ()
