"""Redis URLs: checked before use, and shown without their password.

A ``REDIS_URL`` often carries a password (``redis://:secret@host:6379/0``). Every message the kit
or the reference platform prints about Redis names the server, so it names it through
:func:`display_url`, which keeps everything a reader needs (scheme, host, port, database) and
masks the password.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
PASSWORD_MASK: Final = "***"


def check_redis_url(url: str) -> str:
    """``url`` stripped, or ``ValueError`` saying what is wrong (never quoting the URL)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError("is not a valid URL (bad port?)") from exc
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError("must start with redis://, rediss:// or unix://")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("has no host")
    if port is not None and not 0 < port < 65536:
        raise ValueError("has an invalid port")
    return url


def display_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; the rest as given."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:{PASSWORD_MASK}"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
