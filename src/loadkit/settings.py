"""The kit's settings: one typed object, built at the edge and passed down.

Precedence (highest first): command-line values (passed as keyword arguments), environment
variables, a ``.env`` file in the working directory, defaults. ``API_URL`` and ``API_KEY`` keep the
names the platform team's guide uses; every other knob is prefixed ``LOADKIT_``.
"""

from __future__ import annotations

import ipaddress
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LOADKIT_"


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line naming the variable."""


class AuthScheme(str, Enum):
    """How the API key travels: the ``X-API-Key`` header, or ``Authorization: Bearer``."""

    HEADER = "header"
    BEARER = "bearer"


class Settings(BaseSettings):
    """Where the load goes, how it authenticates, and the kit's own knobs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("API_URL", "api_url"),
        description="Base URL of the platform under test. Unset: the embedded reference platform.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("API_KEY", "api_key"),
        description="Sent on every request; never printed. Unset with no API_URL: a random one.",
    )
    auth_scheme: AuthScheme = Field(
        default=AuthScheme.HEADER,
        description="header: `X-API-Key: <key>`; bearer: `Authorization: Bearer <key>`.",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Per-request network timeout; a slower reply is a failure."
    )
    connect_timeout_s: float = Field(default=5.0, gt=0, description="TCP/TLS connect timeout.")
    verify_tls: bool = Field(
        default=True, description="Verify the server's certificate on https URLs."
    )
    results_dir: Path = Field(
        default=Path("results"), description="Parent folder of each run's results folder."
    )
    import_rows: int = Field(
        default=1000, ge=1, le=1_000_000, description="Contacts per CSV upload (bulk_import)."
    )
    import_timeout_s: float = Field(
        default=120.0, gt=0, description="An import not completed after this long is a failure."
    )

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        if not parts.hostname:
            raise ValueError("has no host")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError("has an invalid port") from exc
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @property
    def api_key_value(self) -> str | None:
        """The raw key, for the one place that needs it: the request headers."""
        return self.api_key.get_secret_value() if self.api_key else None

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request (empty without a key)."""
        key = self.api_key_value
        if key is None:
            return {}
        if self.auth_scheme is AuthScheme.BEARER:
            return {"Authorization": f"Bearer {key}"}
        return {"X-API-Key": key}


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (``API_URL`` or ``LOADKIT_...``)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning a validation error into one line that names the variable.

    ``overrides`` are command-line values (``None`` means "not given" and is dropped).
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """One line per the first error: variable, (safe) value and the problem."""
    first = exc.errors(include_input=True)[0]
    loc = str(first["loc"][0]) if first["loc"] else "settings"
    field = _field_for(loc)
    name = env_name(field) if field else loc
    message = str(first["msg"]).removeprefix("Value error, ")
    if field == "api_key" or "input" not in first:
        return f"invalid setting {name}: {message}"
    return f"invalid setting {name}={first['input']!r}: {message}"


def _field_for(loc: str) -> str | None:
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names = {field, f"{ENV_PREFIX}{field}".lower()}
        if isinstance(alias, AliasChoices):
            names.update(str(choice).lower() for choice in alias.choices)
        if loc.lower() in names:
            return field
    return None


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: the only targets the kit's own tests may load."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
