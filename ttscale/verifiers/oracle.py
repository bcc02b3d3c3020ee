"""The ground-truth outcome check: 1 when the trajectory's answer equals the reference, else 0.

An oracle, for coverage / pass@k studies ("Large Language Monkeys"); it must not be used to pick
answers in a run that is reported as accuracy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ttscale.graders.math import MathGrader
from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits


class GroundTruth:
    traits = Traits()  # scores in [0, 1]

    def __init__(self, grader: MathGrader):
        self.grader = grader

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage | None = None) -> list[Scores]:
        if problem.answer is None:
            raise ValueError(f"problem {problem.id!r} has no reference answer for the ground-truth verifier")
        answers = [t.answer if t.answer is not None else self.grader.extract(t.text, problem, t.finish_reason not in ("length", "abort", None))
                   for t in trajectories]
        pairs = [(problem.answer, a) for a in answers]
        checks = await asyncio.to_thread(self.grader.checks, pairs)
        undecided = next((why for ok, why in checks if ok is None), None)
        if undecided is not None:  # an undecided check is not a score of 0
            raise ValueError(f"problem {problem.id!r}: the ground-truth check could not decide ({undecided})")
        return [Scores(1.0 if ok else 0.0) for ok, _ in checks]
