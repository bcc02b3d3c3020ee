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


@runtime_checkable
class Verifier(Protocol):
    """Returns one Scores per trajectory (higher is better) and adds what it spent to `usage`."""

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[Scores]: ...


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
