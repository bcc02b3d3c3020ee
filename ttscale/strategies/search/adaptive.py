"""Adaptive self-consistency: sample in batches and stop once the leading answer is settled.

Stopping rules, checked after each batch (and never before `min_samples` samples):
- "supermajority": the leader holds at least `threshold` of the answered samples.
- "beta" (Aggarwal et al. 2023, "Let's Sample Step by Step: Adaptive-Consistency"): with v1 votes
  for the leader and v2 for the runner-up, stop when P(p1 > p2) >= threshold, where p1 / (p1 + p2)
  ~ Beta(v1 + 1, v2 + 1).
The samples not drawn are recorded as `samples_saved` in the result's info.

Modes (`adaptive_mode`):
- "rounds" (AdaptiveConsistency's): batches of `batch` samples, one after another; the rule is
  checked after each batch.
- "cancel_early" (its_hub's BetaSelfConsistency on streams): all n samples start at once and stream;
  each time one finishes the rule is checked over the finished ones, and once the leader is settled
  the samples still streaming are aborted (their tokens so far are counted in usage). The same rule
  and threshold; no batch waits for its slowest sample.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field, replace

from ttscale.backends.base import StreamFold
from ttscale.strategies.context import Context
from ttscale.types import Completion, Problem, SamplingParams, Trajectory

RULES = ("supermajority", "beta")
MODES = ("rounds", "cancel_early")


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
    keeps_series = True  # its samples carry the per-token series when the params ask (a tail-window selection)
    batch: int = 4
    rule: str = field(default="beta", metadata={"config": "stop_rule"})
    threshold: float = 0.95
    min_samples: int = 4
    # rounds (AdaptiveConsistency: batch after batch) | cancel_early (every sample streams at once, the
    # rest aborted once the leader is settled: its_hub's BetaSelfConsistency)
    mode: str = field(default="rounds", metadata={"config": "adaptive_mode"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"adaptive_mode={self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.rule not in RULES:
            raise ValueError(f"stop_rule={self.rule!r}; choose one of: {', '.join(RULES)}")
        if self.batch < 1:
            raise ValueError(f"batch={self.batch!r} must be >= 1")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        if self.mode == "cancel_early":
            return await self.cancel_early(problem, ctx)
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

    async def cancel_early(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        """Every sample streams at once; the rule is checked as each one finishes; the rest are aborted."""
        pending = {asyncio.create_task(self._streamed(ctx, i)) for i in range(self.n)}
        finished: list[tuple[int, Trajectory]] = []
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: t.result()[0]):
                    index, completion = task.result()
                    t = Trajectory.from_completion(completion)
                    t.answer = ctx.grader.extract(t.text, problem,
                                                  finished=t.finish_reason not in ("length", "abort", None))
                    finished.append((index, t))
                if len(finished) < self.min_samples:
                    continue
                groups = await ctx.grader.agroup([t.answer for _, t in finished], problem)
                if leader_settled(Counter(g for g in groups if g is not None), self.rule, self.threshold):
                    break
        finally:
            for task in pending:  # settled: the samples still streaming are aborted
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        ctx.info.update(samples_drawn=len(finished), samples_aborted=len(pending),
                        samples_saved=self.n - len(finished))
        return [t for _, t in finished]

    async def _streamed(self, ctx: Context, index: int) -> tuple[int, Completion]:
        fold = StreamFold(self.params.stats, keep_series=self.params.keep_series)
        async with contextlib.aclosing(ctx.stream(ctx.prompt, self.params, key=f"sample/{index}")) as deltas:
            async for delta in deltas:
                fold.add(delta)
        return index, fold.completion()


METHODS = {"adaptive": AdaptiveSampling}  # strategy.search=adaptive
