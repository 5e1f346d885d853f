"""Settings: names, precedence, one-line errors, and the key never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.settings import (
    AuthScheme,
    SettingsError,
    http_client_choice,
    is_loopback_host,
    load_settings,
)

KIT_VARS = (
    "API_URL", "API_KEY", "REDIS_URL", "LOADKIT_REQUEST_TIMEOUT_S", "LOADKIT_AUTH_SCHEME",
    "LOADKIT_ALLOWED_HOSTS",
)  # fmt: skip
KEY = "k-1234567890abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in KIT_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_guide_names_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_URL", "http://localhost:3000/")
    monkeypatch.setenv("API_KEY", "k-1234567890abcdef")
    monkeypatch.setenv("LOADKIT_REQUEST_TIMEOUT_S", "2.5")
    settings = load_settings()
    assert settings.api_url == "http://localhost:3000"
    assert settings.api_key_value == "k-1234567890abcdef"
    assert settings.request_timeout_s == 2.5


def test_precedence_cli_over_env_over_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / ".env").write_text("API_URL=http://from-dotenv:1\nLOADKIT_REQUEST_TIMEOUT_S=7\n")
    assert load_settings().api_url == "http://from-dotenv:1"
    monkeypatch.setenv("API_URL", "http://from-env:2")
    settings = load_settings()
    assert settings.api_url == "http://from-env:2"
    assert settings.request_timeout_s == 7
    assert load_settings(api_url="http://from-cli:3").api_url == "http://from-cli:3"
    assert load_settings(api_url=None).api_url == "http://from-env:2"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("API_URL", "localhost:3000", "invalid setting API_URL='localhost:3000': must start with"),
        ("API_URL", "http://", "invalid setting API_URL='http://': has no host"),
        ("API_URL", "http://h:99999", "has an invalid port"),
        ("LOADKIT_REQUEST_TIMEOUT_S", "fast", "invalid setting LOADKIT_REQUEST_TIMEOUT_S='fast'"),
        ("LOADKIT_REQUEST_TIMEOUT_S", "-1", "greater than 0"),
        ("LOADKIT_AUTH_SCHEME", "basic", "invalid setting LOADKIT_AUTH_SCHEME='basic'"),
        (
            "LOADKIT_REQUEST_TIMEOUT_S",
            "inf",
            "LOADKIT_REQUEST_TIMEOUT_S='inf': Input should be a finite",
        ),
        (
            "LOADKIT_CONNECT_TIMEOUT_S",
            "nan",
            "LOADKIT_CONNECT_TIMEOUT_S='nan': Input should be a finite",
        ),
        ("LOADKIT_ALLOWED_HOSTS", "http://x.test", "entry 'http://x.test': expected a host name"),
        ("API_URL", "ftp://user:pw-canary@h", "API_URL='ftp://user:***@h': must start with"),
    ],
)
def test_bad_values_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_the_http_client_is_fast_by_default_and_checked_before_any_user_class_exists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``PlatformUser``'s base is chosen at import, before ``Settings`` exist: the same sources
    (environment over ``.env``) and the same one-line error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOADKIT_HTTP_CLIENT", raising=False)
    assert http_client_choice() == "fast" == load_settings().http_client
    (tmp_path / ".env").write_text("LOADKIT_HTTP_CLIENT=lean\n")
    assert http_client_choice() == "lean" == load_settings().http_client
    monkeypatch.setenv("LOADKIT_HTTP_CLIENT", "fast")
    assert http_client_choice() == "fast"
    monkeypatch.setenv("LOADKIT_HTTP_CLIENT", "Fastest")
    with pytest.raises(SettingsError) as caught:
        http_client_choice()
    assert str(caught.value) == (
        "invalid setting LOADKIT_HTTP_CLIENT='Fastest': Input should be 'fast' or 'lean'"
    )


def test_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "super-secret-value")
    settings = load_settings()
    assert "super-secret-value" not in repr(settings)
    assert "super-secret-value" not in str(settings.model_dump())
    monkeypatch.setenv("API_KEY", "   ")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == "invalid setting API_KEY: is empty"


def test_auth_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", KEY)
    assert load_settings().auth_headers() == {"X-API-Key": KEY}
    bearer = load_settings(auth_scheme=AuthScheme.BEARER)
    assert bearer.auth_headers() == {"Authorization": f"Bearer {KEY}"}
    monkeypatch.delenv("API_KEY")
    assert load_settings().auth_headers() == {}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("10.0.0.1", False), ("example.com", False), ("0.0.0.0", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("key", "problem"),
    [("short-key", "is 9 characters long, shorter than the 16 needed"),
     ("line-one-of-a-key\nX", "contains whitespace at position 18"),
     ("a key with spaces in it", "contains whitespace at position 2"),
     ("ключ-ключ-ключ-ключ", "contains a non-printable or non-ASCII character at position 1"),
     ("tab\tinside-the-key-x", "contains whitespace at position 4")],
)  # fmt: skip
def test_api_key_is_printable_ascii_and_long_enough_to_mask(
    monkeypatch: pytest.MonkeyPatch, key: str, problem: str
) -> None:
    monkeypatch.setenv("API_KEY", key)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid setting API_KEY: {problem}")
    assert key not in message and "\n" not in message


def test_dotenv_must_be_readable_utf8(tmp_path) -> None:
    (tmp_path / ".env").write_bytes(b"API_URL=http://localhost:1\nLOADKIT_IMPORT_ROWS=\xff\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == ".env is not UTF-8 text (byte 0xff at offset 47)"
    (tmp_path / ".env").unlink()
    (tmp_path / ".env").mkdir()
    with pytest.raises(SettingsError, match=r"^\.env is not a file$"):
        load_settings()


def test_secrets_are_the_key_and_url_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", KEY)
    monkeypatch.setenv("API_URL", "http://me:p%40ss-word-1@localhost:3000")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-pass-22@127.0.0.1:6379/0")
    assert load_settings().secrets() == [KEY, "p%40ss-word-1", "p@ss-word-1", "redis-pass-22"]


def test_allow_list_adds_named_hosts_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADKIT_ALLOWED_HOSTS", "staging.example.com, 10.0.0.0/8")
    allow = load_settings().allow_list(["perf.example.org"])
    assert allow.allows("staging.example.com") and allow.allows("10.1.2.3")
    assert allow.allows("perf.example.org") and allow.allows("localhost")
    assert not allow.allows("127.0.0.2")
