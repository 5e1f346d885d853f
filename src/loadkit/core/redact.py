"""Keeping the secrets the kit knows out of everything it or Locust prints, writes or serves.

The secrets are the API key, the password in the user part of ``API_URL``, the Redis password
and an InfluxDB password in an ``--out`` URL. They are only ever placed where they are needed
(request headers, connection setup), which nothing prints; the masking here is the second line
of defence for what still might: a traceback quoting a header, Locust writing the host (with its
``user:password@``) into report.html, a failure message quoting a URL.

Two rules, applied together by :class:`Redactor`:

* a password in any ``scheme://user:password@host`` is masked, whatever its length;
* each known secret is masked wherever it appears, raw or percent-decoded, if it is at least
  ``MIN_MASKED_LENGTH`` long (a shorter one would turn ordinary words into noise: a password
  "pass" would make "password" read "***word"; the API key is refused below 16 characters).
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
#: Shorter secrets are masked only inside URLs (see the module docstring).
MIN_MASKED_LENGTH = 8
#: ``scheme://user:password@``: group 1 keeps ``scheme://user:``, the password is replaced.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/@:]*:)[^\s/@]*@")


def mask_url_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by the mask."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def url_secrets(url: str | None) -> list[str]:
    """The password in ``url``'s user part, as written and percent-decoded (empty if none)."""
    if not url:
        return []
    try:
        password = urlsplit(url.strip()).password
    except ValueError:
        return []
    if not password:
        return []
    return list(dict.fromkeys([password, unquote(password)]))


class Redactor:
    """Masks URL passwords and the given secrets in text; ``bool(redactor)`` if it has secrets."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Mask these too (a key chosen after the filters were installed), as written and as
        they read once escaped for JSON, HTML, CSV or a URL (a ``"`` in a key is ``\\"`` in
        JSON, ``&quot;`` in HTML, ``""`` in CSV)."""
        fresh = [s for s in secrets if s and len(s) >= MIN_MASKED_LENGTH]
        unique = {*self.secrets, *(v for s in fresh for v in _escaped_forms(s))}
        # Longest first: a secret containing another must be masked whole.
        self.secrets = tuple(sorted(unique, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"

    def mask(self, text: str) -> str:
        text = mask_url_credentials(text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def contains_secret(self, text: str) -> bool:
        return any(secret in text for secret in self.secrets) or (
            mask_url_credentials(text) != text
        )


def _escaped_forms(secret: str) -> set[str]:
    return {
        secret,
        json.dumps(secret)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        secret.replace('"', '""'),
        quote(secret, safe=""),
    }


class SecretFilter(logging.Filter):
    """Masks the secrets in a log record's final message and its traceback text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.redactor.mask(message)
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.mask(record.stack_info)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_secret_filter(redactor: Redactor) -> SecretFilter:
    """Attach the filter to every root handler (filters on loggers miss propagated records).

    Handlers added later (a log file opened after this) need :func:`refresh_secret_filter`.
    """
    secret_filter = SecretFilter(redactor)
    refresh_secret_filter(secret_filter)
    return secret_filter


def refresh_secret_filter(secret_filter: SecretFilter) -> None:
    """Attach ``secret_filter`` to root handlers that do not have it yet."""
    for handler in logging.root.handlers:
        if secret_filter not in handler.filters:
            handler.addFilter(secret_filter)


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with URL passwords and each secret masked (for output that bypasses logging)."""
    return Redactor(secrets).mask(text)
