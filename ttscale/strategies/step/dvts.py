"""Diverse verifier tree search (DVTS; Beeching et al. 2024, search-and-learn).

    split the budget N into N / M independent subtrees; in each (all run at once):
        node <- the empty solution
        repeat: expand node into M next steps; score them; node <- the best
                until node is finished
    return each subtree's finished solution

Only finished solutions are returned: search-and-learn returns unfinished ones too, which then fail
to parse (its issue #57). Every step is capped by max_steps, so each subtree does finish.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ttscale.strategies.context import Context
from ttscale.strategies.step.beam_search import score_with_lookahead
from ttscale.strategies.step.tree import Node, StepGenerator, finished_trajectories
from ttscale.types import Problem, Trajectory


@dataclass
class DVTS:
    verifier: object
    n: int = 8  # total expansions per round, over all subtrees
    beam_width: int = 4  # expansions per subtree per round; n / beam_width subtrees
    generator: StepGenerator = field(default_factory=StepGenerator)
    aggregation: str = "last"
    lookahead: int = 0

    def __post_init__(self) -> None:
        if self.n % self.beam_width:
            raise ValueError(f"n={self.n} must be a multiple of beam_width={self.beam_width}")

    async def subtree(self, problem: Problem, ctx: Context, index: int) -> Node:
        node = Node(f"t{index}")
        rounds = 0
        while not node.finished:
            children = await self.generator.expand(ctx, node, self.beam_width, f"dvts/{rounds}")
            await score_with_lookahead(self.generator, self.verifier, problem, ctx, children, self.lookahead,
                                       f"dvts/{rounds}")
            node = max(children, key=lambda c: c.value(self.aggregation))  # first of equals
            rounds += 1
        return node

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        subtrees = self.n // self.beam_width
        leaves = await asyncio.gather(*(self.subtree(problem, ctx, i) for i in range(subtrees)))
        ctx.info.update(subtrees=subtrees, beam_width=self.beam_width)
        return finished_trajectories(list(leaves), self.aggregation)
