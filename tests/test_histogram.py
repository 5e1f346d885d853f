"""The histogram's promises: bucket edges, the percentile definition and its error bound, merging
and the wire format. Exact reference values come from sorting the samples."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Callable
from fractions import Fraction

import msgpack
import pytest

from loadkit.core.histogram import LatencyHistogram, bucket_bounds_ms, bucket_index

PERCENTILES = (0, 0.1, 1, 25, 50, 75, 90, 95, 99, 99.9, 100)
#: The documented tolerance for float noise just above a bucket edge (1e-8 ms).
EDGE_TOLERANCE_MS = 1e-8


def nearest_rank(sorted_ms: list[float], p: float) -> float:
    """The exact nearest-rank percentile: x[r] with r = max(1, ceil(p/100 · N)), 1-based."""
    rank = max(1, math.ceil(Fraction(str(p)) * len(sorted_ms) / 100))
    return sorted_ms[rank - 1]


def allowed_error_ms(exact_ms: float) -> float:
    """The documented worst case: < 0.01 ms up to 10 ms, < 1% of the value above."""
    return 0.01 if exact_ms <= 10 else exact_ms / 100


def histogram_of(samples_ms: list[float]) -> LatencyHistogram:
    hist = LatencyHistogram()
    for value_ms in samples_ms:
        hist.record(value_ms)
    return hist


def _boundaries(rng: random.Random) -> float:
    """Values exactly on bucket edges (round numbers), where off-by-one-bucket errors show."""
    return rng.choice(
        [0.0, 0.01, 0.29, 1.0, 1.1, 9.99, 10.0, 10.1, 20.0, 20.3, 99.9, 100.0, 1000.0]
    )


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "sub_ms_uniform": lambda rng: rng.uniform(0.0, 1.0),
    "uniform_0_200ms": lambda rng: rng.uniform(0.0, 200.0),
    "lognormal": lambda rng: rng.lognormvariate(2.5, 1.0),
    "exponential": lambda rng: rng.expovariate(1 / 15),
    "bimodal": lambda rng: rng.gauss(3.0, 0.5) if rng.random() < 0.8 else rng.gauss(250.0, 40.0),
    "pareto_tail": lambda rng: 5.0 * rng.paretovariate(1.5),
    "whole_ms_like_locust": lambda rng: float(rng.randint(0, 60)),
    "exact_boundaries": _boundaries,
}


@pytest.mark.parametrize("distribution", sorted(DISTRIBUTIONS))
@pytest.mark.parametrize("n", [1, 7, 100, 5000])
def test_percentiles_are_within_the_documented_bound(distribution: str, n: int) -> None:
    rng = random.Random(f"{distribution}-{n}")
    samples_ms = [max(0.0, DISTRIBUTIONS[distribution](rng)) for _ in range(n)]
    exact = sorted(samples_ms)
    hist = histogram_of(samples_ms)

    for p in PERCENTILES:
        expected_ms = nearest_rank(exact, p)
        got_ms = hist.percentile_ms(p)
        assert got_ms >= expected_ms - EDGE_TOLERANCE_MS, (p, got_ms, expected_ms)
        assert got_ms - expected_ms < allowed_error_ms(expected_ms), (p, got_ms, expected_ms)
        assert exact[0] <= got_ms <= exact[-1]


def test_exact_statistics() -> None:
    rng = random.Random(3)
    samples_ms = [rng.lognormvariate(1.0, 2.0) for _ in range(2000)]
    hist = histogram_of(samples_ms)
    assert hist.count == 2000
    assert hist.min_ms == min(samples_ms)
    assert hist.max_ms == max(samples_ms)
    assert hist.mean_ms == pytest.approx(statistics.fmean(samples_ms), rel=1e-12)
    assert hist.percentile_ms(0) == min(samples_ms)
    assert hist.percentile_ms(100) == max(samples_ms)


def test_round_values_are_reported_exactly() -> None:
    """Edges are round decimals and buckets are right-closed: 20 ms reads 20 ms, not 20.1."""
    for value_ms in (0.0, 0.01, 0.29, 1.1, 10.0, 20.0, 20.3, 100.0, 250.0, 1000.0, 12300.0):
        hist = histogram_of([0.0, value_ms, 1e6])  # min and max elsewhere: no clamping
        assert hist.percentile_ms(50) == value_ms


def test_just_above_an_edge_reads_the_next_edge() -> None:
    hist = histogram_of([0.0, 20.0001, 1e6])
    assert hist.percentile_ms(50) == 20.1


def test_percentile_is_clamped_to_min_and_max() -> None:
    hist = histogram_of([12.345] * 10)
    assert {hist.percentile_ms(p) for p in PERCENTILES} == {12.345}
    hist = histogram_of([0.003, 0.004])
    assert hist.percentile_ms(50) == 0.003  # rank 1 is the exact minimum
    assert hist.percentile_ms(99) == 0.004  # bucket edge 0.01 clamped to the exact maximum


def test_rank_uses_the_typed_decimal() -> None:
    """p = 99.9 over 1000 samples is rank 999 exactly (float arithmetic could give 1000)."""
    hist = histogram_of([float(v) for v in range(1, 1001)])
    assert hist.percentile_ms(99.9) == 999.0
    assert hist.percentile_ms(95) == 950.0
    assert hist.percentile_ms(50) == 500.0
    assert hist.percentile_ms(0.1) == 1.0


def test_nearest_rank_vs_statistics_quantiles() -> None:
    """Nearest rank and the interpolated ('inclusive') quantile differ by < one order statistic."""
    rng = random.Random(11)
    samples_ms = [rng.expovariate(1 / 20) for _ in range(999)]
    exact = sorted(samples_ms)
    cut_points = statistics.quantiles(samples_ms, n=100, method="inclusive")
    hist = histogram_of(samples_ms)
    for p in (50, 90, 95, 99):
        rank = math.ceil(p * len(exact) / 100)
        assert exact[rank - 2] <= cut_points[p - 1] <= exact[rank]
        estimate_ms = hist.percentile_ms(p)
        assert exact[rank - 1] <= estimate_ms < exact[rank - 1] * 1.01 + 0.01


def test_bucket_edges_are_monotonic_and_contain_their_values() -> None:
    rng = random.Random(5)
    values_ms = sorted(rng.lognormvariate(2.0, 3.0) for _ in range(20000))
    indices = [bucket_index(v) for v in values_ms]
    assert indices == sorted(indices)
    for value_ms, index in zip(values_ms, indices, strict=True):
        lo_ms, hi_ms = bucket_bounds_ms(index)
        assert lo_ms - EDGE_TOLERANCE_MS <= value_ms <= hi_ms + EDGE_TOLERANCE_MS
        if index:
            assert value_ms > lo_ms - EDGE_TOLERANCE_MS
            assert hi_ms - lo_ms <= max(0.01, lo_ms / 100) * (1 + 1e-12)
    # consecutive buckets tile the axis without gaps
    for index in range(1, 6000):
        assert bucket_bounds_ms(index)[0] == pytest.approx(bucket_bounds_ms(index - 1)[1])


@pytest.mark.parametrize(
    ("value_ms", "bounds_ms"),
    [
        (0.0, (0.0, 0.0)),
        (0.001, (0.0, 0.01)),
        (9.99, (9.98, 9.99)),
        (10.0, (9.99, 10.0)),
        (10.001, (10.0, 10.1)),
        (100.0, (99.9, 100.0)),
        (100.05, (100.0, 101.0)),
        (1000.0, (999.0, 1000.0)),
        (3_600_000.0, (3_600_000.0 - 10_000.0, 3_600_000.0)),
    ],
)
def test_boundaries(value_ms: float, bounds_ms: tuple[float, float]) -> None:
    assert bucket_bounds_ms(bucket_index(value_ms)) == pytest.approx(bounds_ms)


def test_merge_equals_one_histogram_of_all_samples() -> None:
    rng = random.Random(9)
    parts = [[rng.lognormvariate(2.0, 1.5) for _ in range(n)] for n in (1000, 1, 0, 333)]
    merged = LatencyHistogram()
    for part in parts:
        merged.merge(histogram_of(part))
    whole = histogram_of([v for part in parts for v in part])

    merged_data, whole_data = merged.to_dict(), whole.to_dict()
    assert merged_data.pop("sum") == pytest.approx(whole_data.pop("sum"), rel=1e-12)
    assert merged_data == whole_data
    for p in PERCENTILES:
        assert merged.percentile_ms(p) == whole.percentile_ms(p)


def test_merge_into_empty_and_of_empty() -> None:
    hist = histogram_of([5.0, 7.0])
    empty = LatencyHistogram()
    hist.merge(LatencyHistogram())
    assert (hist.count, hist.min_ms, hist.max_ms) == (2, 5.0, 7.0)
    empty.merge(hist)
    assert empty.to_dict() == hist.to_dict()


def test_serialised_form_round_trips_through_msgpack_and_json() -> None:
    rng = random.Random(13)
    hist = histogram_of([rng.lognormvariate(2.0, 1.0) for _ in range(500)])
    data = hist.to_dict()
    # strict_map_key=True (msgpack's default) accepts str keys only
    for wire in (
        msgpack.loads(msgpack.dumps(data), raw=False),
        json.loads(json.dumps(data)),
    ):
        back = LatencyHistogram.from_dict(wire)
        assert back.to_dict() == data
        assert back.percentile_ms(95) == hist.percentile_ms(95)
    assert len(json.dumps(data)) < 40 * len(data["idx"]) + 200  # compact: sparse buckets only


def test_empty_histogram() -> None:
    hist = LatencyHistogram()
    assert (hist.count, hist.min_ms, hist.max_ms, hist.mean_ms) == (0, 0.0, 0.0, 0.0)
    assert hist.percentile_ms(95) == 0.0
    assert LatencyHistogram.from_dict(hist.to_dict()).count == 0


def test_invalid_input() -> None:
    hist = LatencyHistogram()
    with pytest.raises(ValueError):
        hist.record(-0.5)
    with pytest.raises(ValueError):
        hist.record(math.nan)
    with pytest.raises(ValueError):
        hist.percentile_ms(101)
    data = histogram_of([1.0, 2.0]).to_dict()
    data["n"] = 3
    with pytest.raises(ValueError):
        LatencyHistogram.from_dict(data)
    data = histogram_of([1.0, 2.0]).to_dict()
    data["idx"].append(5)
    with pytest.raises(ValueError):
        LatencyHistogram.from_dict(data)
