"""DeepConf online (Fu et al. 2025, "Deep Think with Confidence", Algorithm 2).

    warm-up:  N_init full traces; s = Percentile_{100-eta} of their lowest group confidences
    online:   while consensus < tau and traces < B:
                  stream a trace; stop it the moment a full window's group confidence is < s
                  a trace that finishes joins the vote
    vote:     confidence-weighted (lowest group confidence) over the kept traces

Token confidence is -mean(top-k logprobs) and a group is a sliding window of `window` tokens
(ttscale.confidence.RunningStats; the check starts once a window is full, as in the reference
code's logits processor). Consensus is the paper's: the weighted vote share of the leading answer
over T, every trace that was not stopped (the warm-up traces included), checked each time a trace
finishes. The final vote leaves out the traces whose lowest group confidence is below s (warm-up
traces, and finished ones shorter than a window, which are one group of all their tokens), as the
reference code relabels them; `final_vote: all` lets all of T vote, as the paper's pseudo-code reads.

Deviations from the reference code: the code streams all B - N_init traces at once and never
checks consensus (tau: null does the same; `parallel` caps the traces in flight, default 8, so that
consensus can stop sampling as the paper's sequential loop does; which traces are in T when it is
reached then depends on their finishing order, and the traces still streaming are aborted, their
tokens counted). The code's reported answer is a plain majority over the traces that passed
(`select=majority`); its weighted vote, and the paper's, is the config's default. Token confidence is
the exact top-k mean for the threshold and the stop alike (the code's threshold averages vLLM's
returned list, which can hold the sampled token beside the top 20, so its s sits slightly higher).
Answers are grouped by math equivalence, not by string.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from ttscale.backends.base import StreamFold
from ttscale.strategies.context import Context
from ttscale.types import Completion, Problem, SamplingParams, Trajectory

CONFIDENCE = "lowest_group_confidence"


def threshold(lowest: list[float], eta: float) -> float:
    """s: the (100 - eta)th percentile (numpy's linear interpolation, as the reference) of the warm-up
    traces' lowest group confidences: eta=10 keeps about the top 10% (DeepConf-low)."""
    return float(np.percentile(lowest, 100.0 - eta))


@dataclass
class DeepConfOnline:
    needs_token_ids = True  # token ids from the backend (a server backend needs a tokenizer)
    needs_top_logprobs = True  # group confidences from each token's top-k (checked at build)
    keeps_series = True  # its samples carry the per-token series when the params ask (a tail-window selection)
    n: int = 64  # the budget B: the most traces, warm-up included
    params: SamplingParams = SamplingParams(logprobs=20)
    warmup: int = 16  # N_init (paper and code)
    eta: float = 10.0  # percent kept: 10 = DeepConf-low, 90 = DeepConf-high
    tau: float | None = 0.95  # consensus that stops sampling; None: never (the reference code)
    parallel: int = 8  # traces streamed at once after the warm-up
    vote: str = field(default="passed", metadata={"config": "final_vote"})  # passed: traces at or above s vote (the code) | all: every trace of T (the paper)

    def __post_init__(self) -> None:
        if not 0 < self.eta < 100:
            raise ValueError(f"eta={self.eta!r} must be in (0, 100)")
        if self.tau is not None and not 0 < self.tau <= 1:
            raise ValueError(f"tau={self.tau!r} must be in (0, 1], or null (no consensus stop)")
        if not 1 <= self.warmup <= self.n:
            raise ValueError(f"warmup={self.warmup!r} must be in [1, n={self.n}]")
        if self.vote not in ("passed", "all"):
            raise ValueError(f"vote={self.vote!r}; choose one of: passed, all")
        if self.parallel < 1:
            raise ValueError(f"parallel={self.parallel!r} must be >= 1")
        if not self.params.logprobs:
            raise ValueError("DeepConf needs top-k logprobs: set strategy.logprobs (the reference uses 20)")
        if self.params.stats.window >= self.params.max_tokens:
            warnings.warn(f"deepconf_online: no trace can fill a {self.params.stats.window}-token window within "
                          f"max_tokens={self.params.max_tokens}, so none is stopped online (only the threshold "
                          "filter and consensus act); set strategy.stats_window below max_tokens", stacklevel=2)

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        warm = await ctx.generate(ctx.prompt, replace(self.params, n=self.warmup), key="warmup")
        warm = [c for c in warm if c.num_tokens > 0]  # an empty trace has no confidence (and no answer)
        if not warm:
            raise ValueError("every warm-up trace is empty (does the prompt fill the context?): no threshold")
        s = threshold([_confidence(c) for c in warm], self.eta)
        ctx.decide("threshold", value=s, eta=self.eta, warmup=[_confidence(c) for c in warm])
        pool = [self._trajectory(c, problem, ctx) for c in warm]  # T: every trace not stopped
        stopped = 0
        consensus = await self._consensus(pool, problem, ctx)
        launched = self.warmup
        running: set[asyncio.Task] = set()
        try:
            while True:
                settled = self.tau is not None and consensus >= self.tau
                while not settled and launched < self.n and len(running) < self.parallel:
                    running.add(asyncio.create_task(self._trace(ctx, launched, s)))
                    launched += 1
                if not running:
                    break
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: t.result()[0]):
                    _, completion, was_stopped = task.result()
                    if was_stopped:
                        stopped += 1
                    elif completion.num_tokens > 0:
                        pool.append(self._trajectory(completion, problem, ctx))
                consensus = await self._consensus(pool, problem, ctx)
                ctx.decide("consensus", value=consensus, tau=self.tau, traces=len(pool))
                if self.tau is not None and consensus >= self.tau:
                    break
        finally:
            if running:
                ctx.decide("aborted", why="consensus", traces=len(running))
            for task in running:  # consensus reached: abort the traces still streaming
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        voters = [t for t in pool if self.vote == "all" or t.stats[CONFIDENCE] >= s]
        ctx.info.update({"threshold": s, "consensus": consensus, "traces_launched": launched,
                         "traces_stopped": stopped, "traces_aborted_at_consensus": len(running),
                         "traces_below_threshold": len(pool) - len(voters), "traces_not_sampled": self.n - launched})
        return voters

    async def _trace(self, ctx: Context, index: int, s: float) -> tuple[int, Completion, bool]:
        """One streamed trace, stopped the moment a full window's group confidence falls below s."""
        fold = StreamFold(self.params.stats, keep_series=self.params.keep_series)
        stopped = False
        async with contextlib.aclosing(ctx.stream(ctx.prompt, self.params, key=f"trace/{index}")) as deltas:
            async for delta in deltas:
                fold.add(delta)
                low = fold.stats.lowest_group_confidence
                if low is not None and low < s:  # in its last delta too: the reference ends it there
                    if fold.finish_reason is None:
                        fold.abort()
                    stopped = True
                    ctx.decide("aborted", why="confidence", trace=f"trace/{index}", confidence=low, threshold=s,
                               tokens=fold.completion().num_tokens)
                    break
        return index, fold.completion(), stopped

    def _trajectory(self, completion: Completion, problem: Problem, ctx: Context) -> Trajectory:
        t = Trajectory.from_completion(completion)
        t.answer = ctx.grader.extract(t.text, problem, finished=t.finish_reason not in ("length", "abort", None))
        return t

    async def _consensus(self, voters: list[Trajectory], problem: Problem, ctx: Context) -> float:
        """The leading answer's share of the confidence-weighted vote over T (0 with no answer yet)."""
        groups = await ctx.grader.agroup([t.answer for t in voters], problem)
        totals: dict[int, float] = {}
        for t, g in zip(voters, groups):
            if g is not None:
                totals[g] = totals.get(g, 0.0) + t.stats[CONFIDENCE]
        total = sum(totals.values())
        return max(totals.values()) / total if total > 0 else 0.0


def _confidence(completion: Completion) -> float:
    value = completion.stats.get(CONFIDENCE)
    if value is None or math.isnan(value):
        raise ValueError("DeepConf needs each trace's lowest group confidence, and the backend returned no "
                         "top-k logprobs (use backend=vllm with strategy.logprobs >= 1)")
    return value


METHODS = {"deepconf_online": DeepConfOnline}  # strategy.search=deepconf_online
