"""Self-certainty selection (Kang et al. 2025, "Scalable Best-of-N Selection for Large Language Models
via Self-Certainty"; code backprop07/Self-Certainty).

A sample's self-certainty is the mean over its tokens of KL(U || p): how far the model's next-token
distribution is from uniform (ttscale.confidence: `self_certainty`, over the top-k logprobs an engine
returns, so U is uniform over those k tokens; the authors' code uses the full vocabulary's logits).

vote="borda" (the authors' voting script): samples ranked by self-certainty (ties: the earlier sample
first), the sample at rank r votes (N - r + 1)^power for its answer; a sample without an answer keeps
its rank and its vote is dropped. The heaviest answer wins (ties: the answer sampled first) and its
first sample is returned. power=0 is a plain majority vote; the script's default is 0.5.
vote="best": the most self-certain sample that has an answer (ties: the earlier; none has one: the
first sample, as the authors' script).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ttscale.strategies.select.base import Selection
from ttscale.strategies.select.weighted import trajectory_weight, weighted_winner
from ttscale.types import Trajectory

VOTES = ("borda", "best")


@dataclass
class SelfCertainty:
    vote: str = field(default="borda", metadata={"config": "certainty_vote"})
    power: float = field(default=0.5, metadata={"config": "borda_power"})  # the script's p; 0: majority
    needs_scores = False
    needs_stats = True
    needs_probability_scores = False

    def __post_init__(self) -> None:
        if self.vote not in VOTES:
            raise ValueError(f"vote={self.vote!r}; choose one of: {', '.join(VOTES)}")
        if not self.power >= 0:
            raise ValueError(f"power={self.power!r} must be >= 0")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        if not trajectories:
            return Selection(None, {"reason": "no trajectories"})
        # every sample's statistic, answered or not: a missing one is an error, never a rank
        certainty = [trajectory_weight(t, "self_certainty") for t in trajectories]
        info = {"vote": self.vote, "self_certainty": [round(c, 6) for c in certainty]}
        if self.vote == "best":
            answered = [i for i, g in enumerate(groups) if g is not None]
            best = max(answered, key=lambda i: (certainty[i], -i)) if answered else 0
            return Selection(best, info)
        n = len(trajectories)
        ranked = sorted(range(n), key=lambda i: -certainty[i])  # stable: equal certainty, the earlier first
        rank = [0] * n
        for r, i in enumerate(ranked, start=1):
            rank[i] = r
        selection = weighted_winner(trajectories, groups, [float(n - r + 1) ** self.power for r in rank])
        selection.info.update(info, power=self.power, rank=rank)
        return selection


METHODS = {"self_certainty": SelfCertainty}  # strategy.select=self_certainty
