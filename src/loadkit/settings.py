"""The kit's settings: one typed object, built at the edge and passed down.

Precedence (highest first): command-line values (passed as keyword arguments), environment
variables, a ``.env`` file in the working directory, defaults. ``API_URL`` and ``API_KEY`` keep the
names the platform team's guide uses; every other knob is prefixed ``LOADKIT_``.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from loadkit import endpoints
from loadkit.core.hosts import AllowList, AllowListError
from loadkit.core.redact import mask_url_credentials, url_secrets
from loadkit.core.redis_url import check_redis_url

ENV_PREFIX = "LOADKIT_"
#: Shortest API key accepted. Every output masks the key; a shorter one would mask ordinary
#: words and numbers (a key "k" turned "key accepted" into "***ey accepted"), and a 13-digit
#: key could hide inside a millisecond timestamp. Real keys are 20-64 characters.
MIN_API_KEY_LENGTH = 16
#: ``PlatformUser``'s HTTP client: Locust's ``FastHttpUser``, or the kit's lean client.
HttpClient = Literal["fast", "lean"]
HTTP_CLIENT_ENV = f"{ENV_PREFIX}HTTP_CLIENT"
#: Fields whose value never appears in an error message (a Redis URL may hold a password).
SECRET_FIELDS = frozenset({"api_key", "redis_url", "web_password"})


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line naming the variable."""


class AuthScheme(StrEnum):
    """How the API key travels: the ``X-API-Key`` header, or ``Authorization: Bearer``."""

    HEADER = "header"
    BEARER = "bearer"


class QueueSourceKind(StrEnum):
    """Where the queue depth is sampled from during a run."""

    AUTO = "auto"
    """Redis when ``REDIS_URL`` is set, else the HTTP stats endpoint."""
    HTTP = "http"
    REDIS = "redis"
    OFF = "off"


class Settings(BaseSettings):
    """Where the load goes, how it authenticates, and the kit's own knobs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        allow_inf_nan=False,
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
    history_file: Path | None = Field(
        default=None,
        description="The run history (SQLite): every finished run's record. Unset: "
        "`history.sqlite` in the results folder.",
    )
    target_version: str | None = Field(
        default=None,
        max_length=200,
        description="The platform's version or commit, kept in each run's record (free text).",
    )
    import_rows: int = Field(
        default=1000, ge=1, le=1_000_000, description="Contacts per CSV upload (bulk_import)."
    )
    import_timeout_s: float = Field(
        default=120.0, gt=0, description="An import not completed after this long is a failure."
    )
    redis_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="The platform's Redis (redis://[:password@]host:port/db): preflight PINGs it "
        "and the queue sampler reads the queue's keys there. Shown only with the password masked.",
    )
    queue_source: QueueSourceKind = Field(
        default=QueueSourceKind.AUTO,
        description="Queue depth from: auto (redis if REDIS_URL is set, else http), http, redis, "
        "off (no sampling: a queue_depth criterion then has no data).",
    )
    queue_sample_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="Seconds between two queue depth samples."
    )
    queue_drain_max_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="After the load stops, go on sampling the queue until no work is due, for "
        "at most this many seconds (0: no drain); the verdict reports the drain time.",
    )
    queue_stall_window_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="A stalled consumer: due work grew over this many seconds while no job "
        "completed or failed (counter queue_stalled_jobs). Make it longer than one job takes.",
    )
    queue_stats_path: str = Field(
        default=endpoints.QUEUE_STATS,
        description="HTTP source: the path (under API_URL) answering the queue's counts as JSON.",
    )
    queue_depth_fields: str | None = Field(
        default=None,
        description="Comma-separated states summed into the queue depth (JSON fields of the "
        "stats answer, or names of the Redis reading), e.g. `waiting` or `waiting,delayed`. "
        "Unset: work that is due and not being processed (Redis: `waiting` + `overdue`; HTTP: "
        "`waiting` plus `prioritized`, `paused` and `overdue` where the answer has them).",
    )
    bull_prefix: str = Field(
        default="bull",
        description="Redis source: BullMQ's `prefix` option (the keys are `<prefix>:<queue>:*`).",
    )
    bull_queue: str = Field(
        default="calls", description="Redis source: the BullMQ (or Bull) queue's name."
    )
    queue_keys: str | None = Field(
        default=None,
        description="Redis source without Bull: `state=key,...` (e.g. "
        "`waiting=myapp:q:pending,active=myapp:q:active`); a state may list several keys "
        "separated by `+`, whose lengths add up.",
    )

    http_client: HttpClient = Field(
        default="fast",
        description="The HTTP client under `PlatformUser`: `fast` (Locust's FastHttpUser) or "
        "`lean` (the kit's keep-alive client on llhttp: about half the CPU per request, so "
        "about twice the load per generator core; no redirects or cookies; docs/performance.md). "
        "Read when a locustfile is imported: every worker needs the same value.",
    )
    graceful_stop_s: float = Field(
        default=5.0,
        ge=0,
        le=600,
        allow_inf_nan=False,
        description="When the load stops, requests in flight may finish for this long (k6's "
        "gracefulStop), so the verdict's totals equal the server's count; 0 cuts them off.",
    )
    metrics_url: str | None = Field(
        default=None,
        description="The platform's Prometheus text endpoint (`http://host:9100/metrics`, or a "
        "path under API_URL such as `/metrics`), scraped beside the load for `platform` "
        "criteria (CPU, memory, pools). Unset: no scraping (the embedded platform's is used "
        "when the kit starts one). No API key is sent to it.",
    )
    metrics_sample_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="Seconds between two scrapes of metrics_url."
    )

    abort_when_unreachable_s: float = Field(
        default=10.0,
        ge=0,
        allow_inf_nan=False,
        description="End the run (aborted) when the target has not answered for this long while "
        "requests keep failing without a response; 0 never ends it.",
    )

    allowed_hosts: str | None = Field(
        default=None,
        description="Hosts load may go to besides loopback (127.0.0.1, localhost, ::1), "
        "comma-separated: names, `*.domain`, addresses, networks (`10.0.0.0/8`). "
        "`--allow-host` adds more.",
    )

    web_user: str = Field(
        default="loadkit",
        description="Web UI login: username (the login is on once LOADKIT_WEB_PASSWORD is set).",
    )
    web_password: SecretStr | None = Field(
        default=None,
        description="Web UI login: set it to require this password (and LOADKIT_WEB_USER) on every "
        "page and JSON route of the web UI; never printed. At least 16 printable characters.",
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

    @field_validator("metrics_url")
    @classmethod
    def _check_metrics_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value.startswith("/"):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be an http(s) URL (http://127.0.0.1:9100/metrics) or a path under "
                "API_URL (/metrics)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(check_redis_url(value.get_secret_value()))

    @field_validator("queue_source")
    @classmethod
    def _check_queue_source(cls, value: QueueSourceKind, info: ValidationInfo) -> QueueSourceKind:
        if value is QueueSourceKind.REDIS and info.data.get("redis_url") is None:
            raise ValueError("needs REDIS_URL (the Redis to read the queue from)")
        return value

    @field_validator("queue_stats_path")
    @classmethod
    def _check_stats_path(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    @field_validator("queue_depth_fields")
    @classmethod
    def _check_depth_fields(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("names no field")
        return ",".join(names)

    @field_validator("bull_prefix", "bull_queue")
    @classmethod
    def _check_key_part(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be non-empty, without spaces")
        return value

    @field_validator("queue_keys")
    @classmethod
    def _check_queue_keys(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_queue_keys(value)
        return value.strip()

    @field_validator("api_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        problem = api_key_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("web_password")
    @classmethod
    def _check_web_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        problem = api_key_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("web_user")
    @classmethod
    def _check_web_user(cls, value: str) -> str:
        if not value or any(not "!" <= char <= "~" for char in value):
            raise ValueError("must be printable ASCII without spaces")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            AllowList.of([value])
        except AllowListError as exc:
            raise ValueError(str(exc)) from None
        return value.strip()

    def allow_list(self, extra: list[str] | tuple[str, ...] = ()) -> AllowList:
        """Loopback, ``LOADKIT_ALLOWED_HOSTS`` and ``extra`` (``--allow-host``); may raise
        ``AllowListError`` for a bad ``extra`` entry."""
        return AllowList.of([*([self.allowed_hosts] if self.allowed_hosts else []), *extra])

    @property
    def api_key_value(self) -> str | None:
        """The raw key, for the one place that needs it: the request headers."""
        return self.api_key.get_secret_value() if self.api_key else None

    @property
    def redis_url_value(self) -> str | None:
        """The raw Redis URL (password included), for the one place that connects."""
        return self.redis_url.get_secret_value() if self.redis_url else None

    @property
    def queue_depth_field_names(self) -> tuple[str, ...] | None:
        """``queue_depth_fields`` as names: the states whose counts add up to the depth; None
        for the source's own definition of depth (work that is due and not being processed)."""
        return tuple(self.queue_depth_fields.split(",")) if self.queue_depth_fields else None

    @property
    def queue_key_map(self) -> dict[str, tuple[str, ...]] | None:
        """``queue_keys`` parsed (state → Redis keys), or None to use Bull's layout."""
        return parse_queue_keys(self.queue_keys) if self.queue_keys else None

    @property
    def history_path(self) -> Path:
        """Where finished runs are recorded: ``history_file``, else the results folder's
        ``history.sqlite``."""
        return self.history_file or self.results_dir / "history.sqlite"

    def with_api_key(self, key: str) -> Settings:
        """These settings with ``key`` as the API key (an embedded platform's random one)."""
        return self.model_copy(update={"api_key": SecretStr(key)})

    def secrets(self) -> list[str]:
        """Every secret these settings hold: the key, the web UI's password, and the passwords
        in API_URL and REDIS_URL (what every output must mask)."""
        return [
            *([self.api_key_value] if self.api_key_value else []),
            *([self.web_password.get_secret_value()] if self.web_password else []),
            *url_secrets(self.api_url),
            *url_secrets(self.redis_url_value),
        ]

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request (empty without a key)."""
        key = self.api_key_value
        if key is None:
            return {}
        if self.auth_scheme is AuthScheme.BEARER:
            return {"Authorization": f"Bearer {key}"}
        return {"X-API-Key": key}


def api_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be used, or None. Never quotes the key.

    Printable ASCII without whitespace: it travels in an HTTP header (a newline in it would
    split the header, a non-Latin-1 character cannot be sent at all) and must be found and
    masked as one word wherever it could be printed.
    """
    if not key.strip():
        return "is empty"
    for position, char in enumerate(key, start=1):
        if not "!" <= char <= "~":
            kind = "whitespace" if char.isspace() else "a non-printable or non-ASCII character"
            return f"contains {kind} at position {position} (printable ASCII only)"
    if len(key) < MIN_API_KEY_LENGTH:
        return (
            f"is {len(key)} characters long, shorter than the {MIN_API_KEY_LENGTH} needed to "
            "mask it in every output without masking ordinary words"
        )
    return None


def parse_queue_keys(text: str) -> dict[str, tuple[str, ...]]:
    """``waiting=q:pending+q:paused,active=q:active`` → ``{"waiting": ("q:pending", "q:paused"),
    "active": ("q:active",)}``; ``ValueError`` on anything else."""
    keys: dict[str, tuple[str, ...]] = {}
    for item in text.split(","):
        state, sep, names = (part.strip() for part in item.partition("="))
        parts = tuple(name.strip() for name in names.split("+"))
        if not item.strip():
            continue
        if not sep or not state or not all(parts):
            raise ValueError(f"entry {item.strip()!r} is not STATE=KEY[+KEY...]")
        if state in keys:
            raise ValueError(f"state {state!r} is given twice")
        keys[state] = parts
    if not keys:
        raise ValueError("names no key")
    return keys


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
    _check_dotenv(Path(str(Settings.model_config.get("env_file") or ".env")))
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


class _HttpClientChoice(BaseSettings):
    """The one setting needed before any ``Environment`` exists: ``PlatformUser``'s base class
    is chosen when its module is imported, from the same sources as ``Settings``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )
    http_client: HttpClient = "fast"


def http_client_choice() -> HttpClient:
    """``LOADKIT_HTTP_CLIENT`` (environment, else ``.env``), checked: ``fast`` or ``lean``."""
    try:
        return _HttpClientChoice().http_client
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


#: A ``.env`` larger than this is not a settings file (and reading it would be slow).
MAX_DOTENV_BYTES = 1_000_000


def _check_dotenv(path: Path) -> None:
    """A ``.env`` that exists must be a readable UTF-8 file (else one line, not a traceback)."""
    if not path.exists():
        return
    if not path.is_file():
        raise SettingsError(f"{path} is not a file")
    try:
        size = path.stat().st_size
        if size > MAX_DOTENV_BYTES:
            raise SettingsError(
                f"{path} is {size} bytes: more than {MAX_DOTENV_BYTES} for a settings file"
            )
        path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SettingsError(f"{path} is not readable: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None


def _describe(exc: ValidationError) -> str:
    """One line per the first error: variable, (safe) value and the problem."""
    first = exc.errors(include_input=True)[0]
    loc = str(first["loc"][0]) if first["loc"] else "settings"
    field = _field_for(loc)
    name = env_name(field) if field else loc
    message = str(first["msg"]).removeprefix("Value error, ")
    if field in SECRET_FIELDS or "input" not in first:
        return f"invalid setting {name}: {message}"
    return mask_url_credentials(f"invalid setting {name}={first['input']!r}: {message}")


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
