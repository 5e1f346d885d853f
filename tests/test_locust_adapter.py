"""Locust's internals that the kit relies on, checked against the installed Locust.

Each use lives in ``loadkit.plugin.locust_adapter``; each test here names the use it protects, so
a Locust upgrade that moves one fails here, loudly and by name, instead of somewhere in a run.
The last tests keep every other module honest: no private attribute of a Locust object and no
monkeypatching outside the adapter.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import gevent
import locust
import pytest
from locust import main as locust_main
from locust import runners
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.stats import RequestStats, StatsError
from locust.user import users

from loadkit.plugin import locust_adapter

SRC = Path(__file__).resolve().parents[1] / "src" / "loadkit"


def test_checked_locust_version() -> None:
    major_minor = ".".join(locust.__version__.split(".")[:2])
    assert major_minor in locust_adapter.CHECKED_VERSIONS, (
        f"Locust {locust.__version__} is not among the versions the adapter was checked "
        f"against ({', '.join(locust_adapter.CHECKED_VERSIONS)}): run this file, then add it"
    )


def test_has_option_reads_argparses_option_table() -> None:
    parser = LocustArgumentParser()
    parser.add_argument("--kit-option")
    assert locust_adapter.has_option(parser, "--kit-option")
    assert not locust_adapter.has_option(parser, "--other")


def test_rows_outside_the_total_use_stats_entries_and_the_failures_table() -> None:
    environment = Environment()
    locust_adapter.log_outside_total(environment, "JOB", "import", 1500.0, 10, None)
    locust_adapter.log_outside_total(environment, "JOB", "import", 900.0, 0, ValueError("late"))
    environment.stats.log_request("GET", "/x", 5, 2)
    entry = environment.stats.get("import", "JOB")
    assert (entry.num_requests, entry.num_failures) == (2, 1)
    assert (environment.stats.total.num_requests, environment.stats.total.num_failures) == (1, 0)
    (error,) = environment.stats.errors.values()
    assert error.occurrences == 1 and "late" in error.to_name()
    assert callable(StatsError.create_key) and isinstance(environment.stats, RequestStats)


def test_locust_reads_the_run_time_after_init_so_the_kit_can_take_it_over() -> None:
    """``take_over_run_time`` empties ``options.run_time`` in ``init``: Locust's ``main`` must
    fire ``init`` before it arms its own run-time timer from that option."""
    source = inspect.getsource(locust_main.main)
    assert source.index("events.init.fire") < source.index("spawn_run_time_quit_greenlet()")
    options = LocustArgumentParser()
    environment = Environment(parsed_options=options.parse_args([]))
    environment.parsed_options.run_time = 15
    assert locust_adapter.take_over_run_time(environment) == 15.0
    assert environment.parsed_options.run_time is None


def test_stop_is_not_reentrant_and_quit_goes_through_it() -> None:
    """``serialize_stops`` replaces ``runner.stop``: ``quit`` must call ``self.stop()``, and the
    local runner's stop must still refuse to stop users twice (else the guard is moot)."""
    assert "self.stop(" in inspect.getsource(runners.Runner.quit)
    assert "self.stop(" in inspect.getsource(runners.MasterRunner.quit)
    assert "unexpected state" in inspect.getsource(users.User.stop)
    environment = Environment()
    runner = environment.create_local_runner()
    locust_adapter.serialize_stops(runner)
    runner.stop()
    runner.stop()
    runner.quit()


def test_a_start_while_a_shape_test_ends_is_dropped_and_the_kit_waits_for_its_end() -> None:
    """``shape_test_still_ending``: Locust's ``start_shape`` drops a start while
    ``runner.shape_greenlet`` is set, and a shape that ended clears it only after its stop."""
    source = inspect.getsource(runners.Runner.shape_worker)
    assert source.index("self.stop()") < source.index("self.shape_greenlet = None")
    assert "if self.shape_greenlet:" in inspect.getsource(runners.Runner.start_shape)

    class Shape(locust.LoadTestShape):
        def tick(self) -> None:
            return None

    environment = Environment(shape_class=Shape())
    runner = environment.create_local_runner()
    assert not locust_adapter.shape_test_still_ending(runner, 1.0)  # no shape test at all
    ending = gevent.spawn(gevent.sleep, 0.2)
    runner.shape_greenlet = ending
    runner.start_shape()  # dropped: the greenlet is not replaced, nothing starts
    assert runner.shape_greenlet is ending and runner.state == runners.STATE_INIT
    assert locust_adapter.shape_test_still_ending(runner, 0.01)  # still there after 10 ms
    assert not locust_adapter.shape_test_running(runner)  # ending, not driving the load
    assert not locust_adapter.shape_test_still_ending(runner, 2.0)  # waited for its end
    assert ending.dead
    runner.quit()


def test_user_greenlets_and_user_state() -> None:
    environment = Environment()
    runner = environment.create_local_runner()
    assert hasattr(runner, "user_greenlets")
    locust_adapter.kill_users_now(runner)
    user = users.User(environment)
    locust_adapter.mark_waiting(user)
    assert user._state == users.LOCUST_STATE_WAITING and not locust_adapter.is_stopping(user)
    locust_adapter.mark_running(user)
    assert user._state == users.LOCUST_STATE_RUNNING
    user._state = users.LOCUST_STATE_STOPPING
    assert locust_adapter.is_stopping(user)
    runner.quit()


def test_master_forgets_a_stopped_worker_and_workers_sleep_stop_timeout_after_a_stop() -> None:
    """Why ``quit_stopped_workers`` and ``skip_worker_ready_delay`` exist: if Locust stops
    forgetting stopped workers, or stops sleeping after a stop, both can go."""
    master = inspect.getsource(runners.MasterRunner.handle_message)
    stopped = master[master.index('case "client_stopped"') :]
    assert "del self.clients[msg.node_id]" in stopped[: stopped.index("case ", 10)]
    worker = inspect.getsource(runners.WorkerRunner.handle_message)
    stop = worker[worker.index('case "stop"') :]
    assert "gevent.sleep(self.environment.stop_timeout" in stop[: stop.index("case ", 10)]
    assert "Message" in inspect.getsource(runners.MasterRunner.send_message)


def test_error_masking_wraps_log_error_and_log_exception() -> None:
    environment = Environment()
    runner = environment.create_local_runner()
    locust_adapter.mask_errors_at_source(environment.stats, runner, lambda t: t.replace("s3", "*"))
    environment.stats.log_error("GET", "/x", "key s3")
    runner.log_exception("local", "boom s3", "tb s3")
    assert [e.to_name() for e in environment.stats.errors.values()] == ["GET /x: key *"]
    assert next(iter(runner.exceptions.values()))["msg"] == "boom *"
    runner.quit()


# -- the rest of the kit stays out of Locust's internals -----------------------------------------

#: ``name._private`` on the objects the kit gets from Locust.
_PRIVATE = re.compile(
    r"\b(user|runner|environment|env|stats|parser|options|parsed_options|master|worker|"
    r"shape|web_ui|client|request_meta)\._[a-z]\w*"
)
#: Assigning to a method of a Locust object (monkeypatching).
_PATCH = re.compile(r"\b(runner|stats|environment|user|web_ui)\.(\w+)\s*=(?!=)")
#: Attributes the kit may set on Locust objects: Locust documents them as settable (the last
#: three in its "Authentication" docs, for a login on the web UI).
_SETTABLE = {
    "host", "stop_timeout", "process_exit_code", "run_time", "login_manager", "web_login",
    "auth_args",
}  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted(SRC.rglob("*.py"))
        if p.name != "locust_adapter.py" and "platform" not in p.parts
    ],
    ids=lambda p: str(p.relative_to(SRC)),
)
def test_no_locust_internals_outside_the_adapter(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    private = [m.group(0) for m in _PRIVATE.finditer(text)]
    assert not private, f"{path.name}: {private} belongs in plugin/locust_adapter.py"
    patched = [m.group(0) for m in _PATCH.finditer(text) if m.group(2) not in _SETTABLE]
    assert not patched, f"{path.name}: {patched}: set it in plugin/locust_adapter.py, or not at all"
