"""Sequential refinement (Sharma et al. 2025, "The Sequential Edge: Inverse-Entropy Voting Beats
Parallel Self-Consistency at Matched Compute").

    for each of `chains` chains (all at once):
        attempt 1 <- the problem
        attempt r <- the problem, then every earlier attempt of the chain, each followed by the
                     request to check and improve it (context="accumulate": each attempt builds on all
                     previous reasoning, the paper's context accumulation); context="previous" shows only
                     the chain's last attempt
    candidates: every round's attempt of every chain (vote="all_rounds") or each chain's last (vote="final")

chains x rounds samples in all, the same count as a parallel run of n = chains x rounds; pair with
select=inverse_entropy as in the paper. Which attempts vote is not spelled out in the text we could
check; "all_rounds" is the default and "final" the alternative, both named in the config.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from ttscale.strategies.context import Context
from ttscale.types import Problem, SamplingParams, Trajectory

REFINE = ("Here is your previous solution. Check it step by step, correct any mistake, and give an "
          "improved solution with the final answer within \\boxed{}.")
CONTEXTS = ("accumulate", "previous")
VOTES = ("all_rounds", "final")


@dataclass
class SequentialRefinement:
    n: int = 8  # samples in all: chains x rounds
    chains: int = 2
    params: SamplingParams = SamplingParams()
    refine_prompt: str | None = None  # None: REFINE
    context: str = "accumulate"
    vote: str = "all_rounds"

    def __post_init__(self) -> None:
        if self.n % self.chains:
            raise ValueError(f"n={self.n} must be a multiple of chains={self.chains} (rounds = n / chains)")
        self.rounds = self.n // self.chains
        self.refine_prompt = self.refine_prompt or REFINE
        if self.context not in CONTEXTS:
            raise ValueError(f"context={self.context!r}; choose one of: {', '.join(CONTEXTS)}")
        if self.vote not in VOTES:
            raise ValueError(f"vote={self.vote!r}; choose one of: {', '.join(VOTES)}")

    def messages(self, base: list, attempts: list[Trajectory]) -> list:
        shown = attempts if self.context == "accumulate" else attempts[-1:]
        turns = [m for a in shown for m in ({"role": "assistant", "content": a.text},
                                            {"role": "user", "content": self.refine_prompt})]
        return [*base, *turns]

    async def _chain(self, index: int, ctx: Context) -> list[Trajectory]:
        base = ctx.prompt
        if isinstance(base, str):
            raise ValueError("sequential refinement needs a chat model (the previous attempt is shown as a turn)")
        attempts: list[Trajectory] = []
        for round_ in range(self.rounds):
            (completion,) = await ctx.generate(self.messages(base, attempts), replace(self.params, n=1),
                                               key=f"chain{index}/round{round_}")
            attempts.append(Trajectory.from_completion(completion))
        return attempts

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        chains = await asyncio.gather(*(self._chain(i, ctx) for i in range(self.chains)))
        ctx.info.update(chains=self.chains, rounds=self.rounds, context=self.context, vote=self.vote)
        if self.vote == "final":
            return [attempts[-1] for attempts in chains]
        return [t for attempts in chains for t in attempts]


METHODS = {"sequential": SequentialRefinement}  # strategy.search=sequential
