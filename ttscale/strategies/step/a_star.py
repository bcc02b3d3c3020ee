"""A*-decoding (Chatziveroglou 2025, "A*-Decoding: Token-Efficient Inference Scaling").

States are partial solutions; a PRM-style verifier gives each newest step a reward r in [0, 1].

    h(s) = 1 - r(s)                                  heuristic: how far from a good solution
    g(s) = g_weight * mean(1 - r) over s's earlier steps   cost of the path so far
    f(s) = g(s) + h(s)
    frontier <- {empty solution}
    while the expansion budget lasts:
        pop the state with the smallest f (ties: the earlier one)
        if it is complete: return it                 (the first complete state popped)
        sample k next steps from it, score them, push them
    budget spent: the best complete state on the frontier; if none is complete, NO solution (the
        result records "no finished solution"; the best partial state is kept in info["partial"])

g uses the mean (not the sum) of step costs so that long solutions are not penalised for their
length alone. `expand_per_round` > 1 pops that many states at once (a batched variant). Tokens and
verifier passes are reported in usage: the paper's claim is fewer of both than best-of-N or PF.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from ttscale.strategies.context import Context
from ttscale.strategies.step.tree import Node, StepGenerator, score_nodes
from ttscale.types import Problem, Trajectory


def priority(node: Node, g_weight: float = 1.0) -> float:
    """f = g + h; the empty solution has f = 0 (it is expanded first)."""
    if not node.step_scores:
        return 0.0
    *earlier, last = node.step_scores
    g = g_weight * (sum(1.0 - r for r in earlier) / len(earlier)) if earlier else 0.0
    return g + (1.0 - last)


@dataclass
class AStarDecoding:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    needs_probability_scores: ClassVar[bool] = True  # h = 1 - r: rewards must be in [0, 1]
    verifier: object
    n: int = 16  # expansion budget: states expanded at most
    k: int = 4  # next steps sampled per expansion
    generator: StepGenerator = field(default_factory=StepGenerator)
    g_weight: float = 1.0
    expand_per_round: int = 1

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        order = itertools.count()
        frontier: list[tuple[float, int, Node]] = [(0.0, next(order), Node("0"))]
        expansions = 0
        while frontier and expansions < self.n and not frontier[0][2].finished:
            popped = []
            while frontier and not frontier[0][2].finished and len(popped) < min(self.expand_per_round,
                                                                                 self.n - expansions):
                popped.append(heapq.heappop(frontier)[2])
            groups = await self.generator.expand_all(ctx, [(node, self.k) for node in popped], f"astar/{expansions}")
            expansions += len(popped)
            children = [c for group in groups for c in group]
            await score_nodes(self.verifier, problem, children, ctx)
            for child in children:
                heapq.heappush(frontier, (priority(child, self.g_weight), next(order), child))
        # the complete state on top of the frontier; budget spent: the best complete one, else none
        done = [entry for entry in frontier if entry[2].finished]
        goal = min(done)[2] if done else None
        ctx.info.update(expansions=expansions, k=self.k, found=goal is not None)
        if goal is None:
            if frontier:
                ctx.info["partial"] = min(frontier)[2].text[-2000:]
            return []
        ctx.info["f"] = priority(goal, self.g_weight)
        return [goal.trajectory(goal.value("last"))]


METHODS = {"a_star": AStarDecoding}  # strategy.search=a_star
