"""The web UI's start form, checked as the command line checks the same values (pure)."""

from __future__ import annotations

import pytest

from loadkit import registry
from loadkit.core.profiles import Stage
from loadkit.core.start_form import ShapeChoice, StartFormError, check_start_form

SPIKE = ShapeChoice("SpikeShape", staged=True, profile="spike")
CUSTOM = ShapeChoice("CustomShape", staged=True)
DEFAULT = ShapeChoice("Default")


def form(**fields: str) -> dict[str, str]:
    return {"time_scale": "1", "user_scale": "1", "stage": "", "run_time": "", **fields}


@pytest.mark.parametrize(
    ("fields", "shape", "message"),
    [
        ({"time_scale": "0"}, SPIKE, "--time-scale 0: must be a finite number > 0"),
        ({"time_scale": "abc"}, SPIKE, "argument --time-scale: invalid float value: 'abc'"),
        ({"time_scale": ""}, SPIKE, "argument --time-scale: invalid float value: ''"),
        ({"time_scale": "inf"}, SPIKE, "--time-scale inf: must be a finite number > 0"),
        ({"user_scale": "-1"}, SPIKE, "--user-scale -1: must be a finite number > 0"),
        ({"stage": ""}, CUSTOM, "no profile given: name one of smoke, average, stress, spike, "
                                "soak or pass --stage"),
        ({"stage": "10s"}, CUSTOM, "invalid stage '10s': missing ':'"),
        ({"run_time": "abc"}, DEFAULT, "--run-time: invalid duration 'abc'"),
        ({"run_time": "0"}, DEFAULT, "--run-time '0' has no end"),
        ({"rate": "5", "rate_stage": "10s:5"}, DEFAULT, "give --rate or --rate-stage, not both"),
        ({"rate": "fast"}, DEFAULT, "invalid rate 'fast'"),
        ({"max_in_flight": "0"}, DEFAULT, "invalid max in flight '0'"),
        ({"user_scale": "1000"}, SPIKE, "100,000 users is above the limit of 10,000"),
        ({"time_scale": "1000"}, SPIKE, "the profile lasts 33.33 h, above the limit of 24 h"),
        ({"rate": "1000000"}, DEFAULT, "rate 1e+06/s is above the limit of 10,000/s"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_in_one_line(
    fields: dict[str, str], shape: ShapeChoice, message: str
) -> None:
    with pytest.raises(StartFormError) as refused:
        check_start_form(form(**fields), shape)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_the_limits_scale_with_the_workers_and_give_way_to_the_override() -> None:
    big = form(user_scale="150")  # the spike's 100 users x 150 = 15,000
    with pytest.raises(StartFormError):
        check_start_form(big, SPIKE)
    assert check_start_form(big, SPIKE, processes=2).stages[1].target_users == 15_000
    assert check_start_form(big, SPIKE, exceed_limits=True).stages


def test_an_accepted_start_gives_its_run_time_and_the_stages_it_will_play() -> None:
    accepted = check_start_form(form(time_scale="0.1", run_time="1m30s"), SPIKE)
    assert accepted.run_time_s == 90.0
    assert accepted.stages == tuple(
        Stage(s.duration_s * 0.1, s.target_users) for s in registry.PROFILES["spike"].stages
    )
    custom = check_start_form(form(stage="10s:5,20s:5", user_scale="2"), CUSTOM)
    assert custom.stages == (Stage(10.0, 10), Stage(20.0, 10)) and custom.run_time_s is None
    assert check_start_form(form(), DEFAULT).stages == ()
    own = ShapeChoice("MyShape", staged=True, stages=(Stage(5.0, 3),))
    assert check_start_form(form(time_scale="2"), own).stages == (Stage(10.0, 3),)
