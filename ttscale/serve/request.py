"""What a chat-completions request may ask of `ttscale serve`, read as the OpenAI API defines it.

A request names a strategy in `model` ("self_consistency@8": the strategy config, `@` its budget
strategy.n). Sampling fields override the strategy's; `stop` (a string or up to 4) ends every sample;
`stream` answers as server-sent events; message content may be a string or an array of text parts.
Fields ttscale cannot honour are refused with their name, unless they hold the API's neutral value
(`presence_penalty: 0`, `logprobs: false`), which clients such as lm-evaluation-harness send.
Every request is checked against the server's `Limits` before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SAMPLING = {"temperature": float, "top_p": float, "top_k": int, "max_tokens": int}
NEUTRAL = {"presence_penalty": 0, "frequency_penalty": 0, "logprobs": False, "top_logprobs": 0,
           "parallel_tool_calls": False, "tools": [], "tool_choice": "none"}  # accepted only at these values
KNOWN = {"model", "messages", "seed", "stream", "stream_options", "n", "user", "stop", "max_completion_tokens",
         *SAMPLING, *NEUTRAL}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOPS = 4  # as the OpenAI API


class BadRequest(ValueError):
    """A request that cannot be answered as asked: a 400 with this one line."""


@dataclass(frozen=True)
class Limits:
    """What one server accepts: a request's budget (strategy.n), each sample's max_tokens, their
    product (the generated tokens a request may cost), and requests at once (the rest wait, up to
    max_waiting; beyond that a 429)."""

    max_n: int = 64
    max_tokens: int = 4096
    max_request_tokens: int = 131072
    max_concurrent: int = 8
    max_waiting: int = 64

    def __post_init__(self) -> None:
        for key, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r} must be an integer >= 1")

    def check(self, name: str, n: int, max_tokens: int) -> None:
        """A built strategy's budget against the limits (n and max_tokens as it will run)."""
        if n > self.max_n:
            raise BadRequest(f"model {name}: strategy.n={n} is over this server's limit of {self.max_n}")
        if max_tokens > self.max_tokens:
            raise BadRequest(f"max_tokens={max_tokens} is over this server's limit of {self.max_tokens} per sample")
        if n * max_tokens > self.max_request_tokens:
            raise BadRequest(f"model {name}: n x max_tokens = {n} x {max_tokens} = {n * max_tokens} generated tokens "
                             f"at most, over this server's limit of {self.max_request_tokens} per request")


@dataclass
class ChatRequest:
    name: str  # the strategy config
    n: int | None  # its budget, None: the config's
    spec: str  # what the client named ("self_consistency@8")
    messages: list[dict[str, str]]
    seed: int
    sampling: dict[str, Any] = field(default_factory=dict)  # strategy.* overrides
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage


def parse_model(spec: Any, names: list[str], max_n: int) -> tuple[str, int | None]:
    """"self_consistency@8" -> ("self_consistency", 8); "greedy" -> ("greedy", None)."""
    if not isinstance(spec, str) or not spec.strip():
        raise BadRequest("'model' must name a strategy, e.g. \"self_consistency@8\" (GET /v1/models lists them)")
    name, _, budget = spec.strip().partition("@")
    if name not in names:
        raise BadRequest(f"model {spec!r}: no strategy {name!r}; choose one of: {', '.join(names)}")
    if not budget:
        return name, None
    if not budget.isdigit() or not 1 <= int(budget) <= max_n:
        raise BadRequest(f"model {spec!r}: the budget after '@' must be an integer from 1 to {max_n} (strategy.n)")
    return name, int(budget)


def message_text(content: Any, i: int) -> str:
    """A message's content: a string, or an array of text parts ({"type": "text", "text": ...}) joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise BadRequest(f"messages[{i}].content[{j}] is a {kind!r} part; only text parts "
                                 "({\"type\": \"text\", \"text\": ...}) are read")
            texts.append(part["text"])
        return "".join(texts)
    raise BadRequest(f"messages[{i}].content must be a string or a non-empty array of text parts")


def parse_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES or "content" not in m:
            raise BadRequest(f"messages[{i}] must be {{role: system|developer|user|assistant, content}}")
        out.append({"role": ROLES[m["role"]], "content": message_text(m["content"], i)})
    if out[-1]["role"] != "user":
        raise BadRequest("the last message must be the user's question")
    return out


def _number(key: str, value: Any, kind: type) -> int | float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value)) \
            and (kind is float or value == int(value))
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        raise BadRequest(f"'{key}' must be a finite number" + (" (an integer)" if kind is int else ""))
    return kind(value)


def parse_stop(stop: Any) -> tuple[str, ...] | None:
    if stop is None:
        return None
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOPS:
        raise BadRequest(f"'stop' must be a non-empty string or a list of up to {MAX_STOPS} of them")
    return tuple(stops)


def parse_body(body: Any, header: str | None, names: list[str], limits: Limits, default_seed: int) -> ChatRequest:
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; this endpoint reads: {', '.join(sorted(KNOWN))}")
    for key, neutral in NEUTRAL.items():
        if body.get(key) not in (None, neutral):
            raise BadRequest(f"'{key}'={body[key]!r} cannot be honoured by a strategy (only {neutral!r} is accepted)")
    if body.get("n", 1) != 1:
        raise BadRequest("n must be 1: the strategy's budget goes in 'model', e.g. \"self_consistency@8\"")
    spec = header or body.get("model")
    name, n = parse_model(spec, names, limits.max_n)
    messages = parse_messages(body.get("messages"))
    if body.get("max_completion_tokens") is not None:
        if body.get("max_tokens") is not None and body["max_tokens"] != body["max_completion_tokens"]:
            raise BadRequest("'max_tokens' and 'max_completion_tokens' differ; send one")
        body = {**body, "max_tokens": body["max_completion_tokens"]}
    sampling: dict[str, Any] = {}
    for key, kind in SAMPLING.items():
        if body.get(key) is not None:
            sampling[key] = _number(key, body[key], kind)
    if "max_tokens" in sampling and sampling["max_tokens"] < 1:
        raise BadRequest("'max_tokens' must be >= 1")
    if "top_k" in sampling and sampling["top_k"] < -1:
        raise BadRequest("'top_k' must be -1 or 0 (no top-k), or >= 1")
    stop = parse_stop(body.get("stop"))
    if stop:
        sampling["stop"] = stop
    seed = body.get("seed", default_seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadRequest("'seed' must be an integer")
    stream = body.get("stream") or False
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, Mapping) or set(options) - {"include_usage"}:
        raise BadRequest("'stream' must be true or false, and 'stream_options' {\"include_usage\": true|false}")
    return ChatRequest(name=name, n=n, spec=spec, messages=messages, seed=seed, sampling=sampling, stream=stream,
                       include_usage=bool(options.get("include_usage")))
