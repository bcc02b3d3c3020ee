"""What a strategy sees of the runtime while it solves one problem."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from ttscale.backends.base import Backend, StreamFold
from ttscale.graders.math import MathGrader
from ttscale.strategies.trace import Trace
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
    trace: Trace | None = field(default=None, repr=False)  # with trace=true: what the search did (tracing/)

    @property
    def prompt(self) -> Prompt:
        """The problem's rendered prompt: chat messages, plain text for a base model, or the question."""
        if self.problem.messages is not None:
            return self.problem.messages
        return self.problem.text if self.problem.text is not None else self.problem.question

    async def generate(self, prompt: Prompt, params: SamplingParams, key: str | None = None,
                       role: str | None = "sample", after: str | None = None) -> list[Completion]:
        """One backend call, seeded from (run seed, problem id, call index), counted into usage.

        Calls whose order depends on timing (concurrent chains) pass a stable `key` instead. A trace
        records the call, and its completions as samples of this `role` ("judge": a selection's judge call;
        None: not as samples, as a step-wise search's expansion, which records its nodes instead), each
        a child of the latest sample of key `after` when it continues one (strategies/trace.py).
        """
        name = str(self.calls if key is None else key)
        seed = derive_seed(self.run_seed, self.problem.id, name)
        self.calls += 1
        started = self.trace.now() if self.trace else 0.0
        try:
            out = await self.backend.generate(prompt, replace(params, seed=seed))
        except BaseException as exc:
            if self.trace:
                self.trace.call("generate", name, params.n, started, 0, 0, error=f"{type(exc).__name__}: {exc}")
            raise
        self.usage.backend_calls += 1
        self.usage.prompt_tokens += out.prompt_tokens
        self.usage.cached_prompt_tokens += out.cached_prompt_tokens
        generated = sum(c.num_tokens for c in out.completions)
        self.usage.completion_tokens += generated
        if self.trace:
            self.trace.call("generate", name, params.n, started, out.prompt_tokens, generated)
            if role is not None:
                for c in out.completions:
                    self.trace.sample(name, c.text, c.num_tokens, c.finish_reason, c.stats, role, after)
        return out.completions

    async def verify(self, verifier, problem: Problem, trajectories: list, last_step: bool = False) -> list:
        """The verifier's scores of `trajectories` (its `score`, or `score_last_step` with last_step=True),
        counted into usage by the verifier; a trace records the call (its tokens, time and scores)."""
        started = self.trace.now() if self.trace else 0.0
        before = (self.usage.verifier_calls, self.usage.verifier_tokens)
        score = verifier.score_last_step if last_step else verifier.score
        try:
            scores = await score(problem, trajectories, self.usage)
        except BaseException as exc:
            if self.trace:
                self.trace.call("verify", type(verifier).__name__, len(trajectories), started, 0, 0,
                                error=f"{type(exc).__name__}: {exc}")
            raise
        if self.trace:
            values = [s if isinstance(s, (int, float)) else s.value for s in scores]
            self.trace.call("verify", type(verifier).__name__, len(trajectories), started,
                            self.usage.verifier_tokens - before[1], 0, scores=values,
                            verifier_calls=self.usage.verifier_calls - before[0])
        return scores

    def decide(self, kind: str, **values) -> None:
        """A decision the search names (resampled, pruned, aborted, selected, ...), with the values that
        decided it: recorded in the trace when the run keeps one, nothing otherwise."""
        if self.trace:
            self.trace.decide(kind, **values)

    def grew(self, node, parent, role: str = "step") -> None:
        """A partial solution a step-wise search grew from `parent` (recorded in the trace, if any)."""
        if self.trace:
            self.trace.node(node, parent, role)

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
        started = self.trace.now() if self.trace else 0.0
        scores = await self.backend.score(prompt_ids, list(completion_ids))
        if self.trace:
            self.trace.call("score", "score", 1, started, len(prompt_ids) + len(completion_ids), 0)
        return scores

    async def stream(self, prompt: Prompt, params: SamplingParams, key: str | None = None) -> AsyncIterator[Delta]:
        """One sample as deltas, seeded like `generate`, its tokens counted into usage as they arrive
        (a sample stopped early costs what it generated). Read it inside
        `async with contextlib.aclosing(ctx.stream(...)) as deltas:` so leaving the block aborts it."""
        name = str(self.calls if key is None else key)
        seed = derive_seed(self.run_seed, self.problem.id, name)
        self.calls += 1
        self.usage.backend_calls += 1
        stream = self.backend.stream(prompt, replace(params, n=1, seed=seed))
        started = self.trace.now() if self.trace else 0.0
        fold = StreamFold(params.stats) if self.trace else None  # the sample as a trace keeps it
        error = None
        try:
            async for delta in stream:
                self.usage.prompt_tokens += delta.prompt_tokens
                self.usage.cached_prompt_tokens += delta.cached_prompt_tokens
                self.usage.completion_tokens += len(delta.token_ids)
                if self.first_answer_seconds is None and delta.finish_reason in ("stop", "length"):
                    self.first_answer_seconds = time.perf_counter() - self.started
                if fold is not None:
                    fold.add(delta)
                yield delta
        except (GeneratorExit, asyncio.CancelledError):  # closed or cancelled by the search: an abort, no error
            raise
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            await stream.aclose()
            if fold is not None:  # a sample the search closed before it finished was aborted by it
                done = fold.completion()
                self.trace.call("stream", name, 1, started, fold.prompt_tokens, len(fold.token_ids), error=error)
                self.trace.sample(name, done.text, done.num_tokens, fold.finish_reason or "aborted", done.stats)
