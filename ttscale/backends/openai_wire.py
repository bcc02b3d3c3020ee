"""The OpenAI-compatible wire format as vLLM's server writes it, read for backends/openai.py: status
codes to retry or not, usage, generated ids, logprobs (`token_id:N` tokens, top-k rows by rank), and a
response's sample as a Completion or a streamed chunk as a Delta."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ttscale.confidence import series_stats, token_series
from ttscale.types import Completion, Delta, SamplingParams, TokenLogprob


class BackendRequestError(RuntimeError):
    """The server refused a request (a 4xx other than 429): retrying would not help."""


class _Retry(Exception):
    """One failed try: why, whether the endpoint is down, and the server's Retry-After."""

    def __init__(self, reason: str, down: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.down = down
        self.retry_after = retry_after


def _check(response) -> None:
    """Raise _Retry for a status worth retrying (429, 5xx), BackendRequestError for another error."""
    code = response.status_code
    if code == 200:
        return
    try:
        detail = response.json()
        detail = (detail.get("error") or {}).get("message") if isinstance(detail.get("error"), dict) else detail.get("message", detail)
    except Exception:
        detail = response.text[:200]
    if code == 429 or code >= 500:
        retry_after = None
        header = response.headers.get("retry-after")
        if header is not None and code in (429, 503):
            try:
                retry_after = max(0.0, float(header))
            except ValueError:
                retry_after = None
        raise _Retry(f"HTTP {code}: {str(detail)[:200]}", retry_after=retry_after)
    raise BackendRequestError(f"HTTP {code} from {response.request.url}: {str(detail)[:300]}")


def _cached(usage: Mapping[str, Any]) -> int:
    details = usage.get("prompt_tokens_details") or {}
    return int(details.get("cached_tokens") or 0)


def _ids(choice: Mapping[str, Any], tokens) -> list[int] | None:
    """The generated ids: vLLM's `token_ids` (return_token_ids), else the logprobs tokens' ids."""
    ids = choice.get("token_ids")
    if ids is None and tokens and all(t[0] is not None for t in tokens):
        ids = [t[0] for t in tokens]
    return ids


def _token(name: str) -> tuple[int | None, str]:
    """(id, text) of a logprobs token: vLLM writes "token_id:123" with return_tokens_as_token_ids."""
    if name.startswith("token_id:"):
        try:
            return int(name[9:]), name
        except ValueError:
            pass
    return None, name


def _logprobs(block: Any, top_k: int | None, chat: bool):
    """(sampled logprobs, top-k logprobs by rank, their (id, text) tokens by rank, sampled (id, text) tokens)
    from a completions or chat logprobs block; Nones when there is none."""
    if not block or top_k is None:
        return None, None, None, None
    if chat:
        entries = block.get("content") or []
        sampled = [float(e["logprob"]) for e in entries]
        tokens = [_token(e["token"]) for e in entries]
        ranked = []
        for token, e in zip(tokens, entries):  # by logprob: vLLM's chat rows list the sampled token first
            items = sorted(((_token(t["token"]), float(t["logprob"])) for t in e.get("top_logprobs") or []),
                           key=lambda x: -x[1])
            if len(items) > top_k:
                items = [it for it in items if it[0] != token] or items
            ranked.append(items[:top_k])
    else:
        sampled = [float(x) if x is not None else float("nan") for x in block.get("token_logprobs") or []]
        tokens = [_token(t) for t in block.get("tokens") or []]
        ranked = []
        for token, top in zip(tokens, block.get("top_logprobs") or [None] * len(tokens)):
            items = sorted(((_token(name), float(lp)) for name, lp in (top or {}).items()), key=lambda x: -x[1])
            if len(items) > top_k:  # the sampled token is listed too when it is outside the top-k
                items = [it for it in items if it[0] != token]
            ranked.append(items[:top_k])
    if top_k <= 0:
        return sampled, None, None, tokens
    tops = [[lp for _, lp in row] or [s] for row, s in zip(ranked, sampled)]
    top_tokens = [[tok for tok, _ in row] or [t] for row, t in zip(ranked, tokens)]
    return sampled, tops, top_tokens, tokens


def completion_of(choice: dict, params: SamplingParams, chat: bool, usage: Mapping[str, Any], tokenizer) -> Completion:
    """One sample of a response (chat or completions) as a Completion; `tokenizer` decodes token ids, if any."""
    text = ((choice.get("message") or {}).get("content") or "") if chat else (choice.get("text") or "")
    sampled, tops, top_tokens, tokens = _logprobs(choice.get("logprobs"), params.logprobs, chat)
    ids = _ids(choice, tokens)
    num = len(ids) if ids is not None else int(usage.get("completion_tokens") or 0)
    series = token_series(sampled, tops, params.keep_series) if tops is not None and sampled else None
    keep = None
    if params.keep_token_logprobs and sampled is not None:
        rows = top_tokens or [[] for _ in sampled]
        keep = [TokenLogprob(token=piece(tok, tokenizer), logprob=lp,
                             top={piece(t, tokenizer): v for t, v in zip(row_tokens, row)})
                for tok, lp, row_tokens, row in zip(tokens, sampled, rows, tops or [[] for _ in sampled])]
    return Completion(
        text=text, num_tokens=num, finish_reason=choice.get("finish_reason"),
        stop_reason=choice.get("stop_reason") if choice.get("finish_reason") == "stop" else None,
        cumulative_logprob=sum(sampled) if sampled is not None else None,
        token_logprobs=keep,
        stats=series_stats(series, params.stats) if series is not None else {},
        series=series if params.keep_series else None,
        token_ids=tuple(ids) if ids is not None else None,
    )


def piece(token: tuple[int | None, str], tokenizer) -> str:
    """A token's text: decoded here from its id when there is a tokenizer, else the server's string."""
    tid, text = token
    if tid is not None and tokenizer is not None:
        return tokenizer.decode([tid])
    return text


def fill_delta(delta: Delta, choice: dict, params: SamplingParams) -> None:
    """A streamed chunk's choice into the Delta of its sample."""
    sampled, tops, top_tokens, tokens = _logprobs(choice.get("logprobs"), params.logprobs, chat=False)
    delta.token_ids = list(_ids(choice, tokens) or [])
    delta.text = choice.get("text") or ""
    if params.logprobs is not None:
        delta.logprobs = sampled or []
        if params.logprobs > 0:
            delta.top_logprobs = tops or []
            delta.top_token_ids = [[t[0] for t in row] for row in top_tokens or []]
    if choice.get("finish_reason"):
        delta.finish_reason = choice["finish_reason"]
        delta.stop_reason = choice.get("stop_reason") if delta.finish_reason == "stop" else None


def one_sample(params: SamplingParams, index: int) -> SamplingParams:
    """Sample `index` of an n-sample request as a request of its own (seed + index)."""
    return replace(params, n=1, seed=None if params.seed is None else params.seed + index)
