"""Value-guided block search (Wang et al. 2025, "Value-Guided Search for Efficient Chain-of-Thought
Reasoning"): beam search whose steps are fixed blocks of B tokens, so no notion of "step" is needed.

    beams <- the empty solution expanded into N blocks
    repeat: score each new block's partial solution with the value model
            finished beams are set aside (stop once N are finished)
            keep the K best unfinished; expand each into N / K next blocks
    final answer: weighted majority vote over the finished beams, weighted by value

K = beam_width here is the number of beams KEPT (the paper's beam width), N = n the samples per
round. Any verifier that scores a partial solution serves as the value model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ttscale.strategies.context import Context
from ttscale.strategies.step.beam_search import BeamSearch
from ttscale.strategies.step.tree import StepGenerator
from ttscale.types import Problem, Trajectory


@dataclass
class ValueGuidedBlockSearch:
    verifier: object
    n: int = 8  # blocks sampled per round
    beam_width: int = 2  # beams kept per round
    block_tokens: int = 64
    generator: StepGenerator = field(default_factory=StepGenerator)

    def __post_init__(self) -> None:
        if self.n % self.beam_width:
            raise ValueError(f"n={self.n} must be a multiple of beam_width={self.beam_width}")
        blocks = replace(self.generator, block_tokens=self.block_tokens)
        # keeping K of N and expanding each into N / K is beam search with M = N / K
        self._beam = BeamSearch(self.verifier, self.n, self.n // self.beam_width, blocks, aggregation="last")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        trajectories = await self._beam(problem, ctx)
        ctx.info.update(beam_width=self.beam_width, block_tokens=self.block_tokens)
        return trajectories
