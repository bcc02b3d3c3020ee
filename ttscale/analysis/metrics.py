"""Metrics over per-problem outcomes, with percentile-bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
