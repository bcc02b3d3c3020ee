"""RPC (Zhou et al. 2025, "Bridging Internal Probability and Self-Consistency for Effective and
Efficient LLM Reasoning"): perplexity consistency with reasoning pruning.

Perplexity consistency: an answer's score is the summed model probability of the *distinct*
reasoning paths that reach it, a path's probability being exp(mean token logprob) = 1/perplexity
(identical texts count once). Reasoning pruning: fit a two-component Weibull mixture to the path
probabilities and drop a path that belongs more to the low component and lies below the mean
probability. Needs logprobs (mean_logprob in the trajectory's stats, or its cumulative logprob).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ttscale.strategies.select.base import MissingStatistic, Selection
from ttscale.strategies.select.weighted import weighted_winner
from ttscale.types import Trajectory


def path_probability(t: Trajectory) -> float:
    mean = t.stats.get("mean_logprob")
    if mean is None and t.cumulative_logprob is not None and t.num_tokens:
        mean = t.cumulative_logprob / t.num_tokens
    if mean is None or math.isnan(mean):
        if t.num_tokens == 0:
            return 0.0  # an empty sample: probability of nothing generated is not a statistic
        raise MissingStatistic("rpc needs each sample's mean logprob (its token statistics): this sample has none; "
                         "the search or backend did not return logprobs")
    return math.exp(mean)


def _weibull_pdf(x, k, lam):
    return (k / lam) * (x / lam) ** (k - 1) * np.exp(-((x / lam) ** k))


def low_component_members(probs: Sequence[float]) -> list[bool]:
    """For each probability: does it belong more to the lower-mean Weibull component?
    All False when there are too few distinct values to fit two components."""
    from scipy.optimize import minimize
    from scipy.special import gamma

    data = np.clip(np.asarray(probs, dtype=float), 1e-9, None)
    if len(data) < 4 or np.ptp(data) < 1e-9:
        return [False] * len(data)

    def nll(params):
        w, k1, l1, k2, l2 = params
        pdf = w * _weibull_pdf(data, k1, l1) + (1 - w) * _weibull_pdf(data, k2, l2)
        return -np.sum(np.log(np.clip(pdf, 1e-300, None)))

    fit = minimize(nll, [0.5, 1.0, 1.0, 1.5, 2.0],
                   bounds=[(0.2, 0.8), (0.01, None), (0.01, None), (0.01, None), (0.01, None)])
    w, k1, l1, k2, l2 = fit.x
    if l1 * gamma(1 + 1 / k1) < l2 * gamma(1 + 1 / k2):  # make component 1 the high one
        w, k1, l1, k2, l2 = 1 - w, k2, l2, k1, l1
    high = w * _weibull_pdf(data, k1, l1)
    low = (1 - w) * _weibull_pdf(data, k2, l2)
    return [bool(lo > hi) for hi, lo in zip(high, low)]


@dataclass
class RPCVote:
    prune: bool = True
    needs_scores = False
    needs_probability_scores = False
    needs_stats = True
    needs_top_logprobs = False  # perplexity of the sampled tokens only

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        probs = [path_probability(t) for t in trajectories]
        pruned: set[int] = set()
        if self.prune:
            mean = float(np.mean(probs)) if probs else 0.0
            low = low_component_members(probs)
            pruned = {i for i, p in enumerate(probs) if low[i] and p < mean}
        seen: set[tuple[int, str]] = set()
        weights = []
        for i, (t, g) in enumerate(zip(trajectories, groups)):
            distinct = (g, t.text) not in seen
            seen.add((g, t.text))
            weights.append(probs[i] if distinct and i not in pruned else 0.0)
        kept_groups = [None if i in pruned else g for i, g in enumerate(groups)]
        if all(g is None for g in kept_groups):  # pruning removed every answer: fall back
            kept_groups = list(groups)
        selection = weighted_winner(trajectories, kept_groups, weights)
        selection.info.update({"pruned": sorted(pruned)})
        return selection


METHODS = {"rpc": RPCVote}  # strategy.select=rpc
