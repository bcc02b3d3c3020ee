"""`ttscale serve`: an OpenAI-compatible chat endpoint that answers each request with a strategy.

    ttscale serve [--host 127.0.0.1] [--port 8080] [model=... backend=... verifier=... seed=...]

POST /v1/chat/completions with `"model": "self_consistency@8"` (a strategy config name, `@` its budget
`strategy.n`; or the header `X-TTScale-Strategy: self_consistency@8`) runs that strategy on the request's
messages and answers with the chosen sample's text (when no sample finished, the first sample's, with
finish_reason "length" and no answer). `usage` is everything the strategy spent
(prompt_tokens / completion_tokens over all its samples), and `ttscale` adds the extracted answer, the
candidates and the full usage. `temperature`, `top_p`, `max_tokens` and `seed` override the strategy's.
Any harness that speaks the OpenAI API then gets test-time scaling without code. GET /v1/models lists
the strategies. A bad request gets a 400 with one line saying what is wrong; a strategy that fails while
solving gets a 502 with its reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ttscale.backends.base import AFFINITY
from ttscale.build import ConfigError, build_strategy, model_stop
from ttscale.config import CONFIG_NAME, conf_dir
from ttscale.graders.math import MathGrader
from ttscale.strategies.context import Context
from ttscale.types import Problem

SAMPLING_KEYS = {"temperature": float, "top_p": float, "max_tokens": int}
MAX_BUDGET = 1024  # strategy.n a request may ask for
CACHED_STRATEGIES = 64  # built strategies kept (per strategy, budget and sampling overrides)
KNOWN_KEYS = {"model", "messages", "temperature", "top_p", "max_tokens", "seed", "stream", "n", "user"}


class BadRequest(ValueError):
    pass


def strategy_names() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "strategy").glob("*.yaml") if not p.stem.startswith("_"))


def parse_model(spec: Any) -> tuple[str, int | None]:
    """"self_consistency@8" -> ("self_consistency", 8); "greedy" -> ("greedy", None)."""
    if not isinstance(spec, str) or not spec.strip():
        raise BadRequest("'model' must name a strategy, e.g. \"self_consistency@8\" (GET /v1/models lists them)")
    name, _, budget = spec.strip().partition("@")
    if name not in strategy_names():
        raise BadRequest(f"model {spec!r}: no strategy {name!r}; choose one of: {', '.join(strategy_names())}")
    if not budget:
        return name, None
    if not budget.isdigit() or not 1 <= int(budget) <= MAX_BUDGET:
        raise BadRequest(f"model {spec!r}: the budget after '@' must be an integer from 1 to {MAX_BUDGET} (strategy.n)")
    return name, int(budget)


def parse_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise BadRequest(f"messages[{i}] must be {{role: system|user|assistant, content: a string}}")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] != "user":
        raise BadRequest("the last message must be the user's question")
    return out


class Server:
    """The strategies of one configuration (model, backend, verifier, seed) behind the chat endpoint.

    overrides: Hydra overrides of the run config (as on the ttscale command line); backend: a built
    backend to use (tests, research code), else one is built from the config."""

    def __init__(self, overrides: Sequence[str] = (), backend: Any = None):
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        from ttscale.config import register_schemas

        register_schemas()
        self.overrides = list(overrides)
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
        self._strategies: dict[tuple, Any] = {}

    def _config(self, extra: list[str]) -> dict[str, Any]:
        with self._initialize(config_dir=str(conf_dir()), version_base=None):
            cfg = self._compose(config_name=CONFIG_NAME, overrides=self.overrides + extra)
        return self._omegaconf.to_container(cfg, resolve=True)

    def strategy(self, name: str, n: int | None, sampling: Mapping[str, Any]):
        key = (name, n, tuple(sorted(sampling.items())))
        if key not in self._strategies:
            if len(self._strategies) >= CACHED_STRATEGIES:  # drop the oldest: clients may vary temperature freely
                self._strategies.pop(next(iter(self._strategies)))
            extra = [f"strategy={name}"] + ([f"strategy.n={n}"] if n else [])
            extra += [f"strategy.{k}={v}" for k, v in sorted(sampling.items())]
            try:
                cfg = self._config(extra)
                self._strategies[key] = build_strategy(cfg["strategy"], cfg["verifier"], self.backend, self.grader,
                                                       extra_stop=model_stop(cfg["model"]),
                                                       step_delimiter=cfg["model"]["step_delimiter"])
            except ConfigError as exc:
                raise BadRequest(f"model {name}{'@' + str(n) if n else ''}: {exc}") from None
        return self._strategies[key]

    def parse(self, body: Any, header: str | None) -> tuple[Any, str, Problem, int]:
        if not isinstance(body, Mapping):
            raise BadRequest("the body must be a JSON object")
        unknown = sorted(set(body) - KNOWN_KEYS)
        if unknown:
            raise BadRequest(f"unknown fields {unknown}; this endpoint reads: {', '.join(sorted(KNOWN_KEYS))}")
        if body.get("stream"):
            raise BadRequest("stream=true is not supported: a strategy answers once it has chosen")
        if body.get("n", 1) != 1:
            raise BadRequest("n must be 1: the strategy's budget goes in 'model', e.g. \"self_consistency@8\"")
        spec = header or body.get("model")
        name, n = parse_model(spec)
        messages = parse_messages(body.get("messages"))
        sampling = {}
        for key, kind in SAMPLING_KEYS.items():
            if body.get(key) is not None:
                value = body[key]
                try:
                    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value)) \
                        and (kind is float or value == int(value))
                except OverflowError:  # an integer too large for a float
                    ok = False
                if not ok:
                    raise BadRequest(f"'{key}' must be a finite number" + (" (an integer)" if kind is int else ""))
                sampling[key] = kind(value)
        seed = body.get("seed", self.seed)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise BadRequest("'seed' must be an integer")
        strategy = self.strategy(name, n, sampling)
        # the id seeds the samples (Context): the same messages and seed give the same samples
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
        problem = Problem(id=f"chat-{digest}", question=messages[-1]["content"], messages=messages)
        return strategy, spec, problem, seed

    async def answer(self, strategy, spec: str, problem: Problem, seed: int) -> dict[str, Any]:
        AFFINITY.set(problem.id)  # this request's backend calls prefer one server (its own task's context)
        ctx = Context(problem=problem, backend=self.backend, grader=self.grader, run_seed=seed)
        result = await strategy.solve(problem, ctx)
        chosen = result.info.get("chosen")
        # none chosen (no sample finished): the first sample's text, with its finish reason ("length")
        best = result.candidates[chosen] if chosen is not None else (result.candidates or [None])[0]
        usage = result.usage
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": spec,
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

        async def chat(request: web.Request) -> web.Response:
            try:
                try:
                    body = json.loads(await request.read(), parse_constant=_no_constant)
                except (ValueError, RecursionError):  # malformed, NaN/Infinity, nested past the parser's depth
                    raise BadRequest("the body is not JSON (standard JSON: no NaN or Infinity, not nested "
                                     "past Python's recursion limit)") from None
                parsed = self.parse(body, request.headers.get("X-TTScale-Strategy"))
            except BadRequest as exc:
                return _error(400, str(exc), "invalid_request_error")
            try:
                return web.json_response(await self.answer(*parsed))
            except Exception as exc:  # the strategy failed (the backend is down, ...): not the client's fault
                return _error(502, f"the strategy failed: {type(exc).__name__}: {exc}", "server_error")

        async def models(request: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "ttscale"}
                                                                 for name in strategy_names()]})

        app = web.Application(client_max_size=8 * 2**20)
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        async def health(request: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        app.router.add_get("/health", health)
        return app

    def close(self) -> None:
        self.grader.close()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()


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


def main(argv: Sequence[str]) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(prog="ttscale serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=qwen2.5-coder-0.5b backend=openai")
    args = parser.parse_args(list(argv))
    try:
        server = Server(args.overrides)
    except Exception as exc:
        print(f"ttscale serve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"ttscale serve: http://{args.host}:{args.port}/v1 (model: a strategy, e.g. self_consistency@8)", file=sys.stderr)
    try:
        web.run_app(server.app(), host=args.host, port=args.port, print=None)
    finally:
        server.close()
