"""Budget forcing (Muennighoff et al. 2025, "s1: Simple test-time scaling", Section 3.1; the authors'
code: simplescaling/s1, eval/lm-evaluation-harness/lm_eval/models/vllm_causallms.py): control how long
a model reasons. For each of n samples, by token ids (nothing is re-rendered):

    ids = prompt + thinking_start
    loop:
        think until the end-of-thinking delimiter (`thinking_stop`), at most the budget left
        cut by max_thinking_tokens:                  stop thinking                 (the upper bound)
        fewer than min_thinking_tokens, or fewer than num_ignore extensions used:
            drop the delimiter, append `extension` ("Wait"), go on                  (the lower bound)
        else:                                        stop thinking
    append thinking_end (cut by the budget: a newline if none, thinking_end, then budget_suffix,
    the code's "\\nFinal Answer:")
    sample the answer, at most answer_tokens

As the code: the forced extensions count towards the thinking budget, a stop at the delimiter drops
its tokens before the extension, an end-of-sequence is a stop like the delimiter, and the run's own
stop strings (a base model's "\n\nQuestion:") stop the reasoning too (the code's until_thinking is
extended by the run's `until`). Crossing the budget (`crossing`): as the code (`code`), each round
of thinking may run to the whole budget, the reasoning is then cut to max_thinking_tokens, and the
round that crossed it ends as it ended: with the plain end of thinking when it stopped by itself,
with budget_suffix when its own cap cut it (the code then still runs its remaining extension rounds,
whose text is all cut: here the reasoning ends at the crossing). `crossing=cut` caps each round at
the budget left, so a crossing round is cut and gets budget_suffix (ttscale's earlier rule). The markers
are the model's (model.thinking, see conf/model/*.yaml): s1's "<|im_start|>think" / "<|im_start|>"
/ "<|im_start|>answer"; a chat model without a think block reasons in its answer and ends it where it
states the answer (the documented pair: stop and end "The answer is", extension " Wait,").
Each sample's stats say how many tokens it thought, how many extensions it got and whether the
budget cut it; the answer is read from the answer phase only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ttscale.strategies.context import Context
from ttscale.types import Completion, Problem, SamplingParams, Trajectory


CROSSINGS = ("code", "cut")


def before_stop(decode, ids: Sequence[int], text: str, stop: str | None) -> tuple[list[int], str]:
    """A completion cut where `stop` begins (its text ends with it: include_stop), as the whole tokens
    before it and the text of a token the cut splits (to be encoded again with what follows). An
    end-of-sequence (stop None) drops the trailing special tokens, which decode to nothing."""
    ids = list(ids)
    if stop is None or not text.endswith(stop):
        while ids and decode(ids[-1:]) == "":
            ids.pop()
        return ids, ""
    keep = text[: len(text) - len(stop)]
    k = len(ids)
    while k > 0 and not keep.startswith(decode(ids[:k])):
        k -= 1
    return ids[:k], keep[len(decode(ids[:k])):]


@dataclass
class BudgetForcing:
    needs_token_ids = True  # reasoning is continued by token ids (a server backend needs a tokenizer)
    n: int = 1  # samples, each budget-forced on its own (the paper: 1, greedy)
    params: SamplingParams = SamplingParams()
    max_thinking_tokens: int = 512  # the upper bound (the code's max_tokens_thinking)
    min_thinking_tokens: int = 0  # the lower bound: an earlier end of thinking is extended
    num_ignore: int = 1  # ends of thinking ignored, each replaced by the extension (the README's NUM_IGNORE)
    thinking_start: str = ""  # appended to the prompt before reasoning (s1: "<|im_start|>think")
    thinking_stop: str = "The answer is"  # the delimiter that ends reasoning (the code's until_thinking)
    thinking_end: str = "The answer is"  # appended when reasoning ends, before the answer (thinking_end)
    extension: str = " Wait,"  # appended instead of an ignored end of thinking (the code's "Wait")
    budget_suffix: str = ""  # after thinking_end when the budget cut the reasoning (the code: "\nFinal Answer:")
    answer_tokens: int = 256  # the answer phase's cap
    # code (each round capped by the whole budget, the reasoning cut after: s1's code) | cut (each round
    # capped by the budget left, a crossing round ends with budget_suffix)
    crossing: str = field(default="code", metadata={"config": "budget_crossing"})

    def __post_init__(self) -> None:
        for key in ("n", "max_thinking_tokens", "answer_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")
        for key in ("min_thinking_tokens", "num_ignore"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 0")
        if self.min_thinking_tokens > self.max_thinking_tokens:
            raise ValueError(f"min_thinking_tokens={self.min_thinking_tokens} is above "
                             f"max_thinking_tokens={self.max_thinking_tokens}")
        if not self.thinking_stop:
            raise ValueError("thinking_stop must be the text that ends the model's reasoning (model.thinking.stop)")
        if self.crossing not in CROSSINGS:
            raise ValueError(f"budget_crossing={self.crossing!r}; choose one of: {', '.join(CROSSINGS)}")
        if (self.num_ignore or self.min_thinking_tokens) and not self.extension:
            raise ValueError("extension is empty: an ignored end of thinking needs text that continues it (\"Wait\")")

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        return list(await asyncio.gather(*(self.sample(ctx, i) for i in range(self.n))))

    async def sample(self, ctx: Context, i: int) -> Trajectory:
        encode = lambda text: ctx.backend.encode(text, add_special_tokens=False) if text else []  # noqa: E731
        base = ctx.prompt_ids().extend(encode(self.thinking_start))
        thought: list[int] = []  # reasoning ids, forced extensions included (they count towards the budget)
        text, generated, extensions, cut, rounds = "", 0, 0, False, 0
        while True:
            left = self.max_thinking_tokens - len(thought)
            if left <= 0:
                cut = True
                ctx.decide("cut", sample=i, why="thinking budget spent", thinking_tokens=len(thought))
                break
            cap = left if self.crossing == "cut" else self.max_thinking_tokens
            stops = tuple(dict.fromkeys((self.thinking_stop, *self.params.stop)))  # the run's stops too
            params = replace(self.params, n=1, max_tokens=cap, stop=stops, include_stop=True)
            (c,) = await ctx.generate(base.extend(thought), params, key=f"think/{i}/{rounds}",
                                      after=f"think/{i}/{rounds - 1}" if rounds else None)
            rounds += 1
            generated += c.num_tokens
            if c.finish_reason != "stop":  # the round's cap ran out (or the engine aborted it)
                thought += list(c.token_ids or ())
                text += c.text
                cut = True
                ctx.decide("cut", sample=i, why=f"round ended by {c.finish_reason}", thinking_tokens=len(thought))
                break
            stop = _stop_string(c)
            ids, split = before_stop(ctx.backend.decode, c.token_ids or (), c.text, stop)
            kept = c.text[: len(c.text) - len(stop)] if stop and c.text.endswith(stop) else c.text
            if len(thought) + len(ids) >= self.max_thinking_tokens:  # crossed in a round that stopped itself
                thought += ids + encode(split)
                text += kept
                ctx.decide("stopped", sample=i, why="crossed the budget in a round that stopped itself",
                           thinking_tokens=len(thought))
                break
            if len(thought) + len(ids) < self.min_thinking_tokens or extensions < self.num_ignore:
                thought += ids + encode(split + self.extension)
                text += kept + self.extension
                extensions += 1
                ctx.decide("forced", sample=i, extension=self.extension, extensions=extensions,
                           thinking_tokens=len(thought))
                continue
            thought += ids + encode(split)
            text += kept
            break
        crossed = len(thought) > self.max_thinking_tokens
        if not cut and not crossed:
            ctx.decide("stopped", sample=i, why="end of thinking kept", thinking_tokens=len(thought))
        if crossed:  # the code cuts the reasoning to the budget, by ids
            thought = thought[: self.max_thinking_tokens]
            text = ctx.backend.decode(thought)
        ending = self.thinking_end
        if cut:
            ending = ("" if text.endswith("\n") or not self.budget_suffix else "\n") + ending + self.budget_suffix
        answer_params = replace(self.params, n=1, max_tokens=self.answer_tokens)
        (a,) = await ctx.generate(base.extend(thought + encode(ending)), answer_params, key=f"answer/{i}",
                                  after=f"think/{i}/{rounds - 1}" if rounds else None)
        return Trajectory(text=self.thinking_start + text + ending + a.text, num_tokens=generated + a.num_tokens,
                          finish_reason=a.finish_reason, answer_text=ending + a.text,
                          stats={"thinking_tokens": float(len(thought)), "extensions": float(extensions),
                                 "budget_cut": float(cut or crossed)})


def _stop_string(c: Completion) -> str | None:
    """The stop string that ended a completion (None: its end-of-sequence)."""
    return c.stop_reason if isinstance(c.stop_reason, str) else None


METHODS = {"budget_forcing": BudgetForcing}  # strategy.search=budget_forcing
