"""Pass/fail thresholds as data: the baseline model, its units, and loading with one-line errors.

A baseline file (``baselines/<scenario>.toml``) lists the criteria one scenario's run must meet
and the load profiles each one applies to. It is parsed and validated when the run starts, so a
typo fails in the first second with ``file:line: key.path: problem`` instead of being discovered
at the end of a one-hour soak. Thresholds are converted to one unit per metric kind here, once,
so the verdict compares plain floats.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from loadkit import registry
from loadkit.core.durations import parse_duration
from loadkit.core.series import SeriesSelector

# ---------------------------------------------------------------------------------------------
# Names: scenarios, profiles, requests, custom metrics. Everything validation accepts is here.
# ---------------------------------------------------------------------------------------------

#: Scenario and profile names come from the registry (the only list of them); ``custom`` is the
#: profile of ad-hoc ``--stage`` runs.
SCENARIOS: Final = registry.SCENARIOS
PROFILES: Final = registry.PROFILE_NAMES

#: What a criterion's ``request`` says to mean the scenario's HTTP aggregate (all HTTP requests,
#: no JOB entries).
TOTAL: Final = "total"
#: ``EndpointMetrics.key`` of the HTTP aggregate row.
AGGREGATED_KEY: Final = "Aggregated"


@dataclass(frozen=True)
class CustomMetric:
    """A non-HTTP metric a criterion may name: its unit (for display) and what it counts."""

    unit: str
    description: str
    metrics: tuple[str, ...] | None = None
    """The metrics a criterion may ask of it; None: those of its kind (``GAUGE_METRICS`` or
    ``COUNTER_METRICS``)."""


#: Gauges and counters named ``queue_*`` come from the platform's queue: a run judged on one
#: needs the queue source readable (preflight), any other run may go without it.
QUEUE_PREFIX: Final = "queue_"
#: Gauges sampled during the run; a criterion judges one summary of the samples.
GAUGES: Final[Mapping[str, CustomMetric]] = MappingProxyType(
    {
        "queue_depth": CustomMetric(
            "jobs",
            "work that is due and not being processed: waiting jobs plus overdue delayed ones "
            "(docs/queue.md), sampled from the platform's stats endpoint or Redis",
        ),
        "queue_overdue": CustomMetric(
            "jobs", "delayed jobs whose due time has passed and that no worker has taken"
        ),
        "queue_waiting": CustomMetric(
            "jobs", "jobs ready for a worker (BullMQ: wait + prioritized + paused)"
        ),
        "queue_active": CustomMetric("jobs", "jobs a worker has taken and not finished"),
        "queue_delayed": CustomMetric("jobs", "delayed jobs not due yet"),
        "generator_rss_bytes": CustomMetric(
            "bytes",
            "resident memory of the load generators (summed over workers), sampled each second",
        ),
        "generator_cpu_percent": CustomMetric(
            "%",
            "CPU of the busiest load generator process (local runner or worker) each second; "
            "above 80% its latencies include its own waiting",
        ),
    }
)
#: Counters reported at the end of the run. A metric other than ``count`` is reported under
#: :func:`counter_key`.
COUNTERS: Final[Mapping[str, CustomMetric]] = MappingProxyType(
    {
        "dropped_iterations": CustomMetric(
            "iterations",
            "arrival-rate iterations not started: --max-in-flight were already running, or the "
            "generator reached them too late",
        ),
        "dropped_late_iterations": CustomMetric(
            "iterations",
            "the part of dropped_iterations the load generator reached too late to start (it "
            "was the limit, not the platform)",
        ),
        "queue_jobs_completed": CustomMetric(
            "jobs",
            "jobs the queue completed during the run (its drain included): `count`, or `rate` "
            "per second, the processing rate",
            ("count", "rate"),
        ),
        "queue_jobs_failed": CustomMetric(
            "jobs",
            "jobs that failed during the run (its drain included): `count`, or `rate` per second",
            ("count", "rate"),
        ),
        "queue_stalled_jobs": CustomMetric(
            "jobs",
            "the most that due work grew within one stall window while no job completed or "
            "failed (a stalled consumer); 0 when that never happened",
        ),
        "held_users": CustomMetric(
            "users",
            "the highest user level at which every latency and error-rate criterion of the "
            "baseline held (levels judged in rising order, up to the first that failed)",
        ),
    }
)

LATENCY_METRICS: Final = ("p50", "p90", "p95", "p99", "max", "avg", "min")
#: What a profile exists to show, judged on a request: how long P95 took to come back after a
#: spike (s), and how far P95 drifted from a soak's first window to its last (ms).
PURPOSE_METRICS: Final = ("recovery", "p95_drift")
REQUEST_METRICS: Final = (*LATENCY_METRICS, "error_rate", "rps", "count", *PURPOSE_METRICS)
#: ``growth`` is a least-squares slope per hour over the steady window (memory, platform
#: series); ``growth_per_s`` how fast a queue gauge rose from its first reading to its last.
GAUGE_METRICS: Final = ("max", "p95", "final", "min", "avg", "growth", "growth_per_s")
#: A platform metric is a gauge, or a counter read as a rate per second.
PLATFORM_METRICS: Final = (*GAUGE_METRICS, "rate")
COUNTER_METRICS: Final = ("count",)
#: Metrics measured per second (a threshold such as ``"5/s"``) on requests, queue gauges and
#: queue counters.
PER_SECOND_METRICS: Final = frozenset({"rps", "rate", "growth_per_s"})
#: The parts of a spike a request criterion can be judged on alone (``during``).
SPIKE_PHASES: Final = ("before", "surge", "recovery")
#: Default ``tolerance`` of a ``recovery`` criterion: P95 within 20 % of the pre-spike P95.
DEFAULT_RECOVERY_TOLERANCE: Final = "20%"


def counter_key(counter: str, metric: str) -> str:
    """Where a counter's ``metric`` is in the counters a run reports: ``count`` under the
    counter's own name, any other under ``<name>.<metric>`` (``queue_jobs_completed.rate``)."""
    return counter if metric == "count" else f"{counter}.{metric}"


Op = Literal["<", "<=", ">", ">="]
SubjectKind = Literal["request", "gauge", "counter", "platform"]

# ---------------------------------------------------------------------------------------------
# Units. Canonical units: latency in ms, error rate as a fraction, throughput per second.
# ---------------------------------------------------------------------------------------------

UNIT_MS: Final = "ms"
UNIT_FRACTION: Final = "fraction"
UNIT_PER_S: Final = "/s"
UNIT_COUNT: Final = "count"
UNIT_S: Final = "s"
UNIT_PER_H: Final = "/h"

#: Byte units a platform metric or a memory gauge may be written in (decimal and binary).
_BYTE_UNITS: Final = {
    "B": Decimal(1),
    "kB": Decimal(1000),
    "KB": Decimal(1000),
    "KiB": Decimal(1024),
    "MB": Decimal(1000**2),
    "MiB": Decimal(1024**2),
    "GB": Decimal(1000**3),
    "GiB": Decimal(1024**3),
}

_LATENCY_UNITS: Final = {"ms": Decimal(1), "s": Decimal(1000)}
_NUMBER_RE: Final = re.compile(
    r"^\s*(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>.*?)\s*$"
)


class _KeyedError(ValueError):
    """A validation problem that knows which key below the validated object it is about.

    Pydantic reports model-level errors at the model's own location; the key path in our one-line
    messages must name the offending key, so validators raise this and the formatter appends it.
    """

    def __init__(self, sub_loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.sub_loc = sub_loc


def _split(raw: object) -> tuple[Decimal, str]:
    """``"20ms"`` -> (20, "ms"); numbers have no unit. Decimal keeps "0.1%" exact until the end."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError(f"must be a number or a string such as '20ms', not {raw!r}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError(f"{raw!r} is not a finite number")
    if not isinstance(raw, str):
        amount, unit = Decimal(str(raw)), ""
    else:
        match = _NUMBER_RE.match(raw)
        if match is None:
            raise ValueError(f"{raw!r} is not a number with a unit (e.g. '20ms', '0.5%', '100/s')")
        try:
            amount = Decimal(match["number"])
        except InvalidOperation:  # pragma: no cover - the regex only admits valid numbers
            raise ValueError(f"{raw!r} is not a number") from None
        unit = match["unit"]
    if amount < 0:
        raise ValueError(f"negative threshold {raw!r}: thresholds are magnitudes >= 0")
    return amount, unit


def _latency_ms(raw: object) -> tuple[float, str]:
    amount, unit = _split(raw)
    if unit == "":
        raise ValueError(f"latency {raw!r} needs a unit: write '{amount}ms' or '{amount}s'")
    if unit not in _LATENCY_UNITS:
        raise ValueError(f"bad unit {unit!r} in {raw!r}: a latency takes 'ms' or 's'")
    return float(amount * _LATENCY_UNITS[unit]), unit


def _fraction(raw: object) -> tuple[float, str]:
    amount, unit = _split(raw)
    if unit == "%":
        if amount > 100:
            raise ValueError(f"{raw!r} is above 100%")
        return float(amount / 100), "%"
    if unit:
        raise ValueError(
            f"bad unit {unit!r} in {raw!r}: "
            "an error rate is a percentage ('1%') or a fraction (0.01)"
        )
    if amount > 1:
        raise ValueError(
            f"error rate {raw!r} is above 1: write '{amount}%' for a percentage, or a fraction <= 1"
        )
    return float(amount), "%"


def _fraction_or_percent(raw: object) -> float:
    """``"20%"`` or 0.2; above 100 % is allowed (a tolerance of 150 % is P95 x 2.5)."""
    amount, unit = _split(raw)
    if unit == "%":
        return float(amount / 100)
    if unit:
        raise ValueError(f"bad unit {unit!r} in {raw!r}: write a percentage ('20%') or a fraction")
    return float(amount)


def _per_s(raw: object) -> tuple[float, str]:
    amount, unit = _split(raw)
    if unit not in ("", "/s"):
        raise ValueError(f"bad unit {unit!r} in {raw!r}: a rate is per second ('100/s' or 100)")
    return float(amount), UNIT_PER_S


def _plain(raw: object, unit_name: str) -> tuple[float, str]:
    amount, unit = _split(raw)
    if unit not in ("", unit_name):
        raise ValueError(f"bad unit {unit!r} in {raw!r}: write a plain number ({unit_name})")
    return float(amount), unit_name


def _quantity(raw: object, metric: str, unit_name: str) -> tuple[float, str, Decimal]:
    """A gauge's or platform metric's threshold: a plain number, a percentage (``"80%"``: a
    CPU share) or bytes (``"50MiB"``), per second for a ``rate`` (``"/s"``), per hour for a
    ``growth`` (``"/h"``). Returns (value, the unit as written, its factor)."""
    amount, unit = _split(raw)
    per = {"rate": UNIT_PER_S, "growth": UNIT_PER_H}.get(metric, "")
    written_per = ""
    if unit.endswith(("/s", "/h")):
        if unit[-2:] != per:
            wanted = f"'{per}'" if per else "no time unit"
            raise ValueError(f"bad unit {unit!r} in {raw!r}: {metric} takes {wanted}")
        unit, written_per = unit[:-2].strip(), per
    if unit in ("", unit_name):
        factor = Decimal(1)
    elif unit == "%":
        factor = Decimal("0.01")
    elif unit in _BYTE_UNITS:
        factor = _BYTE_UNITS[unit]
    else:
        known = ", ".join(["%", *_BYTE_UNITS])
        raise ValueError(f"bad unit {unit!r} in {raw!r}: a plain number, or one of {known}")
    shown = unit if unit not in ("", unit_name) else unit_name
    return float(amount * factor), f"{shown}{written_per}", factor


def format_number(x: float) -> str:
    """A short human rendering: integers without decimals, others to about four digits."""
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 100:
        return f"{x:.1f}"
    text = f"{x:.4g}"
    return f"{x:.6f}".rstrip("0").rstrip(".") if "e" in text else text


def _unknown(what: str, got: object, known: Iterable[str], where: str = "") -> str:
    """``unknown metric 'p96' for a request (did you mean 'p95'? known: ...)``."""
    known = list(known)
    close = difflib.get_close_matches(str(got), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown {what} {got!r}{where} ({hint}known: {', '.join(known)})"


# ---------------------------------------------------------------------------------------------
# The model.
# ---------------------------------------------------------------------------------------------


class Criterion(BaseModel):
    """One threshold: a subject (request, gauge or counter), a metric, an operator and a value.

    The criterion states what must hold for the run to pass (k6's ``p(95)<500``); ``profiles``
    says where that statement is meaningful, because a 1000 rps floor means nothing for one user.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    request: StrictStr | None = None
    """A request name as the stats show it (``"GET /health"``, ``"JOB bulk import: ..."``),
    or ``"total"`` for the scenario's HTTP aggregate."""
    gauge: StrictStr | None = None
    """A gauge sampled during the run (see ``GAUGES``), instead of a request."""
    counter: StrictStr | None = None
    """A counter reported at the end of the run (see ``COUNTERS``), instead of a request."""
    platform: StrictStr | None = None
    """A metric the platform exposes (``LOADKIT_METRICS_URL``), by its sample name as exposed:
    ``process_resident_memory_bytes``, ``http_request_duration_seconds_bucket``."""
    labels: dict[StrictStr, StrictStr] | None = None
    """With ``platform``: the labels the samples must carry (``{le = "0.1"}``); samples that
    match are summed."""
    metric: StrictStr
    """What to measure: p50 p90 p95 p99 max avg min error_rate rps count recovery p95_drift
    for requests; max p95 final min avg growth growth_per_s for gauges, and rate for platform
    metrics; count (and rate, for the queue's job counters) for counters."""
    during: Literal["before", "surge", "recovery"] | None = None
    """With a request: judge only the requests of that part of a spike (before the surge, the
    surge up and down, the recovery hold), instead of the whole run."""
    tolerance: Any = None
    """With ``recovery``: how far above the pre-spike P95 counts as recovered (default 20%)."""
    op: Op
    """The comparison that must hold: ``measured op value``."""
    value: Any
    """The threshold as written: ``"20ms"``/``"1.5s"`` (latency), ``"0.1%"`` or 0.001 (error
    rate), ``"100/s"`` or 100 (rps), a plain number (count, gauges, counters)."""
    profiles: tuple[StrictStr, ...] | None = None
    """Profiles this criterion applies to; omitted = all, including ``custom``."""
    abort_on_fail: StrictBool = False
    """Stop the run early when this criterion has failed for ``delay_abort_eval``."""
    delay_abort_eval: Any = None
    """How long the failure must last before aborting (``"30s"``); default: at once."""
    source: StrictStr | None = None
    """Where the figure comes from, for the reader (free text)."""

    _threshold: float = PrivateAttr(default=0.0)
    _unit: str = PrivateAttr(default="")
    _display_unit: str = PrivateAttr(default="")
    _display_factor: float = PrivateAttr(default=0.0)
    _delay_s: float = PrivateAttr(default=0.0)
    _tolerance: float = PrivateAttr(default=0.0)

    @field_validator("profiles", mode="before")
    @classmethod
    def _profiles_is_a_list(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(f'must be a list, e.g. profiles = ["{value}"]')
        return value

    @field_validator("profiles")
    @classmethod
    def _known_profiles(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("empty list: the criterion would apply nowhere (omit it for all)")
        for i, name in enumerate(value):
            if name not in PROFILES:
                raise _KeyedError((i,), _unknown("profile", name, PROFILES))
        return value

    @model_validator(mode="after")
    def _check_and_convert(self) -> Criterion:
        subjects = [
            k for k in ("request", "gauge", "counter", "platform") if getattr(self, k) is not None
        ]
        if not subjects:
            raise _KeyedError(
                ("request",), "missing: name a request (or a gauge, a counter, a platform metric)"
            )
        if len(subjects) > 1:
            raise _KeyedError((subjects[1],), f"give only one of {' / '.join(subjects)}")
        kind = self.kind
        allowed = {
            "request": REQUEST_METRICS,
            "gauge": GAUGE_METRICS,
            "counter": COUNTER_METRICS,
            "platform": PLATFORM_METRICS,
        }
        self._check_purpose_keys(kind)
        if kind == "gauge" and self.gauge not in GAUGES:
            raise _KeyedError(("gauge",), _unknown("gauge", self.gauge, GAUGES))
        if kind == "counter" and self.counter not in COUNTERS:
            raise _KeyedError(("counter",), _unknown("counter", self.counter, COUNTERS))
        custom = GAUGES.get(str(self.gauge)) or COUNTERS.get(str(self.counter))
        if custom is not None and custom.metrics is not None:
            allowed[kind] = custom.metrics
        if kind == "request" and not str(self.request).strip():
            raise _KeyedError(("request",), "empty request name")
        if self.metric not in allowed[kind]:
            raise _KeyedError(
                ("metric",), _unknown("metric", self.metric, allowed[kind], f" for a {kind}")
            )
        try:
            threshold, display_unit = self._convert()
        except ValueError as exc:
            raise _KeyedError(("value",), str(exc)) from None
        self._threshold = threshold
        self._display_unit = display_unit
        self._unit = self._canonical_unit()
        if self.metric == "recovery":
            raw = DEFAULT_RECOVERY_TOLERANCE if self.tolerance is None else self.tolerance
            try:
                self._tolerance = _fraction_or_percent(raw)
            except ValueError as exc:
                raise _KeyedError(("tolerance",), str(exc)) from None
        if self.delay_abort_eval is not None:
            if not self.abort_on_fail:
                raise _KeyedError(
                    ("delay_abort_eval",), "only means something with abort_on_fail = true"
                )
            try:
                self._delay_s = parse_duration(self.delay_abort_eval, unit_required=True)
            except ValueError as exc:
                raise _KeyedError(("delay_abort_eval",), str(exc)) from None
        return self

    def _check_purpose_keys(self, kind: SubjectKind) -> None:
        """``labels`` only with a platform metric; ``during`` only on a request's plain
        metrics; ``tolerance`` only with ``recovery``."""
        if self.labels is not None and kind != "platform":
            raise _KeyedError(("labels",), "only means something with platform = ...")
        if self.platform is not None and not self.platform.strip():
            raise _KeyedError(("platform",), "empty metric name")
        if self.during is not None and (kind != "request" or self.metric in PURPOSE_METRICS):
            raise _KeyedError(
                ("during",), "only with a request's latency, error_rate, rps or count"
            )
        if self.tolerance is not None and self.metric != "recovery":
            raise _KeyedError(("tolerance",), 'only means something with metric = "recovery"')

    def _convert(self) -> tuple[float, str]:
        if self.metric in PER_SECOND_METRICS and self.platform is None:
            return _per_s(self.value)
        if self.gauge is not None or self.platform is not None:
            unit_name = GAUGES[self.gauge].unit if self.gauge is not None else ""
            threshold, written, factor = _quantity(self.value, self.metric, unit_name)
            self._display_factor = float(factor)
            return threshold, written
        if self.metric == "recovery":
            return parse_duration(self.value, unit_required=True), UNIT_S
        if self.counter is not None:
            return _plain(self.value, COUNTERS[self.counter].unit)
        if self.metric in LATENCY_METRICS or self.metric == "p95_drift":
            return _latency_ms(self.value)
        if self.metric == "error_rate":
            return _fraction(self.value)
        return _plain(self.value, UNIT_COUNT)

    def _canonical_unit(self) -> str:
        if self.metric in PER_SECOND_METRICS and self.platform is None:
            return UNIT_PER_S
        per = {"rate": UNIT_PER_S, "growth": UNIT_PER_H}.get(self.metric, "")
        if self.platform is not None:
            return f"(as exposed){per}"
        if self.gauge is not None:
            return f"{GAUGES[self.gauge].unit}{per}"
        if self.metric == "recovery":
            return UNIT_S
        if self.counter is not None:
            return COUNTERS[self.counter].unit
        if self.metric in LATENCY_METRICS or self.metric == "p95_drift":
            return UNIT_MS
        return UNIT_FRACTION if self.metric == "error_rate" else UNIT_COUNT

    @property
    def kind(self) -> SubjectKind:
        """Whether the subject is a request row, a gauge, a counter or a platform metric."""
        if self.gauge is not None:
            return "gauge"
        if self.platform is not None:
            return "platform"
        return "counter" if self.counter is not None else "request"

    @property
    def reads_queue(self) -> bool:
        """Whether judging it needs the platform's queue sampled (a ``queue_*`` subject)."""
        return str(self.gauge or self.counter or "").startswith(QUEUE_PREFIX)

    @property
    def platform_series(self) -> str | None:
        """The platform series as ``name{label="value",...}`` (labels sorted), or None."""
        if self.platform is None:
            return None
        if not self.labels:
            return self.platform
        inner = ",".join(f'{k}="{v}"'.replace("\n", "\\n") for k, v in sorted(self.labels.items()))
        return f"{self.platform}{{{inner}}}"

    @property
    def platform_selector(self) -> SeriesSelector | None:
        """What to scrape for this criterion (None unless it names a platform metric)."""
        return None if self.platform is None else SeriesSelector.of(self.platform, self.labels)

    @property
    def gauge_key(self) -> str | None:
        """Where the run's gauges dict holds this criterion's series: the gauge's name, or
        ``platform <series>``; None for requests and counters."""
        if self.gauge is not None:
            return self.gauge
        return None if self.platform is None else f"platform {self.platform_series}"

    @property
    def needs_timeline(self) -> bool:
        """Judged on the run's seconds (a spike phase, recovery, drift), not whole-run rows."""
        return self.during is not None or self.metric in PURPOSE_METRICS

    @property
    def tolerance_fraction(self) -> float:
        """``recovery``'s tolerance as a fraction (0.2 = P95 may be 20 % above the pre-spike)."""
        return self._tolerance

    @property
    def subject(self) -> str:
        """``"GET /health"``, ``"total"``, ``"gauge queue_depth"``, ``"counter <name>"``,
        ``"platform <series>"``, ``"total during surge"``."""
        if self.gauge is not None:
            return f"gauge {self.gauge}"
        if self.counter is not None:
            return f"counter {self.counter}"
        if self.platform is not None:
            return f"platform {self.platform_series}"
        if self.during is not None:
            return f"{self.request} during {self.during}"
        return str(self.request)

    @property
    def threshold(self) -> float:
        """The value in the canonical unit (``unit``): ms, fraction, per second, or a count."""
        return self._threshold

    @property
    def unit(self) -> str:
        """Unit of ``threshold``: ``ms``, ``fraction``, ``/s``, ``count``, or a gauge's unit."""
        return self._unit

    @property
    def delay_abort_eval_s(self) -> float:
        """Seconds a failure must last before an abort (0: at once)."""
        return self._delay_s

    @property
    def threshold_text(self) -> str:
        """The value as the file wrote it."""
        return str(self.value)

    def applies_to(self, profile: str) -> bool:
        """Whether this criterion is judged in a run of ``profile``."""
        return self.profiles is None or profile in self.profiles

    def format(self, amount: float) -> str:
        """A canonical amount in the unit the file used: ``"20 ms"``, ``"1.5 s"``, ``"0.1%"``."""
        unit = self._display_unit
        if self._display_factor:
            shown = format_number(amount / self._display_factor)
            if not unit or unit.startswith(("%", "/")):
                return f"{shown}{unit}"
            return f"{shown} {unit}"
        if unit == "s":
            if self.metric == "recovery":
                return f"{format_number(amount)} s"
            return f"{format_number(amount / 1000)} s"
        if unit == "%":
            return f"{format_number(amount * 100)}%"
        if unit == UNIT_PER_S:
            return f"{format_number(amount)}/s"
        if unit in ("", UNIT_COUNT):
            return format_number(amount)
        return f"{format_number(amount)} {unit}"

    def describe(self) -> str:
        """``"GET /health p95 <= 20 ms"``: one line for reports and test names."""
        return f"{self.subject} {self.metric} {self.op} {self.format(self.threshold)}"


class Reference(BaseModel):
    """A figure shown next to the verdict but never judged (capacity targets, load levels).

    Some of the guide's numbers are not outcomes one run can measure, or any run trivially
    exceeds them; they stay visible as data instead of becoming criteria that prove nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    name: StrictStr
    """What the figure is (``"Scheduled calls per day"``)."""
    target: float | None = Field(default=None, ge=0)
    """The planned level."""
    maximum: float | None = Field(default=None, ge=0)
    """The most the platform should take."""
    unit: StrictStr = ""
    """Unit of target and maximum (``"calls/day"``)."""
    source: StrictStr | None = None
    """Where the figure comes from."""
    note: StrictStr | None = None
    """Why it is not a criterion, or how it relates to the run's numbers."""

    @model_validator(mode="after")
    def _has_a_figure(self) -> Reference:
        if self.target is None and self.maximum is None:
            raise _KeyedError(("target",), "give a target, a maximum or both")
        if self.target is not None and self.maximum is not None and self.maximum < self.target:
            raise _KeyedError(
                ("maximum",), f"maximum {self.maximum:g} is below target {self.target:g}"
            )
        return self


#: Metrics a ``[[regression]]`` criterion may compare, and which way is worse: latencies and
#: the error rate get worse by rising (``max_increase``), the rate by falling (``max_decrease``).
REGRESSION_RISING: Final = ("p50", "p90", "p95", "p99", "avg", "max", "error_rate")
REGRESSION_FALLING: Final = ("rps",)
REGRESSION_METRICS: Final = (*REGRESSION_RISING, *REGRESSION_FALLING)


def parse_tolerance(raw: object) -> float:
    """``"20%"`` or 0.2 -> 0.2: a tolerance as a fraction (of the reference, or for an error
    rate, of all requests: percentage points)."""
    amount, unit = _split(raw)
    if unit not in ("%", ""):
        raise ValueError(f"bad unit {unit!r} in {raw!r}: write a percentage ('20%') or a fraction")
    return float(amount / 100) if unit == "%" else float(amount)


class RegressionCriterion(BaseModel):
    """A limit relative to a reference run: ``p95`` may not rise by more than 20%, ``rps`` may
    not fall by more than 10%. The reference's number and the limit are known only when a run
    starts (``core.regression``); the file holds the rule."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    request: StrictStr
    """A request name as the stats show it, or ``"total"`` for the HTTP aggregate."""
    metric: StrictStr
    """p50 p90 p95 p99 avg max error_rate (with ``max_increase``), rps (with ``max_decrease``)."""
    max_increase: Any = None
    """How much the metric may rise: ``"20%"`` of the reference's value; for ``error_rate``,
    percentage points (``"0.5%"``: from 0.1% to 0.6% is still fine), since it is often 0."""
    max_decrease: Any = None
    """How much ``rps`` may fall: ``"10%"`` of the reference's rate."""
    profiles: tuple[StrictStr, ...] | None = None
    """Profiles this criterion applies to; omitted = all, including ``custom``."""
    source: StrictStr | None = None
    """Why this limit, for the reader (free text)."""

    _tolerance: float = PrivateAttr(default=0.0)

    # The same rules as ``Criterion.profiles``: one set of checks for both tables.
    _profiles_is_a_list = field_validator("profiles", mode="before")(
        Criterion._profiles_is_a_list.__func__  # type: ignore[attr-defined]
    )
    _known_profiles = field_validator("profiles")(
        Criterion._known_profiles.__func__  # type: ignore[attr-defined]
    )

    @model_validator(mode="after")
    def _check(self) -> RegressionCriterion:
        if not self.request.strip():
            raise _KeyedError(("request",), "empty request name")
        if self.metric not in REGRESSION_METRICS:
            raise _KeyedError(("metric",), _unknown("metric", self.metric, REGRESSION_METRICS))
        rising = self.metric in REGRESSION_RISING
        key, other = (
            ("max_increase", "max_decrease") if rising else ("max_decrease", "max_increase")
        )
        if getattr(self, other) is not None:
            worse = "rising" if rising else "falling"
            raise _KeyedError((other,), f"{self.metric} gets worse by {worse}: use {key}")
        raw = getattr(self, key)
        if raw is None:
            raise _KeyedError((key,), f"missing: how much {self.metric} may change, e.g. '20%'")
        try:
            tolerance = parse_tolerance(raw)
        except ValueError as exc:
            raise _KeyedError((key,), str(exc)) from None
        if not rising and tolerance >= 1:
            raise _KeyedError((key,), f"{raw!r}: a rate cannot fall by 100% or more")
        self._tolerance = tolerance
        return self

    @property
    def tolerance(self) -> float:
        """The allowed change as a fraction of the reference (error rate: of all requests)."""
        return self._tolerance

    @property
    def rising(self) -> bool:
        """Whether the metric gets worse by rising (latency, error rate) or by falling (rps)."""
        return self.metric in REGRESSION_RISING

    def applies_to(self, profile: str) -> bool:
        return self.profiles is None or profile in self.profiles


class RegressionPolicy(BaseModel):
    """How ``[[regression]]`` criteria are judged when the history cannot answer cleanly."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    no_reference: Literal["pass", "fail"] = "pass"
    """No earlier run to compare with (the first run of a scenario and profile): ``pass``
    skips the regression criteria with a note, ``fail`` fails the run (no data)."""
    spread_runs: int = Field(default=5, ge=0, le=100)
    """How many earlier passing runs show the run-to-run spread (``core.regression``); with
    fewer than 3 of them, or 0, the tolerance alone decides."""


class Baseline(BaseModel):
    """Everything one scenario's run is judged against; one file per scenario."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    scenario: StrictStr
    """The scenario this file judges; must match the one being run."""
    description: StrictStr = ""
    """What the scenario proves, for the reader."""
    criteria: tuple[Criterion, ...]
    """The thresholds, in file order (``criteria[0]`` is the first ``[[criteria]]``)."""
    reference: tuple[Reference, ...] = ()
    """Figures shown in the report, never judged."""
    regression: tuple[RegressionCriterion, ...] = ()
    """Limits relative to a reference run (``[[regression]]``), judged with the criteria."""
    regression_policy: RegressionPolicy = RegressionPolicy()
    """What no reference means, and how many earlier runs show the noise."""

    _path: str | None = PrivateAttr(default=None)

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, value: str) -> str:
        if value not in SCENARIOS:
            raise ValueError(_unknown("scenario", value, SCENARIOS))
        return value

    @field_validator("criteria")
    @classmethod
    def _not_empty(cls, value: tuple[Criterion, ...]) -> tuple[Criterion, ...]:
        if not value:
            raise ValueError("no criteria: a baseline must judge something")
        return value

    @model_validator(mode="after")
    def _requests_belong_to_scenario(self) -> Baseline:
        known = (*registry.SCENARIOS[self.scenario].requests, TOTAL)
        for i, criterion in enumerate(self.criteria):
            if criterion.request is not None and criterion.request not in known:
                problem = _unknown(
                    "request", criterion.request, known, f" for scenario {self.scenario!r}"
                )
                raise _KeyedError(("criteria", i, "request"), problem)
        for i, rule in enumerate(self.regression):
            if rule.request not in known:
                problem = _unknown(
                    "request", rule.request, known, f" for scenario {self.scenario!r}"
                )
                raise _KeyedError(("regression", i, "request"), problem)
        return self

    @property
    def path(self) -> str | None:
        """The file this baseline was loaded from, if any."""
        return self._path

    def criteria_for(self, profile: str) -> tuple[Criterion, ...]:
        """The criteria judged in a run of ``profile``."""
        return tuple(c for c in self.criteria if c.applies_to(profile))


# ---------------------------------------------------------------------------------------------
# Loading, with errors that say where.
# ---------------------------------------------------------------------------------------------


class BaselineError(ValueError):
    """A baseline that can't be used; ``str()`` is one line: ``file:line: key.path: problem``."""

    def __init__(
        self, file: str, key_path: str | None, problem: str, line: int | None = None
    ) -> None:
        self.file = file
        self.key_path = key_path
        self.problem = problem
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        parts = [where, key_path, problem] if key_path else [where, problem]
        super().__init__(": ".join(parts).replace("\n", " "))


def check_profile(profile: str) -> str:
    """``profile`` if it is a known profile name; ``ValueError`` otherwise."""
    if profile not in PROFILES:
        raise ValueError(_unknown("profile", profile, PROFILES))
    return profile


def baselines_dir() -> Path:
    """``LOADKIT_BASELINES_DIR`` if set, else ``baselines/`` at the repository root."""
    override = os.environ.get("LOADKIT_BASELINES_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[3] / "baselines"


def default_baseline_path(scenario: str) -> Path:
    """Where ``scenario``'s baseline lives: its registry entry's own file, else
    ``<baselines_dir>/<scenario>.toml``."""
    if scenario not in SCENARIOS:
        raise BaselineError("<baselines>", "scenario", _unknown("scenario", scenario, SCENARIOS))
    own = registry.SCENARIOS[scenario].baseline_path
    return own if own is not None else baselines_dir() / f"{scenario}.toml"


#: A baseline is a page of thresholds; a file this large is something else (and its errors
#: would quote megabytes).
MAX_BASELINE_BYTES = 1_000_000


def load_baseline(path: str | os.PathLike[str], scenario: str) -> Baseline:
    """Read and validate ``path`` as the baseline of ``scenario``; ``BaselineError`` if unusable."""
    name = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_BASELINE_BYTES:
            raise BaselineError(
                name,
                None,
                f"{size:,} bytes, more than the {MAX_BASELINE_BYTES:,} a baseline may have",
            )
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(
            name, None, f"cannot read the baseline: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise BaselineError(name, None, f"not UTF-8 text: {exc.reason}") from None
    return parse_baseline(text, scenario, source=name)


def parse_baseline(text: str, scenario: str, *, source: str = "<string>") -> Baseline:
    """Validate TOML ``text`` as the baseline of ``scenario``; ``source`` names it in errors."""
    if scenario not in SCENARIOS:
        raise BaselineError(source, "scenario", _unknown("scenario", scenario, SCENARIOS))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _syntax_error_line(str(exc))
        raise BaselineError(source, None, f"TOML syntax error: {exc}", line) from None
    declared = data.get("scenario")
    if isinstance(declared, str) and declared in SCENARIOS and declared != scenario:
        raise BaselineError(
            source,
            "scenario",
            f"this file is for scenario {declared!r}, not {scenario!r}",
            _find_line(text, ("scenario",)),
        )
    try:
        baseline = Baseline.model_validate(data)
    except ValidationError as exc:
        raise _baseline_error(exc, text, source) from None
    baseline._path = source
    return baseline


def parse_baseline_data(data: Mapping[str, Any], scenario: str, source: str | None) -> Baseline:
    """A baseline from already-parsed data (a run plan's copy of a checked file)."""
    try:
        baseline = Baseline.model_validate(data)
    except ValidationError as exc:
        raise BaselineError(source or "<plan>", None, str(exc).splitlines()[0]) from None
    if baseline.scenario != scenario:
        raise BaselineError(source or "<plan>", "scenario", f"not a baseline of {scenario!r}")
    baseline._path = source
    return baseline


def _syntax_error_line(message: str) -> int | None:
    match = re.search(r"at line (\d+)", message)
    return int(match[1]) if match else None


def _baseline_error(exc: ValidationError, text: str, source: str) -> BaselineError:
    """The first validation problem as a BaselineError, counting the others."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _KeyedError):
        loc += ctx_error.sub_loc
    problem = _problem(first)
    if len(errors) > 1:
        others = len(errors) - 1
        problem += f" (and {others} more problem{'s' if others > 1 else ''})"
    return BaselineError(source, _key_path(loc), problem, _find_line(text, loc))


def _problem(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        return "unknown key (a typo?)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in ("literal_error", "bool_type", "string_type", "too_short", "tuple_type"):
        message += f" (got {error.get('input')!r})"
    return message


def _key_path(loc: tuple[str | int, ...]) -> str:
    """``("criteria", 2, "value")`` -> ``criteria[2].value`` (indices from 0, as in TOML tools)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_HEADER_RE: Final = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _find_line(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort 1-based line of ``loc`` in the TOML text: the key's line, else its table's."""
    if not loc:
        return None
    lines = text.splitlines()
    headers = [
        (i, m[2].strip().strip("\"'"), m[1] == "[[")
        for i, line in enumerate(lines)
        if (m := _HEADER_RE.match(line))
    ]
    first = str(loc[0])
    if len(loc) >= 2 and isinstance(loc[1], int):
        starts = [i for i, name, is_array in headers if name == first and is_array]
        if loc[1] < len(starts):
            start = starts[loc[1]]
            end = next((i for i, _, _ in headers if i > start), len(lines))
            key = loc[2] if len(loc) > 2 and isinstance(loc[2], str) else None
            found = _find_key(lines, start + 1, end, key) if key else None
            return (found if found is not None else start) + 1
    top_end = headers[0][0] if headers else len(lines)
    found = _find_key(lines, 0, top_end, first)
    if found is not None:
        return found + 1
    return next((i + 1 for i, name, _ in headers if name == first), None)


def _find_key(lines: list[str], start: int, end: int, key: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    return next((i for i in range(start, end) if pattern.match(lines[i])), None)
