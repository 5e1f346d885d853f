"""Every input of a run checked before anything starts: one line, exit 2, nothing sent, no folder.

The order of a run is: parse, check everything here, start the target (or name it), preflight,
make the results folder, start Locust. So a bad value never costs a preflight call, a folder
left empty, or Locust's usage text. What is checked:

* the kit's options: users, spawn rate, run time (Locust's grammar), scales, rates, workers;
* the safety limits (``loadkit.core.limits``), unless ``--exceed-limits``;
* the target host against the allow-list (``loadkit.core.hosts``), and the web UI's bind address;
* the results folder: it can be created (not under a file, not read-only);
* Locust's own options (after ``--``, ``LOCUST_*``, ``locust.conf``) with Locust's real parser
  (``loadkit.cli.locust_options``), and the values it reads checked like the kit's.

Settings (``.env``, ``API_KEY``, timeouts) and baselines are checked where they are loaded.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from loadkit.cli.locust_options import (
    LocustOptionError,
    LocustOptions,
    needs_parsing,
    parse_locust_options,
)
from loadkit.core.arrival_schedule import parse_max_in_flight, parse_rate, parse_rate_stages
from loadkit.core.hosts import (
    ALLOWED_HOSTS_ENV,
    AllowList,
    AllowListError,
    HostNotAllowedError,
    split_entries,
)
from loadkit.core.limits import (
    DEFAULT_RUN_TIME,
    OVERRIDE_ENV,
    OVERRIDE_FLAG,
    LimitError,
    LoadSize,
    check_limits,
    check_numbers,
    check_workers,
    parse_run_time,
)
from loadkit.core.plan import resolve_stages
from loadkit.core.profiles import ProfileError, total_duration_s
from loadkit.core.start_form import check_scale_factor
from loadkit.registry import get_scenario
from loadkit.settings import Settings

#: ``--web-host`` values that bind every interface.
EVERY_INTERFACE = ("", "*", "0.0.0.0", "::")
REMOTE_UI_FLAG = "--allow-remote-ui"


class InputError(ValueError):
    """A bad input found before anything started: one line, exit code 2."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) naming the culprit; exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"loadkit: {message} (see: {self.prog} --help)\n")


def add_safety_options(
    parser: argparse.ArgumentParser, *, limits: bool = True, remote_ui: bool = False
) -> None:
    """``--allow-host`` (repeatable), and ``--exceed-limits`` / ``--allow-remote-ui``."""
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also allow load to HOST (a name, *.domain, address or network), repeatable; "
        f"loopback is always allowed (env: {ALLOWED_HOSTS_ENV}, comma-separated)",
    )
    if limits:
        parser.add_argument(
            OVERRIDE_FLAG,
            action="store_true",
            help="allow users, spawn rate, rate, workers and run time above the kit's safety "
            "limits (README: Safety)",
        )
    if remote_ui:
        parser.add_argument(
            REMOTE_UI_FLAG,
            action="store_true",
            help="allow `-- --web-host` to bind the web UI to a non-loopback address "
            "(anyone who reaches it can start load: put it behind a login or a firewall)",
        )


def share_safety_settings(args: argparse.Namespace, environ: dict[str, str] | Any = None) -> None:
    """Hand ``--allow-host`` and ``--exceed-limits`` to this process's settings and children.

    They travel as environment variables (``LOADKIT_ALLOWED_HOSTS``, ``LOADKIT_EXCEED_LIMITS``)
    because that is how plain ``locust`` takes them too, and the plugin checks again inside.
    """
    env = os.environ if environ is None else environ
    hosts = getattr(args, "allow_host", None) or []
    if hosts:
        try:
            AllowList.of(hosts)
        except AllowListError as exc:
            raise InputError(f"--allow-host: {exc}") from None
        env[ALLOWED_HOSTS_ENV] = ",".join(split_entries([env.get(ALLOWED_HOSTS_ENV, ""), *hosts]))
    if getattr(args, "exceed_limits", False):
        env[OVERRIDE_ENV] = "1"


def check_results_dir(root: Path) -> None:
    """The results folder can be made under ``root`` (which need not exist yet): its nearest
    existing ancestor is a folder we can write in (tried, not guessed: root ignores modes)."""
    probe = Path(os.path.abspath(root))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"results folder {root}: {probe} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".loadkit-probe-", dir=probe))
    except OSError as exc:
        raise InputError(
            f"results folder {root}: cannot write in {probe} ({exc.strerror or exc})"
        ) from None


def check_target_host(settings: Settings) -> None:
    """``API_URL`` (or ``--api-url``) and an absolute ``LOADKIT_METRICS_URL`` are on the
    allow-list (the embedded platform always is)."""
    try:
        if settings.metrics_url is not None and "://" in settings.metrics_url:
            settings.allow_list().check_url(settings.metrics_url, what="LOADKIT_METRICS_URL host")
        if settings.api_url:
            settings.allow_list().check_url(settings.api_url, what="API_URL host")
    except (HostNotAllowedError, AllowListError) as exc:
        raise InputError(str(exc)) from None


@dataclass(frozen=True)
class RunInputs:
    """What the checks decided: the run time to use (the kit's default when nothing ends the
    run) and what Locust's parser read."""

    run_time: str | None
    locust: LocustOptions
    notice: str | None = None
    """To say once every check has passed (the default run time)."""


def check_run_inputs(
    args: argparse.Namespace,
    extra: Sequence[str],
    settings: Settings,
) -> RunInputs:
    """Every check of ``loadkit run`` / one ``run-all`` step; :class:`InputError` on the first."""
    worker = bool(getattr(args, "worker", False))
    exceed = bool(getattr(args, "exceed_limits", False))
    try:
        size, ends = _kit_size(args)
        locust = _locust_options(["--worker"] if worker else ["--headless"], extra)
        size, locust_ends = _with_locust_values(size, locust, settings)
        check_numbers(size)
        check_workers_given(args, locust, exceed)
        if not exceed:
            check_limits(size)
    except (LimitError, ProfileError, LocustOptionError) as exc:
        raise InputError(str(exc)) from None
    if worker:
        return RunInputs(args.run_time, locust)
    check_results_dir(settings.results_dir)
    check_target_host(settings)
    if ends or locust_ends or _env_ends_run():
        return RunInputs(args.run_time, locust)
    notice = f"nothing ends this run (-t, --profile, --stage): it runs for {DEFAULT_RUN_TIME}"
    return RunInputs(DEFAULT_RUN_TIME, locust, notice)


@dataclass(frozen=True)
class UiInputs:
    """The web UI's address as it will really be bound."""

    web_url: str


def check_ui_inputs(args: argparse.Namespace, extra: Sequence[str], settings: Settings) -> UiInputs:
    """``loadkit ui``: the target, the results folder, Locust's options and the bind address."""
    if not 0 < args.web_port < 65536:
        raise InputError(f"--web-port {args.web_port}: not a port (1-65535)")
    kit_args = ["--web-host", "127.0.0.1", "--web-port", str(args.web_port)]
    try:
        locust = _locust_options(kit_args, extra)
        _with_locust_values(LoadSize(), locust, settings)
    except (LimitError, LocustOptionError) as exc:
        raise InputError(str(exc)) from None
    check_results_dir(settings.results_dir)
    check_target_host(settings)
    web_host = str(locust.get("web_host") if locust.values else "127.0.0.1")
    port = int(locust.get("web_port") or args.web_port)
    if not _is_loopback(web_host) and not getattr(args, "allow_remote_ui", False):
        shown = "every interface" if web_host in EVERY_INTERFACE else web_host
        raise InputError(
            f"--web-host {shown}: the web UI would be reachable from other machines and has no "
            f"login; {REMOTE_UI_FLAG} if it is behind a firewall or proxy that has one"
        )
    path = str(locust.get("web_base_path") or "").rstrip("/") + "/"
    if web_host in EVERY_INTERFACE:
        return UiInputs(f"http://<any address of this machine>:{port}{path} (every interface)")
    host = f"[{web_host}]" if ":" in web_host else web_host
    return UiInputs(f"http://{host}:{port}{path}")


def check_workers_given(args: argparse.Namespace, locust: LocustOptions, exceed: bool) -> None:
    workers = int(getattr(args, "workers", 0) or 0)
    expect = getattr(args, "expect_workers", None)
    if workers < 0:
        raise LimitError(f"--workers {workers}: must be 0 or more")
    if expect is not None and expect < 1:
        raise LimitError(f"--expect-workers {expect}: must be 1 or more")
    processes = _locust_processes(locust)
    if not exceed:
        check_workers(max(workers, processes or 0), expect, os.cpu_count())


# -- the pieces -----------------------------------------------------------------------------------


def _kit_size(args: argparse.Namespace) -> tuple[LoadSize, bool]:
    """The load the kit's own options ask for, and whether they end the run."""
    for name in ("time_scale", "user_scale"):
        value = getattr(args, name, None)
        if value is not None:
            check_scale_factor("--" + name.replace("_", "-"), value)
    time_scale = args.time_scale or 1.0
    run_time_s = parse_run_time(args.run_time) if args.run_time is not None else None
    stages = ()
    if args.profile or args.stage:
        from loadkit.cli.planning import recovery_option

        _, stages = resolve_stages(
            args.profile,
            args.stage,
            time_scale=time_scale,
            user_scale=args.user_scale or 1.0,
            recovery_s=recovery_option(args),
        )
    users = args.users
    if users is None and not stages and not args.worker:
        users = get_scenario(args.scenario).default_users
    rate_stages = parse_rate_stages(args.rate_stage, time_scale=time_scale)
    rate = parse_rate(args.rate) if args.rate is not None else None
    peak_rate = max([rate or 0.0, *(s.target_rate_per_s for s in rate_stages)]) or None
    size = LoadSize(
        processes=_processes(args),
        users=max((s.target_users for s in stages), default=0) or users,
        spawn_rate_per_s=args.spawn_rate,
        run_time_s=run_time_s,
        profile_duration_s=max(
            total_duration_s(stages) if stages else 0.0,
            sum(s.duration_s for s in rate_stages),
        )
        or None,
        rate_per_s=peak_rate,
    )
    ends = bool(args.run_time or stages or rate_stages)
    return size, ends


def _locust_options(kit_args: list[str], extra: Sequence[str]) -> LocustOptions:
    if not needs_parsing(extra):
        return LocustOptions({})
    return parse_locust_options([*kit_args, *extra])


def _with_locust_values(
    size: LoadSize, locust: LocustOptions, settings: Settings
) -> tuple[LoadSize, bool]:
    """``size`` with what Locust's options override, and whether they end the run."""
    values = locust.values
    if not values:
        return size, False
    host = values.get("host")
    if host:
        try:
            settings.allow_list().check_url(str(host), what="--host")
        except (HostNotAllowedError, AllowListError) as exc:
            raise LimitError(str(exc)) from None
    run_time = values.get("run_time")
    if run_time is not None and int(run_time) <= 0:
        raise LimitError(f"--run-time {run_time}: has no end, give at least 1s")
    rate_stages = values.get("rate_stage") or []
    stage_specs = [rate_stages] if isinstance(rate_stages, str) else list(rate_stages)
    stages = parse_rate_stages(stage_specs)
    rate = parse_rate(values["rate"]) if values.get("rate") not in (None, "") else None
    peak_rate = max([rate or 0.0, *(s.target_rate_per_s for s in stages)]) or None
    in_flight = values.get("max_in_flight")
    size = LoadSize(
        processes=max(size.processes, _locust_processes(locust) or 0),
        users=values.get("num_users") if values.get("num_users") is not None else size.users,
        spawn_rate_per_s=values.get("spawn_rate") or size.spawn_rate_per_s,
        run_time_s=float(run_time) if run_time is not None else size.run_time_s,
        profile_duration_s=size.profile_duration_s,
        rate_per_s=peak_rate or size.rate_per_s,
        max_in_flight=parse_max_in_flight(in_flight) if in_flight not in (None, "") else None,
    )
    if values.get("num_users") is not None and int(values["num_users"]) < 1:
        raise LimitError(f"--users {values['num_users']}: a run needs at least 1 user")
    return size, bool(run_time or stages)


def _processes(args: argparse.Namespace) -> int:
    if getattr(args, "workers", 0):
        return int(args.workers)
    if getattr(args, "master", False):
        return int(args.expect_workers or 1)
    return 1


def _locust_processes(locust: LocustOptions) -> int | None:
    processes = locust.get("processes")
    if processes is None:
        return None
    return os.cpu_count() or 1 if int(processes) == -1 else int(processes)


def _env_ends_run() -> bool:
    """A stage list in the environment (read by Locust's parser in the child) ends the run."""
    return any(os.environ.get(name) for name in ("LOADKIT_STAGES", "LOADKIT_RATE_STAGES"))


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
