"""Statistics of a study: seed means, t intervals, interpolated "steps to reach", bootstrap intervals.

Plain Python (no torch, no scipy) so that the maths is testable on fixed numbers."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

# Two-sided 95% Student t quantiles t_{0.975, df} for df = 1..30; beyond, the normal quantile is within 1.5%.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]
Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least 2 values")
    return _T975[df - 1] if df <= len(_T975) else Z975


@dataclass(frozen=True)
class Summary:
    """n values -> mean, sample sd (n-1) and the 95% t interval of the mean (None where n < 2)."""

    n: int
    mean: float
    sd: Optional[float]
    low: Optional[float]
    high: Optional[float]

    def to_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "ci95": [self.low, self.high]}


def summarize(values: Sequence[float]) -> Optional[Summary]:
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    mean = statistics.fmean(xs)
    if len(xs) < 2:
        return Summary(1, mean, None, None, None)
    sd = statistics.stdev(xs)
    half = t_quantile_975(len(xs) - 1) * sd / math.sqrt(len(xs))
    return Summary(len(xs), mean, sd, mean - half, mean + half)


def crossing_step(steps: Sequence[float], values: Sequence[float], target: float, lower_is_better: bool = True
                  ) -> Optional[float]:
    """The first step at which the curve reaches `target`, linearly interpolated between evaluation points.

    The curve is the points (steps[i], values[i]) in step order. If the first point already reaches the target
    the answer is that step (nothing is known before it); None when the curve never reaches it."""
    points = sorted((s, v) for s, v in zip(steps, values) if v is not None and math.isfinite(v))
    sign = 1.0 if lower_is_better else -1.0
    previous = None
    for step, value in points:
        if sign * value <= sign * target:
            if previous is None:
                return float(step)
            s0, v0 = previous
            if v0 == value:
                return float(step)
            return s0 + (step - s0) * (v0 - target) / (v0 - value)
        previous = (step, value)
    return None


def mean_curve(curves: Sequence[dict[int, float]]) -> dict[int, float]:
    """Point-wise mean over seeds, at the steps every curve has."""
    common = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {s: statistics.fmean(c[s] for c in curves) for s in sorted(common)}


@dataclass(frozen=True)
class Reach:
    """Steps for a variant's mean curve to reach the baseline's mean final value, with a bootstrap interval.

    steps: point estimate (None: never reached within the run). low/high: 2.5/97.5 percentiles over resamples
    of seeds (high None: in more than 2.5% of resamples the target was never reached). reached: the share of
    resamples that reach it."""

    steps: Optional[float]
    low: Optional[float]
    high: Optional[float]
    reached: float

    def speedup(self, baseline_steps: float) -> tuple[Optional[float], Optional[float], Optional[float]]:
        """baseline_steps / steps, with the interval inverted (a slower upper step is a lower speed-up)."""
        inv = (lambda s: baseline_steps / s if s else None)
        return inv(self.steps), inv(self.high), inv(self.low)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "ci95": [self.low, self.high], "reached": self.reached}


def steps_to_reach(baseline: Sequence[dict[int, float]], variant: Sequence[dict[int, float]],
                   lower_is_better: bool = True, resamples: int = 2000, seed: int = 0) -> Optional[Reach]:
    """Interpolated steps for the variant's seed-mean curve to reach the baseline seed-mean final value.

    The interval resamples baseline seeds and variant seeds with replacement (percentile bootstrap), so that
    both the target's noise and the variant's enter it. Deterministic for a given `seed`."""
    if not baseline or not variant:
        return None

    def estimate(base: Sequence[dict[int, float]], var: Sequence[dict[int, float]]) -> Optional[float]:
        base_mean = mean_curve(base)
        if not base_mean:
            return None
        target = base_mean[max(base_mean)]
        curve = mean_curve(var)
        return crossing_step(list(curve), list(curve.values()), target, lower_is_better)

    point = estimate(baseline, variant)
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        b = [baseline[rng.randrange(len(baseline))] for _ in baseline]
        v = [variant[rng.randrange(len(variant))] for _ in variant]
        draws.append(estimate(b, v))
    reached = [d for d in draws if d is not None]
    share = len(reached) / len(draws) if draws else 0.0
    ordered = sorted(d if d is not None else math.inf for d in draws)
    low = _percentile(ordered, 2.5)
    high = _percentile(ordered, 97.5)
    return Reach(point, None if math.isinf(low) else low, None if math.isinf(high) else high, share)


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default rule)."""
    if not ordered:
        return math.inf
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi or math.isinf(ordered[hi]):
        return ordered[hi]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
