"""Profiles as data, the staged shape driven by a fake clock, and one real Locust spike run."""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import configargparse
import pytest
from locust.argument_parser import LocustArgumentParser
from locust.util.load_locustfile import load_locustfile

from loadkit import registry
from loadkit.core.durations import DurationError, parse_duration
from loadkit.core.plan import PlanError, resolve_stages
from loadkit.core.profile_report import load_history, spike_report
from loadkit.core.profiles import (
    ProfileError,
    Stage,
    constant,
    main_steady_window,
    parse_stage,
    scale,
    steady_windows,
    total_duration_s,
    users_at,
)
from loadkit.plugin.staged_shape import (
    StagedShape,
    add_profile_arguments,
    make_shape_class,
    read_profile_options,
)

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO / "shapes"
GUIDE = {name: spec.guide_stages for name, spec in registry.PROFILES.items()}
#: What runs play: the guide's stages plus the kit's recovery hold (spike).
STAGES = {name: spec.stages for name, spec in registry.PROFILES.items()}
SPIKE = STAGES["spike"]
GUIDE_SPIKE = GUIDE["spike"]


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m", 60.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("90", 90.0),
        ("0", 0.0),
        (" 2m ", 120.0),
        ("1m30s", 90.0),
        ("1d", 86400.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("-5s", "negative"),
        ("10x", "unknown unit 'x'"),
        ("1h30", "missing unit after '30'"),
        ("abc", "expected a number"),
        ("s", "expected a number"),
        ("nan", "expected a number"),
    ],
)
def test_parse_duration_rejects(text: str, why: str) -> None:
    with pytest.raises(DurationError, match=why) as info:
        parse_duration(text)
    assert repr(text) in str(info.value)
    assert "\n" not in str(info.value)


def test_one_duration_grammar_with_the_unit_required_where_k6_users_read_files() -> None:
    assert parse_duration("1m30s", unit_required=True) == 90.0
    with pytest.raises(DurationError, match=r"say the unit, e\.g\. '30s'"):
        parse_duration("30", unit_required=True)


def test_parse_stage() -> None:
    assert parse_stage("30s:10") == Stage(30.0, 10)
    assert parse_stage(" 1m30s : 0 ") == Stage(90.0, 0)
    assert parse_stage("0:5") == Stage(0.0, 5)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("30s", "missing ':'"),
        ("30s:-1", "must be >= 0"),
        ("30q:5", "unknown unit 'q'"),
        ("30s:1.5", "not a whole number"),
        ("30s:", "not a whole number"),
        (":5", "empty"),
    ],
)
def test_parse_stage_rejects(spec: str, why: str) -> None:
    with pytest.raises(ProfileError, match=why) as info:
        parse_stage(spec)
    assert f"invalid stage {spec!r}" in str(info.value)


def test_stage_validates_itself() -> None:
    with pytest.raises(ProfileError):
        Stage(-1.0, 5)
    with pytest.raises(ProfileError):
        Stage(1.0, -5)
    with pytest.raises(ProfileError):
        Stage(math.inf, 5)


# ----------------------------------------------------------------------------- the profiles


def test_profiles_are_the_guides_numbers() -> None:
    assert GUIDE["smoke"] == (Stage(0, 1), Stage(30, 1))
    assert GUIDE["average"] == (Stage(0, 10), Stage(300, 10))
    assert GUIDE["stress"] == (Stage(0, 50), Stage(600, 50))
    assert GUIDE["spike"] == (Stage(30, 1), Stage(30, 100), Stage(30, 1))
    assert GUIDE["soak"] == (Stage(0, 20), Stage(3600, 20))
    # The kit's one addition: a spike is held at its pre-spike load for 30 s after the surge.
    assert STAGES["spike"] == (*GUIDE["spike"], Stage(30, 1))
    assert registry.PROFILES["spike"].played_stages(0) == GUIDE["spike"]
    assert registry.PROFILES["spike"].played_stages(5) == (*GUIDE["spike"], Stage(5, 1))
    assert all(STAGES[name] == GUIDE[name] for name in STAGES if name != "spike")
    with pytest.raises(ValueError, match="--recovery applies to profiles with a recovery hold"):
        registry.PROFILES["soak"].played_stages(10)
    purposes = [p.purpose for p in registry.PROFILES.values()]
    assert all(line and "\n" not in line for line in purposes)


def test_users_at_interpolates_the_spike() -> None:
    expected = {0: 0, 14.9: 0, 15: 1, 30: 1, 45: 51, 60: 100, 75: 51, 89: 4, 90: 1}
    for t, users in expected.items():
        assert users_at(GUIDE_SPIKE, t) == users, t
    assert users_at(GUIDE_SPIKE, 90.001) is None
    assert users_at(GUIDE_SPIKE, -3) == 0
    assert users_at(SPIKE, 119) == 1 and users_at(SPIKE, 120.001) is None  # the hold


def test_users_at_zero_length_stages_jump() -> None:
    soak = STAGES["soak"]
    assert users_at(soak, 0) == 20
    assert users_at(soak, 3600) == 20
    assert users_at(soak, 3600.5) is None
    jump = (Stage(10, 5), Stage(0, 50), Stage(10, 50), Stage(0, 0))
    assert users_at(jump, 10) == 5  # the stage ending at 10 s wins at its boundary
    assert users_at(jump, 10.01) == 50
    assert users_at(jump, 20) == 50  # a trailing zero-length stage takes effect at its instant
    assert users_at(jump, 20.01) is None
    assert users_at((), 0) is None


def test_scale() -> None:
    assert scale(GUIDE_SPIKE, time_scale=0.1) == (Stage(3, 1), Stage(3, 100), Stage(3, 1))
    assert scale(GUIDE_SPIKE, user_scale=0.5) == (Stage(30, 1), Stage(30, 50), Stage(30, 1))
    # rounded to the nearest user, halves up; a non-zero target never reaches 0; 0 stays 0
    assert scale((Stage(1, 5), Stage(1, 0)), user_scale=0.1) == (Stage(1, 1), Stage(1, 0))
    assert scale((Stage(1, 5),), user_scale=0.5)[0].target_users == 3
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ProfileError, match="time_scale"):
            scale(SPIKE, time_scale=bad)
        with pytest.raises(ProfileError, match="user_scale"):
            scale(SPIKE, user_scale=bad)


def test_durations_and_steady_windows() -> None:
    assert total_duration_s(GUIDE_SPIKE) == 90
    assert total_duration_s(STAGES["soak"]) == 3600
    assert steady_windows(STAGES["average"]) == [(0.0, 300.0)]
    assert main_steady_window(STAGES["average"]) == (0.0, 300.0)
    assert steady_windows(GUIDE_SPIKE) == []  # only ramps
    assert main_steady_window(GUIDE_SPIKE) is None
    assert main_steady_window(SPIKE) == (90.0, 120.0)  # the recovery hold
    steps = (
        Stage(10, 10),  # ramp
        Stage(20, 10),  # plateau 10-30 at 10
        Stage(5, 10),  # ... continued: 10-35
        Stage(0, 40),  # jump
        Stage(15, 40),  # plateau 35-50 at 40
        Stage(0, 30),
        Stage(25, 30),  # plateau 50-75 at 30 (longer, but fewer users)
        Stage(5, 0),
        Stage(10, 0),  # idle: not a plateau
    )
    assert steady_windows(steps) == [(10.0, 35.0), (35.0, 50.0), (50.0, 75.0)]
    assert main_steady_window(steps) == (35.0, 50.0)
    two_peaks = (Stage(0, 5), Stage(10, 5), Stage(5, 1), Stage(5, 5), Stage(20, 5))
    assert main_steady_window(two_peaks) == (20.0, 40.0)  # same users: the longer one
    instant_dip = (Stage(0, 5), Stage(10, 5), Stage(0, 1), Stage(0, 5), Stage(20, 5))
    assert steady_windows(instant_dip) == [(0.0, 30.0)]  # a dip lasting no time is no dip


def test_resolve_stages() -> None:
    assert resolve_stages("spike", ()) == ("spike", SPIKE)
    assert resolve_stages("smoke", (), time_scale=0.5, user_scale=3) == (
        "smoke",
        (Stage(0, 3), Stage(15, 3)),
    )
    custom = resolve_stages("spike", ["10s:5", "20s:0,5s:2"], time_scale=2)
    assert custom == ("custom", (Stage(20, 5), Stage(40, 0), Stage(10, 2)))
    assert resolve_stages(None, ["1m:5"]) == ("custom", (Stage(60, 5),))


def test_resolve_stages_errors() -> None:
    with pytest.raises(PlanError) as info:
        resolve_stages("spiky", ())
    assert str(info.value) == (
        "unknown profile 'spiky' (did you mean 'spike'? choose from: "
        "smoke, average, stress, spike, soak)"
    )
    with pytest.raises(PlanError, match="unknown profile"):
        resolve_stages("spiky", ["10s:5"])  # a typo is reported even with custom stages
    with pytest.raises(PlanError, match="no profile given"):
        resolve_stages(None, ["", " "])
    with pytest.raises(ProfileError, match="invalid stage '10s'"):
        resolve_stages(None, ["10s"])


# ----------------------------------------------------------------------------- the shape files


def _load_shape(name: str) -> StagedShape:
    """Load shapes/<name>.py the way Locust does; it must expose exactly one runnable shape."""
    saved_path = list(sys.path)
    try:
        users, shapes = load_locustfile(str(SHAPES / f"{name}.py"))
    finally:
        sys.path[:] = saved_path
    assert users == {}
    assert len(shapes) == 1, f"{name}.py exposes {len(shapes)} runnable shapes"
    shape = shapes[0]
    assert isinstance(shape, StagedShape)
    return shape


class FakeClock:
    """Stands in for ``get_run_time``: the test sets ``now_s``."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def _fake_runner(user_count: int = 0, **options: Any) -> Any:
    parsed = argparse.Namespace(**options) if options else None
    return SimpleNamespace(
        environment=SimpleNamespace(parsed_options=parsed), user_count=user_count
    )


def _timeline(
    shape: StagedShape, times_s: list[float]
) -> list[tuple[float, tuple[int, float] | None]]:
    clock = FakeClock()
    shape.get_run_time = clock  # type: ignore[method-assign]
    shape.reset_time()
    out = []
    for t in times_s:
        clock.now_s = t
        out.append((t, shape.tick()))
    return out


@pytest.mark.parametrize("name", list(registry.PROFILES))
def test_shape_files_follow_users_at(name: str) -> None:
    shape = _load_shape(name)
    assert type(shape).__name__ == f"{name.capitalize()}Shape"
    assert type(shape).profile == name and type(shape).base_stages() == STAGES[name]
    assert (type(shape).__doc__ or "").strip()
    stages = STAGES[name]
    end_s = int(total_duration_s(stages))
    for t, tick in _timeline(shape, [float(t) for t in range(end_s + 3)]):
        expected = users_at(stages, t)
        assert (tick[0] if tick else None) == expected, t


def test_spike_shape_goes_1_100_1() -> None:
    timeline = dict(_timeline(_load_shape("spike"), [float(t) for t in range(123)]))
    users = {t: tick[0] if tick else None for t, tick in timeline.items()}
    assert (users[30.0], users[60.0], users[90.0], users[120.0]) == (1, 100, 1, 1)
    assert users[121.0] is None
    assert max(u for u in users.values() if u is not None) == 100


def test_time_scaled_spike_follows_scaled_users_at() -> None:
    shape = _load_shape("spike")
    shape.runner = _fake_runner(time_scale=0.01, user_scale=1.0, stage=None)
    scaled = scale(SPIKE, time_scale=0.01)
    times_s = [k / 100 for k in range(125)]  # ticks scaled like the stages: every 0.01 s
    timeline = _timeline(shape, times_s)
    users = [tick[0] if tick else None for _, tick in timeline]
    assert users == [users_at(scaled, t) for t in times_s]
    assert users[30] == 1 and users[60] == 100 and users[90] == 1 and users[120] == 1
    assert users[121] is None


def test_off_grid_ticks_never_skip_a_stage_target() -> None:
    # Real ticks drift off the stage boundaries; the peak and the final target still go out.
    times_s = [0.7 + k for k in range(123)]
    users = [tick[0] if tick else None for _, tick in _timeline(_load_shape("spike"), times_s)]
    assert 100 in users
    assert users[59] == users_at(SPIKE, 59.7) == 99  # 59.7 s interpolates
    assert users[60] == 100  # 60.7 s: the 60 s peak was never sent, so it goes now
    assert users[61] == users_at(SPIKE, 61.7)  # then the ramp resumes
    assert users[89] == users_at(SPIKE, 89.7) == 2
    assert users[90] == 1  # 90.7 s: the descent's end target 1, then the recovery hold at 1
    assert users[119] == 1 and users[120] is None  # the hold's target was sent: nothing more


def test_off_grid_final_target_is_sent_once_after_the_end() -> None:
    stages = (Stage(0, 10), Stage(10, 10), Stage(5, 0))
    shape = make_shape_class(stages)()
    users = [
        tick[0] if tick else None for _, tick in _timeline(shape, [0.5 + k for k in range(18)])
    ]
    assert users[:10] == [10] * 10
    assert users[13] == 3 and users[14] == 1  # 13.5 s, 14.5 s: interpolated 10 -> 0
    assert users[15] == 0  # 15.5 s: past the end, but the final 0 was never sent
    assert users[16] is None


def test_spawn_rate_reaches_the_target_within_a_tick() -> None:
    # Locust's dispatcher starts floor(rate) users per iteration, iterations ~1/rate apart:
    # the target is reached at once iff floor(rate) >= the gap.
    for name in registry.PROFILES:
        shape = _load_shape(name)
        runner = _fake_runner(time_scale=0.1, stage=None)
        shape.runner = runner
        clock = FakeClock()
        shape.get_run_time = clock  # type: ignore[method-assign]
        shape.reset_time()
        seen = set()
        for k in range(int(total_duration_s(STAGES[name]) * 0.1) + 3):
            clock.now_s = k * 0.7
            tick = shape.tick()
            if tick is None:
                break
            target, rate = tick
            assert rate >= 1
            assert math.floor(rate) >= abs(target - runner.user_count), (name, tick)
            runner.user_count = target  # the runner got there within the tick
            seen.add(target)
        assert max(seen) == max(stage.target_users for stage in STAGES[name])


def test_spawn_rate_covers_a_lagging_runner() -> None:
    shape = make_shape_class("smoke")()
    clock = FakeClock()
    shape.get_run_time = clock  # type: ignore[method-assign]
    shape.runner = _fake_runner(user_count=0)
    shape.reset_time()
    assert shape.tick() == (1, 1.0)
    custom = make_shape_class((Stage(0, 10), Stage(5, 10), Stage(0, 60), Stage(5, 60)))()
    custom.get_run_time = clock  # type: ignore[method-assign]
    custom.runner = _fake_runner(user_count=0)
    clock.now_s = 0
    custom.reset_time()
    assert custom.tick() == (10, 10.0)
    custom.runner.user_count = 4  # the runner has not caught up (e.g. workers reporting late)
    clock.now_s = 6
    assert custom.tick() == (60, 56.0)


def test_unchanged_target_repeats_the_same_tuple() -> None:
    # Locust only calls runner.start() when the tuple changes.
    ticks = [tick for _, tick in _timeline(_load_shape("average"), [0.0, 1.0, 2.0, 150.0])]
    assert ticks == [(10, 10.0)] * 4


def test_options_are_read_at_test_start() -> None:
    shape = _load_shape("spike")
    shape.runner = _fake_runner(time_scale=1.0, user_scale=2.0, stage=None)
    shape.reset_time()
    assert shape.effective_stages == (Stage(30, 2), Stage(30, 200), Stage(30, 2), Stage(30, 2))
    # The web UI may change options between runs: they apply at the next start, not mid-run.
    shape.runner.environment.parsed_options.stage = "10s:5,10s:0"  # the form's string form
    assert shape.effective_stages[1] == Stage(30, 200)
    shape.reset_time()
    assert shape.effective_stages == (Stage(10, 10), Stage(10, 0))


def test_bad_option_from_the_web_ui_stops_the_test(caplog: pytest.LogCaptureFixture) -> None:
    shape = _load_shape("smoke")
    shape.runner = _fake_runner(time_scale="fast", user_scale=1.0, stage=None)
    assert _timeline(shape, [0.0]) == [(0.0, None)]
    assert "time_scale must be a number > 0, got 'fast'" in caplog.text


def test_read_profile_options() -> None:
    assert read_profile_options(None).time_scale == 1.0
    options = read_profile_options(
        argparse.Namespace(time_scale="0.5", user_scale=2, stage=["10s:1", "5s:2,1s:0"])
    )
    assert options.time_scale == 0.5 and options.user_scale == 2.0
    assert options.stage_specs == ("10s:1", "5s:2", "1s:0")
    assert read_profile_options(argparse.Namespace(stage="")).stage_specs == ()


def test_make_shape_class() -> None:
    cls = make_shape_class("spike")
    assert cls.__name__ == "SpikeShape" and cls.abstract is False
    assert cls.base_stages() == SPIKE and cls.__doc__ == registry.PROFILES["spike"].purpose
    custom = make_shape_class([Stage(5, 3)])
    assert custom.stages == (Stage(5, 3),)
    assert [tick for _, tick in _timeline(custom(), [5.0, 6.0])] == [(3, 3.0), None]
    with pytest.raises(registry.UnknownProfileError, match="unknown profile 'nope'"):
        make_shape_class("nope")
    assert StagedShape.abstract is True


# ----------------------------------------------------------------------------- arguments


def test_add_profile_arguments_on_a_locust_parser() -> None:
    parser = LocustArgumentParser()
    add_profile_arguments(parser)
    add_profile_arguments(parser)  # the plugin and a locustfile may both register them
    args = parser.parse_args(
        ["--time-scale", "0.1", "--stage", "10s:5", "--stage", "5s:0"], env_vars={}
    )
    assert (args.time_scale, args.user_scale, args.stage) == (0.1, 1.0, ["10s:5", "5s:0"])
    assert {"time_scale", "user_scale", "stage"} <= set(parser.args_included_in_web_ui)
    env = {"LOADKIT_TIME_SCALE": "0.5", "LOADKIT_USER_SCALE": "2", "LOADKIT_STAGES": "1m:10,30s:0"}
    from_env = parser.parse_args([], env_vars=env)
    assert (from_env.time_scale, from_env.user_scale) == (0.5, 2.0)
    assert read_profile_options(from_env).stage_specs == ("1m:10", "30s:0")
    assert parser.parse_args(["--time-scale", "0.2"], env_vars=env).time_scale == 0.2


@pytest.mark.parametrize(
    "argv", [["--time-scale", "0"], ["--user-scale", "-1"], ["--stage", "10s"], ["--stage", "x:1"]]
)
def test_add_profile_arguments_rejects_bad_values(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = LocustArgumentParser()
    add_profile_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(argv, env_vars={})
    assert "error: argument" in capsys.readouterr().err


def test_add_profile_arguments_on_plain_parsers() -> None:
    plain = argparse.ArgumentParser()
    add_profile_arguments(plain)
    assert plain.parse_args(["--user-scale", "3"]).user_scale == 3.0
    cap = configargparse.ArgumentParser()
    add_profile_arguments(cap)
    assert cap.parse_args([], env_vars={"LOADKIT_TIME_SCALE": "4"}).time_scale == 4.0


# ----------------------------------------------------------------------------- real Locust


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per simulated user

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


LOCUSTFILE = '''\
"""Throwaway scenario for the spike shape test: one trivial user."""

from locust import FastHttpUser, constant, events, task

from loadkit.plugin.staged_shape import add_profile_arguments


@events.init_command_line_parser.add_listener
def _profile_arguments(parser):
    add_profile_arguments(parser)


class Ping(FastHttpUser):
    wait_time = constant(1)

    @task
    def index(self):
        self.client.get("/")
'''


@pytest.mark.slow
def test_spike_shape_in_real_locust(tmp_path: Path, local_server: str) -> None:
    locustfile = tmp_path / "ping.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        f"{locustfile},{SHAPES / 'spike.py'}",
        "--headless",
        "--time-scale",
        "0.1",
        "--host",
        local_server,
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--only-summary",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Shape test updating to 100 users" in done.stderr

    history = Path(f"{prefix}_stats_history.csv")
    with history.open(newline="") as handle:
        users = [int(r["User Count"]) for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    peak_at = users.index(max(users))
    assert max(users) == 100, users
    assert 0 < min(users[peak_at:]) <= 34, users  # came back down (to 1 at the last tick)
    assert users[-1] <= 34, users

    report = spike_report(load_history(history), scale(SPIKE, time_scale=0.1))
    assert report.during.requests > 0 and report.phases.peak_users == 100
    assert len(report.summary_lines()) == 5


def test_constant_helper() -> None:
    assert constant(3, 10) == (Stage(0, 3), Stage(10, 3))
