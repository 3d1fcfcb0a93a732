"""The study's statistics on fixed numbers: t intervals, interpolated crossings, the bootstrap interval."""

import math

import pytest

from mirai_cli.ablate.stats import crossing_step, mean_curve, steps_to_reach, summarize, t_quantile_975


def test_summary_is_the_t_interval_of_the_mean():
    s = summarize([10.0, 12.0, 14.0])
    assert (s.n, s.mean, s.sd) == (3, 12.0, 2.0)
    half = 4.303 * 2.0 / math.sqrt(3)
    assert (s.low, s.high) == pytest.approx((12.0 - half, 12.0 + half))
    assert t_quantile_975(1) == 12.706 and t_quantile_975(200) == pytest.approx(1.96, abs=1e-3)


def test_summary_of_one_value_has_no_interval_and_non_finite_values_are_dropped():
    s = summarize([5.0, float("nan"), None])
    assert (s.n, s.mean, s.sd, s.low, s.high) == (1, 5.0, None, None, None)
    assert summarize([]) is None


def test_crossing_is_interpolated_between_evaluation_points():
    steps, values = [100, 200, 300, 400], [50.0, 40.0, 30.0, 20.0]
    assert crossing_step(steps, values, 35.0) == pytest.approx(250.0)
    assert crossing_step(steps, values, 40.0) == pytest.approx(200.0)
    assert crossing_step(steps, values, 60.0) == 100.0  # already there at the first point
    assert crossing_step(steps, values, 10.0) is None  # never reached
    # higher is better: the mirror image
    assert crossing_step(steps, [1.0, 2.0, 3.0, 4.0], 2.5, lower_is_better=False) == pytest.approx(250.0)


def test_crossing_takes_the_first_time_the_curve_gets_there():
    assert crossing_step([1, 2, 3, 4], [10.0, 4.0, 8.0, 3.0], 5.0) == pytest.approx(1 + 5 / 6)


def test_mean_curve_uses_the_steps_every_seed_has():
    assert mean_curve([{1: 2.0, 2: 4.0}, {1: 4.0, 2: 6.0, 3: 1.0}]) == {1: 3.0, 2: 5.0}


def test_steps_to_reach_the_baseline_final_value_with_a_bootstrap_interval():
    baseline = [{100: 50.0, 200: 40.0, 300: 30.0}, {100: 52.0, 200: 42.0, 300: 32.0}, {100: 48.0, 200: 38.0, 300: 28.0}]
    faster = [{100: 40.0, 200: 30.0, 300: 25.0}, {100: 41.0, 200: 29.0, 300: 24.0}, {100: 39.0, 200: 31.0, 300: 26.0}]
    reach = steps_to_reach(baseline, faster, resamples=500, seed=1)
    assert reach.steps == pytest.approx(200.0)  # mean curve 40, 30, 25 meets the baseline mean 30 at 200
    assert reach.low <= reach.steps <= reach.high and reach.reached == 1.0
    up, up_low, up_high = reach.speedup(300)
    assert up == pytest.approx(1.5) and up_low <= up <= up_high
    assert steps_to_reach(baseline, faster, resamples=500, seed=1) == reach  # deterministic
    # the baseline reaches its own final value only at its last step
    assert steps_to_reach(baseline, baseline, resamples=200).steps == pytest.approx(300.0)


def test_a_variant_that_never_reaches_has_an_open_interval():
    baseline = [{1: 10.0, 2: 5.0}, {1: 10.0, 2: 5.2}]
    slower = [{1: 12.0, 2: 9.0}, {1: 12.0, 2: 9.5}]
    reach = steps_to_reach(baseline, slower, resamples=200)
    assert reach.steps is None and reach.high is None and reach.reached == 0.0
    assert reach.speedup(2) == (None, None, None)
