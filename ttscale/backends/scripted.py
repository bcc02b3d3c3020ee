"""A deterministic test double: completions come from a script, not a model."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ttscale.confidence import series_stats, token_series
from ttscale.types import Completion, Delta, GenerateOutput, Prompt, SamplingParams, TokenLogprob, TokenPrompt

Script = Callable[[str, SamplingParams, int], "str | Completion"]
PIECE = re.compile(r"\s*\S+")


def prompt_text(prompt: Prompt, vocab: ScriptedTokenizer | None = None) -> str:
    """The prompt as plain text: raw text as is, chat messages' contents joined by newlines, token ids
    decoded (by `vocab`)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, TokenPrompt):
        if vocab is None:
            raise ValueError("a token-id prompt needs the tokenizer that made its ids")
        return vocab.decode(prompt.ids)
    return "\n".join(m["content"] for m in prompt)


def count_tokens(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> list[str]:
    """The scripted model's tokens: each word with the whitespace before it (trailing whitespace joins
    the last word), so the pieces concatenate to the text and there are count_tokens(text) of them."""
    out = PIECE.findall(text)
    if out:
        out[-1] += text[len("".join(out)):]
    return out


class ScriptedTokenizer:
    """Token ids for pieces, assigned in order of first sight (one vocabulary per backend)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.words: list[str] = []

    def encode(self, text: str) -> list[int]:
        out = []
        for piece in pieces(text):
            if piece not in self.ids:
                self.ids[piece] = len(self.words)
                self.words.append(piece)
            out.append(self.ids[piece])
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.words[i] for i in ids)


def traced(text: str, tops: Sequence[Sequence[float] | Mapping[str, float]],
           sampled: Sequence[float] | None = None) -> Completion:
    """A scripted completion whose tokens carry the given top-k logprobs (token confidence
    -mean(top), entropy of the renormalised top): for hand-worked traces of token-level methods.
    A top may be a mapping piece -> logprob (the alternatives' tokens, by rank), else its tokens are
    named t0, t1, ... The sampled token's logprob is the first of its top-k unless given."""
    words = pieces(text)
    if len(tops) != len(words):
        raise ValueError(f"{len(words)} tokens and {len(tops)} top-logprob lists")
    tops = [dict(top) if isinstance(top, Mapping) else {f"t{j}": v for j, v in enumerate(top)} for top in tops]
    sampled = [next(iter(top.values())) for top in tops] if sampled is None else list(sampled)
    logprobs = [TokenLogprob(w, lp, top) for w, lp, top in zip(words, sampled, tops)]
    return Completion(text=text, num_tokens=len(words), finish_reason="stop", cumulative_logprob=sum(sampled),
                      token_logprobs=logprobs)


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
    completions carry top-k logprobs (text scripts do not; see `traced`). `synthetic_logprobs=k`
    gives every text completion k invented top-k logprobs per token (deterministic in the request's
    seed, the sample and the position; the sampled token's first), so every token-level method's
    plumbing runs end to end without an engine (`backend.synthetic_logprobs` on the command line).

    The whole contract: tokens are `pieces` with ids from the backend's own `tokenizer`; a token-id
    prompt is decoded before the script sees it. `stream` yields one delta per token, each after
    `token_delay` seconds (0: it still yields to the event loop, so concurrent streams interleave);
    `generated_tokens` counts every token any stream produced and `aborted` the streams closed before
    their end. `score` gives each completion token `scorer(prompt_text, completion_pieces)` (default
    -0.1 each); its calls are in `scored`.
    """

    def __init__(self, script: Script, delay: float = 0.0, top_logprobs: bool = False, token_delay: float = 0.0,
                 scorer: Callable[[str, list[str]], list[float]] | None = None, logprobs_mode: str = "raw_logprobs",
                 synthetic_logprobs: int = 0):
        if synthetic_logprobs < 0:
            raise ValueError(f"synthetic_logprobs={synthetic_logprobs!r} must be >= 0 (the k of top-k; 0: none)")
        self.synthetic = int(synthetic_logprobs)
        self.script = script
        self.delay = delay
        self.token_delay = token_delay
        self.scorer = scorer
        self.top_logprobs = top_logprobs or self.synthetic > 0  # completions carry top-k logprobs
        self.sampled_logprobs = self.top_logprobs  # each sampled token's logprob (text scripts: none)
        self.logprobs_mode = logprobs_mode  # what the script's logprobs stand for (see base.py)
        self.tokenizer = ScriptedTokenizer()
        self.calls: list[ScriptedCall] = []
        self.scored: list[tuple[list[int], list[int]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.generated_tokens = 0
        self.aborted = 0

    def encode(self, prompt: Prompt, continue_final_message: bool = False,
               add_special_tokens: bool = True) -> list[int]:
        return list(prompt.ids) if isinstance(prompt, TokenPrompt) else self.tokenizer.encode(prompt_text(prompt))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def _prompt_tokens(self, prompt: Prompt, text: str) -> int:
        return len(prompt) if isinstance(prompt, TokenPrompt) else count_tokens(text)

    async def generate(self, prompt: Prompt, params: SamplingParams) -> GenerateOutput:
        text = prompt_text(prompt, self.tokenizer)
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
        prompt_tokens = self._prompt_tokens(prompt, text)  # per sample; a perfect prefix cache serves all but one
        return GenerateOutput(completions=completions, prompt_tokens=params.n * prompt_tokens,
                              cached_prompt_tokens=(params.n - 1) * prompt_tokens)

    async def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Delta]:
        """One sample, token by token (params.n must be 1)."""
        if params.n != 1:
            raise ValueError(f"stream gives one sample; n={params.n}")
        text = prompt_text(prompt, self.tokenizer)
        call = ScriptedCall(text, params)
        self.calls.append(call)
        completion = self._complete(text, params, 0)
        call.completions = [completion]
        words = pieces(completion.text)
        finish, stop_reason = completion.finish_reason, completion.stop_reason
        if params.max_tokens is not None and len(words) > params.max_tokens:
            words, finish, stop_reason = words[: params.max_tokens], "length", None
        logprobs = completion.token_logprobs
        k = params.logprobs
        first = {"prompt_tokens": self._prompt_tokens(prompt, text)}
        done = False
        try:
            for t, word in enumerate(words):
                await asyncio.sleep(self.token_delay)
                self.generated_tokens += 1
                lp = logprobs[t] if logprobs else None
                last = t == len(words) - 1
                done = last  # a reader that stops after the final delta did not abort it
                top = list(lp.top.items())[:k] if k and lp else None  # top-k only when k >= 1, as vLLM
                yield Delta(token_ids=self.tokenizer.encode(word), text=word,
                            logprobs=None if k is None else [lp.logprob if lp else -0.1],
                            top_logprobs=[[v for _, v in top]] if top else None,
                            top_token_ids=[[self.tokenizer.encode(w)[0] for w, _ in top]] if top else None,
                            finish_reason=finish if last else None, stop_reason=stop_reason if last else None,
                            **first)
                first = {}
            if not words:
                done = True
                yield Delta(token_ids=[], finish_reason=finish, stop_reason=stop_reason, **first)
            done = True
        finally:
            if not done:
                self.aborted += 1

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> list[float]:
        self.scored.append((list(prompt_ids), list(completion_ids)))
        words = [self.tokenizer.words[i] for i in completion_ids]
        if self.scorer is None:
            return [-0.1] * len(words)
        return list(self.scorer(self.tokenizer.decode(prompt_ids), words))

    def _complete(self, text: str, params: SamplingParams, index: int) -> Completion:
        out = self.script(text, params, index)
        if isinstance(out, Completion):
            return self._complete_made(out, params)
        stop_reason = None
        hits = [(out.find(s), s) for s in params.stop if s and s in out]
        if hits:
            at, stop_reason = min(hits)
            out = out[: at + len(stop_reason)] if params.include_stop else out[:at]
        finish = "stop"
        if params.max_tokens is not None and count_tokens(out) > params.max_tokens:
            out, finish, stop_reason = " ".join(out.split()[: params.max_tokens]), "length", None
        tokens = count_tokens(out)
        if self.synthetic and out:
            made = traced(out, [self._invented_top(params, index, t, w) for t, w in enumerate(pieces(out))])
            made.finish_reason, made.stop_reason = finish, stop_reason
            return self._complete_made(made, params)
        return Completion(text=out, num_tokens=tokens, finish_reason=finish, stop_reason=stop_reason,
                          cumulative_logprob=-0.1 * tokens, token_ids=tuple(self.tokenizer.encode(out)))

    def _invented_top(self, params: SamplingParams, index: int, position: int, word: str) -> dict[str, float]:
        """k logprobs for one token, the sampled one first: a confident token most of the time, an
        uncertain one now and then, as a model's are."""
        u = zlib.crc32(f"{params.seed}|{index}|{position}|{word}".encode()) / 2 ** 32
        first = -0.02 - 2.5 * u ** 3
        alternatives = {f"alt{j}": first - 0.5 - 1.5 * j * (1 - u) for j in range(1, self.synthetic)}
        return {word: first, **alternatives}

    def _complete_made(self, out: Completion, params: SamplingParams) -> Completion:
        """A Completion made by a script (or from invented logprobs): token ids and statistics filled in."""
        if out.token_ids is None:
            out.token_ids = tuple(self.tokenizer.encode(out.text))
        if out.token_logprobs and params.logprobs and not out.stats:
            tops = [list(t.top.values())[: params.logprobs] for t in out.token_logprobs]
            series = token_series([t.logprob for t in out.token_logprobs], tops, kept=params.keep_series)
            out.stats = series_stats(series, params.stats)
            out.series = series if params.keep_series else None
        return out

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


def failing_script(text: str, params: SamplingParams, index: int) -> str:
    """A stand-in model whose every call fails (for the error paths: a run that is no result)."""
    raise RuntimeError("the scripted model failed (backend.script=fail)")


SCRIPTS = {"guess": guess_script, "fail": failing_script}  # backend=scripted: backend.script names one
