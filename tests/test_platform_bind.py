"""Where the reference platform may listen: loopback by default, any address only on request.

The refusal is the platform's safety net (a test double must not become a service on a shared
host); ``--allow-non-loopback`` exists for one place only, a container on a compose network,
where other containers reach it through the container's own interface. Nothing here binds a
non-loopback socket: the tests stop at the validated configuration.
"""

from __future__ import annotations

import pytest

from loadkit.platform.config import ConfigError, PlatformConfig, config_from_args
from loadkit.platform.server import build_parser, main


def _config(*argv: str) -> PlatformConfig:
    return config_from_args(build_parser().parse_args(list(argv)), {"API_KEY": "k"})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "platform"])
def test_non_loopback_hosts_are_refused_by_default(host: str) -> None:
    with pytest.raises(ConfigError, match="--allow-non-loopback"):
        _config("--host", host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_the_opt_in_accepts_any_address(host: str) -> None:
    config = _config("--host", host, "--allow-non-loopback", "--port", "3000")
    assert (config.host, config.port) == (host, 3000)


def test_the_opt_in_changes_nothing_for_loopback() -> None:
    assert _config("--allow-non-loopback").host == _config().host == "127.0.0.1"


def test_the_opt_in_still_validates_the_other_flags() -> None:
    with pytest.raises(ConfigError, match="--port"):
        _config("--host", "0.0.0.0", "--allow-non-loopback", "--port", "70000")


def test_main_refuses_before_binding(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"], environ={"API_KEY": "k"}) == 2
    err = capsys.readouterr().err
    assert "refusing '0.0.0.0'" in err and "--allow-non-loopback" in err


def test_the_flag_is_documented_as_container_only() -> None:
    assert "container" in build_parser().format_help()
