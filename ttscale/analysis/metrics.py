"""Metrics over per-problem outcomes, with confidence intervals: Wilson's score interval for a
proportion (honest at 0/n and n/n, where a bootstrap collapses to a point), the percentile bootstrap
for other means (and, in compare.py, the paired bootstrap for differences)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion of `successes` in `n` trials (None for n = 0): 0/30
    gives (0, 0.114), not the bootstrap's (0, 0)."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes in {n} trials")
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


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
    """Percentile bootstrap interval of the mean of `values` (problems resampled with replacement).

    Deterministic for a given seed; None for no values. Values with few distinct levels (0/1
    correctness, pass@k fractions) are resampled by level counts: a resample of n problems holds
    Multinomial(n, level shares) of each level, the same distribution as drawing n indices, at a cost
    that does not grow with n (1,000 problems: milliseconds instead of 0.2 s a summary).
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    levels, counts = np.unique(data, return_counts=True)
    if levels.size <= 64:
        means = rng.multinomial(data.size, counts / data.size, size=resamples) @ levels / data.size
    else:
        means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
