"""Fractured sampling (Liao et al. 2025, "Fractured Chain-of-Thought Reasoning", Algorithm 1): three
axes of sampling, n trajectories x H truncation depths x m answers.

    sample n reasoning trajectories
    for each trajectory, its reasoning of L tokens, for each depth h = 1..H:
        prefix = the first floor(h * L / H) of them              (depth H: the whole reasoning)
        sample m answers after prompt + prefix + answer cue     (as token ids: the prompt's ids extended)
    vote over all n * m * H answers, each weighted by its depth's weight

As the reference code: only the reasoning is cut (a thinking model's text before `reasoning_end`,
"</think>"; a chat model's whole text), re-tokenised from its text; depth H is the whole reasoning, and
there the trajectory's own answer is one of the m (m - 1 are sampled after the cue). The reasoning is
tokenised once per trajectory, its cuts are slices of those ids.
Depth weights (`depth_weighting`): uniform (Algorithm 1's majority vote, the default) or linear,
w_h = 2h / (H(H+1)) (the paper's Appendix B.1); `last_depths: K` samples only the last K depths
(the paper's "H = -K"; the reference code has no vote, only pass@k).
The answer cue ends the reasoning and asks for the answer: "</think>\n\n" for a thinking model
(the reference's, with answers of up to 2048 tokens); for a chat model that writes no think block,
a cue that opens the boxed answer and a short answer cap. A sampled answer is read from the cue and
what follows it; one cut by the cap counts only with a closed \\boxed{} (else it carries no answer).
Usage counts every answer's tokens and each truncated prefix's prompt (served mostly by the prefix
cache), so budgets compare with full-CoT sampling: the paper's B(n, m, H) = n C_thinking + n m H C_answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from ttscale.graders.math_text import closed_boxes
from ttscale.strategies.context import Context
from ttscale.strategies.select.weighted import SEARCH_WEIGHT
from ttscale.types import Completion, Problem, SamplingParams, Trajectory

WEIGHTINGS = ("uniform", "linear")


def depth_weight(h: int, depths: int, weighting: str) -> float:
    """The vote weight of an answer at depth h of H: 1 (uniform) or 2h / (H (H + 1)) (linear)."""
    return 1.0 if weighting == "uniform" else 2.0 * h / (depths * (depths + 1))


def cut(length: int, h: int, depths: int) -> int:
    """Tokens kept at depth h of H (the reference's i * len // H)."""
    return h * length // depths


@dataclass
class FracturedSampling:
    needs_token_ids = True  # token ids from the backend (a server backend needs a tokenizer)
    n: int = 16  # reasoning trajectories (the paper's default 16)
    params: SamplingParams = SamplingParams()
    depths: int = 16  # H: truncation depths per trajectory, the full trajectory the last (paper: 16)
    answers: int = field(default=4, metadata={"config": "answers_per_depth"})  # m (paper: 4)
    answer_cue: str = "\n\nFinal answer: \\boxed{"
    answer_tokens: int = 32  # each answer's cap (the reference's 2048 follows a thinking model's </think>)
    answer_stop: tuple[str, ...] = ("\n",)  # an answer ends at these (kept)
    depth_weighting: str = "uniform"
    last_depths: int | None = None  # only the last K depths are sampled (None: all H)
    reasoning_end: str | None = "</think>"  # a thinking model's end of reasoning: only what precedes it is cut

    def __post_init__(self) -> None:
        for key in ("n", "depths", "answers", "answer_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)!r} must be >= 1")
        if self.depth_weighting not in WEIGHTINGS:
            raise ValueError(f"depth_weighting={self.depth_weighting!r}; choose one of: {', '.join(WEIGHTINGS)}")
        if self.last_depths is not None and not 1 <= self.last_depths <= self.depths:
            raise ValueError(f"last_depths={self.last_depths!r} must be in [1, depths={self.depths}] or null")
        self.answer_stop = tuple(self.answer_stop or ())

    @property
    def sampled_depths(self) -> range:
        return range(self.depths - (self.last_depths or self.depths) + 1, self.depths + 1)

    async def __call__(self, problem: Problem, ctx: Context) -> list[Trajectory]:
        trajectories = await ctx.generate(ctx.prompt, replace(self.params, n=self.n), key="trajectories")
        cue = ctx.backend.encode(self.answer_cue, add_special_tokens=False)
        reasoning = [ctx.backend.encode(self.reasoning(c.text), add_special_tokens=False) for c in trajectories]
        jobs = [(i, h) for i in range(len(trajectories)) for h in self.sampled_depths]
        answers = await asyncio.gather(*(self._answers(ctx, trajectories[i], reasoning[i], i, h, cue) for i, h in jobs))
        out = [t for group in answers for t in group]
        ctx.info.update({"trajectories": len(trajectories), "depths_sampled": len(self.sampled_depths),
                         "answers": len(out),
                         "trajectory_tokens": sum(c.num_tokens for c in trajectories)})
        return out

    def reasoning(self, text: str) -> str:
        """The part of a trajectory that is cut: the text before `reasoning_end` (all of it without one)."""
        if self.reasoning_end and self.reasoning_end in text:
            return text[: text.index(self.reasoning_end)]
        return text

    async def _answers(self, ctx: Context, c: Completion, ids: list[int], i: int, h: int, cue: list[int]
                       ) -> list[Trajectory]:
        """The answers at depth h of trajectory i, whose reasoning is `ids`."""
        weight = depth_weight(h, self.depths, self.depth_weighting)
        stats = {"trajectory": i, "depth": h, SEARCH_WEIGHT: weight}
        own: list[Trajectory] = []
        if h == self.depths:  # the whole reasoning; the trajectory's own answer is one of the m (the code's)
            prefix = ids
            own = [replace(Trajectory.from_completion(c), stats=dict(stats))]
        else:
            prefix = ids[: cut(len(ids), h, self.depths)]
        k = self.answers - len(own)
        if k == 0:
            return own
        params = replace(self.params, n=k, max_tokens=self.answer_tokens, stop=self.params.stop + self.answer_stop,
                         include_stop=True)
        prompt = ctx.prompt_ids().extend(prefix + cue)
        answers = await ctx.generate(prompt, params, key=f"answers/{i}/{h}")
        prefix_text = ctx.backend.decode(prefix)
        return own + [Trajectory(text=prefix_text + self.answer_cue + a.text, num_tokens=a.num_tokens,
                                 finish_reason=a.finish_reason, stats=dict(stats),
                                 answer_text=self.answer_part(a)) for a in answers]

    def answer_part(self, answer: Completion) -> str:
        """What a sampled answer's vote is read from: the cue and the answer (never the reasoning before
        them). An answer cut by `answer_tokens` (or aborted) is read only up to a closed \\boxed{} after
        the cue; without one it carries no answer ("") -- the cue's own "Final answer:" must not make a
        cut-off fragment vote."""
        text = self.answer_cue + answer.text
        if answer.finish_reason not in ("length", "abort", None):
            return text
        boxes = closed_boxes(text)
        return text[: boxes[-1]] if boxes else ""


METHODS = {"fractured_sampling": FracturedSampling}  # strategy.search=fractured_sampling
