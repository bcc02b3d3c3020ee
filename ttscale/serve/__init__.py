"""`ttscale serve`: an OpenAI-compatible chat endpoint that answers each request with a strategy.

    ttscale serve [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--max-n 64] [--max-concurrent 8] ...
                  [model=... backend=... verifier=... seed=...]

POST /v1/chat/completions with `"model": "self_consistency@8"` (a strategy config name, `@` its budget
`strategy.n`; or the header `X-TTScale-Strategy: self_consistency@8`) runs that strategy on the request's
messages and answers with the chosen sample's text (when no sample finished, the first sample's, with
finish_reason "length" and no answer). `usage` is everything the strategy spent
(prompt_tokens / completion_tokens over all its samples), and `ttscale` adds the extracted answer, the
candidates and the full usage. `temperature`, `top_p`, `top_k`, `max_tokens` (or `max_completion_tokens`),
`stop` and `seed` override the strategy's; `stream: true` sends the chosen answer as server-sent events
once the strategy has chosen (keep-alive comments while it works); content may be an array of text
parts (ttscale/serve/request.py). GET /v1/models lists the strategies.

Limits: a request's budget (`--max-n`), each sample's `--max-tokens`, their product
(`--max-request-tokens`), and requests at once (`--max-concurrent`; up to `--max-waiting` more wait, the
rest get a 429). An API key (`--api-key`, or TTSCALE_API_KEY): clients send `Authorization: Bearer KEY`;
bound beyond loopback without one, the server makes a key and prints it (`--no-api-key` to serve
without). A bad request gets a 400 with one line saying what is wrong; a strategy that fails while
solving gets a 502 with its reason.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ttscale.backends.base import AFFINITY
from ttscale.build import ConfigError, build_strategy, model_stop
from ttscale.config import CONFIG_NAME, conf_dir
from ttscale.graders.math import MathGrader
from ttscale.serve.request import BadRequest, ChatRequest, Limits, parse_body
from ttscale.strategies.context import Context
from ttscale.types import Problem

CACHED_STRATEGIES = 64  # built strategies kept (per strategy, budget and sampling overrides)
MAX_BODY = 8 * 2**20  # bytes of a request body (larger: a 413 as an OpenAI error object)
KEEPALIVE_SECONDS = 10.0  # a streamed answer sends a comment this often while the strategy works

__all__ = ["BadRequest", "Limits", "Server", "main", "strategy_names"]


def strategy_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "strategy").glob("*.yaml") if not p.stem.startswith("_"))


class Server:
    """The strategies of one configuration (model, backend, verifier, seed) behind the chat endpoint.

    overrides: Hydra overrides of the run config (as on the ttscale command line); backend: a built
    backend to use (tests, research code), else one is built from the config; limits: what a request
    may ask (Limits); api_key: required of every /v1 request when given."""

    def __init__(self, overrides: Sequence[str] = (), backend: Any = None, limits: Limits | None = None,
                 api_key: str | None = None):
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        from ttscale.config import register_schemas

        register_schemas()
        self.overrides = list(overrides)
        self.limits = limits or Limits()
        self.api_key = api_key or None
        self._compose, self._initialize, self._omegaconf = compose, initialize_config_dir, OmegaConf
        base = self._config([])
        self.seed = base["seed"]
        self.model_cfg = base["model"]
        self.backend = backend
        if self.backend is None:
            from ttscale.build import build_backend, build_model_path, needs_model_weights

            path = build_model_path(base["model"]) if needs_model_weights(base["backend"]) else None
            self.backend = build_backend(base["backend"], path, base["seed"])
        self.grader = MathGrader()
        self.names = strategy_names()
        self._strategies: dict[tuple, Any] = {}
        self._waiting = 0  # requests admitted and not yet answered

    def _config(self, extra: list[str]) -> dict[str, Any]:
        with self._initialize(config_dir=str(conf_dir()), version_base=None):
            cfg = self._compose(config_name=CONFIG_NAME, overrides=self.overrides + extra)
        return self._omegaconf.to_container(cfg, resolve=True)

    def strategy(self, name: str, n: int | None, sampling: dict[str, Any]):
        key = (name, n, tuple(sorted(sampling.items())))
        if key not in self._strategies:
            label = f"{name}{'@' + str(n) if n else ''}"
            cfg = self._config([f"strategy={name}"] + ([f"strategy.n={n}"] if n else []))
            cfg["strategy"].update({k: list(v) if k == "stop" else v for k, v in sampling.items()})
            self.limits.check(label, cfg["strategy"]["n"], cfg["strategy"]["max_tokens"])
            try:
                built = build_strategy(cfg["strategy"], cfg["verifier"], self.backend, self.grader,
                                       extra_stop=model_stop(cfg["model"]), step_delimiter=cfg["model"]["step_delimiter"])
            except ConfigError as exc:
                raise BadRequest(f"model {label}: {exc}") from None
            if len(self._strategies) >= CACHED_STRATEGIES:  # drop the oldest: clients may vary temperature freely
                self._strategies.pop(next(iter(self._strategies)))
            self._strategies[key] = built
        return self._strategies[key]

    def parse(self, body: Any, header: str | None) -> tuple[Any, ChatRequest, Problem]:
        request = parse_body(body, header, self.names, self.limits, self.seed)
        strategy = self.strategy(request.name, request.n, request.sampling)
        # the id seeds the samples (Context): the same messages and seed give the same samples
        digest = hashlib.sha256(json.dumps(request.messages, sort_keys=True).encode()).hexdigest()[:16]
        problem = Problem(id=f"chat-{digest}", question=request.messages[-1]["content"], messages=request.messages)
        return strategy, request, problem

    def check_context(self, messages: list[dict[str, Any]]) -> None:
        """A prompt that does not fit the model's context is the client's error (a 400, as vLLM's own
        server answers), not an empty reply. Needs a backend that knows its context and tokenizer."""
        limit = getattr(self.backend, "max_model_len", None)
        encode = getattr(self.backend, "encode", None)
        if not limit or not callable(encode):
            return
        try:
            tokens = len(encode(messages))
        except Exception:  # noqa: BLE001  (a backend without a local tokenizer: the engine decides)
            return
        if tokens >= limit:
            raise BadRequest(f"This model's maximum context length is {limit} tokens. However, your messages "
                             f"resulted in {tokens} tokens, leaving no room for a completion. Please reduce the "
                             "length of the messages.")

    async def answer(self, strategy, request: ChatRequest, problem: Problem) -> dict[str, Any]:
        AFFINITY.set(problem.id)  # this request's backend calls prefer one server (its own task's context)
        ctx = Context(problem=problem, backend=self.backend, grader=self.grader, run_seed=request.seed)
        result = await strategy.solve(problem, ctx)
        chosen = result.info.get("chosen")
        # none chosen (no sample finished): the first sample's text, with its finish reason ("length")
        best = result.candidates[chosen] if chosen is not None else (result.candidates or [None])[0]
        usage = result.usage
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": request.spec,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": best.text if best else ""},
                         "finish_reason": "length" if best is None or best.finish_reason == "length" else "stop"}],
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "total_tokens": usage.prompt_tokens + usage.completion_tokens},
            "ttscale": {"strategy": strategy.name, "answer": result.answer, "candidates": len(result.candidates),
                        "answers": [c.answer for c in result.candidates], "usage": asdict(usage),
                        "info": {k: v for k, v in result.info.items() if _jsonable(v)}},
        }

    def app(self):
        from aiohttp import web

        slots = asyncio.Semaphore(self.limits.max_concurrent)

        @web.middleware
        async def authorised(request: web.Request, handler):
            if self.api_key and request.path.startswith("/v1"):
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                    return _error(401, "missing or wrong API key: send the header Authorization: Bearer KEY",
                                  "invalid_request_error")
            return await handler(request)

        async def chat(request: web.Request) -> web.StreamResponse:
            try:
                try:
                    raw = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    return _error(413, f"the request body is larger than this server takes "
                                  f"({MAX_BODY} bytes)", "invalid_request_error")
                try:
                    body = json.loads(raw, parse_constant=_no_constant)
                except (ValueError, RecursionError):  # malformed, NaN/Infinity, nested past the parser's depth
                    raise BadRequest("the body is not JSON (standard JSON: no NaN or Infinity, not nested "
                                     "past Python's recursion limit)") from None
                strategy, chat_request, problem = self.parse(body, request.headers.get("X-TTScale-Strategy"))
            except BadRequest as exc:
                return _error(400, str(exc), "invalid_request_error")
            if self._waiting >= self.limits.max_concurrent + self.limits.max_waiting:
                response = _error(429, f"busy: {self._waiting} requests in flight or waiting (this server runs "
                                  f"{self.limits.max_concurrent} at once); retry later", "rate_limit_error")
                response.headers["Retry-After"] = "5"
                return response
            self._waiting += 1
            try:
                try:  # tokenising a long prompt is work: off the event loop, after the busy check
                    await asyncio.to_thread(self.check_context, chat_request.messages)
                except BadRequest as exc:
                    return _error(400, str(exc), "invalid_request_error")
                async with slots:
                    work = self.answer(strategy, chat_request, problem)
                    if chat_request.stream:
                        return await _stream(request, work, chat_request.include_usage)
                    try:
                        return web.json_response(await _unless_gone(request, work))
                    except ClientGone:  # nobody to answer: the strategy's requests were aborted
                        return web.Response(status=499)
                    except Exception as exc:  # the strategy failed (the backend is down, ...): not the client's fault
                        return _error(502, f"the strategy failed: {type(exc).__name__}: {exc}", "server_error")
            finally:
                self._waiting -= 1

        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "ttscale"}
                                                                 for name in self.names]})

        async def health(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app = web.Application(client_max_size=MAX_BODY, middlewares=[authorised])
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        app.router.add_get("/health", health)
        return app

    def close(self) -> None:
        self.grader.close()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


DISCONNECT_POLL = 0.5  # seconds between looks at a waiting client's connection


def _gone(request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _unless_gone(request, work):
    """Await `work` while the client stays; when it hangs up, cancel the work (a cancelled strategy's
    backend calls are aborted in the engine) and raise ClientGone. aiohttp does not cancel a handler
    whose client left (handler_cancellation is off by default), so the connection is watched here."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL)
            if not task.done() and _gone(request):
                task.cancel()
                raise ClientGone()
        return task.result()
    finally:
        if not task.done():
            task.cancel()


def chunks(reply: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A finished reply as the OpenAI API's stream of chat.completion.chunk objects: the role, the
    content, the finish reason, and (stream_options.include_usage) the usage with no choices."""
    head = {"id": reply["id"], "object": "chat.completion.chunk", "created": reply["created"], "model": reply["model"]}
    choice = reply["choices"][0]
    out = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
           {**head, "choices": [{"index": 0, "delta": {"content": choice["message"]["content"]}, "finish_reason": None}]},
           {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
            "ttscale": reply["ttscale"]}]
    if include_usage:
        out.append({**head, "choices": [], "usage": reply["usage"]})
    return out


async def _stream(request, work, include_usage: bool):
    """Server-sent events of the chosen answer, once the strategy has chosen; comments keep the
    connection alive meanwhile. A strategy that fails sends an error event. A client that leaves
    stops the strategy."""
    from aiohttp import web

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    task = asyncio.ensure_future(work)
    try:
        waited = 0.0
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL)
            if task.done():
                break
            if _gone(request):  # the client left: stop the strategy (finally) and answer no one
                return response
            waited += DISCONNECT_POLL
            if waited >= KEEPALIVE_SECONDS:
                waited = 0.0
                await response.write(b": the strategy is working\n\n")
        try:
            events = chunks(task.result(), include_usage)
        except Exception as exc:
            events = [{"error": {"message": f"the strategy failed: {type(exc).__name__}: {exc}", "type": "server_error",
                                 "code": 502}}]
        for event in events:
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
    finally:
        if not task.done():
            task.cancel()


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _error(status: int, message: str, kind: str):
    from aiohttp import web

    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve beyond this machine
        return False


def main(argv: Sequence[str]) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(prog="ttscale serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key", default=os.environ.get("TTSCALE_API_KEY"),
                        help="clients send Authorization: Bearer KEY (default: $TTSCALE_API_KEY; beyond loopback, made)")
    parser.add_argument("--no-api-key", action="store_true", help="serve beyond loopback without a key")
    defaults = Limits()
    for key in vars(defaults):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=getattr(defaults, key))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=qwen2.5-coder-0.5b backend=openai")
    args = parser.parse_args(list(argv))
    key = None if args.no_api_key else args.api_key
    made = False
    if key is None and not args.no_api_key and not is_loopback(args.host):
        key, made = secrets.token_urlsafe(24), True
    try:
        limits = Limits(**{k: getattr(args, k) for k in vars(defaults)})
        server = Server(args.overrides, limits=limits, api_key=key)
    except Exception as exc:
        print(f"ttscale serve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"ttscale serve: http://{args.host}:{args.port}/v1 (model: a strategy, e.g. self_consistency@8)", file=sys.stderr)
    if made:
        print(f"ttscale serve: bound beyond loopback, so requests need this API key: {key} "
              "(Authorization: Bearer KEY; --api-key to choose one)", file=sys.stderr)
    try:
        web.run_app(server.app(), host=args.host, port=args.port, print=None)
    finally:
        server.close()
