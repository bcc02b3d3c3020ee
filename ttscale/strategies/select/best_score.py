"""Best-of-N: the highest-scoring trajectory wins."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.strategies.select.base import MissingStatistic, Selection
from ttscale.types import Trajectory


@dataclass
class BestScore:
    """argmax of score; the earliest sample wins a tie. With require_answer, trajectories that
    gave no extractable answer are passed over unless none has one. Trajectories without a score
    (None or NaN) rank last; when none has one, the selection refuses (MissingStatistic): the first
    sample is no best-of-N."""

    require_answer: bool = True
    needs_scores = True
    needs_stats = False
    needs_probability_scores = False

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        pool = [i for i, t in enumerate(trajectories) if t.answer is not None] if self.require_answer else []
        pool = pool or list(range(len(trajectories)))
        if not pool:
            return Selection(None, {"reason": "no trajectories"})

        if all(_missing(trajectories[i].score) for i in pool):
            raise MissingStatistic("best_score: no trajectory has a score; give the Strategy a verifier "
                                   "(verifier=...), or a search that scores its trajectories")

        def key(i: int) -> float:
            s = trajectories[i].score
            return -math.inf if _missing(s) else s

        best = max(pool, key=lambda i: (key(i), -i))
        return Selection(best, {"best_score": key(best), "considered": len(pool)})


def _missing(score: float | None) -> bool:
    return score is None or math.isnan(score)


METHODS = {"best_score": BestScore}  # strategy.select=best_score
