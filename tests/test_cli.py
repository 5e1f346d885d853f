"""The `loadkit` command's small sub-commands: target, scenarios, --version, usage errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import requests
from conftest import REPO_ROOT, TEST_API_KEY, kit_env

from loadkit import __version__
from loadkit.registry import SCENARIOS


def loadkit(*args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadkit.cli.main", *args], capture_output=True, text=True,
        timeout=timeout_s, cwd=REPO_ROOT, env=kit_env(None), stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_target_serves_the_platform_with_its_own_options_until_sigterm() -> None:
    command = [
        sys.executable, "-m", "loadkit.cli.main", "target", "--port", "0",
        "--latency", "GET /health=50",
    ]  # fmt: skip
    target = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=kit_env(None, api_key=TEST_API_KEY), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert target.stdout is not None
        line = target.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        reply = requests.get(url.group() + "/health", timeout=5)
        assert reply.json()["status"] == "ok"
        assert reply.elapsed.total_seconds() >= 0.05  # the flag reached the platform
        key_ok = requests.get(
            url.group() + "/api/queue/stats", headers={"X-API-Key": TEST_API_KEY}, timeout=5
        )
        assert key_ok.status_code == 200
        target.send_signal(signal.SIGTERM)
        assert target.wait(timeout=10) == 0
    finally:
        target.kill()
    assert TEST_API_KEY not in (target.stderr.read() if target.stderr else "")


def test_target_refuses_a_non_loopback_address() -> None:
    done = loadkit("target", "--host", "10.1.2.3", "--port", "0")
    assert done.returncode == 2
    assert "10.1.2.3" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_scenarios_and_version() -> None:
    listed = loadkit("scenarios").stdout.splitlines()
    assert [line.split()[0] for line in listed] == list(SCENARIOS)
    assert loadkit("--version").stdout.strip() == f"loadkit {__version__}"


def test_users_with_a_profile_is_a_usage_error() -> None:
    done = loadkit("run", "health", "--profile", "smoke", "-u", "5")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "loadkit: --users cannot be combined with a profile or --stage (use --user-scale)"
    )


def test_preflight_command_exit_codes(platform) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "loadkit.cli.main", "preflight"], capture_output=True, text=True,
        timeout=30, env=kit_env(platform.url), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"✓ API reachable: {platform.url}")
    rejected = subprocess.run(
        [sys.executable, "-m", "loadkit.cli.main", "preflight"], capture_output=True, text=True,
        timeout=30, env=kit_env(platform.url, api_key="wrong-key-1234567890"),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert rejected.returncode == 2  # README: a failed preflight is 2, nothing was sent
    assert "✗ API key rejected (HTTP 403)" in rejected.stdout
    assert "wrong-key-1234567890" not in rejected.stdout + rejected.stderr
    unnamed = loadkit("preflight")
    assert unnamed.returncode == 2
    assert unnamed.stderr.strip() == (
        "loadkit: API_URL is not set (preflight checks a platform you name)"
    )


def test_the_parent_process_never_imports_locust() -> None:
    """``loadkit`` plans, checks and supervises; Locust (its runners, web UI, Flask and gevent's
    monkey-patching) lives only in the child process that runs the plan."""
    probe = (
        "import sys, loadkit.cli.main, loadkit.cli.runner, loadkit.cli.preflight; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'flask', 'gevent')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_graceful_stop_is_planned_from_the_option_else_the_setting() -> None:
    from argparse import Namespace

    from loadkit import registry
    from loadkit.cli.planning import plan_from_args
    from loadkit.settings import load_settings

    args = Namespace(
        time_scale=None, user_scale=None, run_time="2s", profile=None, stage=[], users=None,
        spawn_rate=None, rate=None, rate_stage=[], max_in_flight=None, no_baseline=True,
        baseline=None, graceful_stop=None,
    )  # fmt: skip
    health = registry.get_scenario("health")
    assert plan_from_args(args, health).graceful_stop_s == 5.0
    settings = load_settings(graceful_stop_s=0)
    assert plan_from_args(args, health, settings=settings).graceful_stop_s == 0.0
    args.graceful_stop = "1.5s"
    assert plan_from_args(args, health, settings=settings).graceful_stop_s == 1.5
