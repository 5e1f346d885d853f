"""What the kit keeps per Locust environment, without writing attributes onto Locust's objects.

One ``KitContext`` per ``Environment`` (held in a weak map, so a test's environment and its
context go away together): the settings, the plan of the session (from ``loadkit run``'s plan
file, when there is one), the plan of the run in progress, and the kit's parts that serve it.
Every module of the plugin reaches the others through here.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadkit.core.plan import RunPlan
from loadkit.settings import Settings, load_settings

if TYPE_CHECKING:
    from locust.env import Environment

    from loadkit.observe.queue_sampler import QueueSampler
    from loadkit.plugin.measurement import Measurement
    from loadkit.plugin.run_control import RunControl


@dataclass
class KitContext:
    settings: Settings
    planned: RunPlan | None = None
    """The plan ``loadkit run`` wrote (``LOADKIT_PLAN``): authoritative for every run."""
    run: RunPlan | None = None
    """The plan of the current (or last) run: ``planned``, or built at its start."""
    results_root: Path | None = None
    """Where a session without a plan file keeps its runs (``--results-dir``)."""
    measurement: Measurement | None = None
    control: RunControl | None = None
    queue_sampler: QueueSampler | None = None
    cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path | None:
        """The current run's results folder, if it has one."""
        if self.run is None or self.run.results_dir is None:
            return None
        return Path(self.run.results_dir)


_contexts: weakref.WeakKeyDictionary[Environment, KitContext] = weakref.WeakKeyDictionary()


def context_of(environment: Environment) -> KitContext:
    """The kit's context of ``environment``, built from env/.env if ``init`` has not run.

    Tests (and library users) that build an ``Environment`` by hand never fire ``init``; they
    still get the settings the plugin would have built.
    """
    ctx = _contexts.get(environment)
    if ctx is None:
        ctx = _contexts[environment] = KitContext(settings=load_settings())
    return ctx


def planned_run(environment: Any) -> RunPlan | None:
    """The plan ``loadkit run`` wrote, if ``environment`` is a kit run (None for anything else,
    including the stand-in environments of unit tests)."""
    try:
        ctx = _contexts.get(environment)
    except TypeError:  # not weak-referenceable: not a Locust Environment
        return None
    return ctx.planned if ctx is not None else None


def existing_context(environment: Any, extra: str) -> Any:
    """``extras[extra]`` of ``environment``'s context if it has one (None before ``init``, or
    for stand-in environments that cannot be weakly referenced)."""
    try:
        ctx = _contexts.get(environment)
    except TypeError:
        return None
    return ctx.extras.get(extra) if ctx is not None else None


def attach_context(environment: Environment, ctx: KitContext) -> KitContext:
    _contexts[environment] = ctx
    return ctx


def settings_of(environment: Environment) -> Settings:
    return context_of(environment).settings
