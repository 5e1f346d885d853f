"""Every bad input is refused before anything starts: exit 2, one line naming the culprit,
not one request at the platform, no results folder.

The cases run ``loadkit``'s ``main()`` in this process (the parent fails in milliseconds; only
the cases with options for Locust start Locust's parser in a short child), against the real
platform on loopback, whose own counter must stay at 0.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import TEST_API_KEY

from loadkit.cli.main import main
from loadkit.core.limits import parse_run_time
from loadkit.platform.launcher import RunningPlatform

OFF_LIST = "http://127.0.0.2:9"


@dataclass(frozen=True)
class Case:
    command: str
    """The command line after ``loadkit`` (shell-quoted)."""
    culprit: str
    env: dict[str, str | None] = field(default_factory=dict)
    """Variables to set (None: to unset) on top of API_URL and API_KEY."""
    setup: Callable[[Path], list[str]] | None = None
    """Makes files in the working folder; returns arguments to add (before any ``--``)."""


def big_baseline(folder: Path) -> list[str]:
    path = folder / "big.toml"
    path.write_text('scenario = "health"\n' + "# padding\n" * 200_000)
    return ["--baseline", str(path)]


def results_under_a_file(folder: Path) -> list[str]:
    (folder / "a-file").write_text("not a folder")
    return ["--results", str(folder / "a-file" / "results")]


def dotenv(content: bytes) -> Callable[[Path], list[str]]:
    def write(folder: Path) -> list[str]:
        (folder / ".env").write_bytes(content)
        return []

    return write


def dotenv_folder(folder: Path) -> list[str]:
    (folder / ".env").mkdir()
    return []


CASES: dict[str, Case] = {
    # run time: Locust's grammar, and always an end
    "run-time 0": Case("run health --run-time 0", "--run-time '0' has no end"),
    "run-time 0s": Case("run health -t 0s", "--run-time '0s' has no end"),
    "run-time 0h0m0s": Case("run health -t 0h0m0s", "--run-time '0h0m0s' has no end"),
    "run-time garbage": Case("run health -t garbage", "--run-time: invalid duration 'garbage'"),
    "run-time negative": Case("run health --run-time=-5s", "invalid duration '-5s': must not be"),
    "run-time unit": Case("run health -t 2.5x", "unknown unit 'x'"),
    "run-time over 24 h": Case("run health -t 25h", "--run-time lasts 25 h"),
    "run-time missing": Case("run health -t", "-t/--run-time: expected one argument"),
    # users and spawn rate
    "users -1": Case("run health -u -1", "--users -1"),
    "users 0": Case("run health -u 0", "--users 0"),
    "users 1e9": Case("run health -u 1000000000", "1,000,000,000 users is above"),
    "users not a number": Case("run health -u ten", "-u/--users: invalid int"),
    "users with a profile": Case("run health --profile smoke -u 5", "--users"),
    "spawn-rate 0": Case("run health --spawn-rate 0", "--spawn-rate 0"),
    "spawn-rate -2": Case("run health --spawn-rate=-2", "--spawn-rate -2"),
    "spawn-rate nan": Case("run health -r nan", "--spawn-rate nan"),
    "spawn-rate 5000": Case("run health -r 5000", "spawn rate 5000/s is above"),
    # profiles and scales
    "time-scale 0": Case("run health --time-scale 0", "--time-scale 0"),
    "time-scale -1": Case("run health --time-scale=-1", "--time-scale -1"),
    "time-scale inf": Case("run health --profile smoke --time-scale inf", "--time-scale inf"),
    "user-scale 0": Case("run health --profile smoke --user-scale 0", "--user-scale 0"),
    "user-scale nan": Case("run health --user-scale nan", "--user-scale nan"),
    "unknown profile": Case("run health --profile heavy", "unknown profile 'heavy'"),
    "profile over 24 h": Case(
        "run health --profile soak --time-scale 30", "the profile lasts 30 h"
    ),
    "stage without users": Case("run health --stage 30s", "'30s'"),
    "stage over the users limit": Case("run health --stage 10s:20000", "20,000 users is above"),
    # cluster
    "workers -1": Case("run health --workers -1", "--workers -1"),
    "workers 1000": Case("run health --workers 1000", "--workers 1000 is above"),
    "expect-workers 0": Case("run health --master --expect-workers 0", "--expect-workers 0"),
    "expect-workers 5000": Case(
        "run health --master --expect-workers 5000", "--expect-workers 5000"
    ),
    "on-worker-loss maybe": Case(
        "run health --on-worker-loss maybe", "--on-worker-loss: invalid choice"
    ),
    # arrival rate
    "rate 0": Case("run scheduling --rate 0", "invalid rate '0'"),
    "rate fast": Case("run scheduling --rate fast", "invalid rate 'fast'"),
    "rate 20000": Case("run scheduling --rate 20000", "rate 20000/s is above"),
    "rate-stage no colon": Case("run scheduling --rate-stage 10s", "invalid rate stage '10s'"),
    "rate-stage negative": Case(
        "run scheduling --rate-stage 10s:-1", "invalid rate stage '10s:-1'"
    ),
    # names and files
    "unknown scenario": Case("run nope", "unknown scenario 'nope'"),
    "missing baseline": Case("run health --baseline /nonexistent/x.toml", "/nonexistent/x.toml"),
    "baseline over 1 MB": Case("run health", "big.toml: 2,000,020 bytes", setup=big_baseline),
    "results under a file": Case(
        "run health", "is a file, not a folder", setup=results_under_a_file
    ),
    ".env not UTF-8": Case("run health", ".env is not UTF-8", setup=dotenv(b"API_KEY=\xff\n")),
    ".env a folder": Case("run health", ".env is not a file", setup=dotenv_folder),
    # settings
    "timeout inf": Case(
        "run health", "LOADKIT_REQUEST_TIMEOUT_S='inf'", {"LOADKIT_REQUEST_TIMEOUT_S": "inf"}
    ),
    "timeout nan": Case(
        "run health", "LOADKIT_CONNECT_TIMEOUT_S='nan'", {"LOADKIT_CONNECT_TIMEOUT_S": "nan"}
    ),
    "key with a newline": Case(
        "run health", "API_KEY: contains whitespace", {"API_KEY": TEST_API_KEY + "\nX"}
    ),
    "key too short": Case("run health", "API_KEY: is 5 characters long", {"API_KEY": "short"}),
    "key not ASCII": Case(
        "run health", "API_KEY: contains a non-printable", {"API_KEY": "ключ" * 5}
    ),
    "no key, URL password": Case(
        "run health",
        "API_KEY is not set (needed to call http://u:***@127.0.0.1:9)",
        {"API_URL": "http://u:pw-canary-9@127.0.0.1:9", "API_KEY": None},
    ),
    "API_URL not http": Case(
        "run health", "API_URL='ftp://127.0.0.1:1'", {"API_URL": "ftp://127.0.0.1:1"}
    ),
    # the allow-list
    "API_URL off the list": Case("run health", "API_URL host '127.0.0.2'", {"API_URL": OFF_LIST}),
    "run-all off the list": Case(
        "run-all health", "API_URL host '127.0.0.2'", {"API_URL": OFF_LIST}
    ),
    "preflight off the list": Case("preflight", "API_URL host '127.0.0.2'", {"API_URL": OFF_LIST}),
    "ui off the list": Case("ui health", "API_URL host '127.0.0.2'", {"API_URL": OFF_LIST}),
    "allow-host malformed": Case(
        "run health --allow-host http://x.test/", "--allow-host: allow-list entry"
    ),
    "allowed hosts malformed": Case(
        "run health", "LOADKIT_ALLOWED_HOSTS", {"LOADKIT_ALLOWED_HOSTS": "a b"}
    ),
    "http client unknown": Case("run health --http-client fastest", "--http-client"),
    "http client env unknown": Case(
        "run health", "LOADKIT_HTTP_CLIENT='Fastest'", {"LOADKIT_HTTP_CLIENT": "Fastest"}
    ),
    # the other commands
    "run-all unknown profile": Case("run-all health --profiles smoke,heavy", "'heavy'"),
    "ui port 0": Case("ui health --web-port 0", "--web-port 0"),
    # Locust's options, read by Locust's parser in a child
    "Locust: unknown option": Case(
        "run health -- --nonsense", "unrecognized arguments: --nonsense"
    ),
    "kit option after --": Case("run health -- -t 0", "-t after `--` would be ignored"),
    "stop-timeout after --": Case(
        "run health -t 1s -- --stop-timeout 3", "give loadkit --graceful-stop DURATION"
    ),
    "graceful stop too long": Case("run health -t 1s --graceful-stop 2h", "at most 600 s"),
    "graceful stop garbage": Case(
        "run health -t 1s --graceful-stop soon", "--graceful-stop: invalid duration 'soon'"
    ),
    "max-in-flight 0": Case("run scheduling -t 1s --max-in-flight 0", "invalid max in flight '0'"),
    "Locust: max-in-flight env 0": Case(
        "run scheduling", "--max-in-flight", {"LOADKIT_MAX_IN_FLIGHT": "0"}
    ),
    "Locust: host off the list": Case(f"run health -- --host {OFF_LIST}", "--host '127.0.0.2'"),
    "Locust: users 1e6": Case("run health -- -u 1000000", "1,000,000 users is above"),
    "Locust: bad --out": Case("run health -- --out ftp://x", "--out: unknown output"),
    "ui: web host 0.0.0.0": Case("ui health -- --web-host 0.0.0.0", "--web-host every interface"),
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(("LOADKIT_", "LOCUST_")) or name in ("API_URL", "API_KEY", "REDIS_URL"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a .env of the case's own, no stray one
    return work


def test_the_table_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_in_one_line_before_anything_is_sent(
    name: str,
    fresh_platform: RunningPlatform,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case = CASES[name]
    monkeypatch.setenv("API_URL", fresh_platform.url)
    monkeypatch.setenv("API_KEY", TEST_API_KEY)
    for variable, value in case.env.items():
        if value is None:
            monkeypatch.delenv(variable)
        else:
            monkeypatch.setenv(variable, value)
    results = clean_env.parent / "results"
    added = case.setup(clean_env) if case.setup else []
    if "--results" not in added and case.command.split()[0] in ("run", "run-all", "ui"):
        added += ["--results", str(results)]
    argv = shlex.split(case.command)
    split = argv.index("--") if "--" in argv else len(argv)
    argv[split:split] = added
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert code == 2, f"exit {code}: {out + err}"
    assert len(lines) == 1, lines
    assert case.culprit in lines[0], lines[0]
    assert lines[0].startswith("loadkit: ")
    assert fresh_platform.counters()["total"] == 0
    assert not results.exists() and not (clean_env / "results").exists()
    assert TEST_API_KEY not in out + err and "pw-canary" not in out + err


@pytest.mark.parametrize(
    "text",
    ["20", "20s", "3m", "2h", "1h20m", "3h30m10s", "0", "0s", "", "2.5s", "-5s", "5 s", "1m1h",
     "1h1h", "s", "10S", "٣"],
)  # fmt: skip
def test_run_time_reads_every_locust_run_time_the_same(text: str) -> None:
    """Every run time Locust accepts means the same to the kit, except a zero run time (no
    end to Locust); the kit's grammar (k6's) also takes fractions such as ``2.5s``."""
    from locust.util.timespan import parse_timespan

    try:
        locust_seconds: int | None = parse_timespan(text)
    except ValueError:
        locust_seconds = None
    try:
        ours: float | None = parse_run_time(text)
    except ValueError:
        ours = None
    kit_only = {"2.5s": 2.5, "1m1h": 3660.0, "1h1h": 7200.0}  # k6 adds up repeated units
    if locust_seconds:
        assert ours == locust_seconds
    else:
        assert ours == kit_only.get(text)


@pytest.mark.parametrize(
    ("extra", "remote_ok", "url"),
    [([], False, "http://127.0.0.1:8089/"),
     (["--web-host", "127.0.0.2", "--web-port", "9999"], False, "http://127.0.0.2:9999/"),
     (["--web-base-path", "/locust"], False, "http://127.0.0.1:8089/locust/"),
     (["--web-host", "0.0.0.0"], True,
      "http://<any address of this machine>:8089/ (every interface)")],
)  # fmt: skip
def test_the_web_ui_is_announced_where_it_really_binds(
    clean_env: Path, extra: list[str], remote_ok: bool, url: str
) -> None:
    from argparse import Namespace

    from loadkit.cli.inputs import check_ui_inputs
    from loadkit.settings import load_settings

    args = Namespace(web_port=8089, allow_remote_ui=remote_ok)
    assert check_ui_inputs(args, extra, load_settings(api_key=TEST_API_KEY)).web_url == url
