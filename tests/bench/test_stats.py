"""harness.bench.stats: the t interval, the --target-ci stopping rule, the regression decision."""

from __future__ import annotations

import math
import statistics

import pytest

from harness.bench import stats


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (4, 2.776), (30, 2.042), (60, 2.000),
                                              (120, 1.980), (10**6, 1.960)])  # fmt: skip
def test_t_quantiles_match_the_tables(df, expected):
    assert stats.t975(df) == pytest.approx(expected, abs=1.5e-3)


def test_interval_is_mean_plus_minus_t_times_standard_error():
    values = [10.0, 10.2, 9.9, 10.1, 9.8]
    ci = stats.interval(values)
    half = 2.776 * statistics.stdev(values) / math.sqrt(5)
    assert ci.n == 5 and ci.mean == pytest.approx(10.0)
    assert (ci.low, ci.high) == pytest.approx((10.0 - half, 10.0 + half))
    assert ci.half_pct == pytest.approx(half / 10.0 * 100)


@pytest.mark.parametrize("values", [[], [5.0], [5.0, float("nan")], [5.0, None]])
def test_no_interval_from_fewer_than_two_finite_values(values):
    assert stats.interval(values) is None


def test_stopping_rule_needs_the_minimum_and_the_target():
    tight = [10.0, 10.01, 9.99, 10.0]
    assert not stats.enough(tight[:1], 2, None)
    assert stats.enough(tight[:2], 2, None)  # no target: the minimum is enough
    assert not stats.enough([10.0, 11.0], 2, 2.0)  # two loose values: far wider than ±2%
    assert stats.enough(tight, 2, 2.0)
    fields = stats.ci_fields(tight, 2.0, True)
    assert fields["invocations"] == 4 and fields["ci_method"] == stats.CI_METHOD
    low, high = fields["ci95_ms"]
    assert low < 10.0 < high and fields["ci95_pct"] <= 2.0 and fields["ci_target_met"]


def _lat(values):
    return {"avg_ms": statistics.fmean(values), "invocation_avg_ms": list(values)}


def test_a_change_is_a_regression_only_when_intervals_separate():
    base = _lat([10.0, 10.1, 9.9, 10.0, 10.0])
    slower = _lat([12.0, 12.1, 11.9, 12.0, 12.0])  # +20%, tight
    noisy = _lat([9.0, 15.0, 12.0])  # +20% mean, wide interval
    same = _lat([10.05, 9.95, 10.0])
    assert stats.decide_cells(base, slower, 10).verdict == stats.REGRESSION
    d = stats.decide_cells(base, noisy, 10)
    assert d.verdict == stats.INCONCLUSIVE and "overlap" in d.why and not d.regressed
    assert stats.decide_cells(base, same, 10).verdict == stats.SAME
    assert stats.decide_cells(slower, base, 10).verdict == stats.IMPROVEMENT
    single = {"avg_ms": 12.0, "invocation_avg_ms": [12.0]}
    one = stats.decide_cells(base, single, 10)
    assert one.verdict == stats.INCONCLUSIVE and "no interval" in one.why


def test_old_rule_flags_noise_the_new_rule_does_not():
    """Two identical configurations whose invocation means differ by noise only (+6%): the old
    point rule (change > 5%) flags it, the interval rule calls it inconclusive."""
    base = _lat([10.0, 10.6])
    again = _lat([11.3, 10.5])
    d = stats.decide_cells(base, again, 5)
    assert d.change_pct > 5  # the old rule: a regression
    assert d.verdict == stats.INCONCLUSIVE


def test_a_lower_bound_below_zero_is_stored_as_zero():
    ci = stats.interval([1.0, 9.0])  # mean 5, half-width 12.7 * 4 = 50.8
    assert ci.low < 0 and ci.to_json() == [0.0, ci.high]
