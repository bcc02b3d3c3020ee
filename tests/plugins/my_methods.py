"""A user's own methods, outside ttscale, plugged into the CLI by import path (tests/test_registry.py).

Each is one dataclass: its fields are its config keys (`+strategy.options.keep=2`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ttscale import SamplingParams, Scores, Traits, Trajectory
from ttscale.strategies import Context


@dataclass
class FirstOfN:
    """A search: n samples, only the first `keep` of them are candidates."""

    n: int = 4
    params: SamplingParams = SamplingParams()
    keep: int = 1

    async def __call__(self, problem, ctx: Context) -> list[Trajectory]:
        completions = await ctx.generate(ctx.prompt, replace(self.params, n=self.n))
        return [Trajectory.from_completion(c) for c in completions[: self.keep]]


@dataclass
class Brevity:
    """A verifier: shorter solutions score higher, in (0, 1]."""

    scale: float = 10.0
    traits = Traits()

    async def score(self, problem, trajectories: Sequence[Trajectory], usage) -> list[Scores]:
        usage.verifier_calls += len(trajectories)
        return [Scores(self.scale / (self.scale + t.num_tokens)) for t in trajectories]
