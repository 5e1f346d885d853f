"""Noticing a lost worker on the master, and deciding what the run does about it.

Locust has no event for a worker that dies: its heartbeat loop marks it ``missing`` after about
three silent seconds and redistributes the users, so the run goes on with less load than asked
for and nothing in the results says so. The kit watches the worker list once a second while a
test runs; a worker that went missing or quit counts as lost. By default the run then ends and
the verdict fails with the worker's name (``--on-worker-loss continue`` keeps going and still
records the loss in the verdict's abort reason at the end).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner

logger = logging.getLogger("loadkit")

CHECK_INTERVAL_S = 1.0
ON_LOSS_CHOICES = ("end", "continue")


def add_worker_arguments(parser: Any) -> None:
    parser.add_argument(
        "--on-worker-loss",
        choices=ON_LOSS_CHOICES,
        default="end",
        env_var="LOADKIT_ON_WORKER_LOSS",
        help="end the run (failed verdict) or continue when a worker is lost",
    )


class WorkerWatch:
    """Tracks the workers seen during a test; ``lost`` lists those that disappeared."""

    def __init__(self, environment: Environment, on_lost: Callable[[str], None]) -> None:
        self.environment = environment
        self.on_lost = on_lost
        self.known: set[str] = set()
        self.lost: list[str] = []
        self._greenlet: gevent.Greenlet | None = None

    def start(self, **_: Any) -> None:
        self.known.clear()
        self.lost.clear()
        self.stop()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self, **_: Any) -> None:
        greenlet, self._greenlet = self._greenlet, None
        # A loss handler that stops the test lands here from inside the watch loop itself:
        # killing the current greenlet would abort Locust's stop half-way.
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)

    def check(self) -> list[str]:
        """Compare the runner's workers with those seen before; returns the newly lost ones."""
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        present = {worker.id for worker in runner.clients.all if worker.state != STATE_MISSING}
        newly_lost = sorted(self.known - present - set(self.lost))
        self.known |= present
        self.lost.extend(newly_lost)
        return newly_lost

    def _loop(self) -> None:
        while True:
            gevent.sleep(CHECK_INTERVAL_S)
            for worker_id in self.check():
                logger.error("loadkit: lost worker %s", worker_id)
                self.on_lost(worker_id)
            if self._greenlet is not gevent.getcurrent():
                return  # the test was stopped meanwhile


def install_worker_watch(
    environment: Environment, on_lost: Callable[[str], None]
) -> WorkerWatch | None:
    """Watch the workers during each test (master only)."""
    if not isinstance(environment.runner, MasterRunner):
        return None
    watch = WorkerWatch(environment, on_lost)
    environment.events.test_start.add_listener(watch.start)
    # Workers leave during a stop by design: the watch ends when the stop begins.
    environment.events.test_stopping.add_listener(watch.stop)
    return watch
