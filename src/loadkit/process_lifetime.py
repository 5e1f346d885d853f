"""Child processes that end with the ``loadkit`` process that started them, however it ended.

A load generator that outlives its owner keeps firing: a SIGKILLed ``loadkit run`` used to leave
its Locust child sending until the run time was up (3,776 -> 8,966 requests in the 2 s after the
kill). Two mechanisms, because each has a gap the other covers:

* Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``, set between fork and exec
  by :func:`die_with_parent`): the kernel sends SIGTERM to the child the moment its parent dies,
  SIGKILL included. SIGTERM rather than SIGKILL, so Locust still stops its users and writes its
  results. It is Linux-only, is not inherited by a child's own children (Locust's
  ``--processes`` forks), and tracks the parent *thread*.
* a watchdog inside the child (``loadkit.plugin.watchdog``, the platform's own watcher): it
  notices its parent changed (re-parented after the owner died) and stops the process the same
  way. It needs :data:`OWNER_PID_ENV` in the child's environment to know it was started by the
  kit (a plain ``nohup locust ...`` is left alone).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Final

OWNER_PID_ENV: Final = "LOADKIT_OWNER_PID"
"""Set by the ``loadkit`` command in every child's environment: the process whose death ends it."""
PR_SET_PDEATHSIG: Final = 1


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to send ``signum`` to the child when we die.

    None where there is no ``prctl`` (not Linux): the child's watchdog is then the only guard.
    The child also checks that we did not die between the fork and the ``prctl`` call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork, not after
    except (OSError, AttributeError):
        return None
    parent_pid = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent_pid:  # we were already gone: the kernel will not tell
            os.kill(os.getpid(), signum)

    return set_parent_death_signal


def owner_env() -> dict[str, str]:
    """Environment entries telling a child which process owns it (this one)."""
    return {OWNER_PID_ENV: str(os.getpid())}


def owner_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts as gone only once it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
