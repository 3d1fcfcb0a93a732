"""Statistics of a study: seed means, t intervals, interpolated "steps to reach", the baseline's target and its
own crossing of it, paired (same-seed) differences and speed-ups, bootstrap intervals.

Plain Python (no torch, no scipy) so that the maths is testable on fixed numbers."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

# Two-sided 95% Student t quantiles t_{0.975, df} for df = 1..30; beyond, the Cornish-Fisher expansion around the
# normal quantile (error below 1e-4 there; the normal quantile alone is 4% low at df 31).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]
Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least 2 values")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


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


def welch_difference(a: Sequence[float], b: Sequence[float]) -> Optional[tuple[float, float, float]]:
    """mean(a) - mean(b) and its 95% Welch interval (unequal variances; Welch-Satterthwaite degrees of freedom,
    rounded down: the conservative side). None unless both have 2 values or more."""
    sa, sb = summarize(a), summarize(b)
    if sa is None or sb is None or sa.sd is None or sb.sd is None:
        return None
    va, vb = sa.sd ** 2 / sa.n, sb.sd ** 2 / sb.n
    diff = sa.mean - sb.mean
    if va + vb == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
    half = t_quantile_975(max(1, math.floor(df))) * math.sqrt(va + vb)
    return diff, diff - half, diff + half


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


def gain(baseline: float, variant: float, lower_is_better: bool = True) -> float:
    """How much better the variant is than the baseline (positive: better), in the metric's units."""
    return baseline - variant if lower_is_better else variant - baseline


@dataclass(frozen=True)
class Target:
    """What "reaching the baseline" means for one baseline curve, and when the baseline itself got there.

    value: the curve's best value; on a monotone curve that is its final value (kind "final"). kind "overfits":
    the curve is best at step `best_step` and only gets worse after it; "wanders": it goes up and down (its best
    may be the last point). steps: the baseline's own first crossing of `value` (linear between evaluation
    points), the numerator of every speed-up, so that the baseline's speed-up over itself is 1 by construction."""

    value: float
    kind: str
    best_step: int
    steps: float

    def to_dict(self) -> dict:
        return {"value": self.value, "kind": self.kind, "best_step": self.best_step, "steps": self.steps}


def curve_target(curve: dict[int, float], lower_is_better: bool = True) -> Optional[Target]:
    points = sorted((s, v) for s, v in curve.items() if v is not None and math.isfinite(v))
    if not points:
        return None
    sign = 1.0 if lower_is_better else -1.0
    values = [sign * v for _, v in points]
    best = min(range(len(points)), key=lambda i: (values[i], i))
    if all(b <= a for a, b in zip(values, values[1:])):
        kind = "final"
    elif all(b >= a for a, b in zip(values[best:], values[best + 1:])) and best < len(points) - 1:
        kind = "overfits"
    else:
        kind = "wanders"
    value = points[best][1]
    steps = crossing_step([s for s, _ in points], [v for _, v in points], value, lower_is_better)
    assert steps is not None  # the curve holds its own best value
    return Target(value, kind, points[best][0], steps)


@dataclass(frozen=True)
class Reach:
    """Steps for a variant's seed-mean curve to reach the baseline's target (its seed-mean curve's best value;
    see Target), with percentile-bootstrap intervals over seeds resampled independently in each arm (the
    unpaired design: for arms that share seeds, `paired_speedups` is the right tool).

    steps: point estimate (None: never reached within the run); low/high: 2.5/97.5 percentiles of it over
    resamples (high None: in more than 2.5% of resamples the target was never reached); reached: the share of
    resamples that reach it. speedup: target.steps / steps; speedup_low/high: percentiles of the same ratio in
    each resample (a resample that never reaches counts as 0). With 3 seeds a percentile bootstrap is too
    narrow (no small-sample correction): read it as a rough range."""

    target: Target
    steps: Optional[float]
    low: Optional[float]
    high: Optional[float]
    reached: float
    speedup: Optional[float]
    speedup_low: Optional[float]
    speedup_high: Optional[float]

    def to_dict(self) -> dict:
        return {"target": self.target.to_dict(), "steps": self.steps, "ci95": [self.low, self.high],
                "reached": self.reached}

    def speedup_dict(self) -> dict:
        return {"value": self.speedup, "ci95": [self.speedup_low, self.speedup_high]}


def _reach_estimate(base: Sequence[dict[int, float]], var: Sequence[dict[int, float]], lower_is_better: bool
                    ) -> tuple[Optional[Target], Optional[float]]:
    target = curve_target(mean_curve(base), lower_is_better)
    if target is None:
        return None, None
    curve = mean_curve(var)
    return target, crossing_step(list(curve), list(curve.values()), target.value, lower_is_better)


def steps_to_reach(baseline: Sequence[dict[int, float]], variant: Sequence[dict[int, float]],
                   lower_is_better: bool = True, resamples: int = 2000, seed: int = 0) -> Optional[Reach]:
    """Interpolated steps for the variant's seed-mean curve to reach the baseline seed-mean curve's target, and
    the speed-up over the baseline's own first crossing of it. The intervals resample baseline seeds and variant
    seeds with replacement, so that both the target's noise and the variant's enter them. Deterministic for a
    given `seed`."""
    if not baseline or not variant:
        return None
    target, point = _reach_estimate(baseline, variant, lower_is_better)
    if target is None:
        return None
    rng = random.Random(seed)
    draws, ratios = [], []
    for _ in range(resamples):
        b = [baseline[rng.randrange(len(baseline))] for _ in baseline]
        v = [variant[rng.randrange(len(variant))] for _ in variant]
        t, steps = _reach_estimate(b, v, lower_is_better)
        draws.append(steps)
        ratios.append(t.steps / steps if t and steps else 0.0)
    share = sum(d is not None for d in draws) / len(draws) if draws else 0.0
    ordered = sorted(d if d is not None else math.inf for d in draws)
    low, high = _percentile(ordered, 2.5), _percentile(ordered, 97.5)
    ratios.sort()
    finite = (lambda x: None if math.isinf(x) else x)
    return Reach(target, point, finite(low), finite(high), share, target.steps / point if point else None,
                 _percentile(ratios, 2.5) if ratios else None, _percentile(ratios, 97.5) if ratios else None)


# ---- paired design: arms that share seeds (same initialisation, data order and dropout per seed) ----------------

def paired_gains(baseline: Sequence[dict[int, float]], variant: Sequence[dict[int, float]],
                 lower_is_better: bool = True) -> dict[int, Summary]:
    """Per evaluation step that every curve of both arms has: the mean and t interval of the per-seed gain
    (baseline[i] vs variant[i], same seed), over the n pairs (n - 1 degrees of freedom)."""
    if len(baseline) != len(variant):
        raise ValueError("paired curves need one baseline curve per variant curve (the same seeds, in order)")
    common = set.intersection(*(set(c) for c in [*baseline, *variant])) if baseline else set()
    out = {}
    for step in sorted(common):
        summary = summarize([gain(b[step], v[step], lower_is_better) for b, v in zip(baseline, variant)])
        if summary is not None:
            out[step] = summary
    return out


@dataclass(frozen=True)
class PairReach:
    """One seed pair: the baseline curve's target, the variant's first crossing of it, and their ratio."""

    target: Target
    steps: Optional[float]

    @property
    def speedup(self) -> Optional[float]:
        return self.target.steps / self.steps if self.steps else None

    def to_dict(self) -> dict:
        return {"target": self.target.to_dict(), "steps": self.steps, "speedup": self.speedup}


def pair_reach(baseline: dict[int, float], variant: dict[int, float], lower_is_better: bool = True
               ) -> Optional[PairReach]:
    target = curve_target(baseline, lower_is_better)
    if target is None:
        return None
    return PairReach(target, crossing_step(list(variant), list(variant.values()), target.value, lower_is_better))


@dataclass(frozen=True)
class PairedSpeedup:
    """Per-pair speed-ups and their mean with a t interval over the pairs (None when some pair never reaches
    its target within the run: then `never` counts those pairs and no interval is claimed)."""

    pairs: list[PairReach]
    summary: Optional[Summary]

    @property
    def never(self) -> int:
        return sum(p.steps is None for p in self.pairs)

    def to_dict(self) -> dict:
        return {"pairs": [p.to_dict() for p in self.pairs], "never": self.never,
                "summary": self.summary.to_dict() if self.summary else None}


def paired_speedups(baseline: Sequence[dict[int, float]], variant: Sequence[dict[int, float]],
                    lower_is_better: bool = True) -> PairedSpeedup:
    """Per seed pair: steps for the variant to reach that pair's baseline target, over the baseline's own first
    crossing of it (so a baseline paired with itself is exactly 1); the mean and t interval over pairs."""
    if len(baseline) != len(variant):
        raise ValueError("paired curves need one baseline curve per variant curve (the same seeds, in order)")
    pairs = [r for r in (pair_reach(b, v, lower_is_better) for b, v in zip(baseline, variant)) if r is not None]
    ratios = [p.speedup for p in pairs]
    summary = summarize(ratios) if pairs and all(r is not None for r in ratios) else None
    return PairedSpeedup(pairs, summary)


def shared_seeds(baseline_seeds: Sequence[int], variant_seeds: Sequence[int]) -> bool:
    """The paired design applies when every seed of the variant has a baseline run on the same seed."""
    return bool(variant_seeds) and set(variant_seeds) <= set(baseline_seeds)


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default rule)."""
    if not ordered:
        return math.inf
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi or math.isinf(ordered[hi]):
        return ordered[hi]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
