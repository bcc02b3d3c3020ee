"""Weighted votes: each trajectory adds a weight to its answer group; the heaviest group wins.

weight="score": the verifier's score (score-weighted vote). weight="inverse_entropy": 1 / mean token
entropy (The Sequential Edge, Sharma et al. 2025). weight="search_weight": the weight the search put in
each trajectory's stats (fractured sampling's per-depth weights). Any other name is read from the trajectory's token
statistics (ttscale.confidence), e.g. "mean_confidence" or "bottom_group_confidence".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.strategies.select.base import MissingStatistic, Selection
from ttscale.types import Trajectory

STAT_WEIGHTS = ("mean_confidence", "lowest_group_confidence", "bottom_group_confidence", "tail_confidence",
                "self_certainty")
SEARCH_WEIGHT = "search_weight"  # a weight the search gives each trajectory (fractured sampling: its depth's)
WEIGHTS = ("score", "inverse_entropy", SEARCH_WEIGHT) + STAT_WEIGHTS


def trajectory_weight(t: Trajectory, weight: str) -> float:
    """The vote weight of one trajectory. A missing score or statistic, or a negative or non-finite
    weight, is an error: weighting it 0 would silently change the vote."""
    if weight == "score":
        value = t.score
        what = "a verifier score"
    elif weight == "inverse_entropy":
        entropy = t.stats.get("mean_entropy")
        value = None if entropy is None else 1.0 / max(entropy, 1e-6)
        what = "the mean_entropy statistic (top-k logprobs)"
    elif weight == SEARCH_WEIGHT:
        value = t.stats.get(SEARCH_WEIGHT)
        what = "a weight from the search (only some searches give one, e.g. fractured_sampling)"
    else:
        value = t.stats.get(weight)
        what = f"the {weight} statistic (top-k logprobs)"
    if value is None or math.isnan(value):
        raise MissingStatistic(f"weight={weight!r} needs {what}, and a sample has none: the search or backend "
                               "did not return it")
    if value < 0 or math.isinf(value):
        raise MissingStatistic(f"weight={weight!r}: a sample's weight is {value!r}; vote weights must be finite and "
                               ">= 0 (use a verifier whose scores are probabilities, e.g. verifier=mean_token_prob)")
    return float(value)


def answered_weights(trajectories: Sequence[Trajectory], groups: Sequence[int | None], weight: str) -> list[float]:
    """Weights of the samples that have an answer (the others do not vote: 0)."""
    return [trajectory_weight(t, weight) if g is not None else 0.0 for t, g in zip(trajectories, groups)]


def weighted_winner(trajectories: Sequence[Trajectory], groups: Sequence[int | None],
                    weights: Sequence[float]) -> Selection:
    """The group with the largest total weight (ties: the group sampled first); info has the totals."""
    totals: dict[int, float] = {}
    first: dict[int, int] = {}
    for i, (g, w) in enumerate(zip(groups, weights)):
        if g is None:
            continue
        totals[g] = totals.get(g, 0.0) + w
        first.setdefault(g, i)
    if not totals:
        return Selection(None, {"weights": {}, "reason": "no answer extracted"})
    best = max(totals.values())
    tied = sorted((g for g, v in totals.items() if v == best), key=first.__getitem__)
    info = {"weights": {trajectories[first[g]].answer: round(v, 6) for g, v in sorted(totals.items(), key=lambda x: -x[1])}}
    if len(tied) > 1:
        info["tie"] = [trajectories[first[g]].answer for g in tied]
    return Selection(first[tied[0]], info)


@dataclass
class WeightedVote:
    weight: str = "score"

    def __post_init__(self) -> None:
        if self.weight not in WEIGHTS:
            raise ValueError(f"weight={self.weight!r}; choose one of: {', '.join(WEIGHTS)}")

    @property
    def needs_scores(self) -> bool:
        return self.weight == "score"

    @property
    def needs_stats(self) -> bool:
        return self.weight not in ("score", SEARCH_WEIGHT)

    @property
    def needs_probability_scores(self) -> bool:
        return self.weight == "score"

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        weights = answered_weights(trajectories, groups, self.weight)
        selection = weighted_winner(trajectories, groups, weights)
        selection.info["weight"] = self.weight
        return selection


# strategy.select=weighted_vote; inverse_entropy is its preset (The Sequential Edge)
METHODS = {"weighted_vote": WeightedVote, "inverse_entropy": (WeightedVote, {"weight": "inverse_entropy"})}
