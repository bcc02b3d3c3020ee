"""The backend contract, the same for every transport (in-process vLLM, a server, the scripted double).

Three granularities of one contract:
- `generate(prompt, params)`: params.n finished completions of one prompt (whole samples, steps).
- `stream(prompt, params)`: ONE sample as an async iterator of `Delta`s (new token ids, their text,
  logprobs, and the finish reason at the end). Closing the iterator (`aclose()`, leaving an
  `async with contextlib.aclosing(...)` block) or cancelling the task that iterates it aborts the
  sample in the engine at once; the tokens already delivered are what it cost.
- `score(prompt_ids, completion_ids)`: the model's logprob of each given completion token.

A prompt is text, chat messages, or a `TokenPrompt` (ids: a template rendered once by `encode`, then
extended by generated ids); completions carry their token ids. Backends must accept many concurrent
calls (from many problems at once) and batch them; strategies never batch by hand. `top_logprobs`
declares whether completions and deltas carry top-k logprobs when asked. `logprobs_mode` says what
the sampled tokens' logprobs are: "raw_logprobs" (the model's own distribution, before temperature or
top-k/top-p: vLLM's default) or "processed_logprobs" (the distribution actually sampled from, after
them: vLLM's engine arg `logprobs_mode`). `score` always gives raw logprobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

from ttscale.confidence import RunningStats, StatsSpec
from ttscale.types import Completion, Delta, GenerateOutput, Prompt, SamplingParams, TokenPrompt

# The problem a backend call is made for, set by the runtime in each problem's task (asyncio copies
# it into the tasks a strategy starts). A backend over several servers routes one problem's calls to
# one server, whose prefix cache then holds that problem's prompt and partial solutions.
AFFINITY: ContextVar[str | None] = ContextVar("ttscale_affinity", default=None)


class BackendUnavailable(RuntimeError):
    """No server could answer a call within its retries and deadline. A problem that fails so is
    recorded with this error, and a rerun of the run solves it again (runtime.run)."""


@runtime_checkable
class Backend(Protocol):
    top_logprobs: bool
    logprobs_mode: str

    async def generate(self, prompt: Prompt, params: SamplingParams) -> GenerateOutput: ...

    def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Delta]: ...

    async def score(self, prompt_ids: list[int], completion_ids: list[int]) -> list[float]: ...

    def encode(self, prompt: Prompt, continue_final_message: bool = False,
               add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def close(self) -> None: ...


def render_ids(tokenizer: Any, prompt: Prompt, continue_final_message: bool = False,
               add_special_tokens: bool = True) -> list[int]:
    """Token ids of a prompt with a Hugging Face tokenizer: raw text (with the tokenizer's special
    tokens, unless add_special_tokens is False: a piece of text to append to other ids), chat
    messages (the chat template, with the generation prompt unless the last message is an unfinished
    assistant turn to continue), or a token-id prompt as it is."""
    if isinstance(prompt, TokenPrompt):
        return list(prompt.ids)
    if isinstance(prompt, str):
        return list(tokenizer.encode(prompt, add_special_tokens=add_special_tokens))
    ids = tokenizer.apply_chat_template(
        prompt,
        tokenize=True,
        add_generation_prompt=not continue_final_message,
        continue_final_message=continue_final_message,
    )
    if isinstance(ids, Mapping) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    ids = list(ids)
    if continue_final_message:
        # Some chat templates strip the final message; a partial solution's trailing step
        # delimiter ("\n\n") must survive, or the model would write it again as an empty step.
        content = prompt[-1]["content"]
        tail = content[len(content.rstrip()):]
        if tail and not tokenizer.decode(ids[-8:]).endswith(tail):
            ids += tokenizer.encode(tail, add_special_tokens=False)
    return ids


class StreamFold:
    """Folds one sample's deltas into a Completion (with running statistics when logprobs come)."""

    def __init__(self, spec: StatsSpec = StatsSpec(), keep_series: bool = False):
        self.token_ids: list[int] = []
        self.pieces: list[str] = []
        self.cumulative_logprob: float | None = 0.0
        self.finish_reason: str | None = None
        self.stop_reason: str | int | None = None
        self.prompt_tokens = 0
        self.cached_prompt_tokens = 0
        self.stats = RunningStats(spec, keep_series=keep_series)

    def add(self, delta: Delta) -> None:
        self.token_ids.extend(delta.token_ids)
        self.pieces.append(delta.text)
        self.prompt_tokens += delta.prompt_tokens
        self.cached_prompt_tokens += delta.cached_prompt_tokens
        if delta.logprobs is None:
            if delta.token_ids:
                self.cumulative_logprob = None
        elif self.cumulative_logprob is not None:
            self.cumulative_logprob += sum(delta.logprobs)
        if delta.top_logprobs is not None:
            self.stats.update(delta.logprobs, delta.top_logprobs)
        if delta.finish_reason is not None:
            self.finish_reason, self.stop_reason = delta.finish_reason, delta.stop_reason

    def abort(self) -> None:
        """The sample was stopped by its reader before it finished."""
        if self.finish_reason is None:
            self.finish_reason = "abort"

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def completion(self) -> Completion:
        has_stats = self.stats.tokens > 0
        return Completion(text=self.text, num_tokens=self.num_tokens, finish_reason=self.finish_reason,
                          stop_reason=self.stop_reason, cumulative_logprob=self.cumulative_logprob,
                          stats=self.stats.stats() if has_stats else {},
                          series=self.stats.series() if has_stats and self.stats.keep_series else None,
                          token_ids=tuple(self.token_ids))


def fold(deltas: Iterable[Delta], spec: StatsSpec = StatsSpec()) -> Completion:
    """The completion that a sequence of deltas makes."""
    folder = StreamFold(spec)
    for delta in deltas:
        folder.add(delta)
    return folder.completion()


# The request side of ttscale's top-p filter (backends/top_p.py, a vLLM logits processor): a request
# whose top-p it applies carries top_p=1 and extra_args[TOP_P_KEY]=p.
TOP_P_KEY = "ttscale_top_p"
GREEDY_TEMPERATURE = 1e-5  # vLLM samples greedily (and ignores top-p) below this temperature


def top_p_filtered(top_p: float, top_k: int, temperature: float) -> bool:
    """Whether a request's top-p goes to ttscale's filter: a sampled request with top-p and no top-k
    (vLLM applies top-k first and renormalises: such requests keep vLLM's own top-p)."""
    return top_p < 1.0 and top_k <= 0 and temperature >= GREEDY_TEMPERATURE
