"""Stopping on bad input: one line naming the culprit, exit code 2, before any load is sent."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

EXIT_INVALID = 2

logger = logging.getLogger("loadkit")


def exit_invalid(message: str) -> NoReturn:
    """Log ``loadkit: <message>`` and leave with exit code 2 (Locust's ``init`` lets it through)."""
    logger.error("loadkit: %s", message)
    sys.stderr.flush()
    raise SystemExit(EXIT_INVALID)
