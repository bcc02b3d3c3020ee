"""OpenAI-compatible servers as a backend: one or many endpoints (`vllm serve`, SGLang, TGI, a hosted
API), with affinity routing, retries and failover.

Two modes:
- With a tokenizer (`tokenizer`: the served model's tokenizer folder or HF id), prompts go to the
  completions endpoint as token ids, the chat template rendered here, so step-wise search continues
  partial solutions by ids exactly as on the in-process engine; generated token ids, top-k logprobs
  by id (vLLM's `return_token_ids`, `return_tokens_as_token_ids`) and `score` (prompt logprobs) work.
- Without one (a hosted chat API): chat messages go to the chat endpoint and text to the completions
  endpoint; token ids are not available, and a strategy that needs them refuses to start
  (`token_ids` is False; build.check_backend).

Routing (backends/router.py): the calls of one problem (base.AFFINITY) go to one endpoint chosen by
rendezvous hashing over the endpoints in rotation, so its prefix cache keeps serving that problem; a
call with no problem, or whose endpoint is at its `max_concurrency`, goes to the endpoint with the
fewest outstanding requests.

Faults: a connection error, a timeout, a dropped response, a 429 or a 5xx is retried with exponential
backoff and jitter (a 429's or 503's Retry-After is honoured), on another endpoint when one is in
rotation. An endpoint that refuses connections, or fails `failures_before_cooldown` times in a row,
leaves the rotation for `cooldown` seconds. A sample is counted once: usage comes only from the
response that answered. A stream that breaks after some tokens is continued from the ids it already
delivered (one more prefill, counted). When no endpoint answers within `max_attempts` tries or the
call's `deadline`, the call raises BackendUnavailable; the runtime records the problem with that
error, and a rerun solves it again. Every wait has a deadline: `timeout` bounds a whole non-streamed
response, `stream_timeout` the silence between two chunks of a stream.

Each sample is its own request (n requests with seeds seed + i, as the in-process backend), so each
sample's prompt and cached-prompt tokens are counted as the server counts them (cached tokens need
vLLM's `--enable-prompt-tokens-details`; without it they read 0). The API key is read from the
environment variable named by `api_key_env` and never written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ttscale.backends.base import AFFINITY, TOP_P_KEY, BackendUnavailable, render_ids, top_p_filtered
from ttscale.backends.loop import LoopThread, Put, gather_or_cancel
from ttscale.backends.router import Endpoint, Router
from ttscale.backends.openai_wire import (BackendRequestError, _cached, _check, _Retry, completion_of, fill_delta,
                                           one_sample)
from ttscale.types import Completion, Delta, GenerateOutput, Prompt, SamplingParams, TokenPrompt

class OpenAIBackend:
    """One or many OpenAI-compatible endpoints (see the module doc)."""

    def __init__(
        self,
        endpoints: Any,
        model: str | None = None,
        *,
        tokenizer: Any = None,
        api_key_env: str | None = None,
        max_concurrency: int = 64,
        timeout: float = 600.0,
        stream_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retry: Mapping[str, Any] | None = None,
        send_seed: bool = True,
        fast_top_p: bool = False,
        logprobs_mode: str = "raw_logprobs",
    ):
        import httpx

        self.router = Router(endpoints, max_concurrency, retry)
        self.endpoints = self.router.endpoints
        self.timeout, self.stream_timeout, self.connect_timeout = float(timeout), float(stream_timeout), float(connect_timeout)
        self.send_seed = send_seed
        if fast_top_p not in (True, False):
            raise ValueError(f"backend.fast_top_p={fast_top_p!r} with backend=openai; choose one of: true (the servers "
                             "run --logits-processors ttscale.backends.top_p:TopP), false")
        self.fast_top_p = fast_top_p  # the servers run ttscale's top-p filter (backends/top_p.py)
        self.logprobs_mode = logprobs_mode
        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"backend.api_key_env={api_key_env!r}: that environment variable is not set")
            headers["Authorization"] = f"Bearer {key}"
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self._tokenizer = tokenizer
        self.token_ids = tokenizer is not None  # token-id prompts, generated ids, score
        self.top_logprobs = True  # completions carry top-k logprobs when asked (by id with a tokenizer)
        self._worker = LoopThread("ttscale-openai")
        self._client = None

        async def start():
            self.router.start()
            self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                                             limits=httpx.Limits(max_connections=None, max_keepalive_connections=256))

        self._worker.submit(start()).result()
        self.model, self.max_model_len = self._served(model)
        if self.fast_top_p:
            try:
                self._worker.submit(self._check_top_p()).result()
            except BaseException:
                self.close()
                raise

    # ---- tokens ----------------------------------------------------------------------------------

    @property
    def tokenizer(self):
        return self._tokenizer

    def _need_ids(self, what: str) -> None:
        if self._tokenizer is None:
            raise ValueError(f"backend=openai without backend.tokenizer cannot {what}: set backend.tokenizer to the "
                             "served model's tokenizer (a local folder or HF id), or backend.tokenizer=model")

    def encode(self, prompt: Prompt, continue_final_message: bool = False, add_special_tokens: bool = True) -> list[int]:
        if isinstance(prompt, TokenPrompt):
            return list(prompt.ids)
        self._need_ids("give token ids")
        return render_ids(self._tokenizer, prompt, continue_final_message, add_special_tokens)

    def decode(self, ids: Sequence[int]) -> str:
        self._need_ids("decode token ids")
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    # ---- requests ----------------------------------------------------------------------------------

    def _request(self, prompt: Prompt, params: SamplingParams, stream: bool) -> tuple[str, dict | None, list[int] | None]:
        """(path, body, prompt ids or None) of ONE sample; body None: the prompt fills the context."""
        body: dict[str, Any] = {
            "model": self.model, "n": 1, "temperature": params.temperature, "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if self.fast_top_p and top_p_filtered(params.top_p, params.top_k, params.temperature):
            # filtered by the server's TopP; top_k -1 said explicitly (a server's generation config may
            # set one, and TopP refuses requests with top-k)
            body.update(top_p=1.0, top_k=-1, vllm_xargs={TOP_P_KEY: params.top_p})
        if params.include_stop:  # vLLM's extension (as top_k): sent only when asked, for other servers
            body["include_stop_str_in_output"] = True
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None and self.send_seed:
            body["seed"] = params.seed
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
        if self._tokenizer is not None or isinstance(prompt, TokenPrompt):
            ids = self.encode(prompt, params.continue_final_message)
            if self.max_model_len is not None:  # as in-process: cap at the room the context leaves
                room = self.max_model_len - len(ids)
                if room <= 0:
                    return "/completions", None, ids
                body["max_tokens"] = min(body["max_tokens"], room)
            body.update(prompt=ids, return_token_ids=True)
            if params.logprobs is not None:
                body.update(logprobs=params.logprobs, return_tokens_as_token_ids=True)
            return "/completions", body, ids
        if isinstance(prompt, str):
            body["prompt"] = prompt
            if params.logprobs is not None:
                body["logprobs"] = params.logprobs
            return "/completions", body, None
        body["messages"] = list(prompt)
        if params.continue_final_message:  # vLLM's chat extension: extend the last assistant turn
            body.update(add_generation_prompt=False, continue_final_message=True)
        if params.logprobs is not None:
            body.update(logprobs=True, top_logprobs=params.logprobs)
        return "/chat/completions", body, None

    async def _post(self, endpoint: Endpoint, path: str, body: dict) -> dict:
        import httpx

        try:
            response = await self._client.post(endpoint.url + path, json=body)
        except httpx.ConnectError as exc:
            raise _Retry(f"connection failed ({exc})", down=True) from None
        except httpx.TimeoutException:
            raise _Retry(f"no response within {self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Retry(f"the connection broke ({type(exc).__name__}: {exc})") from None
        _check(response)
        try:
            return response.json()
        except json.JSONDecodeError:
            raise _Retry("the response was not complete JSON") from None

    # ---- the contract ------------------------------------------------------------------------------

    async def generate(self, prompt: Prompt, params: SamplingParams) -> GenerateOutput:
        key = AFFINITY.get()
        singles = [params if params.n == 1 else one_sample(params, i) for i in range(params.n)]
        requests = [self._request(prompt, p, stream=False) for p in singles]

        outs = await self._worker.call(gather_or_cancel(self._one_sample(r, params, key) for r in requests))
        return GenerateOutput([c for out in outs for c in out.completions],
                              prompt_tokens=sum(o.prompt_tokens for o in outs),
                              cached_prompt_tokens=sum(o.cached_prompt_tokens for o in outs))

    async def _one_sample(self, request, params: SamplingParams, key: str | None) -> GenerateOutput:
        path, body, ids = request
        if body is None:  # the prompt fills the context: nothing can be generated (as in-process)
            return GenerateOutput([Completion("", 0, "length", token_ids=())], len(ids))
        data = await self.router.call(lambda e: self._post(e, path, body), key, f"POST {path}")
        try:
            choice = data["choices"][0]
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError):
            raise BackendRequestError(f"POST {path}: the server's answer has no choices: {str(data)[:200]}") from None
        completion = completion_of(choice, params, path == "/chat/completions", usage, self._tokenizer)
        prompt_tokens = usage.get("prompt_tokens", len(ids) if ids is not None else 0)
        return GenerateOutput([completion], prompt_tokens=prompt_tokens, cached_prompt_tokens=_cached(usage))

    async def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Delta]:
        """One sample as deltas over server-sent events; closing the iterator closes the HTTP stream,
        and the server stops generating it."""
        if params.n != 1:
            raise ValueError(f"stream gives one sample; n={params.n} (open n streams)")
        self._need_ids("stream (a stream counts and continues its sample by token ids)")
        request = self._request(prompt, params, stream=True)
        key = AFFINITY.get()
        async for delta in self._worker.relay(lambda put: self._stream(request, params, key, put), lambda d: d.finished):
            yield delta

    async def _stream(self, request, params: SamplingParams, key: str | None, put: Put) -> None:
        path, body, ids = request
        if body is None:  # the prompt fills the context (as in-process)
            put(Delta([], finish_reason="length", prompt_tokens=len(ids)))
            return
        sent: dict[str, list] = {"ids": [], "text": []}  # what the reader was given: a broken stream goes on from it

        async def attempt(endpoint: Endpoint) -> None:
            again = dict(body)
            if sent["ids"]:
                # Text the server held back (it might have begun a stop string) went with the connection:
                # give it now, from the ids. (A stop string split by the cut is not seen.)
                whole, given = self.decode(sent["ids"]), "".join(sent["text"])
                if whole.startswith(given) and len(whole) > len(given):
                    put(Delta([], text=whole[len(given):]))
                    sent["text"].append(whole[len(given):])
                room = body["max_tokens"] - len(sent["ids"])
                if room <= 0:
                    put(Delta([], finish_reason="length"))
                    return
                again.update(prompt=ids + sent["ids"], max_tokens=room)  # a prefill of its own, counted
            await self._read_stream(endpoint, path, again, params, sent, put)

        try:
            await self.router.call(attempt, key, f"stream {path}")
        except asyncio.CancelledError:
            put(RuntimeError("the stream was cancelled (the backend was closed?)"))
            raise
        except BaseException as exc:  # the reader raises it in its own loop
            put(exc)

    async def _read_stream(self, endpoint: Endpoint, path: str, body: dict, params: SamplingParams,
                           sent: dict[str, list], put: Put) -> None:
        """One streamed request. Its prompt tokens come with the first usage; vLLM gives the cached
        prompt tokens only in the last usage chunk (after the finish), so the finishing delta waits
        for it. A connection lost after the finish loses nothing."""
        import httpx

        timeout = httpx.Timeout(self.stream_timeout, connect=self.connect_timeout)
        pending: Delta | None = None
        first, cached = True, 0
        try:
            async with self._client.stream("POST", endpoint.url + path, json=body, timeout=timeout) as response:
                if response.status_code != 200:
                    await response.aread()
                    _check(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        chunk = json.loads(payload)
                    except json.JSONDecodeError:
                        raise _Retry("a stream chunk was not complete JSON") from None
                    usage = chunk.get("usage") or {}
                    delta = Delta([])
                    if usage and first:
                        delta.prompt_tokens, first = usage.get("prompt_tokens", 0), False
                    if usage and _cached(usage) > cached:
                        delta.cached_prompt_tokens, cached = _cached(usage) - cached, _cached(usage)
                    for choice in chunk.get("choices") or []:
                        fill_delta(delta, choice, params)
                    if pending is not None:
                        pending.prompt_tokens += delta.prompt_tokens
                        pending.cached_prompt_tokens += delta.cached_prompt_tokens
                    elif delta.finished:
                        pending = delta
                    elif delta.token_ids or delta.text or delta.prompt_tokens or delta.cached_prompt_tokens:
                        sent["ids"].extend(delta.token_ids)
                        sent["text"].append(delta.text)
                        put(delta)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            if pending is None:
                if isinstance(exc, httpx.ConnectError):
                    raise _Retry(f"connection failed ({exc})", down=True) from None
                if isinstance(exc, httpx.TimeoutException):
                    raise _Retry(f"the stream was silent for {self.stream_timeout:g} s") from None
                raise _Retry(f"the stream broke ({type(exc).__name__})") from None
        if pending is None:
            raise _Retry(f"the stream ended after {len(sent['ids'])} tokens without a finish reason")
        sent["ids"].extend(pending.token_ids)
        put(pending)

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> list[float]:
        """The model's raw logprob of each completion token after the prompt (vLLM's prompt_logprobs)."""
        if not prompt_ids:
            raise ValueError("score needs a non-empty prompt (the first token has no logprob of its own)")
        if not completion_ids:
            return []
        ids = [*prompt_ids, *completion_ids]
        body = {"model": self.model, "prompt": ids, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}
        data = await self._worker.call(self.router.call(lambda e: self._post(e, "/completions", body), AFFINITY.get(),
                                                          "score"))
        try:
            positions = data["choices"][0]["prompt_logprobs"]
            return [float(positions[t][str(ids[t])]["logprob"]) for t in range(len(prompt_ids), len(ids))]
        except (KeyError, IndexError, TypeError):
            raise BackendRequestError("score: the server gave no prompt logprobs (it needs a vLLM server: "
                                      "`prompt_logprobs` is vLLM's extension)") from None

    def _served(self, model: str | None) -> tuple[str, int | None]:
        """The model to ask for (backend.model, else the one the first endpoint lists) and its context
        length (vLLM lists `max_model_len`; another server may not list it, or have no /models)."""
        async def ask(endpoint: Endpoint) -> dict:
            import httpx

            try:
                response = await self._client.get(endpoint.url + "/models")
            except httpx.TransportError as exc:
                raise _Retry(f"GET /models failed ({type(exc).__name__})", down=isinstance(exc, httpx.ConnectError)) from None
            _check(response)
            return response.json()

        try:
            data = self._worker.submit(self.router.call(ask, None, "GET /models")).result()
        except (BackendRequestError, BackendUnavailable) as exc:
            if model is None:
                raise
            warnings.warn(f"backend=openai: the servers' context length is unknown ({exc}), so max_tokens is not "
                          "capped to fit it (a request past it gets the server's error)", stacklevel=3)
            return model, None
        cards = [c for c in data.get("data") or [] if isinstance(c, Mapping)]
        if model is None:
            if len(cards) != 1:
                raise ValueError(f"the server serves {[c.get('id') for c in cards]}: set backend.model to the one to use")
            model = cards[0].get("id")
        length = next((c.get("max_model_len") for c in cards if c.get("id") == model), None)
        return model, int(length) if length else None

    async def _check_top_p(self) -> None:
        """With fast_top_p, every server must run ttscale's TopP, or its requests would sample with no
        top-p at all: a request with an invalid p is refused (400) by TopP and answered by a server
        without it."""
        import httpx

        for endpoint in self.endpoints:
            body = {"model": self.model, "prompt": [0] if self._tokenizer is not None else "x", "max_tokens": 1,
                    "temperature": 1.0, "top_p": 1.0, "top_k": -1, "vllm_xargs": {TOP_P_KEY: 2.0}}
            try:
                response = await self._client.post(endpoint.url + "/completions", json=body)
            except httpx.TransportError as exc:
                raise ValueError(f"backend.fast_top_p=true: could not check {endpoint.url} for ttscale's top-p "
                                 f"filter ({type(exc).__name__}: {exc})") from None
            if response.status_code == 200:
                raise ValueError(f"backend.fast_top_p=true, but {endpoint.url} does not run ttscale's top-p filter "
                                 "(start it with --logits-processors ttscale.backends.top_p:TopP), so its samples "
                                 "would have no top-p at all; or set backend.fast_top_p=false")
            if response.status_code != 400 or TOP_P_KEY not in response.text:
                raise ValueError(f"backend.fast_top_p=true: {endpoint.url} answered the top-p filter check with "
                                 f"HTTP {response.status_code}, not the filter's refusal: {response.text[:200]}")

    def stats(self) -> list[dict[str, Any]]:
        """Per endpoint: requests sent, failed tries, and whether it is out of rotation now."""
        return self.router.stats(self._worker.loop.time())

    def close(self) -> None:
        if self._client is not None and self._worker.loop.is_running():
            self._worker.submit(self._client.aclose()).result(timeout=10)
            self._client = None
        self._worker.stop()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
