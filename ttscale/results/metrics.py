"""Metrics over per-problem outcomes, with confidence intervals: a proportion's interval is Wilson's
score interval (default; honest at 0/n and n/n, where a bootstrap collapses to a point), the closed form
that `scipy.stats.binomtest(...).proportion_ci(method="wilson")` computes (equal to it to 1e-12, tested;
written out because importing scipy.stats costs every run's summary a second), or Clopper-Pearson's
(`method="exact"`, by scipy); other means get the percentile bootstrap (`scipy.stats.bootstrap`).
Bounds are exact at 0 and 1: 0/n has a lower bound of exactly 0.0 and n/n an upper bound of exactly
1.0 (the formulas' float noise, 2.8e-17 or 0.9999999999999999, would make an error bar's length negative)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

METHODS = ("wilson", "exact")  # exact: Clopper-Pearson


def wilson_ci(successes: int, n: int, level: float = 0.95, method: str = "wilson") -> tuple[float, float] | None:
    """The interval of a proportion of `successes` in `n` trials (None for n = 0): Wilson's score
    interval (`method="exact"`: Clopper-Pearson's). 0/30 gives (0.0, 0.114), not the bootstrap's (0, 0)."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes in {n} trials")
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {', '.join(METHODS)}")
    if method == "exact":
        from scipy.stats import binomtest

        ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="exact")
        low, high = float(ci.low), float(ci.high)
    else:  # Wilson (1927): the p whose score test at this level just accepts successes / n
        z = NormalDist().inv_cdf(0.5 + level / 2)
        p, z2 = successes / n, z * z
        center, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        low, high = center - half, center + half
    low = 0.0 if successes == 0 else min(max(low, 0.0), successes / n)
    high = 1.0 if successes == n else max(min(high, 1.0), successes / n)
    return low, high


def proportion_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """The interval of a mean of per-problem outcomes: Wilson's when every value is 0 or 1 (accuracy,
    maj@k, pass@k coverage), else the percentile bootstrap (fractions such as unbiased pass@k)."""
    data = [float(v) for v in values]
    if not data:
        return None
    if all(v in (0.0, 1.0) for v in data):
        return wilson_ci(int(sum(data)), len(data), level)
    return bootstrap_ci(data, level)


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `values` (problems resampled with replacement,
    scipy.stats.bootstrap). Deterministic for a given seed; None for no values; a point for values
    that are all equal. The bounds never leave [min(values), max(values)]."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    lowest, highest = float(data.min()), float(data.max())
    if lowest == highest:
        return lowest, highest
    from scipy.stats import bootstrap

    ci = bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                   vectorized=True, batch=max(1, 2_000_000 // data.size), random_state=np.random.default_rng(seed)
                   ).confidence_interval
    return max(lowest, float(ci.low)), min(highest, float(ci.high))
