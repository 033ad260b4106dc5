import pytest

from harness.timing import summarize


def test_median_and_quartiles():
    timing = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert timing.median_us == 3.0
    assert (timing.q1_us, timing.q3_us) == (2.0, 4.0)
    assert timing.iqr_us == 2.0
    assert timing.min_us == 1.0 and timing.repeats == 5


def test_outlier_moves_mean_not_median():
    timing = summarize([10.0] * 99 + [10_000.0])
    assert timing.median_us == 10.0
    assert timing.q3_us == 10.0


def test_single_sample():
    timing = summarize([7.5])
    assert (timing.median_us, timing.q1_us, timing.q3_us, timing.repeats) == (7.5, 7.5, 7.5, 1)


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([])
