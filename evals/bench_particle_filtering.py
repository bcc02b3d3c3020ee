"""Particle filtering against raw vLLM generating the same number of tokens, on ONE engine.

    python evals/bench_particle_filtering.py [--problems 64] [--particles 8] [--max-step-tokens 48]
                                             [--max-steps 4] [--verifier mean_token_prob|self_eval]

1. ttscale: `run(particle_filtering)` over all problems at once (the runtime runs them concurrently,
   so the engine sees every particle's step request of every problem together).
2. The prefix cache is reset; raw vLLM then generates, for each problem, n = particles samples of
   ceil(T_p / particles) tokens (ignore_eos), where T_p is what particle filtering generated for
   that problem: the same number of tokens, straight through, on the same AsyncLLM.

Prints generated tokens/s of both, the ratio (target >= 0.85) and particle filtering's prefix-cache
hit rate (cached prompt tokens / prompt tokens). With the default mean_token_prob verifier the
scores cost no model call, so the ratio measures what step-wise decoding itself costs (re-sent
prefixes, one request per step, resampling); with self_eval the verifier's own prompts share the
engine and the ratio of generated tokens falls accordingly (also printed: all tokens processed).
"""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import json
import math
import os
import platform
import time
import uuid


def reset_prefix_cache(backend) -> None:
    async def reset():
        out = backend._engine.reset_prefix_cache()
        if asyncio.iscoroutine(out):
            await out

    backend._submit(reset()).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--max-step-tokens", type=int, default=48)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--verifier", default="mean_token_prob", choices=["mean_token_prob", "self_eval"])
    parser.add_argument("--dataset", default="gsm8k", help="a dataset config name")
    parser.add_argument("--data-path", default=None, help="the dataset's source: a local JSONL (e.g. "
                        "../shared/data/gsm8k_test.jsonl) instead of the Hugging Face hub")
    parser.add_argument("--kv-gib", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=None,
                        help="KV cache block size (the CPU build's default is 128; multiples of 32)")
    args = parser.parse_args()

    from ttscale.build import build_backend, build_model_path, build_problems, build_strategy
    from ttscale.config import group_config
    from ttscale.graders.math import MathGrader
    from ttscale.runtime import run

    model_cfg = group_config("model", "smollm2-135m")
    backend_cfg = group_config("backend", "vllm")
    backend_cfg["env"]["VLLM_CPU_KVCACHE_SPACE"] = args.kv_gib
    if args.block_size:
        backend_cfg["cpu_engine_args"] = {**backend_cfg.get("cpu_engine_args", {}), "block_size": args.block_size}
    dataset_cfg = group_config("dataset", args.dataset)
    if args.data_path:
        dataset_cfg["source"] = args.data_path
    dataset_cfg["limit"] = args.problems
    problems = build_problems(dataset_cfg, model_cfg)
    if len(problems) < args.problems:  # the 30-row fixture: repeats get distinct ids (and share prompts)
        problems = [dataclasses.replace(problems[i % len(problems)], id=f"{problems[i % len(problems)].id}#{i}")
                    for i in range(args.problems)]
    strategy_cfg = group_config("strategy", "particle_filtering")
    strategy_cfg.update(n=args.particles, max_step_tokens=args.max_step_tokens, max_steps=args.max_steps,
                        max_tokens=args.max_step_tokens * args.max_steps)

    backend = build_backend(backend_cfg, build_model_path(model_cfg), seed=0)
    engine = backend._engine
    verifier_cfg = group_config("verifier", args.verifier)
    with MathGrader(workers=1) as grader:
        grader.equivalent("\\sqrt{4}", "2")
        strategy = build_strategy(strategy_cfg, verifier_cfg, backend, grader,
                                  step_delimiter=model_cfg["step_delimiter"])
        # warm-up: one problem, not timed
        run(strategy, [problems[0]], backend, grader=grader, progress=False)
        reset_prefix_cache(backend)

        start = time.perf_counter()
        outcome = run(strategy, problems, backend, grader=grader, progress=True, concurrency=len(problems))
        pf_secs = time.perf_counter() - start
    usage = [r.usage for r in outcome.results]
    pf_tokens = sum(u.completion_tokens for u in usage)
    prompt_tokens = sum(u.prompt_tokens for u in usage)
    cached = sum(u.cached_prompt_tokens for u in usage)
    verifier_tokens = sum(u.verifier_tokens for u in usage)
    errors = sum(r.error is not None for r in outcome.results)

    step_params = strategy.search.generator.params
    from vllm import SamplingParams as VSamplingParams
    from vllm.sampling_params import RequestOutputKind

    async def raw_one(problem, tokens: int) -> int:
        per = max(1, math.ceil(tokens / args.particles))
        # the same per-token outputs as particle filtering's step requests (logprobs when its verifier needs them)
        # and the same top-p filter: ttscale's (backends/top_p.py) when the backend uses it, else vLLM's
        fast = backend.fast_top_p and step_params.top_p < 1.0
        params = VSamplingParams(n=args.particles, temperature=step_params.temperature,
                                 top_p=1.0 if fast else step_params.top_p,
                                 extra_args={"ttscale_top_p": step_params.top_p} if fast else None,
                                 max_tokens=per, min_tokens=per, ignore_eos=True, logprobs=step_params.logprobs,
                                 output_kind=RequestOutputKind.FINAL_ONLY)
        final = None
        async for out in engine.generate({"prompt_token_ids": backend.encode(backend_prompt(problem))}, params,
                                         uuid.uuid4().hex):
            final = out
        return sum(len(o.token_ids) for o in final.outputs)

    def backend_prompt(problem):
        return problem.messages if problem.messages is not None else problem.text

    async def raw_all() -> int:
        counts = await asyncio.gather(*(raw_one(p, r.usage.completion_tokens)
                                        for p, r in zip(problems, outcome.results)))
        return sum(counts)

    reset_prefix_cache(backend)
    start = time.perf_counter()
    raw_tokens = backend._submit(raw_all()).result()
    raw_secs = time.perf_counter() - start
    backend.close()

    pf_rate, raw_rate = pf_tokens / pf_secs, raw_tokens / raw_secs
    print(f"# step requests' logprobs={step_params.logprobs}, top_p={step_params.top_p} "
          f"({'ttscale' if backend.fast_top_p else 'vLLM'}'s top-p filter; raw asks the same)")
    print(f"# particle filtering, {args.particles} particles, {args.problems} problems ({args.dataset}), "
          f"max_step_tokens={args.max_step_tokens}, max_steps={args.max_steps}, verifier={args.verifier}, "
          f"KV block {args.block_size or 'default'}; "
          f"{platform.node()} {os.cpu_count()} cpus")
    print(f"{'path':32s} {'tokens':>8s} {'seconds':>8s} {'tok/s':>7s}")
    print(f"{'raw vLLM (same tokens, n=' + str(args.particles) + ')':32s} {raw_tokens:8d} {raw_secs:8.1f} {raw_rate:7.1f}")
    print(f"{'ttscale particle_filtering':32s} {pf_tokens:8d} {pf_secs:8.1f} {pf_rate:7.1f}")
    print(f"ratio pf/raw = {pf_rate / raw_rate:.3f}; prefix-cache hit rate {cached / max(prompt_tokens, 1):.3f} "
          f"({cached} of {prompt_tokens} prompt tokens); verifier tokens {verifier_tokens}; "
          f"backend calls {sum(u.backend_calls for u in usage)}; errors {errors}; "
          f"accuracy {outcome.summary.get('accuracy')}")
    print(json.dumps({"raw_tok_s": raw_rate, "pf_tok_s": pf_rate, "ratio": pf_rate / raw_rate,
                      "prefix_cache_hit_rate": cached / max(prompt_tokens, 1), "pf_tokens": pf_tokens,
                      "raw_tokens": raw_tokens, "verifier_tokens": verifier_tokens}))


if __name__ == "__main__":
    main()
