"""Dynamic early exit from one reasoning trace by a trial answer (DEER; Yang et al. 2025, arXiv
2504.15895; the authors' code: iie-ycx/DEER, vllm-deer.py). By token ids (nothing is re-rendered):

    ids = prompt + thinking_start
    loop:
        think until a transition (`transition`, the code's "Wait"), the end of thinking
        (`thinking_stop`) or the thinking budget (think_ratio x max_tokens), by token ids
        ended by itself or by the budget:                                  leave the loop
        at a transition (at most max_probes of them; then thinking runs to its end):
            trial <- the reasoning so far + probe_prefix ("\\n**Final Answer**\\n\\boxed"), at most
                     probe_tokens, stopped where the box closes, with its tokens' logprobs
            confidence <- the mean probability of the trial's tokens (policy avg1; avg2: geometric; min)
            confidence > threshold, or the budget nearly spent (50 tokens left):   leave the loop
            else: the transition is put back and thinking goes on
    ids += thinking_end (the model's; the code's "\\n</think>\\n\\n"); the answer is sampled with what is
    left of max_tokens

As the code: the trial answer only decides when to stop (the answer is sampled after the end of
thinking, not the trial); the probe samples with the engine's defaults (temperature 1, top_p 1) and
its tokens' sampled-token probabilities are averaged, the first token left out; an end of sequence
inside the reasoning is probed like a transition; the answer is read from the whole text (the last
box). Unlike the code: the prompt is the dataset's template (the code: its own system prompt); the
run's own stop strings end the reasoning and the answer; a chunk cut by the budget is not probed
(it ends the reasoning anyway); pieces are joined by token ids (the code re-tokenises the text);
`num_tokens` counts what was generated, trial answers included.
The markers are the model's (model.thinking): a reasoning model's "</think>"; a chat model that
reasons in its answer uses the documented pair ("The answer is"). Each sample's stats: thinking
tokens, probes, the last confidence and whether it exited early. A probe without logprobs is an
error, never a confidence of 0.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field, replace

from ttscale.strategies.context import Context
from ttscale.strategies.search.budget_forcing import before_stop
from ttscale.strategies.select.base import MissingStatistic
from ttscale.types import Completion, Problem, SamplingParams, Trajectory

# the code's stops for a trial answer: where \boxed{...} closes
PROBE_STOPS = (" }", "}\n", "}\n\n", "}.", "}.\n", "}\\", "}}", ")}", ")}.", ")}\n")
POLICIES = ("avg1", "avg2", "min")


def confidence(completion: Completion, policy: str) -> float:
    """The trial answer's confidence from its tokens' sampled logprobs (the code's policies), its first
    token left out as the code leaves it out (it is the box's "{"). A trial of fewer than two tokens
    has no confidence: 0 (the code divides by zero there, and that problem ends in an error)."""
    if completion.num_tokens < 2:
        return 0.0
    if not completion.token_logprobs:
        raise MissingStatistic("deer: the backend returned no logprobs for the trial answer (use backend=vllm)")
    probs = [math.exp(t.logprob) for t in completion.token_logprobs[1:]]
    if not probs:
        return 0.0
    if policy == "min":
        return min(probs)
    if policy == "avg2":
        return math.exp(sum(math.log(max(p, 1e-10)) for p in probs) / len(probs))
    return sum(probs) / len(probs)


@dataclass
class DEER:
    needs_token_ids = True  # reasoning is continued by token ids (a server backend needs a tokenizer)
    n: int = 1  # samples, each exited early on its own (the paper: 1, greedy)
    params: SamplingParams = SamplingParams()
    threshold: float = field(default=0.95, metadata={"config": "deer_threshold"})
    transition: str = field(default="Wait", metadata={"config": "deer_transition"})  # the code's points=1
    think_ratio: float = 0.9  # the thinking budget: this share of max_tokens (the code's default)
    max_probes: int = 10  # the code's max_judge_steps
    probe_tokens: int = 20  # the code's prob_check_max_tokens
    probe_prefix: str = "\n**Final Answer**\n\\boxed"  # the code's answer-inducing string
    policy: str = field(default="avg1", metadata={"config": "deer_policy"})
    thinking_start: str = ""
    thinking_stop: str = "</think>"
    thinking_end: str = "\n</think>\n\n"

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"deer_policy={self.policy!r}; choose one of: {', '.join(POLICIES)}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"deer_threshold={self.threshold!r} must be in (0, 1]")
        if not 0 < self.think_ratio <= 1:
            raise ValueError(f"think_ratio={self.think_ratio!r} must be in (0, 1]")
        if not self.transition or not self.thinking_stop:
            raise ValueError("deer needs a transition (\"Wait\") and the end of thinking (model.thinking.stop)")
        for key in ("n", "max_probes", "probe_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        return list(await asyncio.gather(*(self.sample(ctx, i) for i in range(self.n))))

    async def sample(self, ctx: Context, i: int) -> Trajectory:
        encode = lambda text: ctx.backend.encode(text, add_special_tokens=False) if text else []  # noqa: E731
        base = ctx.prompt_ids().extend(encode(self.thinking_start))
        budget = max(1, int(self.params.max_tokens * self.think_ratio))
        thought: list[int] = []
        generated, probes, last, exit_reason = 0, 0, None, "ended"
        while True:
            left = budget - len(thought)
            if left <= 0:
                exit_reason = "budget"
                break
            stops = (self.thinking_stop, *([self.transition] if probes < self.max_probes else []), *self.params.stop)
            params = replace(self.params, n=1, max_tokens=left, stop=tuple(dict.fromkeys(stops)), include_stop=True)
            (c,) = await ctx.generate(base.extend(thought), params, key=f"deer/{i}/think/{probes}")
            generated += c.num_tokens
            stop = c.stop_reason if isinstance(c.stop_reason, str) else None
            if c.finish_reason != "stop":
                thought += list(c.token_ids or ())
                exit_reason = "budget"
                break
            ids, split = before_stop(ctx.backend.decode, c.token_ids or (), c.text, stop)
            thought += ids + encode(split)
            if stop is not None and stop != self.transition:  # the end of thinking, or a run's own stop
                break
            # a transition, or an end of sequence inside the reasoning (the code probes both)
            probes += 1
            probe = replace(SamplingParams(), n=1, max_tokens=self.probe_tokens, stop=PROBE_STOPS, logprobs=1,
                            keep_token_logprobs=True)
            (trial,) = await ctx.generate(base.extend(thought + encode(self.probe_prefix)), probe,
                                          key=f"deer/{i}/probe/{probes}", role="probe")
            generated += trial.num_tokens
            last = confidence(trial, self.policy)
            if last > self.threshold:
                exit_reason = "confident"
                break
            if len(thought) >= budget - 50:  # the code: the budget nearly spent, leave now
                exit_reason = "budget"
                break
            thought += encode(self.transition)  # the transition is put back, and thinking goes on
        answer_params = replace(self.params, n=1, max_tokens=max(1, self.params.max_tokens - len(thought)))
        (a,) = await ctx.generate(base.extend(thought + encode(self.thinking_end)), answer_params, key=f"deer/{i}/answer")
        text = self.thinking_start + ctx.backend.decode(thought) + self.thinking_end
        # the answer is read from the whole text, as the code's checker reads thinking + answer
        return Trajectory(text=text + a.text, num_tokens=generated + a.num_tokens, finish_reason=a.finish_reason,
                          stats={"thinking_tokens": float(len(thought)), "probes": float(probes),
                                 "early_exit": float(exit_reason == "confident"),
                                 "budget_exit": float(exit_reason == "budget"),
                                 **({"trial_confidence": last} if last is not None else {})})


METHODS = {"deer": DEER}  # strategy.search=deer
