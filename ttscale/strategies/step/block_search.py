"""Value-guided block search (Wang et al. 2025, "Value-Guided Search for Efficient Chain-of-Thought
Reasoning"): beam search whose steps are fixed blocks of B tokens, so no notion of "step" is needed.

    K <- N / beam_width beams, all the empty solution
    repeat while some beam is unfinished:
        every unfinished beam is expanded into beam_width next blocks; the value model scores each
        the best (number of unfinished beams) children over ALL of them replace the unfinished
            beams (one strong parent may fill several slots); finished beams keep their slots
    final pool: the K beams; answer: weighted majority vote, weighted by their value

As in the reference (`generate_beam` in value-guided-search): N = n is the number of blocks
sampled in the first round, beam_width the children of each beam, so n=8, beam_width=2 keeps 4
beams with 2 children each; beams are never refilled as they finish, and blocks that were not
selected never join the final pool. Any verifier that scores a partial solution serves as the
value model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from ttscale.strategies.context import Context
from ttscale.strategies.step.tree import Node, StepGenerator, score_nodes
from ttscale.types import Problem, Trajectory


@dataclass
class ValueGuidedBlockSearch:
    step_wise: ClassVar[bool] = True  # given a verifier and a step generator
    verifier: object
    n: int = 8  # blocks sampled per round (budget); n / beam_width beams
    beam_width: int = 2  # children of each beam per round
    block_tokens: int = 64
    generator: StepGenerator = field(default_factory=StepGenerator)

    def __post_init__(self) -> None:
        if self.n % self.beam_width:
            raise ValueError(f"n={self.n} must be a multiple of beam_width={self.beam_width}")
        self.blocks = replace(self.generator, block_tokens=self.block_tokens)

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        beams = [Node("0")] * (self.n // self.beam_width)
        rounds = 0
        while not all(b.finished for b in beams):
            active = [i for i, b in enumerate(beams) if not b.finished]
            distinct = {beams[i].id: beams[i] for i in active}  # copies of one beam share a request
            copies = {node_id: sum(beams[i].id == node_id for i in active) for node_id in distinct}
            groups = await self.blocks.expand_all(
                ctx, [(node, copies[node_id] * self.beam_width) for node_id, node in distinct.items()],
                f"block/{rounds}")
            children = [c for group in groups for c in group]
            await score_nodes(self.verifier, problem, children, ctx)
            best = sorted(children, key=lambda c: -c.value("last"))[: len(active)]  # stable: first of equals
            for slot, child in zip(active, best):
                beams[slot] = child
            rounds += 1
        ctx.info.update(beams=len(beams), beam_width=self.beam_width, block_tokens=self.block_tokens, rounds=rounds)
        return [b.trajectory(b.value("last")) for b in beams]


METHODS = {"block_search": ValueGuidedBlockSearch}  # strategy.search=block_search
