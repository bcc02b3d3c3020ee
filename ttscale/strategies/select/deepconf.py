"""DeepConf offline (Fu et al. 2025, "Deep Think with Confidence"): keep the most confident eta% of
traces by a trace confidence, then a confidence-weighted majority vote over the kept ones.

The paper's two settings: eta=10 (aggressive) and eta=90 (conservative); its default trace
confidence is the bottom-10% group confidence over 2048-token windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.strategies.select.base import Selection
from ttscale.strategies.select.weighted import STAT_WEIGHTS, answered_weights, weighted_winner
from ttscale.types import Trajectory


@dataclass
class DeepConfVote:
    eta: float = 10.0  # percent of traces kept
    confidence: str = "bottom_group_confidence"
    needs_scores = False
    needs_stats = True
    needs_probability_scores = False

    def __post_init__(self) -> None:
        if not 0 < self.eta <= 100:
            raise ValueError(f"eta={self.eta!r} must be in (0, 100]")
        if self.confidence not in STAT_WEIGHTS:
            raise ValueError(f"confidence={self.confidence!r}; choose one of: {', '.join(STAT_WEIGHTS)}")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        conf = answered_weights(trajectories, groups, self.confidence)
        answered = [i for i, g in enumerate(groups) if g is not None]
        keep_n = max(1, math.ceil(len(answered) * self.eta / 100.0)) if answered else 0
        # the most confident first; equal confidence: the earlier sample
        kept = set(sorted(answered, key=lambda i: (-conf[i], i))[:keep_n])
        weights = [conf[i] if i in kept else 0.0 for i in range(len(trajectories))]
        kept_groups = [g if i in kept else None for i, g in enumerate(groups)]
        selection = weighted_winner(trajectories, kept_groups, weights)
        selection.info.update({"kept": sorted(kept), "eta": self.eta, "confidence": self.confidence})
        return selection


METHODS = {"deepconf": DeepConfVote}  # strategy.select=deepconf
