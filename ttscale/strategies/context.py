"""What a strategy sees of the runtime while it solves one problem."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from ttscale.backends.base import Backend
from ttscale.graders.math import MathGrader
from ttscale.types import Completion, Delta, Problem, Prompt, SamplingParams, TokenPrompt, Usage


def derive_seed(run_seed: int, problem_id: str, call_index: int | str) -> int:
    """A 31-bit seed from (run seed, problem id, call index or key): stable across runs and machines."""
    digest = hashlib.sha256(f"{run_seed}\x00{problem_id}\x00{call_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class Context:
    """Per-problem handle: seeded, usage-counted backend calls and the run's grader."""

    problem: Problem
    backend: Backend
    grader: MathGrader
    run_seed: int = 0
    usage: Usage = field(default_factory=Usage)
    calls: int = 0
    info: dict[str, Any] = field(default_factory=dict)  # strategy facts for the result (samples saved, ...)
    _prompt_ids: TokenPrompt | None = field(default=None, repr=False)
    started: float = field(default_factory=time.perf_counter, repr=False)
    first_answer_seconds: float | None = None  # a streamed sample's end (stop or length): when it first came

    @property
    def prompt(self) -> Prompt:
        """The problem's rendered prompt: chat messages, plain text for a base model, or the question."""
        if self.problem.messages is not None:
            return self.problem.messages
        return self.problem.text if self.problem.text is not None else self.problem.question

    async def generate(self, prompt: Prompt, params: SamplingParams, key: str | None = None) -> list[Completion]:
        """One backend call, seeded from (run seed, problem id, call index), counted into usage.

        Calls whose order depends on timing (concurrent chains) pass a stable `key` instead.
        """
        seed = derive_seed(self.run_seed, self.problem.id, self.calls if key is None else key)
        self.calls += 1
        out = await self.backend.generate(prompt, replace(params, seed=seed))
        self.usage.backend_calls += 1
        self.usage.prompt_tokens += out.prompt_tokens
        self.usage.cached_prompt_tokens += out.cached_prompt_tokens
        self.usage.completion_tokens += sum(c.num_tokens for c in out.completions)
        return out.completions

    def prompt_ids(self) -> TokenPrompt:
        """The problem's prompt as token ids (the chat template rendered once), to extend by ids."""
        if self._prompt_ids is None:
            self._prompt_ids = TokenPrompt(self.backend.encode(self.prompt))
        return self._prompt_ids

    def require_logprobs_mode(self, mode: str, who: str) -> None:
        """Refuse a backend whose sampled-token logprobs are not of the kind a search computes with."""
        have = getattr(self.backend, "logprobs_mode", "raw_logprobs")
        if have != mode:
            raise ValueError(f"{who} needs the sampled tokens' {mode.split('_')[0]} logprobs, and the backend's are "
                             f"{have}: start vLLM with engine_args logprobs_mode={mode} (the CLI does)")

    async def score(self, prompt_ids: TokenPrompt | list[int], completion_ids: list[int]) -> list[float]:
        """The model's raw logprob of each completion token after the prompt (Backend.score), counted
        into usage as one call whose whole sequence is prefilled (vLLM reads no prefix cache for a
        request that asks for prompt logprobs)."""
        prompt_ids = list(prompt_ids.ids if isinstance(prompt_ids, TokenPrompt) else prompt_ids)
        self.usage.backend_calls += 1
        self.usage.prompt_tokens += len(prompt_ids) + len(completion_ids)
        return await self.backend.score(prompt_ids, list(completion_ids))

    async def stream(self, prompt: Prompt, params: SamplingParams, key: str | None = None) -> AsyncIterator[Delta]:
        """One sample as deltas, seeded like `generate`, its tokens counted into usage as they arrive
        (a sample stopped early costs what it generated). Read it inside
        `async with contextlib.aclosing(ctx.stream(...)) as deltas:` so leaving the block aborts it."""
        seed = derive_seed(self.run_seed, self.problem.id, self.calls if key is None else key)
        self.calls += 1
        self.usage.backend_calls += 1
        stream = self.backend.stream(prompt, replace(params, n=1, seed=seed))
        try:
            async for delta in stream:
                self.usage.prompt_tokens += delta.prompt_tokens
                self.usage.cached_prompt_tokens += delta.cached_prompt_tokens
                self.usage.completion_tokens += len(delta.token_ids)
                if self.first_answer_seconds is None and delta.finish_reason in ("stop", "length"):
                    self.first_answer_seconds = time.perf_counter() - self.started
                yield delta
        finally:
            await stream.aclose()
