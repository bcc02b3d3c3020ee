"""Plain data shared by every layer: problems, sampling requests, completions, results, usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ttscale.confidence import StatsSpec

Message = dict[str, str]


@dataclass(frozen=True)
class TokenPrompt:
    """A prompt given as token ids: a chat template rendered once (Backend.encode), then extended by
    the ids of generated text, so nothing is re-rendered or re-tokenised at a step boundary."""

    ids: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(self.ids))

    def extend(self, ids) -> TokenPrompt:
        return TokenPrompt(self.ids + tuple(ids))

    def __len__(self) -> int:
        return len(self.ids)


# raw text, chat messages rendered with the model's chat template, or token ids
Prompt = str | list[Message] | TokenPrompt


@dataclass
class Problem:
    """One question to solve. The rendered prompt is `messages` (chat models) or `text` (base models);
    `answer` is the reference."""

    id: str
    question: str
    answer: str | None = None
    messages: list[Message] | None = None
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplingParams:
    """What one backend call asks for. Backends translate this into their own parameters.

    stop strings end a completion; with include_stop the matched string is kept in the text
    (step-wise search needs the delimiter kept). logprobs=k asks for the top-k logprobs of every
    generated token (0: only the sampled token's). seed is filled in by the runtime.
    continue_final_message: the last chat message is an unfinished assistant turn to extend.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    include_stop: bool = False
    logprobs: int | None = None
    seed: int | None = None
    continue_final_message: bool = False
    keep_token_logprobs: bool = False  # keep the per-token lists (large); stats are always computed
    keep_series: bool = False  # keep the per-token statistic series (3 floats a token), for step-wise search
    stats: StatsSpec = StatsSpec()


@dataclass
class TokenLogprob:
    """The sampled token's logprob and the top-k alternatives (token text -> logprob)."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Completion:
    """One sampled continuation and what it cost."""

    text: str
    num_tokens: int
    finish_reason: str | None = None  # "stop" | "length" | "abort" | None
    cumulative_logprob: float | None = None
    token_logprobs: list[TokenLogprob] | None = None  # only with keep_token_logprobs
    stats: dict[str, float] = field(default_factory=dict)  # ttscale.confidence, when logprobs >= 1
    # with finish_reason "stop": the stop string that ended it, or None for end-of-sequence
    stop_reason: str | int | None = None
    # per-token sampled logprob / confidence / entropy (ttscale.confidence.token_series), with
    # keep_series: step-wise search joins its steps' series to give a whole solution's exact stats
    series: dict[str, list[float]] | None = None
    token_ids: tuple[int, ...] | None = None  # the generated ids (backends that have them)

    @property
    def mean_logprob(self) -> float | None:
        if self.cumulative_logprob is None or self.num_tokens == 0:
            return None
        return self.cumulative_logprob / self.num_tokens


@dataclass
class Delta:
    """What one stream step adds to ONE sample (Backend.stream): the new token ids and their text,
    each token's sampled logprob and its top-k logprobs (by rank; with params.logprobs), and at the
    end the finish reason. The first delta carries the prompt's token counts."""

    token_ids: list[int]
    text: str = ""
    logprobs: list[float] | None = None
    top_logprobs: list[list[float]] | None = None  # per token, by rank (1 first)
    top_token_ids: list[list[int]] | None = None  # the ids of those top-k tokens, in the same order
    finish_reason: str | None = None  # set on the last delta: "stop" | "length" | "abort"
    stop_reason: str | int | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class GenerateOutput:
    """The completions of one backend call, with the prompt's token counts."""

    completions: list[Completion]
    prompt_tokens: int
    cached_prompt_tokens: int = 0


@dataclass
class Usage:
    """Compute spent. Prompt tokens count once per sample, as the engine runs every sample as a
    request of its own (vLLM's n-request is n child requests); `cached_prompt_tokens` is the share
    the prefix cache served, so prompt - cached is the prefill actually computed."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    verifier_tokens: int = 0
    verifier_calls: int = 0
    backend_calls: int = 0
    wall_seconds: float = 0.0

    def add(self, other: Usage) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Trajectory:
    """A (partial or complete) solution: its text, steps, scores and the answer extracted from it."""

    text: str
    num_tokens: int = 0
    finish_reason: str | None = None
    cumulative_logprob: float | None = None
    steps: list[str] = field(default_factory=list)
    answer: str | None = None
    score: float | None = None
    step_scores: list[float] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    # The text the answer is read from when it is not all of `text` (fractured sampling: the answer
    # after its cue); "" reads no answer (one cut before it closed).
    answer_text: str | None = None
    # the per-token series (ttscale.confidence), kept only for a selection that reads them (tail entropy);
    # never written to results
    series: dict[str, list[float]] | None = field(default=None, repr=False)

    @classmethod
    def from_completion(cls, completion: Completion) -> Trajectory:
        return cls(
            text=completion.text,
            num_tokens=completion.num_tokens,
            finish_reason=completion.finish_reason,
            cumulative_logprob=completion.cumulative_logprob,
            stats=dict(completion.stats),
            series=completion.series,
        )


@dataclass
class Candidate:
    """A trajectory as it appears in a result: its answer, score and whether it was chosen."""

    text: str
    answer: str | None
    score: float | None
    num_tokens: int
    finish_reason: str | None
    group: int | None = None  # index of its answer's equivalence group
    correct: bool | None = None
    stats: dict[str, float] = field(default_factory=dict)
    step_scores: list[float] = field(default_factory=list)
    verdict: dict[str, Any] | None = None  # code: the sandbox's verdict on all tests (status, per test)


@dataclass
class Result:
    """The outcome of a strategy on one problem."""

    problem_id: str
    answer: str | None
    candidates: list[Candidate] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    reference: str | None = None
    correct: bool | None = None
    error: str | None = None
    error_type: str | None = None  # the exception's class name when the strategy raised (BackendUnavailable: rerun)
    info: dict[str, Any] = field(default_factory=dict)  # strategy specifics: vote counts, ties
    undecided: str | None = None  # why the grader could not decide `correct` (then None), if it could not

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (what results.jsonl holds). Its nested values (info, each
        candidate's stats and verdict) are the result's own, not copies: serialise it, or copy it
        before changing it. (dataclasses.asdict deep-copies everything: it was the runtime's largest
        cost per sample, BENCHMARKS.md.)"""
        return {**vars(self), "candidates": [dict(vars(c)) for c in self.candidates], "usage": self.usage.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        data = dict(data)
        data["usage"] = Usage(**data.get("usage", {}))
        data["candidates"] = [Candidate(**c) for c in data.get("candidates", [])]
        return cls(**data)
