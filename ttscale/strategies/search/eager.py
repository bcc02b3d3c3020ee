"""EAGer-init (Scalena et al. 2025, "EAGer: Entropy-Aware GEneRation for Adaptive Inference-Time
Scaling"): one sequence per problem, which branches only where the model is unsure.

    sequences = [one stream from the prompt]
    for every generated token t of every sequence:
        H_t = entropy (nats) of the renormalised top-k distribution at t
        if H_t > threshold (dynamic: and above the 99th percentile of the problem's entropies so far)
           and fewer than n sequences exist:
            branch: a new sequence from the prefix before t (token ids, nothing re-rendered) whose
            token t is the top-2 token, while the parent keeps the top-1 (the authors' code)
    majority vote over the finished sequences

Defaults follow the authors' code (Omega-Reasoning/EAGer fork of DanielSc4/EAGer): top-20 logprobs,
entropy in nats, threshold 2.5, the dynamic percentile rule on, at most 32 sequences, and no
branching once the sequence has closed its reasoning (`</think>`). On a stream the token at t is
already sampled when its entropy is seen: when it was the top-1 (or top-2) token, the parent goes on
and the branch takes the other; when it was neither, the parent is stopped (its tokens stay counted)
and two sequences restart from the prefix, one with each, as the code's parent and branch would.
`branch_token: sample` instead lets the branch sample token t afresh.

Budget reallocation (`reallocate`, a second pass the runtime runs once every problem has had its
first): the budget the first pass left, n x problems - all sequences, is shared among the problems
that need exploration, as the authors' code does it:
- "adapt" (EAGer-adapt, label-free): the problems that hit the cap n; at most 3n more each.
- "labels" (EAGer, with the reference answers): the problems with no correct sequence yet, those at
  the cap first; at most n more each.
An even share each (floor; the remainder one each to the first in dataset order). A problem's extra
sequences come from fresh EAGer runs from its prompt until it has them; the threshold is lowered
10% from the third run on ("labels", for a problem under the cap: also 20% lower per run,
compounding), as the code. Each run asks for the sequences still missing (the code asks for all `extra` each time and
can overshoot). A problem whose first pass failed neither gives nor takes budget.

Not here: the code stops branching after 1000 lock-step tokens without a branch (it never triggers
with max_tokens <= 1000). The code advances all sequences in lock-step, one token each; here they
stream concurrently, so the dynamic percentile sees the entropies that have arrived so far and the
last free slots go to whichever sequence asks first: branch points depend on timing as well as on
the seeds. A replaced parent's tokens are counted (generated), forced tokens are not (not generated).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace

import numpy as np

from ttscale.backends.base import StreamFold
from ttscale.confidence import LN2, SERIES_KEYS, concat_series, series_stats
from ttscale.strategies.context import Context
from ttscale.types import Delta, Problem, Result, SamplingParams, Trajectory

BRANCH_TOKENS = ("top2", "sample")
REALLOCATE = ("none", "adapt", "labels")


@dataclass
class Sequence:
    key: str  # its path: "0", then "0@17" for the branch of "0" at token 17 (a stable seed key)
    prefix_ids: tuple[int, ...] = ()  # generated ids it starts from (inherited, and a forced token)
    prefix_series: dict[str, list[float]] = field(default_factory=lambda: {key: [] for key in SERIES_KEYS})
    fold: StreamFold | None = None
    replaced: bool = False  # stopped: two sequences restarted from its prefix
    prefix_text: str = ""

    @property
    def ids(self) -> tuple[int, ...]:
        return self.prefix_ids + tuple(self.fold.token_ids if self.fold else ())

    def series(self) -> dict[str, list[float]]:
        return concat_series([self.prefix_series, self.fold.stats.series()])


@dataclass
class EntropyBranching:
    needs_token_ids = True  # token ids from the backend (a server backend needs a tokenizer)
    needs_top_logprobs = True  # the entropy of each token's top-k (checked against the backend at build)
    n: int = 32  # the most sequences per problem (M)
    params: SamplingParams = SamplingParams(logprobs=20)
    threshold: float = field(default=2.5, metadata={"config": "entropy_threshold"})  # nats
    dynamic: bool = field(default=True, metadata={"config": "dynamic_threshold"})  # the code's percentile rule
    branch_token: str = "top2"
    no_branch_after: str | None = "</think>"
    reallocate: str = "none"  # none (EAGer-init) | adapt (EAGer-adapt) | labels (EAGer)

    def __post_init__(self) -> None:
        if self.reallocate not in REALLOCATE:
            raise ValueError(f"reallocate={self.reallocate!r}; choose one of: {', '.join(REALLOCATE)}")
        if self.branch_token not in BRANCH_TOKENS:
            raise ValueError(f"branch_token={self.branch_token!r}; choose one of: {', '.join(BRANCH_TOKENS)}")
        if not self.params.logprobs or (self.branch_token == "top2" and self.params.logprobs < 2):
            raise ValueError("EAGer needs top-k logprobs (k >= 2 for branch_token=top2): set strategy.logprobs "
                             "(the reference uses 20)")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        trajectories, run = await self._init(problem, ctx, self.n, self.threshold, "0")
        ctx.info.update({"sequences": len(trajectories), "branches": len(run.sequences) - 1,
                         "replaced": len(run.sequences) - len(trajectories), "branch_points": run.branch_points})
        return trajectories

    def allocate(self, results: list[Result]) -> dict[str, int]:
        """Extra sequences per problem id for the second pass (empty with reallocate=none)."""
        if self.reallocate == "none":
            return {}
        first = [r for r in results if r.error is None and "sequences" in r.info]
        left = sum(self.n - r.info["sequences"] for r in first)
        at_cap = [r for r in first if r.info["sequences"] >= self.n]
        if self.reallocate == "adapt":
            needy, cap = at_cap, 3 * self.n
        else:  # labels: no correct sequence yet; those at the cap first
            # with a reference, and every candidate graded wrong (an undecided check is not "unsolved")
            unsolved = [r for r in first if r.reference is not None and all(c.correct is False for c in r.candidates)]
            needy = [r for r in unsolved if r.info["sequences"] >= self.n] + \
                    [r for r in unsolved if r.info["sequences"] < self.n]
            cap = self.n
        if not needy or left <= 0:
            return {}
        share, remainder = divmod(left, len(needy))
        return {r.problem_id: min(share + (i < remainder), cap) for i, r in enumerate(needy)
                if share + (i < remainder) > 0}

    async def extend(self, problem: Problem, ctx: Context, extra: int, first: Result) -> list[Trajectory]:
        """`extra` more sequences from fresh EAGer runs (the second pass)."""
        ctx.info.update({k: first.info[k] for k in ("sequences", "branches", "replaced", "branch_points")
                         if k in first.info})
        under_cap = ctx.info.get("sequences", self.n) < self.n
        got: list[Trajectory] = []
        threshold, tries, used = self.threshold, 0, []
        while len(got) < extra:
            tries += 1  # the code: 20% lower per run (compounding) for an unsolved problem under the cap,
            threshold = threshold * 0.8 if self.reallocate == "labels" and under_cap else self.threshold
            if tries > 2:  # and 10% lower from the third run on
                threshold *= 0.9
            used.append(threshold)
            more, _ = await self._init(problem, ctx, extra - len(got), threshold, f"extra{tries}")
            got += more
        ctx.info["second_pass"] = {"extra": extra, "runs": tries, "sequences": len(got), "thresholds": used}
        return got

    async def _init(self, problem: Problem, ctx: Context, n: int, threshold: float,
                    key: str) -> tuple[list[Trajectory], _Run]:
        """One EAGer-init run: at most n sequences from the prompt."""
        run = _Run(replace(self, n=n, threshold=threshold), ctx, ctx.prompt_ids())
        run.start(Sequence(key))
        await run.wait()
        kept = [s for s in run.sequences if not s.replaced]
        trajectories = []
        for s in kept:
            c = s.fold.completion()
            text = c.text if not s.prefix_ids else ctx.backend.decode(s.ids)
            trajectories.append(Trajectory(text=text, num_tokens=len(s.ids), finish_reason=c.finish_reason,
                                           stats=series_stats(s.series(), self.params.stats) if s.ids else {}))
        return trajectories, run


class _Run:
    """One problem's sequences and the shared state their readers branch from."""

    def __init__(self, method: EntropyBranching, ctx: Context, base):
        self.m, self.ctx, self.base = method, ctx, base
        self.sequences: list[Sequence] = []
        self.tasks: set[asyncio.Task] = set()
        self.entropies: list[float] = []
        self.branch_points: list[str] = []

    def start(self, seq: Sequence) -> None:
        self.sequences.append(seq)
        self.tasks.add(asyncio.create_task(self.read(seq)))

    async def wait(self) -> None:
        try:
            while self.tasks:
                done, _ = await asyncio.wait(set(self.tasks), return_when=asyncio.FIRST_COMPLETED)
                self.tasks -= done
                for task in done:
                    task.result()  # a failed stream fails the problem (recorded by the runtime)
        finally:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def room(self) -> int:
        return self.m.n - sum(not s.replaced for s in self.sequences)

    async def read(self, seq: Sequence) -> None:
        params = replace(self.m.params, max_tokens=self.m.params.max_tokens - len(seq.prefix_ids))
        seq.fold = StreamFold(params.stats, keep_series=True)
        if params.max_tokens <= 0:
            seq.fold.add(Delta([], finish_reason="length"))
            return
        prompt = self.base.extend(seq.prefix_ids)
        seq.prefix_text = self.ctx.backend.decode(seq.prefix_ids) if seq.prefix_ids else ""
        async with contextlib.aclosing(self.ctx.stream(prompt, params, key=f"seq/{seq.key}")) as deltas:
            async for delta in deltas:
                before = seq.fold.num_tokens
                seq.fold.add(delta)
                if delta.top_logprobs is None:
                    raise ValueError("EAGer needs top-k logprobs, and the backend returned none")
                for j, top in enumerate(delta.top_logprobs):
                    if self.branch(seq, before + j, delta, j, top):
                        seq.fold.abort()
                        seq.replaced = True
                        return

    def branch(self, seq: Sequence, own: int, delta: Delta, j: int, top: list[float]) -> bool:
        """Branch at the stream's token `own` (j-th of `delta`) if its entropy is high; True when `seq`
        itself must stop. Its confidence and entropy come from the fold's running statistics."""
        stats = seq.fold.stats
        h = stats.entropies[own] * LN2
        at = len(seq.prefix_ids) + own  # the position in the whole sequence
        bar = self.m.threshold
        if self.m.dynamic and h > bar and self.entropies:  # the percentile of the entropies before this one
            bar = max(bar, float(np.percentile(self.entropies, 99)))
        self.entropies.append(h)
        if h <= bar or self.room() < 1:
            return False
        if self.m.no_branch_after and self.m.no_branch_after in seq.prefix_text + seq.fold.text:
            return False
        ids, series = seq.ids[:at], _cut(seq, at)
        self.branch_points.append(f"{seq.key}@{at}")
        if self.m.branch_token == "sample":
            self.start(Sequence(f"{seq.key}@{at}", ids, series))
            return False
        top_ids = delta.top_token_ids[j]
        sampled = delta.token_ids[j]
        if len(top_ids) < 2:
            return False
        forced = {top_ids[0]: 0, top_ids[1]: 1}
        position = stats.position(own)  # the position's statistics: the same whichever token is forced

        def with_token(k: int) -> tuple[tuple[int, ...], dict[str, list[float]]]:
            extra = {"sampled": [top[k]], **{name: [v] for name, v in position.items()}}
            return ids + (top_ids[k],), concat_series([series, extra])

        if sampled in forced:  # the parent holds one of the two: the branch takes the other
            self.start(Sequence(f"{seq.key}@{at}", *with_token(1 - forced[sampled])))
            return False
        # neither: restart as the code's parent (top-1) and branch (top-2); the parent stops
        seq.replaced = True
        self.start(Sequence(f"{seq.key}@{at}.1", *with_token(0)))
        if self.room() >= 1:
            self.start(Sequence(f"{seq.key}@{at}.2", *with_token(1)))
        return True


def _cut(seq: Sequence, at: int) -> dict[str, list[float]]:
    """The sequence's per-token series before generated token `at`."""
    whole = seq.series()
    return {name: values[:at] for name, values in whole.items()}


METHODS = {"eager": EntropyBranching}  # strategy.search=eager
