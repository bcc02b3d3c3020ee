"""The backend contract: one async call that samples completions for one prompt."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ttscale.types import GenerateOutput, Prompt, SamplingParams


@runtime_checkable
class Backend(Protocol):
    """Samples `params.n` completions of `prompt`.

    Backends must accept many concurrent `generate` calls (from many problems at once) and batch
    them; strategies never batch by hand. Cancelling the awaiting task aborts the request.
    `top_logprobs` declares whether completions carry top-k logprobs when asked (a verifier that reads
    them, such as self-evaluation, cannot run on a backend that returns none).
    """

    top_logprobs: bool

    async def generate(self, prompt: Prompt, params: SamplingParams) -> GenerateOutput: ...

    def close(self) -> None: ...
