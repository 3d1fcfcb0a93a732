"""The study's statistics on fixed numbers: t intervals, interpolated crossings, the baseline's target and its own
crossing of it, paired gains and speed-ups, the bootstrap interval."""

import math

import pytest

from mirai_cli.ablate.stats import (
    crossing_step,
    curve_target,
    mean_curve,
    paired_gains,
    paired_speedups,
    steps_to_reach,
    summarize,
    t_quantile_975,
    welch_difference,
)


def test_summary_is_the_t_interval_of_the_mean():
    s = summarize([10.0, 12.0, 14.0])
    assert (s.n, s.mean, s.sd) == (3, 12.0, 2.0)
    half = 4.303 * 2.0 / math.sqrt(3)
    assert (s.low, s.high) == pytest.approx((12.0 - half, 12.0 + half))
    assert t_quantile_975(1) == 12.706 and t_quantile_975(30) == 2.042


def test_t_quantile_beyond_the_table_is_the_t_not_the_normal_quantile():
    # t_{0.975} at 31, 60 and 200 degrees of freedom (tables): the normal 1.960 is 4% low at 31
    assert t_quantile_975(31) == pytest.approx(2.0395, abs=2e-4)
    assert t_quantile_975(60) == pytest.approx(2.0003, abs=2e-4)
    assert t_quantile_975(200) == pytest.approx(1.9719, abs=2e-4)


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
    assert (reach.target.kind, reach.target.value, reach.target.steps) == ("final", 30.0, 300.0)
    assert reach.speedup == pytest.approx(1.5) and reach.speedup_low <= reach.speedup <= reach.speedup_high
    assert steps_to_reach(baseline, faster, resamples=500, seed=1) == reach  # deterministic
    # the baseline reaches its own final value only at its last step: 1.00x over itself
    itself = steps_to_reach(baseline, baseline, resamples=200)
    assert itself.steps == pytest.approx(300.0) and itself.speedup == 1.0


def test_a_variant_that_never_reaches_has_an_open_interval():
    baseline = [{1: 10.0, 2: 5.0}, {1: 10.0, 2: 5.2}]
    slower = [{1: 12.0, 2: 9.0}, {1: 12.0, 2: 9.5}]
    reach = steps_to_reach(baseline, slower, resamples=200)
    assert reach.steps is None and reach.high is None and reach.reached == 0.0
    assert (reach.speedup, reach.speedup_low, reach.speedup_high) == (None, 0.0, 0.0)


WANDERING = {100: 50.0, 200: 40.0, 300: 42.0, 400: 41.0}  # best at 200, then up and down
RISING = {100: 3.0, 200: 2.5, 300: 2.2, 400: 2.3, 500: 2.4}  # best at 300, then only worse (overfits)


def test_a_wandering_baseline_is_not_faster_than_itself():
    """The old numerator was the last step (400) and the target the final value (41), which the curve first
    reaches at 190: the baseline read 2.1x faster than itself. Now: its best value, first reached at 200."""
    target = curve_target(WANDERING)
    assert (target.kind, target.value, target.best_step, target.steps) == ("wanders", 40.0, 200, 200.0)
    assert steps_to_reach([WANDERING], [WANDERING], resamples=50).speedup == 1.0
    assert paired_speedups([WANDERING], [WANDERING]).summary.mean == 1.0
    variant = {100: 45.0, 200: 41.0, 300: 38.0, 400: 39.0}  # reaches 40 at 200 + 100 * 1/3
    assert steps_to_reach([WANDERING], [variant], resamples=50).speedup == pytest.approx(200 / (200 + 100 / 3))
    # a curve whose best is its last point but that went up before it still wanders (target: that last value)
    assert curve_target({1: 5.0, 2: 4.0, 3: 4.5, 4: 3.0}).kind == "wanders"


def test_a_rising_baseline_targets_its_best_value():
    """An overfitting baseline: the target is its best value (2.2 at 300), not its last (2.4, reached by the
    variant at step 180, which read 500 / 180 = 2.8x)."""
    target = curve_target(RISING)
    assert (target.kind, target.value, target.steps) == ("overfits", 2.2, 300.0)
    variant = {100: 2.8, 200: 2.3, 300: 2.15, 400: 2.2, 500: 2.25}  # reaches 2.2 at 200 + 100 * 0.1 / 0.15
    reach = steps_to_reach([RISING], [variant], resamples=50)
    assert reach.steps == pytest.approx(200 + 100 * 0.1 / 0.15) and reach.speedup == pytest.approx(1.125)
    pair = paired_speedups([RISING], [variant]).pairs[0]
    assert pair.target.kind == "overfits" and pair.speedup == pytest.approx(1.125)
    # higher is better: the mirror image
    assert curve_target({k: -v for k, v in RISING.items()}, lower_is_better=False).value == -2.2


def test_paired_gains_and_speedups_are_t_intervals_over_seed_pairs():
    # three seeds whose baselines differ by 0.1 while each variant is 0.008-0.012 better than its own seed
    base = [{1: 3.0, 2: 2.10}, {1: 3.1, 2: 2.20}, {1: 3.2, 2: 2.30}]
    var = [{1: 2.9, 2: 2.090}, {1: 3.0, 2: 2.188}, {1: 3.1, 2: 2.292}]
    gains = paired_gains(base, var)
    final = gains[2]
    assert final.mean == pytest.approx(0.010) and final.sd == pytest.approx(0.002)
    half = 4.303 * 0.002 / math.sqrt(3)
    assert (final.low, final.high) == pytest.approx((0.010 - half, 0.010 + half))
    assert final.low > 0  # paired: the interval excludes 0
    unpaired = summarize([b[2] for b in base]), summarize([v[2] for v in var])
    assert unpaired[0].low < unpaired[1].mean < unpaired[0].high  # the seed means' intervals overlap widely
    speed = paired_speedups(base, var)
    # per pair: the baseline's final (monotone) value over the variant's first crossing of it
    expected = [2 / (1 + (2.9 - 2.10) / (2.9 - 2.090)), 2 / (1 + (3.0 - 2.20) / (3.0 - 2.188)),
                2 / (1 + (3.1 - 2.30) / (3.1 - 2.292))]
    assert [p.speedup for p in speed.pairs] == pytest.approx(expected)
    assert speed.summary.mean == pytest.approx(sum(expected) / 3) and speed.never == 0
    assert paired_speedups(base, base).summary.to_dict()["ci95"] == [1.0, 1.0]  # the baseline over itself
    # a pair that never reaches: no interval is claimed
    never = paired_speedups(base, [var[0], var[1], {1: 3.3, 2: 2.4}])
    assert never.summary is None and never.never == 1
    with pytest.raises(ValueError):
        paired_gains(base, var[:2])


def test_welch_difference_of_two_means():
    # a: mean 2, var 1 (n 3); b: mean 1, var 4 (n 3): se^2 = 1/3 + 4/3, df = (5/3)^2 / ((1/9 + 16/9) / 2) = 2.94 -> 2
    diff, low, high = welch_difference([1.0, 2.0, 3.0], [-1.0, 1.0, 3.0])
    assert diff == 1.0
    assert (low, high) == pytest.approx((1 - 4.303 * math.sqrt(5 / 3), 1 + 4.303 * math.sqrt(5 / 3)))
    assert welch_difference([1.0], [1.0, 2.0]) is None
