"""The time series' records as InfluxDB v1 line protocol, measured the way k6 names things.

The kit streams per-second aggregates, not one point per request as k6 does: a point per
request would cost a write per request on the hot path and millions of points per run. So each
second of the run (``loadkit.measure.collector``) becomes:

==========================  ==============================  ======================================
measurement                 tags                            fields
==========================  ==============================  ======================================
``http_reqs``               ``name``, ``method``,           ``value``: requests completed in
                            ``failed`` (``true``/``false``) that second (``sum(value)`` = total)
``http_req_duration``       ``name``, ``method``            ``p50``, ``p95``, ``p99``, ``max``
                            (``name=Aggregated``: total)    (ms, of that second's requests)
``loadkit_jobs``            ``name``                        ``count``, ``failures``, ``p50``,
                                                            ``p95``, ``p99``, ``max`` (kit timings)
``vus``                     --                              ``value``: running users
``generator_rss_bytes``     ``process``, ``role``           ``value``: resident memory (bytes)
``data_received``           ``name``, ``method``            ``value``: response bytes received
                                                            that second (k6's name)
``data_sent``               ``name``, ``method``            ``value``: request bytes sent that
                                                            second (k6's name)
==========================  ==============================  ======================================

Data that reached the master after its second was written (``"late"`` records) carries the tag
``late=true``: InfluxDB replaces a point with the same series and timestamp, and both must count.
The ``Aggregated`` total appears only in ``http_req_duration`` (its counts are the sum of the
endpoints' ``http_reqs``, so writing them again would double every ``sum()``). Timestamps are the
second's start in milliseconds (write with ``precision=ms``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loadkit.endpoints import JOB_REQUEST_TYPE, NON_HTTP_REQUEST_TYPES
from loadkit.measure.collector import AGGREGATED_NAME

_PERCENTILE_FIELDS = (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"), ("max", "max_ms"))


def escape_measurement(text: str) -> str:
    """Measurement names escape commas and spaces (line protocol reference)."""
    return _one_line(text).replace(",", r"\,").replace(" ", r"\ ")


def escape_key(text: str) -> str:
    """Tag keys, tag values and field keys escape commas, equals signs and spaces.

    Line protocol has no escape for a newline or a trailing backslash, so newlines become
    spaces and a trailing backslash becomes a slash (request names hardly ever end in one).
    """
    text = _one_line(text)
    if text.endswith("\\"):
        text = text[:-1] + "/"
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def format_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, int | float],
    timestamp_ms: int,
) -> str:
    """One point: tags sorted by key (InfluxDB's advice), empty tag values left out.

    ``int`` fields are written as integers (``12i``), ``float`` fields with three decimals.
    """
    if not fields:
        raise ValueError(f"a point needs at least one field ({measurement})")
    head = escape_measurement(measurement)
    tag_part = "".join(
        f",{escape_key(key)}={escape_key(value)}" for key, value in sorted(tags.items()) if value
    )
    field_part = ",".join(f"{escape_key(key)}={_field(value)}" for key, value in fields.items())
    return f"{head}{tag_part} {field_part} {timestamp_ms}"


def _field(value: int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    return f"{value:.3f}"


def encode_records(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The line-protocol points of time-series records (see the module docstring)."""
    lines: list[str] = []
    for record in records:
        timestamp_ms = int(record["t"]) * 1000
        if record["kind"] == "process":
            tags = {"process": str(record["process"]), "role": str(record["role"])}
            tags["late"] = "true" if record.get("late") else ""
            fields = {"value": int(record["generator_rss_bytes"])}
            lines.append(format_line("generator_rss_bytes", tags, fields, timestamp_ms))
        elif record["kind"] == "requests":
            lines.extend(_request_lines(record, timestamp_ms))
    return lines


def _request_lines(record: Mapping[str, Any], timestamp_ms: int) -> list[str]:
    name, method = str(record["name"]), str(record["method"])
    requests, failures = int(record["requests"]), int(record["failures"])
    latencies = {
        key: float(record[source])
        for key, source in _PERCENTILE_FIELDS
        if record[source] is not None
    }
    if method in NON_HTTP_REQUEST_TYPES:
        # JOB timings and INTENDED (from-intended-start) latencies are not requests of their own.
        fields: dict[str, int | float] = {"count": requests, "failures": failures, **latencies}
        job_tags = {"name": name, "late": "true" if record.get("late") else ""}
        measurement = "loadkit_jobs" if method == JOB_REQUEST_TYPE else "loadkit_intended"
        return [format_line(measurement, job_tags, fields, timestamp_ms)]
    lines: list[str] = []
    # A point with the same series and timestamp replaces the earlier one: late data for a
    # second already written goes to its own series so that both count.
    late = "true" if record.get("late") else ""
    tags = {"name": name, "method": method, "late": late}
    if name == AGGREGATED_NAME and not method:
        if record["users"] is not None and not record.get("late"):
            lines.append(format_line("vus", {}, {"value": int(record["users"])}, timestamp_ms))
    else:
        if requests > failures:
            counts = {"value": requests - failures}
            lines.append(
                format_line("http_reqs", {**tags, "failed": "false"}, counts, timestamp_ms)
            )
        if failures:
            counts = {"value": failures}
            lines.append(format_line("http_reqs", {**tags, "failed": "true"}, counts, timestamp_ms))
        for measurement, source in (
            ("data_received", "bytes_received"),
            ("data_sent", "bytes_sent"),
        ):
            amount = int(record.get(source) or 0)
            if amount:
                lines.append(format_line(measurement, tags, {"value": amount}, timestamp_ms))
    if latencies:
        lines.append(format_line("http_req_duration", tags, latencies, timestamp_ms))
    return lines
