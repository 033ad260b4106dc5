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


def test_slow_calls_get_fewer_repeats_but_never_below_the_minimum():
    from harness.timing import MIN_REPEATS, ROW_BUDGET_US, repeats_within

    assert repeats_within(20.0, 100) == 100  # fast: every repeat fits
    assert repeats_within(ROW_BUDGET_US / 40, 100) == 40
    assert repeats_within(ROW_BUDGET_US, 100) == MIN_REPEATS  # one call fills the budget
    assert repeats_within(ROW_BUDGET_US, 5) == 5  # never more than asked
    assert repeats_within(0.0, 100) == 100
