"""The verifier contract: score many trajectories of one problem in one call, per step and overall."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ttscale.types import Problem, Trajectory, Usage

AGGREGATIONS = ("last", "min", "prod", "mean", "model")


@dataclass
class Scores:
    """One trajectory's scores: one per step (empty for outcome-only verifiers) and the aggregate."""

    value: float
    steps: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Traits:
    """What a verifier needs and gives, declared (never guessed with getattr):

    needs_logprobs: the policy's samples must carry their logprobs (mean_logprob, mean_token_prob).
    needs_top_logprobs: it reads the backend's top-k logprobs of its own calls (self-evaluation): a
      backend that returns none cannot run it.
    score_range: the interval its scores lie in; weights (weighted votes, particle weights) need [0, 1].
    separate_model: it is a model of its own, so FLOPs need its parameter count (verifier.params).
    judges_last_step: it can score only the newest step of a partial solution (`score_last_step`).
    """

    needs_logprobs: bool = False
    needs_top_logprobs: bool = False
    score_range: tuple[float, float] = (0.0, 1.0)
    separate_model: bool = False
    judges_last_step: bool = False

    @property
    def probability(self) -> bool:
        return 0.0 <= self.score_range[0] and self.score_range[1] <= 1.0


DEFAULT_TRAITS = Traits()


@runtime_checkable
class Verifier(Protocol):
    """Returns one Scores per trajectory (higher is better) and adds what it spent to `usage`.
    `traits` declares its needs (a verifier without them gets DEFAULT_TRAITS: scores in [0, 1])."""

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[Scores]: ...


def traits_of(verifier) -> Traits:
    return getattr(verifier, "traits", DEFAULT_TRAITS) if verifier is not None else DEFAULT_TRAITS


def steps_of(t: Trajectory, delimiter: str = "\n\n") -> list[str]:
    """A trajectory's steps: the ones its search generated (step-wise search), else its text split at
    the delimiter."""
    if t.steps:
        return [step.rstrip() for step in t.steps if step.strip()]
    return split_steps(t.text, delimiter)


def split_steps(text: str, delimiter: str = "\n\n") -> list[str]:
    """Steps of a solution: split at the delimiter, trailing whitespace dropped, empty steps removed.
    Every verifier splits the same way."""
    return [step.rstrip() for step in text.split(delimiter) if step.strip()]


def aggregate(steps: Sequence[float], how: str, model_value: float | None = None) -> float:
    """One value from per-step scores: last, min, prod, mean, or `model` (the verifier's own)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"aggregation={how!r}; choose one of: {', '.join(AGGREGATIONS)}")
    if how == "model":
        if model_value is None:
            raise ValueError("aggregation='model' needs a verifier that gives its own final score")
        return model_value
    if not steps:
        return model_value if model_value is not None else float("nan")
    if how == "last":
        return steps[-1]
    if how == "min":
        return min(steps)
    if how == "prod":
        return math.prod(steps)
    return sum(steps) / len(steps)
