"""Diverse verifier tree search (DVTS; Beeching et al. 2024, search-and-learn).

    split the budget N into N / M independent subtrees; in each (all run at once):
        node <- the empty solution
        repeat: expand node into M next steps; score them; node <- the best
                until node is finished
        return the M children of its last round (the chosen one and its siblings)
    the final vote: score-weighted majority over all N returned solutions, each weighted by its
    last step's score (search-and-learn's `score` uses "last" whatever the search aggregation)

As in the reference, a subtree returns its final round's M siblings, so N solutions vote (not N / M);
siblings that did not finish carry no answer and do not vote. `return_siblings=False` returns only
each subtree's chosen solution (N / M candidates), a deviation kept as an option.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import ClassVar

from ttscale.strategies.context import Context
from ttscale.strategies.step.beam_search import score_with_lookahead
from ttscale.strategies.step.tree import Node, StepGenerator
from ttscale.types import Problem, Trajectory


@dataclass
class DVTS:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    verifier: object
    n: int = 8  # total expansions per round, over all subtrees; N solutions are returned
    beam_width: int = 4  # expansions per subtree per round; n / beam_width subtrees
    generator: StepGenerator = field(default_factory=StepGenerator)
    aggregation: str = "last"  # how a subtree picks its best child each round
    lookahead: int = 0  # greedy steps scored ahead (the reference scores current + lookahead text)
    return_siblings: bool = True  # reference: each subtree's final M siblings vote

    def __post_init__(self) -> None:
        if self.n % self.beam_width:
            raise ValueError(f"n={self.n} must be a multiple of beam_width={self.beam_width}")

    async def subtree(self, problem: Problem, ctx: Context, index: int) -> list[Node]:
        node, children = Node(f"t{index}"), []
        rounds = 0
        while not node.finished:
            children = await self.generator.expand(ctx, node, self.beam_width, f"dvts/{rounds}")
            await score_with_lookahead(self.generator, self.verifier, problem, ctx, children, self.lookahead,
                                       f"dvts/{rounds}")
            node = max(children, key=lambda c: c.value(self.aggregation))  # first of equals
            rounds += 1
        return children if self.return_siblings else [node]

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        subtrees = self.n // self.beam_width
        finals = await asyncio.gather(*(self.subtree(problem, ctx, i) for i in range(subtrees)))
        ctx.info.update(subtrees=subtrees, beam_width=self.beam_width)
        # each solution's vote weight: its last step's score (the reference's final aggregation)
        return [leaf.trajectory(leaf.value("last")) for group in finals for leaf in group]


METHODS = {"dvts": DVTS}  # strategy.search=dvts
