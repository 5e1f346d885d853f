"""Keeping the API key out of everything the kit or Locust prints.

The key is only ever placed in request headers, which nothing logs; this filter is the second
line of defence for anything that still tries (a traceback quoting a header, a debug print).
"""

from __future__ import annotations

import logging

MASK = "***"
#: Shorter secrets are not masked in logs: "k" would turn every word containing a k into noise,
#: and a key that short is guessable anyway. Real keys are far longer.
MIN_MASKED_LENGTH = 4


class SecretFilter(logging.Filter):
    """Replaces every occurrence of the secrets in a log record's final message."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if len(secret) >= MIN_MASKED_LENGTH]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        text = message
        if record.exc_info and record.exc_text is None and logging.root.handlers:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, MASK)
        if text != message:
            record.msg, record.args = text, None
        return True


def install_secret_filter(secrets: list[str]) -> SecretFilter:
    """Attach the filter to every root handler (filters on loggers miss propagated records)."""
    secret_filter = SecretFilter(secrets)
    for handler in logging.root.handlers:
        handler.addFilter(secret_filter)
    return secret_filter


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with each secret replaced by the mask (for output that bypasses logging)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
