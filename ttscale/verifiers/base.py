"""The verifier contract: score many trajectories of one problem in one call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ttscale.types import Problem, Trajectory


@runtime_checkable
class Verifier(Protocol):
    """Returns one score per trajectory (higher is better)."""

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory]) -> list[float]: ...
