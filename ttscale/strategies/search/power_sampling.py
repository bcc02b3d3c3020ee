"""Power-distribution sampling (Karan and Du 2025, "Reasoning with Sampling: Your Base Model is
Smarter Than You Think", Algorithm 1): Metropolis-Hastings towards p^alpha of the model itself.

    x = ()                                      the generated ids; lq, lp: their stored logprobs
    for each of `blocks` blocks of B = max_tokens // blocks tokens:
        extend x by up to B tokens sampled from q = p at temperature 1/alpha
        repeat mcmc_steps times:
            i      ~ Uniform{0, ..., |x| - 1}             (any generated position, earlier blocks too)
            x'     = x[:i] + up to |x| - i tokens from q
            log r  = alpha * log p(x'[i:]) + log q(x[i:]) - alpha * log p(x[i:]) - log q(x'[i:])
            accept x' with probability min(1, exp(log r))
        stop once x has ended (end-of-sequence or a stop string)

Which logprob each quantity is, the one choice that silently changes the target if wrong:
- log q (the proposal): the logprob of each sampled token under the distribution it was SAMPLED
  from, i.e. after temperature 1/alpha (and top-k/top-p, if set): vLLM's *processed* logprobs
  (engine arg `logprobs_mode: processed_logprobs`, which the CLI sets for this search; a backend
  in raw mode is refused).
- log p (the target, times alpha): the model's *raw* logprob at temperature 1, from
  `Backend.score` (vLLM prompt logprobs, which skip every sampling processor).
Both are stored for the current sequence and overwritten on acceptance, as the reference does, so
each MCMC step costs one proposal and one scoring pass.

Reference-code choices kept as defaults: the current suffix enters the ratio only up to the
proposal's length (`mh_suffix: proposal`; a proposal that ends early is compared with the same
number of current tokens; `full` compares whole suffixes, the exact MH ratio over sequences of
different lengths); blocks 16, mcmc_steps 10, alpha 4 (the paper's; its T_max 3072, B 192).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace

import numpy as np

from ttscale.strategies.context import Context, derive_seed
from ttscale.types import Completion, Problem, SamplingParams, Trajectory

PROCESSED = "processed_logprobs"
SUFFIXES = ("proposal", "full")


def log_acceptance(alpha: float, lp_prop, lq_prop, lp_cur, lq_cur) -> float:
    """log r of the MH step from the current suffix to the proposed one: target p^alpha (raw lp),
    proposal q (processed lq)."""
    return alpha * sum(lp_prop) + sum(lq_cur) - alpha * sum(lp_cur) - sum(lq_prop)


@dataclass
class Chain:
    """The current sequence with its tokens' proposal (lq) and raw (lp) logprobs."""

    ids: list[int]
    lq: list[float]
    lp: list[float]
    finish_reason: str | None = None
    stop_reason: str | int | None = None

    def replace_from(self, at: int, ids, lq, lp, c: Completion) -> None:
        self.ids, self.lq, self.lp = self.ids[:at] + list(ids), self.lq[:at] + list(lq), self.lp[:at] + list(lp)
        self.finish_reason, self.stop_reason = c.finish_reason, c.stop_reason

    @property
    def ended(self) -> bool:
        return self.finish_reason == "stop"


@dataclass
class PowerSampling:
    needs_token_ids = True  # token ids from the backend (a server backend needs a tokenizer)
    needs_sampled_logprobs = True  # each sampled token's logprob, for the MH ratio (checked at build)
    n: int = 1  # independent chains (the paper: one per problem); the selection picks among them
    params: SamplingParams = SamplingParams(temperature=0.25)
    alpha: float = 4.0  # the power: the target is p^alpha, the proposal p at temperature 1/alpha
    blocks: int = 16  # the sequence is built in this many blocks of max_tokens // blocks tokens
    mcmc_steps: int = 10  # MH steps after each block
    mh_suffix: str = "proposal"  # proposal (reference) | full (see the module doc)

    logprobs_mode = PROCESSED  # the engine mode this search needs (the CLI starts the engine so)

    def __post_init__(self) -> None:
        if self.alpha < 1:
            raise ValueError(f"alpha={self.alpha!r} must be >= 1")
        if abs(self.params.temperature * self.alpha - 1) > 1e-6:
            raise ValueError(f"the proposal samples at temperature 1/alpha: set strategy.temperature={1 / self.alpha:g} "
                             f"(it is {self.params.temperature!r} with alpha={self.alpha:g})")
        if self.blocks < 1 or self.mcmc_steps < 0 or self.n < 1:
            raise ValueError("n and blocks must be >= 1 and mcmc_steps >= 0")
        if self.params.max_tokens < self.blocks:
            raise ValueError(f"max_tokens={self.params.max_tokens} gives no token to each of {self.blocks} blocks")
        if self.mh_suffix not in SUFFIXES:
            raise ValueError(f"mh_suffix={self.mh_suffix!r}; choose one of: {', '.join(SUFFIXES)}")
        self.params = replace(self.params, logprobs=0, n=1, keep_token_logprobs=True)

    @property
    def block_tokens(self) -> int:
        return self.params.max_tokens // self.blocks

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        ctx.require_logprobs_mode(self.logprobs_mode, "power sampling (its proposal's logprobs)")
        stats = {"proposals": 0, "accepted": 0}
        chains = await asyncio.gather(*(self.run_chain(ctx, c, stats) for c in range(self.n)))  # batched by the backend
        ctx.info.update({"mcmc_proposals": stats["proposals"], "mcmc_accepted": stats["accepted"],
                         "acceptance_rate": stats["accepted"] / stats["proposals"] if stats["proposals"] else None,
                         # the first chain's tokens under the proposal (processed) and the model (raw)
                         "log_q": sum(chains[0].lq), "log_p": sum(chains[0].lp), "tokens": len(chains[0].ids)})
        return [self._trajectory(ctx, chain) for chain in chains]

    async def run_chain(self, ctx: Context, index: int, stats: dict[str, int], visit=None) -> Chain:
        """One chain; `visit(chain)` (if given) sees its state after every MH step."""
        rng = np.random.default_rng(derive_seed(ctx.run_seed, ctx.problem.id, f"mcmc/{index}"))
        chain = Chain([], [], [])
        for block in range(self.blocks):
            key = f"chain{index}/block{block}"
            room = self.block_tokens if block < self.blocks - 1 else self.params.max_tokens - len(chain.ids)
            ids, lq, lp, c = await self._sample(ctx, chain.ids, room, key)
            chain.replace_from(len(chain.ids), ids, lq, lp, c)
            for step in range(self.mcmc_steps):
                t = len(chain.ids)
                if t == 0:
                    break
                at = int(rng.integers(0, t))
                ids, lq, lp, c = await self._sample(ctx, chain.ids[:at], t - at, f"{key}/mh{step}")
                stats["proposals"] += 1
                if not ids:
                    continue
                end = at + len(ids) if self.mh_suffix == "proposal" else t
                log_r = log_acceptance(self.alpha, lp, lq, chain.lp[at:end], chain.lq[at:end])
                if rng.random() < math.exp(min(log_r, 0.0)):
                    chain.replace_from(at, ids, lq, lp, c)
                    stats["accepted"] += 1
                if visit is not None:
                    visit(chain)
            if chain.ended:
                break
        return chain

    async def _sample(self, ctx: Context, prefix: list[int], max_tokens: int, key: str):
        """Up to max_tokens ids from q after prompt + prefix, with their proposal (processed) and raw logprobs."""
        prompt = ctx.prompt_ids().extend(prefix)
        (c,) = await ctx.generate(prompt, replace(self.params, max_tokens=max_tokens), key=key)
        ids = list(c.token_ids or ())
        if not ids:
            return [], [], [], c
        if not c.token_logprobs or len(c.token_logprobs) != len(ids):
            raise ValueError("power sampling needs each sampled token's logprob, and the backend returned none")
        lq = [t.logprob for t in c.token_logprobs]
        lp = await ctx.score(prompt, ids)
        return ids, lq, lp, c

    def _trajectory(self, ctx: Context, chain: Chain) -> Trajectory:
        text = ctx.backend.decode(chain.ids)
        if isinstance(chain.stop_reason, str) and chain.stop_reason in text:  # a stop string ended it
            text = text[: text.index(chain.stop_reason)]
        return Trajectory(text=text, num_tokens=len(chain.ids), finish_reason=chain.finish_reason or "length",
                          cumulative_logprob=sum(chain.lp))


METHODS = {"power_sampling": PowerSampling}  # strategy.search=power_sampling
