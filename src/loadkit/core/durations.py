"""Durations, one grammar for the whole kit: k6's (``30s``, ``1m30s``, ``250ms``, ``1.5s``).

Stages, rate stages, ``-t``, ``delay_abort_eval`` and the limits all read durations through
:func:`parse_duration`, so a duration that works in one place works in every other.
"""

from __future__ import annotations

import re
from typing import Final


class DurationError(ValueError):
    """A duration that cannot be read; the message is one line naming it."""


_TOKEN: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([^\d.]*)")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER: Final = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_duration(text: object, *, unit_required: bool = False) -> float:
    """Seconds in a k6-style duration: ``30s``, ``1m``, ``1h30m``, ``250ms``, ``1.5s``, ``90``.

    Units are ``ms``, ``s``, ``m``, ``h``, ``d`` and may be combined; a bare number is seconds
    (as in Locust's ``--run-time``; k6 itself reads a unitless duration as ms, which is why
    baseline files, read by k6 users, must say the unit: ``unit_required``).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = f"{text:g}"
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise DurationError(f"invalid duration {text!r}: empty")
    if raw.startswith("-"):
        raise DurationError(f"invalid duration {text!r}: must not be negative")
    if _NUMBER.fullmatch(raw):
        if unit_required:
            raise DurationError(f"invalid duration {text!r}: say the unit, e.g. '{raw}s'")
        return float(raw)
    total_s = 0.0
    position = 0
    while position < len(raw):
        token = _TOKEN.match(raw, position)
        if token is None:
            raise DurationError(
                f"invalid duration {text!r}: expected a number at {raw[position:]!r}"
            )
        number, unit = token.groups()
        if not unit:
            raise DurationError(f"invalid duration {text!r}: missing unit after {number!r}")
        if unit not in _UNIT_S:
            raise DurationError(
                f"invalid duration {text!r}: unknown unit {unit!r} (use ms, s, m, h, d)"
            )
        total_s += float(number) * _UNIT_S[unit]
        position = token.end()
    return total_s
