"""Adaptive self-consistency: sample in batches and stop once the leading answer is settled.

Stopping rules, checked after each batch (and never before `min_samples` samples):
- "supermajority": the leader holds at least `threshold` of the answered samples.
- "beta" (Aggarwal et al. 2023, "Let's Sample Step by Step: Adaptive-Consistency"): with v1 votes
  for the leader and v2 for the runner-up, stop when P(p1 > p2) >= threshold, where p1 / (p1 + p2)
  ~ Beta(v1 + 1, v2 + 1).
The samples not drawn are recorded as `samples_saved` in the result's info.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from ttscale.strategies.context import Context
from ttscale.types import Problem, SamplingParams, Trajectory

RULES = ("supermajority", "beta")


def leader_settled(counts: Counter, rule: str, threshold: float) -> bool:
    """Whether the vote counts (answer group -> votes) have a settled leader under `rule`."""
    top = counts.most_common(2)
    if not top:
        return False
    v1 = top[0][1]
    v2 = top[1][1] if len(top) > 1 else 0
    if rule == "supermajority":
        return v1 / sum(counts.values()) >= threshold
    from scipy.stats import beta

    return float(beta.sf(0.5, v1 + 1, v2 + 1)) >= threshold


@dataclass
class AdaptiveSampling:
    n: int = 16  # the most samples drawn
    params: SamplingParams = SamplingParams()
    batch: int = 4
    rule: str = field(default="beta", metadata={"config": "stop_rule"})
    threshold: float = 0.95
    min_samples: int = 4

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"stop_rule={self.rule!r}; choose one of: {', '.join(RULES)}")
        if self.batch < 1:
            raise ValueError(f"batch={self.batch!r} must be >= 1")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        trajectories: list[Trajectory] = []
        while len(trajectories) < self.n:
            k = min(self.batch, self.n - len(trajectories))
            for completion in await ctx.generate(ctx.prompt, replace(self.params, n=k)):
                t = Trajectory.from_completion(completion)
                t.answer = ctx.grader.extract(t.text, problem, finished=t.finish_reason not in ("length", "abort", None))
                trajectories.append(t)
            if len(trajectories) < self.min_samples:
                continue
            groups = await ctx.grader.agroup([t.answer for t in trajectories], problem)
            if leader_settled(Counter(g for g in groups if g is not None), self.rule, self.threshold):
                break
        ctx.info["samples_drawn"] = len(trajectories)
        ctx.info["samples_saved"] = self.n - len(trajectories)
        return trajectories


METHODS = {"adaptive": AdaptiveSampling}  # strategy.search=adaptive
