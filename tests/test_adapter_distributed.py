"""Two uses of Locust's internals for distributed runs (``plugin.locust_adapter``), checked against
the installed Locust: the cache of default options that lets a worker start its users when the
spawn message arrives, and the graceful stop of the workers when a master quits. Their effects are
measured end to end in test_measurement_e2e.py."""

from __future__ import annotations

import inspect

import pytest
from locust import argument_parser
from locust.runners import MasterRunner, WorkerRunner

from loadkit.plugin import locust_adapter


def test_cached_default_options_equal_locusts_and_each_caller_gets_a_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = argument_parser.default_args_dict
    monkeypatch.setattr(argument_parser, "default_args_dict", original)  # restored afterwards
    expected = original()
    locust_adapter.cache_default_options()
    cached = argument_parser.default_args_dict
    assert cached is not original
    first = cached()
    assert first == expected and "run_time" in first
    first["run_time"] = "changed"
    assert cached()["run_time"] == expected["run_time"]
    locust_adapter.cache_default_options()  # a second call keeps the first cache
    assert argument_parser.default_args_dict is cached


def test_locusts_worker_still_looks_the_defaults_up_through_the_module() -> None:
    """The cache only helps while the spawn handler calls the module function: an upgrade that
    changes this must be noticed (and the cache removed or moved)."""
    source = inspect.getsource(WorkerRunner.handle_message)
    assert "argument_parser.default_args_dict()" in source


def test_a_quitting_master_stops_without_telling_its_workers() -> None:
    """Why ``stop_workers_before_quitting`` exists: if an upgrade makes ``quit`` stop the
    workers itself, the wrapper is no longer needed."""
    source = inspect.getsource(MasterRunner.quit)
    assert "self.stop(send_stop_to_client=False)" in source
