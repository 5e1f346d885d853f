"""The shape of a ``loadkit run``: plays the stages of the run's plan, whatever the profile.

``loadkit run`` loads the scenario's locustfile and this file (``locust -f locustfile,this``): the
parent process planned the run (profile, ``--stage``, scales, ``-u``/``-t``) and this shape plays
exactly the stages it wrote, so nothing is decided twice.
"""

from loadkit.plugin.staged_shape import StagedShape


class PlannedShape(StagedShape):
    """The stages of the run plan ``loadkit run`` wrote (``LOADKIT_PLAN``)."""

    uses_plan = True
