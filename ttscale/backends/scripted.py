"""A deterministic test double: completions come from a script, not a model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ttscale.types import Completion, GenerateOutput, Prompt, SamplingParams

Script = Callable[[str, SamplingParams, int], "str | Completion"]


def prompt_text(prompt: Prompt) -> str:
    """The prompt as plain text: raw text as is, chat messages' contents joined by newlines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m["content"] for m in prompt)


def count_tokens(text: str) -> int:
    return len(text.split())


@dataclass
class ScriptedCall:
    prompt: str
    params: SamplingParams
    completions: list[Completion] = field(default_factory=list)


class ScriptedBackend:
    """Calls `script(prompt_text, params, sample_index)` for each of the n samples of a call.

    The script returns the completion text (tokens counted as whitespace words, logprob -0.1 per
    token) or a full Completion. Text is cut at the first of the call's stop strings, as vLLM
    would (kept with include_stop, named in stop_reason); stop_reason None means end-of-sequence.
    Text longer than max_tokens words is cut there, with finish_reason "length". It may raise, to test failure isolation. Every call is recorded in
    `calls`. `delay` seconds of simulated latency let tests see calls overlap; `max_in_flight`
    records the most calls that were awaiting at once. `top_logprobs` declares whether the script's
    completions carry top-k logprobs (text scripts do not).
    """

    def __init__(self, script: Script, delay: float = 0.0, top_logprobs: bool = False):
        self.script = script
        self.delay = delay
        self.top_logprobs = top_logprobs  # True when the script returns Completions with token_logprobs
        self.calls: list[ScriptedCall] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def generate(self, prompt: Prompt, params: SamplingParams) -> GenerateOutput:
        text = prompt_text(prompt)
        call = ScriptedCall(text, params)
        self.calls.append(call)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            completions = [self._complete(text, params, i) for i in range(params.n)]
            call.completions = completions
        finally:
            self.in_flight -= 1
        return GenerateOutput(completions=completions, prompt_tokens=count_tokens(text))

    def _complete(self, text: str, params: SamplingParams, index: int) -> Completion:
        out = self.script(text, params, index)
        if isinstance(out, Completion):
            return out
        stop_reason = None
        hits = [(out.find(s), s) for s in params.stop if s and s in out]
        if hits:
            at, stop_reason = min(hits)
            out = out[: at + len(stop_reason)] if params.include_stop else out[:at]
        finish = "stop"
        if params.max_tokens is not None and count_tokens(out) > params.max_tokens:
            out, finish, stop_reason = " ".join(out.split()[: params.max_tokens]), "length", None
        tokens = count_tokens(out)
        return Completion(text=out, num_tokens=tokens, finish_reason=finish, stop_reason=stop_reason,
                          cumulative_logprob=-0.1 * tokens)

    def close(self) -> None:
        pass

    def __enter__(self) -> ScriptedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def guess_script(text: str, params: SamplingParams, index: int) -> str:
    """A stand-in model for pipeline tests (launchers, loggers): a short two-step 'solution' (10 tokens)
    whose answer is a number from the request's seed and the sample index, so samples differ and
    reruns repeat. A continued solution gets only its second step."""
    seed = params.seed or 0
    answer = f"The answer is {(seed + 7 * index) % 20}."
    if "Let me think step by step." in text:  # step-wise search continues the solution: finish it
        return answer
    return f"Let me think step by step.\n\n{answer}"


SCRIPTS = {"guess": guess_script}  # backend=scripted: backend.script names one of these
