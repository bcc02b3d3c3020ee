"""Sequential refinement (Sharma et al. 2025, "The Sequential Edge"): `chains` chains of `rounds`
attempts each; every attempt after the first sees the chain's previous solution and is asked to check
and improve it. chains x rounds samples in all, the same count as a parallel run of n = chains x
rounds. Each chain's last attempt is its candidate; pair with select=inverse_entropy as in the paper.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from ttscale.strategies.context import Context
from ttscale.types import Problem, SamplingParams, Trajectory

REFINE = ("Here is your previous solution. Check it step by step, correct any mistake, and give an "
          "improved solution with the final answer within \\boxed{}.")


@dataclass
class SequentialRefinement:
    chains: int = 2
    rounds: int = 4
    params: SamplingParams = SamplingParams()
    refine_prompt: str = REFINE

    async def _chain(self, index: int, ctx: Context) -> Trajectory:
        base = ctx.prompt
        if isinstance(base, str):
            raise ValueError("sequential refinement needs a chat model (the previous attempt is shown as a turn)")
        last: Trajectory | None = None
        for round_ in range(self.rounds):
            messages = base if last is None else [*base, {"role": "assistant", "content": last.text},
                                                  {"role": "user", "content": self.refine_prompt}]
            (completion,) = await ctx.generate(messages, replace(self.params, n=1), key=f"chain{index}/round{round_}")
            last = Trajectory.from_completion(completion)
        assert last is not None
        return last

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        finals = await asyncio.gather(*(self._chain(i, ctx) for i in range(self.chains)))
        ctx.info["chains"], ctx.info["rounds"] = self.chains, self.rounds
        return list(finals)
