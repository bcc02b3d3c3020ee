"""A deterministic test double for verifiers: scores come from a function of the text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ttscale.types import Problem, Trajectory, Usage
from ttscale.verifiers.base import Scores, Traits, aggregate, steps_of


@dataclass
class ScriptedVerifier:
    """`step_score(question, steps_so_far)` gives the score of the last of `steps_so_far`.

    Like a PRM it scores every step of each trajectory (aggregated with `aggregation`); every
    trajectory scored counts as one verifier call. `seen` records each text scored.
    """

    step_score: Callable[[str, list[str]], float]
    traits = Traits()
    aggregation: str = "last"
    step_delimiter: str = "\n\n"
    seen: list[str] = field(default_factory=list)

    async def score(self, problem: Problem, trajectories: Sequence[Trajectory], usage: Usage) -> list[Scores]:
        out = []
        for t in trajectories:
            self.seen.append(t.text)
            usage.verifier_calls += 1
            steps = steps_of(t, self.step_delimiter)
            values = [float(self.step_score(problem.question, steps[: i + 1])) for i in range(len(steps))]
            out.append(Scores(aggregate(values, self.aggregation) if values else 0.0, values))
        return out
