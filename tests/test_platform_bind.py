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


def test_platform_started_by_a_launcher_exits_when_the_launcher_is_killed(tmp_path) -> None:
    """A SIGKILLed parent cannot stop its platform; the platform notices and leaves by itself."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from loadkit.platform.launcher import start_platform\n"
        "with start_platform('k-123456') as platform:\n"
        "    print(platform.process.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    try:
        assert parent.stdout is not None
        platform_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=5)
        deadline = time.monotonic() + 10
        while _alive(platform_pid):
            assert time.monotonic() < deadline, "the platform outlived its killed launcher"
            time.sleep(0.2)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not reaped by init yet, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
