"""Resampling schemes for particle methods, and the weights they resample by.

All three draw N indices whose expected copy counts are N * w_i; systematic and stratified do it
with less variance than multinomial (Douc & Cappé 2005).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

SCHEMES = ("multinomial", "systematic", "stratified")


MACHINE_EPSILON = float(np.finfo(float).eps)  # the authors' clip (its_hub: 1e-7)


def softmax_logit_weights(rewards: Sequence[float], temperature: float = 1.0,
                          eps: float = MACHINE_EPSILON) -> np.ndarray:
    """softmax(logit(r) / T) with r clipped to [eps, 1 - eps] (Puri et al. 2025; the clip is the
    authors' machine epsilon, so rewards 0.99999 and 0.9999 weigh 10:1, not 1:1 as a 1e-4 clip would
    make them). A reward that is missing or outside [0, 1] is an error: it would silently flatten or
    distort every weight."""
    for x in rewards:
        if x is None or math.isnan(x) or not 0.0 <= x <= 1.0:
            raise ValueError(f"particle weights need rewards in [0, 1]; got {x!r} (a verifier whose scores are "
                             "not probabilities, or a particle that was never scored)")
    r = np.array(rewards, dtype=float)
    r = np.clip(r, eps, 1.0 - eps)
    z = np.log(r) - np.log1p(-r)
    z = z / temperature
    z -= z.max()
    w = np.exp(z)
    return w / w.sum()


def softmax_weights(values: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    """softmax(v / T) (REBASE's balancing weights)."""
    z = np.asarray(values, dtype=float) / temperature
    z -= z.max()
    w = np.exp(z)
    return w / w.sum()


def effective_sample_size(weights: Sequence[float]) -> float:
    """1 / sum(w^2) of normalised weights: N when uniform, 1 when one particle has all the weight."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    return float(1.0 / np.sum(w * w))


ANNEALING = ("none", "ess", "entropy", "base")


def annealing_temperature(weights: Sequence[float], step: int, max_steps: int, method: str,
                          ess_threshold: float = 0.5, early_phase: float = 0.5, value_max: float = 2.0) -> float:
    """Entropic annealing (ePF, Giannone et al. 2025; its_hub's EntropicParticleFiltering): the
    temperature that flattens the resampling weights when they collapse early. 1 unless ESS / N <
    ess_threshold and progress = step / max_steps < early_phase; then, at least 1:
    ess: N / ESS * (1 - progress) (the reference's default); entropy: 1 / (H + (1 - H) * progress), H
    the weights' entropy over log N; base: value_max - progress. As the reference, the weights are
    clipped to [1e-7, 1 - 1e-7] for ESS and entropy, and H is not normalised for N <= 2."""
    if method not in ANNEALING:
        raise ValueError(f"annealing={method!r}; choose one of: {', '.join(ANNEALING)}")
    n = len(weights)
    if method == "none" or n <= 1:
        return 1.0
    p = np.clip(np.asarray(weights, dtype=float), 1e-7, 1 - 1e-7)
    progress = step / max_steps
    ess_ratio = float(1.0 / np.sum(p * p)) / n
    if not (ess_ratio < ess_threshold and progress < early_phase):
        return 1.0
    if method == "ess":
        value = (1.0 / ess_ratio) * (1 - progress) if ess_ratio > 0 else 1.0
    elif method == "entropy":
        entropy = float(-np.sum(p * np.log(p)))
        h = entropy / math.log(n) if n > 2 else entropy
        value = 1.0 / (h + (1 - h) * progress)
    else:
        value = value_max - progress
    return max(1.0, value)


def resample(weights: Sequence[float], n: int, scheme: str, rng: np.random.Generator) -> list[int]:
    """n indices drawn according to the weights."""
    if scheme not in SCHEMES:
        raise ValueError(f"resampling={scheme!r}; choose one of: {', '.join(SCHEMES)}")
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    if scheme == "multinomial":
        return rng.choice(len(w), size=n, p=w).tolist()
    if scheme == "systematic":
        positions = (rng.random() + np.arange(n)) / n
    else:  # stratified: one uniform draw in each of n equal strata
        positions = (rng.random(n) + np.arange(n)) / n
    cumulative = np.cumsum(w)
    cumulative[-1] = 1.0  # guard against rounding
    return np.searchsorted(cumulative, positions, side="right").tolist()


def ceil_shares(total: int, weights: Sequence[float]) -> list[int]:
    """REBASE's reference rounding: in descending weight, each takes ceil(left * w_i / weight left) of
    what is left (so the best nodes are favoured and exactly `total` is given out)."""
    w = np.asarray(weights, dtype=float)
    shares = [0] * len(w)
    left, mass = total, float(w.sum())
    for i in sorted(range(len(w)), key=lambda i: (-w[i], i)):
        if left <= 0 or mass <= 0:
            break
        share = min(left, math.ceil(left * w[i] / mass - 1e-12))
        shares[i] = share
        left -= share
        mass -= w[i]
    return shares


def split_budget(total: int, weights: Sequence[float]) -> list[int]:
    """Integer shares of `total` proportional to the weights, summing to `total` (largest remainders)."""
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum()
    shares = np.floor(exact).astype(int)
    remainder = total - int(shares.sum())
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:remainder]:
        shares[i] += 1
    return shares.tolist()
