"""Parallel sampling: N independent samples of the full solution in one backend call."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ttscale.strategies.context import Context
from ttscale.types import Problem, SamplingParams, Trajectory


@dataclass
class ParallelSampling:
    n: int = 8
    params: SamplingParams = SamplingParams()
    keeps_series = True  # its samples carry the per-token series when the params ask (a tail-window selection)

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        completions = await ctx.generate(ctx.prompt, replace(self.params, n=self.n))
        return [Trajectory.from_completion(c) for c in completions]


METHODS = {"parallel": ParallelSampling}  # strategy.search=parallel
