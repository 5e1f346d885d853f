"""A headless master whose workers never connect: end with exit code 3, before any load.

Locust's own wait (``--expect-workers-max-wait``) gives up with exit code 1 -- the code of a
failed verdict -- and says so only in its log. The kit takes that wait over: it sets the option
to 0 for Locust (whose headless start re-reads it on every look, and waits forever at 0), gives
up itself at the same deadline, logs how many workers came, and exits with
``EXIT_NO_WORKERS``; the ``loadkit`` command prints the console line (``loadkit.cli.topology``).
The workers that did connect are told to quit.
"""

from __future__ import annotations

import logging
import time

import gevent
from locust.env import Environment
from locust.runners import MasterRunner

from loadkit.core.exit_codes import EXIT_NO_WORKERS

logger = logging.getLogger("loadkit")

CHECK_INTERVAL_S = 0.25


def install_worker_wait(environment: Environment) -> gevent.Greenlet | None:
    """On a headless master with a bounded wait for its workers, watch that wait."""
    runner = environment.runner
    options = environment.parsed_options
    if not isinstance(runner, MasterRunner) or options is None or not options.headless:
        return None
    expected = int(getattr(options, "expect_workers", 1) or 1)
    max_wait_s = float(getattr(options, "expect_workers_max_wait", 0) or 0)
    if max_wait_s <= 0:
        return None
    options.expect_workers_max_wait = 0  # ours now: Locust would exit 1 at the same moment
    return gevent.spawn(_wait, environment, runner, expected, max_wait_s)


def _wait(environment: Environment, runner: MasterRunner, expected: int, max_wait_s: float) -> None:
    deadline_s = time.monotonic() + max_wait_s
    while time.monotonic() < deadline_s:
        if len(runner.clients.ready) >= expected or runner.state != "ready":
            return  # all there, or the test started (shape or autostart) / the master quits
        gevent.sleep(CHECK_INTERVAL_S)
    connected = len(runner.clients.ready)
    if connected >= expected:
        return
    logger.error(
        "loadkit: %d of %d workers connected within %g s; nothing was sent",
        connected,
        expected,
        max_wait_s,
    )
    environment.process_exit_code = EXIT_NO_WORKERS
    runner.quit()
    # Locust's headless start waits in the main greenlet, as its own give-up does; gevent
    # re-raises a greenlet's SystemExit there, which ends the process with this code.
    raise SystemExit(EXIT_NO_WORKERS)
