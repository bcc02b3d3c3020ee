"""The selection contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ttscale.types import Trajectory


class MissingStatistic(ValueError):
    """A score or statistic a selection needs and a sample lacks: never silently a weight of 0 or
    the first sample."""


@dataclass
class Selection:
    """The chosen trajectory (None when nothing can be chosen) and how the choice was made."""

    index: int | None
    info: dict[str, Any] = field(default_factory=dict)


class Selector(Protocol):
    """groups[i] labels the equivalence class of trajectories[i].answer (None: no answer).

    Declared needs: scores (a verifier must score the samples), stats (token statistics: the
    samples need top-k logprobs), probability scores (scores are vote weights: they must lie in [0, 1]).
    A selection that calls the model itself (GenSelect) declares `needs_context = True` and gives
    `async choose(problem, ctx, trajectories, groups) -> Selection`, which the Strategy awaits."""

    needs_scores: bool
    needs_stats: bool
    needs_probability_scores: bool

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection: ...
