"""Every use of Locust's internals, in one room, each named and said why.

The kit uses Locust's public API wherever one exists (events, ``runner.send_message`` /
``register_message``, ``LoadTestShape``, ``RequestStats.get``). Where none does, the use is here,
so a Locust upgrade breaks in one file, and ``tests/test_locust_adapter.py`` checks every one of
them against the installed Locust (it fails loudly, naming the use, when an upgrade moves it).
Nothing else in ``src/loadkit`` touches a Locust object's private attributes (a test greps).
"""

from __future__ import annotations

import argparse
import weakref
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from gevent.lock import RLock
from locust import argument_parser
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, Runner
from locust.stats import StatsError
from locust.user.users import (
    LOCUST_STATE_RUNNING,
    LOCUST_STATE_STOPPING,
    LOCUST_STATE_WAITING,
    User,
)

#: The secret mask of each process's statistics (``mask_errors_at_source``), which the rows
#: logged outside the total use as well.
_masks: weakref.WeakKeyDictionary[Any, Callable[[str], str]] = weakref.WeakKeyDictionary()

#: The Locust versions these uses were checked against (``tests/test_locust_adapter.py``).
CHECKED_VERSIONS: Final = ("2.47",)


# -- command-line options -------------------------------------------------------------------------


def has_option(parser: argparse.ArgumentParser, option: str) -> bool:
    """Whether ``parser`` already has ``option``: the kit's plugin and a locustfile may both
    register the kit's options, and argparse refuses a second ``add_argument``.

    Internal: argparse's ``_option_string_actions`` (argparse has no public lookup)."""
    return option in parser._option_string_actions


def show_in_web_ui(parser: argparse.ArgumentParser, option: str) -> None:
    """Show an option that was added to an argument group in the web UI's form.

    Locust's ``LocustArgumentParser.add_argument`` takes ``include_in_web_ui``, its argument
    groups do not; Locust marks the action with that attribute, so the kit marks it the same
    way. Internal: argparse's ``_option_string_actions`` and Locust's attribute name.
    """
    parser._option_string_actions[option].include_in_web_ui = True  # type: ignore[attr-defined]


# -- rows that are not requests -------------------------------------------------------------------


def log_outside_total(
    environment: Environment,
    request_type: str,
    name: str,
    response_time_ms: float,
    response_length: int,
    exception: BaseException | str | None,
) -> None:
    """Show one of the kit's own timings (``JOB`` rows, ``INTENDED`` rows) as its own row in
    Locust's statistics (console, CSV, HTML report, web UI) without adding it to Locust's
    "Aggregated" total, which counts requests: a 50 calls/s run must not read 100 requests/s.

    Public: ``RequestStats.get`` and ``StatsEntry.log``/``log_error``. Internal: the failures
    table (``RequestStats.errors`` of ``StatsError``), which ``log_error`` would also add to
    the total. The master's total is the sum of the workers' totals, so it stays right too.
    """
    stats = environment.stats
    entry = stats.get(name, request_type)
    entry.log(round(response_time_ms), response_length)
    mask = _masks.get(stats)
    if exception is not None and mask is not None:
        text = StatsError.parse_error(exception)
        if mask(text) != text:
            exception = mask(text)
    if exception is not None:
        entry.log_error(exception)
        key = StatsError.create_key(request_type, name, exception)
        error = stats.errors.get(key)
        if error is None:
            error = stats.errors[key] = StatsError(request_type, name, exception)
        error.occurred()


# -- the run's end --------------------------------------------------------------------------------


def take_over_run_time(environment: Environment) -> float | None:
    """Take ``-t/--run-time`` away from Locust and return it (seconds), so the kit ends the run.

    Locust arms its run-time timer with gevent's cached loop clock, which lags behind the real
    clock after a busy start: measured, ``-t 15s`` runs stopped 0.5-2.5 s early. The kit ends
    the run itself on the monotonic clock instead. Public attribute, internal effect: Locust's
    ``main`` reads ``options.run_time`` after ``init`` to arm that timer.
    """
    options = environment.parsed_options
    run_time = getattr(options, "run_time", None) if options is not None else None
    if run_time:
        options.run_time = None
        return float(run_time)
    return None


def serialize_stops(runner: Runner) -> None:
    """Make ``runner.stop()`` safe to call from several greenlets at once.

    Locust's ``Runner.stop`` is not re-entrant: a second call while a graceful stop waits for
    requests in flight stops the same users again and raises "Tried to stop User in an
    unexpected state: stopping". A kit run can be stopped by its planned end, a signal, an abort
    or the web UI, while Locust's own ``main`` calls ``quit()`` (which stops) when a shape ends.
    Callers now queue behind the stop in progress; the later ones find the runner stopped.
    Internal: replaces the ``stop`` attribute of this runner instance (Locust's ``quit`` calls
    ``self.stop()``).
    """
    original = runner.stop
    lock = RLock()

    def stop(*args: Any, **kwargs: Any) -> None:
        with lock:
            original(*args, **kwargs)

    runner.stop = stop  # type: ignore[method-assign]


def stop_workers_before_quitting(runner: Runner) -> None:
    """Make a master's ``quit()`` stop its workers gracefully, as ``stop()`` does, before it
    fires ``test_stop``.

    ``MasterRunner.quit`` calls ``stop(send_stop_to_client=False)``: test_stop fires while the
    workers still run, and they hear nothing until the "quit" that follows. Locust takes that
    path when a shape ends a headless run (and on its own shutdown), so the kit waited 10 s at
    test_stop for final measurements that could not come, judged without the workers' last
    second, and the workers kept loading the target all that while (measured: a 2 s shape ran
    12 s of load, the verdict counting 17,546 of the 21,499 requests served). Now the workers get
    "stop" first (their users finish, their final measurements arrive), then "quit" from the
    kit (Locust's master forgets stopped workers, see ``quit_stopped_workers``). Internal:
    replaces the ``stop`` attribute of this runner instance, after ``serialize_stops``.
    """
    if not isinstance(runner, MasterRunner):
        return
    stop = runner.stop

    def stop_workers_too(send_stop_to_client: bool = True) -> None:
        if send_stop_to_client or runner.state not in (STATE_SPAWNING, STATE_RUNNING):
            stop(send_stop_to_client=send_stop_to_client)
            return
        workers = worker_ids(runner)
        stop()
        quit_stopped_workers(runner, workers)

    runner.stop = stop_workers_too  # type: ignore[method-assign]


def kill_users_now(runner: Runner) -> None:
    """End every user greenlet of this process at once: a second Ctrl-C, after the graceful
    stop already began and is waiting for requests in flight.

    Internal: ``Runner.user_greenlets`` (Locust's own ``stop`` kills them the same way once
    ``--stop-timeout`` has passed)."""
    runner.user_greenlets.kill(block=False)


# -- the end of a distributed run -----------------------------------------------------------------


def worker_ids(runner: Any) -> list[str]:
    """The ids of the master's connected workers (``MasterRunner.clients``, public enough: the
    web UI's worker tab reads it too)."""
    clients = getattr(runner, "clients", None)
    return [client.id for client in clients.values()] if clients is not None else []


def quit_stopped_workers(runner: Any, ids: list[str]) -> None:
    """Tell workers that a graceful stop already stopped to quit.

    Locust's master forgets a worker once it reports "client_stopped", so its ``quit()`` (which
    only messages the workers it knows) never reaches workers that a graceful ``stop()`` ended
    first, and a ``loadkit run --worker`` would wait a minute for the master's heartbeat. The
    kit stops before quitting (so the workers' last measurements arrive before the verdict), so
    it sends those workers Locust's own "quit" message itself, with the public
    ``runner.send_message``.
    """
    known = set(worker_ids(runner))
    for worker_id in ids:
        if worker_id not in known:
            runner.send_message("quit", None, worker_id)


def skip_worker_ready_delay(environment: Environment) -> None:
    """After a worker's users stopped, report it ready at once.

    Locust's worker sleeps ``stop_timeout`` after a stop before it reads its next message
    (``WorkerRunner.worker``), so a "quit" waits that long. The kit's graceful stop is over by
    then (the users are gone when ``test_stop`` fires), so the wait only delays the end of the
    run. Internal: relies on the worker reading ``environment.stop_timeout`` after ``test_stop``;
    the next run's message sets it again.
    """
    environment.stop_timeout = 0


# -- a user that hosts the arrival-rate executor ---------------------------------------------------


def is_stopping(user: User) -> bool:
    """Whether Locust asked ``user`` to stop (a graceful stop waits for it to notice).

    Internal: ``User._state``; Locust's own ``User.run`` loop reads it the same way."""
    return user._state == LOCUST_STATE_STOPPING


def mark_waiting(user: User) -> None:
    """Tell Locust ``user`` is idle, so a graceful stop kills it at once instead of waiting.

    Internal: ``User._state`` = waiting, as Locust sets it around ``wait()``."""
    user._state = LOCUST_STATE_WAITING


def mark_running(user: User) -> None:
    """Tell Locust ``user`` is busy, so a graceful stop lets it finish (``User._state``)."""
    user._state = LOCUST_STATE_RUNNING


# -- workers --------------------------------------------------------------------------------------


def cache_default_options() -> None:
    """Compute Locust's default options once per process, not once per option per spawn message.

    A worker's "spawn" handler (``WorkerRunner.handle_message``) tests each of the master's
    options with ``k not in argument_parser.default_args_dict()``, and that function builds and
    parses Locust's whole argument parser on every call (about 1 ms, times 70-odd options). So
    every spawn message held the worker for 60-300 ms before it started its users: measured at
    the server, a 4 s distributed run delivered 3.68-3.86 s of load. The defaults cannot change
    within a process, so one computation serves every call; each caller gets its own copy.
    Internal: replaces the module function ``locust.argument_parser.default_args_dict``, which
    ``runners.py`` looks up through the module at each call.
    """
    original = argument_parser.default_args_dict
    if getattr(original, "loadkit_cached", False):
        return
    defaults = original()

    def default_args_dict() -> dict[str, Any]:
        return dict(defaults)

    default_args_dict.loadkit_cached = True  # type: ignore[attr-defined]
    argument_parser.default_args_dict = default_args_dict


def worker_index(runner: Any) -> int:
    """This worker's index among the master's workers (0 for a local runner).

    Public attribute of ``WorkerRunner`` since 2.x; absent on other runners."""
    return int(getattr(runner, "worker_index", 0) or 0)


# -- secrets ---------------------------------------------------------------------------------------


def mask_errors_at_source(stats: Any, runner: object, mask: Callable[[str], str]) -> None:
    """Pass every failure message and exception text through ``mask`` before Locust keeps it.

    What Locust keeps is what it writes everywhere: ``stats_failures.csv``,
    ``stats_exceptions.csv``, report.html, the web UI's tables and the worker->master reports.
    Masking where errors enter (``RequestStats.log_error``, ``Runner.log_exception``, both
    Locust 2.47) covers them all at once. An error object whose text needs no masking is passed
    on unchanged, so Locust's own display of it stays as it was.
    """
    _masks[stats] = mask
    log_error = stats.log_error

    def log_masked_error(method: str, name: str, error: Exception | str | None) -> None:
        if error is not None:
            text = StatsError.parse_error(error)
            masked = mask(text)
            if masked != text:
                error = masked
        log_error(method, name, error)

    stats.log_error = log_masked_error  # type: ignore[method-assign]
    log_exception = getattr(runner, "log_exception", None)
    if log_exception is None:
        return

    def log_masked_exception(node_id: str, msg: str, formatted_tb: str) -> None:
        log_exception(node_id, mask(str(msg)), mask(str(formatted_tb)))

    runner.log_exception = log_masked_exception  # type: ignore[attr-defined]


# -- the web UI ----------------------------------------------------------------------------------


def cancel_web_run_time(web_ui: Any) -> None:
    """Cancel the run-time timer Locust's ``/swarm`` armed for a start without a shape class.

    The kit ends every run itself on the monotonic clock (``take_over_run_time`` says why);
    Locust's web timer (``gevent.spawn_later``) would stop the run first, early, and a run
    stopped 1 s before its planned end reads "stopped early". Internal: ``WebUI.
    _cancel_run_time_timer`` (Locust's own ``/stop`` calls it the same way).
    """
    web_ui._cancel_run_time_timer()


def shape_test_still_ending(runner: Any, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for a shape test that is over but not yet gone; True if it is
    still there (a new start would be lost).

    A shape whose ``tick()`` returned None stops the runner from inside its own greenlet and
    clears ``runner.shape_greenlet`` only when that stop (users finishing, ``test_stop``, the
    kit's verdict) has returned. A start in between is dropped by ``Runner.start_shape`` ("There
    is an ongoing shape test running. Editing is disabled") while ``/swarm`` answers success, so
    a START pressed as soon as the verdict shows would start nothing. Internal:
    ``Runner.shape_greenlet`` (a gevent ``Greenlet`` or None).
    """
    shape = getattr(runner, "shape_greenlet", None)
    if shape is None or shape.dead:
        return False
    shape.join(timeout=timeout_s)
    return not shape.dead and runner.shape_greenlet is shape


def shape_test_running(runner: Any) -> bool:
    """A shape test is driving the load: Locust ignores another start until it ends (the
    same ``Runner.start_shape`` check as above), so the kit refuses it in words instead."""
    shape = getattr(runner, "shape_greenlet", None)
    return shape is not None and not shape.dead and runner.state in (STATE_RUNNING, STATE_SPAWNING)


# -- bytes sent -----------------------------------------------------------------------------------


def request_bytes_sent(response: Any) -> int:
    """Bytes a request put on the wire (request line, headers, body), from the ``response``
    Locust's ``request`` event carries; 0 when nothing says (no response, a failed connection).

    Locust's event reports bytes received (``response_length``) but not bytes sent. For
    ``FastHttpUser`` the request head is ``response._sent_request`` (geventhttpclient keeps the
    exact text it sent, latin-1: one byte a character) and the body is ``response.request.payload``;
    for ``HttpUser`` (requests) the head is rebuilt from the prepared request; the lean client
    keeps the length of what it encoded (``sent_bytes``). A few attribute reads per request
    (bench/bytes_sent_cost.py measures them).
    """
    head = getattr(response, "_sent_request", None)  # the default client's first
    if head is not None:
        request = getattr(response, "request", None)
        return len(head) + _body_bytes(getattr(request, "payload", None))
    sent = getattr(response, "sent_bytes", None)
    if sent is not None:
        return sent
    prepared = getattr(response, "request", None)
    headers = getattr(prepared, "headers", None)
    if headers is None or not hasattr(prepared, "path_url"):
        return 0
    line = len(prepared.method or "") + len(prepared.path_url) + len(" HTTP/1.1\r\n") + 1
    host = len("Host: \r\n") + len(urlsplit(prepared.url or "").netloc)
    fields = sum(len(k) + len(v) + 4 for k, v in headers.items())
    return line + host + fields + 2 + _body_bytes(prepared.body)


def _body_bytes(body: Any) -> int:
    if body is None:
        return 0
    if isinstance(body, str):
        return len(body) if body.isascii() else len(body.encode("utf-8"))
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    return 0  # a file or an iterator: its length is unknown here
