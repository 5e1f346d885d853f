"""The platform's settings: one object, built at the edge from the command line and environment.

Precedence: a command-line flag beats its environment variable, which beats the default. Fault
specs are merged: ``LOADKIT_PLATFORM_LATENCY`` / ``LOADKIT_PLATFORM_FAIL`` entries first, then
``--latency`` / ``--fail`` flags, a later entry for the same route replacing an earlier one.
Every bad value is reported as one line naming the flag (or variable) and the value.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from loadkit.core.redis_url import check_redis_url, display_url
from loadkit.platform import store as st
from loadkit.platform.call_queue import DEFAULT_OUTCOME_WEIGHTS, DialerSettings
from loadkit.platform.faults import (
    FailureFault,
    FaultSpecError,
    LatencyFault,
    parse_failure_spec,
    parse_latency_spec,
    split_spec_list,
)
from loadkit.platform.protocol import API_KEY_ENV
from loadkit.platform.queue_backend import (
    DEFAULT_BULL_PREFIX,
    DEFAULT_BULL_QUEUE,
    RedisQueueSettings,
)
from loadkit.platform.routes import ROUTE_KEYS
from loadkit.platform.wear import SurgeLatency, WearSpecError, parse_surge_latency

LATENCY_ENV: Final = "LOADKIT_PLATFORM_LATENCY"
FAIL_ENV: Final = "LOADKIT_PLATFORM_FAIL"
#: The same variables the kit reads, so one setting points both at the same queue keys.
REDIS_URL_ENV: Final = "REDIS_URL"
BULL_PREFIX_ENV: Final = "LOADKIT_BULL_PREFIX"
BULL_QUEUE_ENV: Final = "LOADKIT_BULL_QUEUE"
MAX_KEY_PART_CHARS: Final = 200
MIB: Final = 1024 * 1024
LOOPBACK_NAMES: Final = frozenset(("localhost",))

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one line naming the flag and value."""


@dataclass(frozen=True)
class PlatformConfig:
    """Everything the platform needs to run. ``api_key`` is kept out of ``repr``."""

    api_key: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    dialer: DialerSettings = field(default_factory=DialerSettings)
    max_attempts: int = 5
    """A call can be retried this many times; the next retry is a 409."""
    import_rows_per_s: float = 500.0
    """Rows each import job validates per second (jobs run concurrently)."""
    import_fail_ratio: float = 0.0
    """Fault injection: share of import jobs that fail halfway."""
    max_upload_bytes: int = 10 * MIB
    max_json_bytes: int = 1 * MIB
    latencies: Mapping[str, LatencyFault] = field(default_factory=dict)
    failures: Mapping[str, FailureFault] = field(default_factory=dict)
    leak_bytes_per_request: int = 0
    """Fault injection: bytes kept forever per request (a memory leak, for the soak's check)."""
    surge_latency: SurgeLatency | None = None
    """Fault injection: latency added for good once a surge opened many connections."""
    seed: int | None = None
    """Seeds call outcomes, durations, and injected faults; ``None`` for fresh randomness."""
    access_log: bool = False


def add_platform_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the platform's flags to ``parser`` (shared by ``python -m loadkit.platform`` and
    ``loadkit target``); turn the result into settings with :func:`config_from_args`."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="accept a non-loopback --host (e.g. 0.0.0.0). Only for a container on its own "
        "network (docker-compose.yml), where the load generator reaches the platform through "
        "the container's interface; never on a shared host",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind (default 0: any free port)"
    )
    parser.add_argument(
        "--api-key",
        help=f"the API key clients must send (default: ${API_KEY_ENV}, else a random one that "
        "is not printed). Prefer the environment: command lines are visible to other users.",
    )
    dialer = parser.add_argument_group("simulated dialer")
    dialer.add_argument("--agents", type=int, default=50, help="concurrent calls (default 50)")
    dialer.add_argument("--call-duration-ms", type=float, default=200.0, help="default 200")
    dialer.add_argument(
        "--call-jitter-ms", type=float, default=50.0, help="± uniform jitter (default 50)"
    )
    dialer.add_argument(
        "--outcome-weights",
        default=None,
        help="relative outcome weights, e.g. completed=70,no_answer=15,busy=10,failed=5 "
        "(the default); outcomes left out get 0",
    )
    dialer.add_argument(
        "--max-attempts", type=int, default=5, help="retries allowed per call (default 5)"
    )
    dialer.add_argument("--seed", type=int, default=None, help="seed the platform's randomness")
    imports = parser.add_argument_group("contact imports")
    imports.add_argument(
        "--import-rows-per-s", type=float, default=500.0, help="per job (default 500)"
    )
    imports.add_argument(
        "--import-fail-ratio", type=float, default=0.0, help="fault: share of jobs that fail"
    )
    imports.add_argument(
        "--max-upload-bytes", type=int, default=10 * MIB, help="upload limit (default 10 MiB)"
    )
    faults = parser.add_argument_group("fault injection (repeatable; see docs/api.md)")
    faults.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="ROUTE=MS[~JITTER_MS]",
        help=f"added latency, e.g. 'POST /api/calls=500' or '*=20~5' (also ${LATENCY_ENV})",
    )
    faults.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="ROUTE=RATIO[:STATUS]",
        help=f"failure ratio, e.g. 'GET /api/analytics/dashboard=0.3' (also ${FAIL_ENV})",
    )
    faults.add_argument(
        "--leak-bytes-per-request",
        type=int,
        default=0,
        metavar="BYTES",
        help="keep BYTES of memory forever on every request: a leak a soak must find",
    )
    faults.add_argument(
        "--surge-latency",
        default=None,
        metavar="CONNECTIONS=MS",
        help="once more than CONNECTIONS client connections were open at once, add MS to every "
        "request from then on: damage a spike leaves behind (e.g. 10=50)",
    )
    queue = parser.add_argument_group("queue store (default: in the process)")
    queue.add_argument(
        "--redis-url",
        default=None,
        metavar="URL",
        help=f"keep the call queue in this Redis, in Bull's key layout (also ${REDIS_URL_ENV})",
    )
    queue.add_argument(
        "--redis-prefix",
        default=None,
        help=f"Bull key prefix (default {DEFAULT_BULL_PREFIX!r}, or ${BULL_PREFIX_ENV})",
    )
    queue.add_argument(
        "--redis-queue",
        default=None,
        help=f"Bull queue name (default {DEFAULT_BULL_QUEUE!r}, or ${BULL_QUEUE_ENV})",
    )
    queue.add_argument(
        "--redis-reset",
        action="store_true",
        help="delete keys an earlier run left under <prefix>:<queue>:* instead of refusing",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request to stderr (off: it costs)"
    )


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> PlatformConfig:
    """Validate parsed flags (plus the environment) into a :class:`PlatformConfig`."""
    if not args.allow_non_loopback:
        check_loopback(args.host)
    _require(args.port, "--port", lambda v: 0 <= v <= 65535, "must be 0..65535")
    _require(args.agents, "--agents", lambda v: 1 <= v <= 10_000, "must be 1..10000")
    _require(
        args.call_duration_ms,
        "--call-duration-ms",
        lambda v: 0 <= v <= 3_600_000,
        "must be 0..3600000",
    )
    _require(
        args.call_jitter_ms, "--call-jitter-ms", lambda v: 0 <= v <= 3_600_000, "must be 0..3600000"
    )
    _require(args.max_attempts, "--max-attempts", lambda v: v >= 0, "must be >= 0")
    _require(
        args.import_rows_per_s,
        "--import-rows-per-s",
        lambda v: 0 < v <= 1e7,
        "must be > 0 and <= 1e7",
    )
    _require(args.import_fail_ratio, "--import-fail-ratio", lambda v: 0 <= v <= 1, "must be 0..1")
    _require(args.max_upload_bytes, "--max-upload-bytes", lambda v: v > 0, "must be > 0")
    _require(
        args.leak_bytes_per_request,
        "--leak-bytes-per-request",
        lambda v: 0 <= v <= 10 * MIB,
        "must be 0..10485760",
    )
    surge = None
    if args.surge_latency is not None:
        try:
            surge = parse_surge_latency(args.surge_latency)
        except WearSpecError as exc:
            raise ConfigError(f"--surge-latency: {exc}") from None
    latencies = _parse_specs(
        environ.get(LATENCY_ENV, ""), args.latency, LATENCY_ENV, "--latency", parse_latency_spec
    )
    failures = _parse_specs(
        environ.get(FAIL_ENV, ""), args.fail, FAIL_ENV, "--fail", parse_failure_spec
    )
    api_key = args.api_key or environ.get(API_KEY_ENV) or secrets.token_urlsafe(32)
    return PlatformConfig(
        api_key=api_key,
        host="127.0.0.1" if args.host.lower() in LOOPBACK_NAMES else args.host,
        port=args.port,
        dialer=DialerSettings(
            agents=args.agents,
            call_duration_ms=args.call_duration_ms,
            call_jitter_ms=args.call_jitter_ms,
            outcome_weights=parse_outcome_weights(args.outcome_weights),
            redis=redis_settings(args, environ),
        ),
        max_attempts=args.max_attempts,
        import_rows_per_s=args.import_rows_per_s,
        import_fail_ratio=args.import_fail_ratio,
        max_upload_bytes=args.max_upload_bytes,
        latencies=latencies,
        failures=failures,
        leak_bytes_per_request=args.leak_bytes_per_request,
        surge_latency=surge,
        seed=args.seed,
        access_log=args.access_log,
    )


def redis_settings(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> RedisQueueSettings | None:
    """Where the queue lives in Redis, or ``None`` for the in-process queue (no URL given)."""
    url = args.redis_url if args.redis_url is not None else environ.get(REDIS_URL_ENV, "")
    if not url.strip():
        if args.redis_reset:
            raise ConfigError("--redis-reset: needs --redis-url (or $REDIS_URL)")
        return None
    try:
        url = check_redis_url(url)
    except ValueError as exc:  # the value may hold a password: show it masked
        raise ConfigError(f"--redis-url: invalid value {display_url(url)!r}: {exc}") from None
    prefix = _key_part(args.redis_prefix, environ.get(BULL_PREFIX_ENV), DEFAULT_BULL_PREFIX)
    queue = _key_part(args.redis_queue, environ.get(BULL_QUEUE_ENV), DEFAULT_BULL_QUEUE)
    _require_key_part(prefix, "--redis-prefix")
    _require_key_part(queue, "--redis-queue")
    return RedisQueueSettings(url=url, prefix=prefix, queue=queue, reset=args.redis_reset)


def _key_part(flag: str | None, env: str | None, default: str) -> str:
    if flag is not None:
        return flag
    return env if env else default


def _require_key_part(value: str, flag: str) -> None:
    if not value or len(value) > MAX_KEY_PART_CHARS or any(c.isspace() for c in value):
        raise ConfigError(
            f"{flag}: invalid value {value!r}: must be 1..{MAX_KEY_PART_CHARS} characters "
            "without spaces"
        )


def check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: the platform is a test double, never a service."""
    if host.lower() in LOOPBACK_NAMES:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"--host: refusing {host!r}: only loopback addresses "
            "(127.0.0.0/8, ::1, localhost) are allowed (inside a container network only: "
            "--allow-non-loopback)"
        )


def parse_outcome_weights(text: str | None) -> Mapping[str, float]:
    """``completed=70,no_answer=15`` → weights; ``None`` gives the default mix."""
    if text is None:
        return DEFAULT_OUTCOME_WEIGHTS
    weights = dict.fromkeys(st.OUTCOMES, 0.0)
    for item in split_spec_list(text):
        name, _, value = item.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if name not in weights or not 0 <= weight < float("inf"):
            raise ConfigError(
                f"--outcome-weights: invalid entry {item!r}: expected OUTCOME=WEIGHT with "
                f"OUTCOME one of {', '.join(st.OUTCOMES)} and WEIGHT >= 0"
            )
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ConfigError(f"--outcome-weights: invalid value {text!r}: all weights are 0")
    return weights


def _parse_specs(
    env_value: str,
    flag_values: list[str],
    env_name: str,
    flag: str,
    parse: Callable[[str, frozenset[str]], tuple[str, T]],
) -> dict[str, T]:
    parsed: dict[str, T] = {}
    sources = [(env_name, spec) for spec in split_spec_list(env_value)]
    sources += [(flag, spec) for spec in flag_values]
    for source, spec in sources:
        try:
            route, fault = parse(spec, ROUTE_KEYS)
        except FaultSpecError as exc:
            raise ConfigError(f"{source}: invalid value {spec!r}: {exc}") from None
        parsed[route] = fault
    return parsed


def _require(value: float, flag: str, ok: Callable[[float], bool], message: str) -> None:
    if not ok(value):
        raise ConfigError(f"{flag}: invalid value {value!r}: {message}")
