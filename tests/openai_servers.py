"""Loopback HTTP doubles for the OpenAI backend's tests: a fake OpenAI-compatible model server (the
wire format of vLLM's server, a deterministic "model"), a fault-injecting proxy to put in front of any
server (the fake or a real `vllm serve`), and a character tokenizer that both ends share.

Each runs on a private event loop thread, so tests drive them from plain (sync) code.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable

from aiohttp import web

from ttscale.backends.launch import free_port

GEN_PROMPT = "<|assistant|>\n"


class CharTokenizer:
    """One token per character (id = code point); a minimal chat template."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=True, continue_final_message=False):
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        if continue_final_message:
            text = text[:-1]
        elif add_generation_prompt:
            text += GEN_PROMPT
        return self.encode(text) if tokenize else text


def reply_for(context: str, seed: int | None) -> str:
    """The fake model's whole answer to a prompt (text before the assistant turn) and seed."""
    digest = sum(map(ord, context)) + (seed or 0)
    return f"Step one {digest % 7}.\n\nSo the answer is \\boxed{{{digest % 3}}}."


class _Threaded:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = None

    def _app(self) -> web.Application:
        raise NotImplementedError

    def start(self):
        async def up():
            self._runner = web.AppRunner(self._app(), handle_signals=False, shutdown_timeout=0.5)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(up(), self.loop).result(10)
        return self

    def stop(self) -> None:
        """Stop listening and drop every open connection (a server killed mid-run)."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
            self._runner = None

    def close(self) -> None:
        self.stop()

        async def drain():  # handlers still waiting on a dropped client
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class FakeOpenAIServer(_Threaded):
    """/v1/models, /v1/completions (token-id or text prompts, streaming, logprobs with token ids,
    prompt_logprobs) and /v1/chat/completions, answering `reply_for(...)` one character a token.
    A prompt that already holds part of the answer after the assistant turn gets the rest (so a
    stream continued by ids ends as the uninterrupted one). Records every request body in
    `requests`, streams closed by the client in `disconnects`; `api_key` makes it check the header."""

    def __init__(self, token_delay: float = 0.0, api_key: str | None = None, cached: int = 3, delay: float = 0.0,
                 context: int = 4096, cut_after_finish: bool = False, top_p_filter: bool = True):
        super().__init__()
        self.top_p_filter = top_p_filter  # refuses an invalid extra_args p as ttscale's TopP does
        self.token_delay = token_delay
        self.delay = delay  # seconds before a non-streamed answer
        self.context = context  # max_model_len, listed by /v1/models as vLLM lists it
        self.cut_after_finish = cut_after_finish  # close a stream after its finishing chunk (no usage, no [DONE])
        self.api_key = api_key
        self.cached = cached
        self.requests: list[dict] = []
        self.disconnects = 0
        self.tok = CharTokenizer()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    def _denied(self, request) -> web.Response | None:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        return None

    async def _models(self, request):
        return self._denied(request) or web.json_response({"data": [{"id": "fake-model", "max_model_len": self.context}]})

    def _answer(self, prompt: str, body: dict) -> str:
        context, sep, done = prompt.rpartition(GEN_PROMPT)
        if not sep:
            context, done = prompt, ""
        full = reply_for(context, body.get("seed"))
        rest = full[len(done):] if full.startswith(done) else full
        for stop in body.get("stop") or []:
            at = rest.find(stop)
            if at >= 0:
                return rest[: at + (len(stop) if body.get("include_stop_str_in_output") else 0)], "stop", stop
        limit = body.get("max_tokens") or 16
        if len(rest) > limit:
            return rest[:limit], "length", None
        return rest, "stop", None

    def _logprobs(self, text: str, k: int) -> dict:
        tokens = [f"token_id:{ord(c)}" for c in text]
        tops = []
        for c in text:
            top = {f"token_id:{ord(c)}": -0.1}
            for j in range(1, k):
                top[f"token_id:{ord(c) + 1000 + j}"] = -0.1 - 2.0 * j
            tops.append(top)
        return {"tokens": tokens, "token_logprobs": [-0.1] * len(text), "top_logprobs": tops, "text_offset": []}

    async def _completions(self, request):
        denied = self._denied(request)
        if denied:
            return denied
        body = await request.json()
        self.requests.append(body)
        p = (body.get("vllm_xargs") or {}).get("ttscale_top_p")
        if self.top_p_filter and p is not None and not 0 < p <= 1:  # as ttscale's TopP on a vLLM server
            return web.json_response({"error": {"message": f"extra_args['ttscale_top_p']={p} must be a number in (0, 1]"}},
                                     status=400)
        prompt = body["prompt"]
        ids = prompt if isinstance(prompt, list) else self.tok.encode(prompt)
        text_prompt = self.tok.decode(ids)
        usage = {"prompt_tokens": len(ids), "prompt_tokens_details": {"cached_tokens": min(self.cached, len(ids))}}
        if body.get("prompt_logprobs") is not None:
            positions = [None] + [{str(t): {"logprob": -0.01 * (i % 5 + 1), "rank": 1}} for i, t in enumerate(ids[1:])]
            return web.json_response({"choices": [{"index": 0, "text": "", "prompt_logprobs": positions,
                                                   "finish_reason": "length"}], "usage": usage})
        if len(ids) + (body.get("max_tokens") or 16) > self.context:  # as vLLM: a 400, not a truncation
            return web.json_response({"error": {"message": "context length exceeded"}}, status=400)
        text, finish, stop = self._answer(text_prompt, body)
        k = body.get("logprobs")
        if not body.get("stream"):
            await asyncio.sleep(self.delay)
            choice = {"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop,
                      "token_ids": [ord(c) for c in text] if body.get("return_token_ids") else None,
                      "logprobs": self._logprobs(text, k) if k is not None else None}
            return web.json_response({"choices": [choice], "usage": {**usage, "completion_tokens": len(text)}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for i, c in enumerate(text):
                last = i == len(text) - 1
                choice = {"index": 0, "text": c, "token_ids": [ord(c)],
                          "finish_reason": finish if last else None, "stop_reason": stop if last else None,
                          "logprobs": self._logprobs(c, k) if k is not None else None}
                # as vLLM 0.32: each chunk's usage without the cached-token details (only the last has them)
                brief = {"prompt_tokens": len(ids), "completion_tokens": i + 1}
                await response.write(f"data: {json.dumps({'choices': [choice], 'usage': brief})}\n\n".encode())
                if last and self.cut_after_finish:
                    request.transport.close()
                    return response
                await asyncio.sleep(self.token_delay)
            if not text:
                chunk = {"choices": [{"index": 0, "text": "", "finish_reason": finish}], "usage": usage}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return response

    async def _chat(self, request):
        denied = self._denied(request)
        if denied:
            return denied
        body = await request.json()
        self.requests.append(body)
        prompt = self.tok.apply_chat_template(body["messages"], tokenize=False,
                                              continue_final_message=body.get("continue_final_message", False))
        text, finish, stop = self._answer(prompt, body)
        logprobs = None
        if body.get("logprobs"):
            k = body.get("top_logprobs") or 0
            logprobs = {"content": [{"token": c, "logprob": -0.1,
                                     "top_logprobs": [{"token": c, "logprob": -0.1}]
                                     + [{"token": f"x{j}", "logprob": -0.1 - 2.0 * j} for j in range(1, k)]}
                                    for c in text]}
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                  "stop_reason": stop, "logprobs": logprobs}
        return web.json_response({"choices": [choice], "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(text)}})


class FaultProxy(_Threaded):
    """Forwards /v1/... to `upstream` (a base URL without /v1), applying the next fault of `faults`
    (a list, consumed in order; None or an empty list: pass through) to each request:
      ("status", code, retry_after | None)  answer with that status instead of forwarding
      ("drop",)                              close the connection before any response
      ("drop_mid", n_bytes)                  forward, then cut the connection after n_bytes of the body
      ("stall", seconds)                     wait that long before forwarding
    Faults hit requests with a body (POSTs), and only those `match(body)` accepts when it is given.
    `seen` counts the POSTs; `when` records their times."""

    def __init__(self, upstream: str, faults: list | None = None, match: Callable[[dict], bool] | None = None):
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.faults = list(faults or [])
        self.match = match
        self.seen = 0
        self.when: list[float] = []
        self.applied: list[tuple] = []

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _forward(self, request):
        import aiohttp

        raw = await request.read()
        body = json.loads(raw) if raw else {}
        if body:  # POSTs: generation requests
            self.seen += 1
            self.when.append(time.monotonic())
        fault = None
        if self.faults and body and (self.match is None or self.match(body)):  # POSTs only (not GET /models)
            fault = self.faults.pop(0)
            self.applied.append(fault)
        if fault and fault[0] == "status":
            headers = {"Retry-After": str(fault[2])} if fault[2] is not None else {}
            return web.json_response({"error": {"message": f"injected {fault[1]}"}}, status=fault[1], headers=headers)
        if fault and fault[0] == "drop":
            request.transport.close()
            return web.Response(status=500)
        if fault and fault[0] == "stall":
            await asyncio.sleep(fault[1])
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, self.upstream + request.path, data=raw, headers=headers) as up:
                response = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})
                await response.prepare(request)
                sent = 0
                async for piece in up.content.iter_any():
                    if fault and fault[0] == "drop_mid" and sent + len(piece) > fault[1]:
                        await response.write(piece[: max(0, fault[1] - sent)])
                        request.transport.close()
                        return response
                    await response.write(piece)
                    sent += len(piece)
                await response.write_eof()
                return response
