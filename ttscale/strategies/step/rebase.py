"""REBASE, reward-balanced search (Wu et al. 2024, "An Empirical Analysis of Compute-Optimal
Inference for Problem-Solving with Language Models").

    frontier <- the empty solution; budget N
    repeat (one depth at a time):
        W <- N - (solutions finished so far)          the expansions still to give out
        share W among the frontier in proportion to softmax(reward / T)   (rounded, summing to W)
        expand each frontier node into its share of next steps; score them
        finished children are collected; the unfinished ones are the next frontier
    until N solutions are finished or the frontier is empty
    final answer: weighted majority vote over the finished solutions

Rounding (`strategy.options.rounding`): "ceil", the reference code's (thu-wyz/rebase,
`select_softmax`): nodes in descending reward each take ceil(W_left * e_i / S_left) of what is left,
which favours the best nodes and spends exactly W; "largest_remainder" gives the shares closest to
proportional (a deviation, kept as an option).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ttscale.strategies.context import Context
from ttscale.strategies.step.resampling import ceil_shares, softmax_weights, split_budget
from ttscale.strategies.step.tree import Node, StepGenerator, finished_trajectories, score_nodes
from ttscale.types import Problem, Trajectory


@dataclass
class Rebase:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    verifier: object
    n: int = 8  # solutions to finish (the sampling budget)
    generator: StepGenerator = field(default_factory=StepGenerator)
    # of the balancing softmax (the paper tunes it per task)
    temperature: float = field(default=0.2, metadata={"config": "weight_temperature"})
    aggregation: str = "last"
    rounding: str = "ceil"  # the reference's; or "largest_remainder"

    def __post_init__(self) -> None:
        if self.rounding not in ("ceil", "largest_remainder"):
            raise ValueError(f"rounding={self.rounding!r}; choose one of: ceil, largest_remainder")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        frontier = [Node("0")]
        finished: list[Node] = []
        depth = 0
        while frontier and len(finished) < self.n:
            budget = self.n - len(finished)
            values = [n.value(self.aggregation) if n.step_scores else 0.0 for n in frontier]
            weights = softmax_weights(values, self.temperature)
            shares = ceil_shares(budget, weights) if self.rounding == "ceil" else split_budget(budget, weights)
            groups = await self.generator.expand_all(ctx, list(zip(frontier, shares)), f"rebase/{depth}")
            children = [c for group in groups for c in group]
            await score_nodes(self.verifier, problem, children, ctx)
            finished += [c for c in children if c.finished]
            frontier = [c for c in children if not c.finished]
            depth += 1
        ctx.info.update(depth=depth, budget=self.n)
        return finished_trajectories(finished, self.aggregation)


METHODS = {"rebase": Rebase}  # strategy.search=rebase
