"""Stopping this Locust process when the ``loadkit`` process that started it is gone.

The parent-death signal (``loadkit.process_lifetime``) covers the direct children on Linux; this
watchdog covers the rest: Locust's ``--processes`` forks (whose parent is the Locust master, and
which the kernel signal does not reach), systems without ``prctl``, and a parent that died before
the child could ask for the signal. It runs only in processes the kit started (``OWNER_PID_ENV``
set), checks twice a second whether this process was re-parented, and if so sends itself
SIGTERM: the same graceful stop as Ctrl-C's first press, so the results are still written.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Final

import gevent
from locust.env import Environment

from loadkit.plugin.context import context_of
from loadkit.process_lifetime import OWNER_PID_ENV, owner_alive

logger = logging.getLogger("loadkit")

CHECK_INTERVAL_S: Final = 0.5


def install_watchdog(environment: Environment) -> gevent.Greenlet | None:
    """Start the watchdog if the kit started this process; returns its greenlet (or None)."""
    owner = os.environ.get(OWNER_PID_ENV, "")
    if not owner.isdigit():
        return None
    parent_pid = os.getppid()
    if parent_pid != int(owner) and not owner_alive(int(owner)):
        # Our parent is not the owner (a --processes fork, or re-parented already) and the
        # owner is gone: it died before we got here.
        _stop(f"the loadkit process {owner} that started this one is gone")
        return None
    greenlet = gevent.spawn(_watch, parent_pid)
    context_of(environment).extras["watchdog"] = greenlet
    return greenlet


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        gevent.sleep(CHECK_INTERVAL_S)
    _stop(f"its parent process {parent_pid} is gone")


def _stop(reason: str) -> None:
    logger.error("loadkit: stopping: %s (load never outlives the loadkit command)", reason)
    os.kill(os.getpid(), signal.SIGTERM)
