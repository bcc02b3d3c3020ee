"""Majority vote over equivalence groups of answers (self-consistency, Wang et al. 2022)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.strategies.select.base import Selection
from ttscale.types import Trajectory


@dataclass
class MajorityVote:
    """The answer group with the most votes wins; trajectories without an answer do not vote.

    Ties: "first" picks the tied group sampled first; "score" picks the tied group with the highest
    summed score (then first). Either way the tie is recorded in the selection's info.
    """

    tie_break: str = "first"
    needs_scores = False
    needs_stats = False
    needs_probability_scores = False

    def __post_init__(self) -> None:
        if self.tie_break not in ("first", "score"):
            raise ValueError(f"tie_break={self.tie_break!r}; choose one of: first, score")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        votes = Counter(g for g in groups if g is not None)
        if not votes:
            return Selection(None, {"votes": {}, "reason": "no answer extracted"})
        first_index = {}
        for i, g in enumerate(groups):
            if g is not None:
                first_index.setdefault(g, i)
        top = max(votes.values())
        tied = sorted((g for g, c in votes.items() if c == top), key=first_index.__getitem__)
        winner = tied[0]
        if len(tied) > 1 and self.tie_break == "score":
            def total(g):
                return sum(t.score or 0.0 for t, lab in zip(trajectories, groups) if lab == g)
            winner = max(tied, key=lambda g: (total(g), -first_index[g]))
        info = {
            "votes": {trajectories[first_index[g]].answer: c for g, c in votes.most_common()},
            "voters": sum(votes.values()),
        }
        if len(tied) > 1:
            info["tie"] = [trajectories[first_index[g]].answer for g in tied]
            info["tie_break"] = self.tie_break
        return Selection(first_index[winner], info)


METHODS = {"majority": MajorityVote}  # strategy.select=majority
