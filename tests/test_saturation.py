"""Generator saturation (core.saturation): which seconds count, when a generator is saturated."""

from __future__ import annotations

import pytest

from loadkit.core.saturation import (
    CpuSeries,
    busiest_per_second,
    generator_loads,
    late_drop_note,
    saturation_note,
)
from loadkit.measure.collector import ProcessSample
from loadkit.measure.timeline import Timeline


def series(*pcts: float, start_s: int = 0) -> CpuSeries:
    cpu = CpuSeries()
    for offset, pct in enumerate(pcts):
        cpu.add(start_s + offset, pct)
    return cpu


def test_a_second_counts_where_its_middle_falls_and_unsampled_seconds_do_not() -> None:
    cpu = series(10, 95, 96, start_s=2)  # seconds 2, 3, 4; 0 and 1 never sampled
    assert cpu.samples(None) == [(2, 10), (3, 95), (4, 96)]
    assert cpu.samples((2.6, 4.4)) == [(3, 95)]  # 2.5 < 2.6; 4.5 >= 4.4
    assert cpu.samples((2.5, 4.5)) == [(2, 10), (3, 95)]


def test_samples_are_bounded_rounded_and_nan_or_negative_times_ignored() -> None:
    cpu = CpuSeries()
    cpu.add(0, 399.6)  # several threads: capped, still "above the limit"
    cpu.add(1, 79.6)
    cpu.add(-1, 50)
    cpu.add(2, float("nan"))
    assert cpu.samples(None) == [(0, 254), (1, 80)]


def test_three_busy_seconds_and_a_tenth_of_the_window_make_a_saturated_generator() -> None:
    loads = generator_loads(
        {
            "w1": series(90, 91, 95, 20, 20, 20, 20, 20, 20, 20),  # 3 of 10 busy
            "w2": series(99, 99, 20, 20, 20, 20, 20, 20, 20, 20),  # 2 busy: a blip
            "w3": series(80, 80, 80, 80),  # at the limit is not above it
        },
        window=None,
    )
    assert [(g.process, g.busy_seconds, g.saturated) for g in loads] == [
        ("w1", 3, True),
        ("w2", 2, False),
        ("w3", 0, False),
    ]
    assert loads[0].describe() == "w1: CPU above 80% in 3 of 10 s (median 20%, peak 95%)"


def test_a_short_window_saturates_when_every_second_was_busy() -> None:
    (load,) = generator_loads({"local": series(99, 100)}, window=None)
    assert load.saturated and load.seconds == 2
    (load,) = generator_loads({"local": series(99, 10)}, window=None)
    assert not load.saturated


def test_a_long_run_needs_a_tenth_of_its_seconds_busy() -> None:
    under = [95.0] * 59 + [10.0] * 541  # 59 of 600 s: under a tenth
    assert not generator_loads({"w": series(*under)}, None)[0].saturated
    tenth = [95.0] * 60 + [10.0] * 540
    assert generator_loads({"w": series(*tenth)}, None)[0].saturated


def test_only_the_window_is_judged() -> None:
    cpu = {"local": series(100, 100, 100, 100, 10, 10, 10, 10)}  # busy while spawning only
    assert generator_loads(cpu, None)[0].saturated
    assert not generator_loads(cpu, (4.0, 8.0))[0].saturated
    assert generator_loads(cpu, (100.0, 200.0)) == []


def test_the_gauge_is_the_busiest_generator_each_second() -> None:
    cpu = {"a": series(10, 90, 30), "b": series(50, 20, start_s=1)}
    assert busiest_per_second(cpu, None) == [(0.0, 10.0), (1.0, 90.0), (2.0, 30.0)]
    assert busiest_per_second(cpu, (1.0, 2.0)) == [(1.0, 90.0)]


def test_notes_name_every_saturated_generator_and_only_them() -> None:
    loads = generator_loads({"w1": series(99, 99, 99), "w2": series(5, 5, 5)}, None)
    note = saturation_note(loads)
    assert note is not None and note.startswith("load generator saturated (w1: CPU above 80% in 3")
    assert "w2" not in note
    assert saturation_note(generator_loads({"w2": series(5, 5, 5)}, None)) is None


def test_late_drops_say_the_generator_was_the_limit() -> None:
    assert late_drop_note(0, 100, 5) is None
    note = late_drop_note(40, 960, 50)  # 10 more dropped at the in-flight cap
    assert note is not None and "40 of 1010 due arrival-rate iterations" in note


def test_the_timeline_keeps_each_generators_cpu_but_not_the_masters() -> None:
    timeline = Timeline()
    timeline.start(1000.0, {})
    samples = {
        "master": ProcessSample("master", 1, 99.0),
        "w1": ProcessSample("worker", 1, 95.0),
        "w2": ProcessSample("worker", 1, None),  # not sampled (first reading)
    }
    timeline.on_processes(1003, samples)
    assert set(timeline.generator_cpu) == {"w1"}
    assert timeline.generator_cpu["w1"].samples(None) == [(3, 95)]
    assert timeline.generator_rss[3.0] == 2


@pytest.mark.parametrize("pct", [81, 100])
def test_above_the_limit_is_busy(pct: int) -> None:
    (load,) = generator_loads({"local": series(pct, pct, pct)}, None)
    assert load.busy_seconds == 3
