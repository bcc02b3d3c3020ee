"""The same strategies in-process and over HTTP, and over one server against two.

    python evals/bench_remote.py [--model smollm2-135m] [--problems 32] [--offset 150] [--n 8]
                                 [--data-path ../shared/data/gsm8k_test.jsonl] [--skip-replicas]

Same model, same problems (GSM8K test rows offset..offset+problems), same configs:
1. in-process: the vLLM engine in this process (conf/backend/vllm.yaml, every core; the allocator
   preloaded as `ttscale` does);
2. http: one local vLLM server (every core) behind backend=openai with token-id prompts, tuned the same
   way (launch.server_command: cpu_engine_args, the preload, ttscale's top-p filter);
3. replicas: one server pinned to core 0, then two servers pinned to cores 0 and 1 (the same machine
   split in two): backend=openai over one endpoint against two, affinity routing by problem.
For each strategy (self-consistency n, particle filtering n particles with the free mean_token_prob
verifier) it prints wall time, generated tokens/s, backend calls and accuracy, and the ratios
http / in-process (target >= 0.90) and two replicas / one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time


def run_one(name: str, backend, problems, grader, n: int, max_tokens: int) -> dict:
    from ttscale.build import build_strategy
    from ttscale.config import group_config
    from ttscale.runtime import run

    cfg = dict(group_config("strategy", name), n=n, max_tokens=max_tokens)
    verifier = dict(group_config("verifier", "mean_token_prob")) if name == "particle_filtering" else None
    if name == "particle_filtering":
        cfg.update(max_step_tokens=64, max_steps=max(1, max_tokens // 64))
    strategy = build_strategy(cfg, verifier, backend, grader, step_delimiter="\n\n")
    t0 = time.perf_counter()
    outcome = run(strategy, problems, backend, grader=grader, progress=False, concurrency=len(problems))
    wall = time.perf_counter() - t0
    tokens = sum(r.usage.completion_tokens for r in outcome.results)
    return {"strategy": name, "wall_s": round(wall, 1), "tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "calls": sum(r.usage.backend_calls for r in outcome.results),
            "prompt_tokens": sum(r.usage.prompt_tokens for r in outcome.results),
            "cached_prompt_tokens": sum(r.usage.cached_prompt_tokens for r in outcome.results),
            "errors": outcome.summary["errors"], "accuracy": outcome.summary["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--offset", type=int, default=150)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--data-path", default="../shared/data/gsm8k_test.jsonl")
    parser.add_argument("--strategies", default="self_consistency,particle_filtering")
    parser.add_argument("--skip-replicas", action="store_true")
    parser.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    from ttscale.preload import preload_env

    env = preload_env()
    if env is not None:  # tuned as `ttscale` is: the in-process engine with the allocator preload too
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    from ttscale.backends.launch import vllm_server
    from ttscale.backends.openai import OpenAIBackend
    from ttscale.build import build_backend, build_model_path, build_problems
    from ttscale.config import group_config
    from ttscale.graders.math import MathGrader

    model_cfg = group_config("model", args.model)
    path = build_model_path(model_cfg)
    dataset = dict(group_config("dataset", "gsm8k"), source=args.data_path, offset=args.offset, limit=args.problems)
    problems = build_problems(dataset, model_cfg)
    strategies = args.strategies.split(",")
    rows = []
    logs = tempfile.mkdtemp(prefix="bench_remote_")

    def measure(setup: str, backend) -> None:
        for name in strategies:
            row = {"setup": setup, **run_one(name, backend, problems, grader, args.n, args.max_tokens)}
            rows.append(row)
            print(json.dumps(row), flush=True)

    def remote(urls) -> OpenAIBackend:
        # the servers run ttscale's top-p filter (launch.vllm_server's default), as the in-process CPU engine
        return OpenAIBackend(urls, "m", tokenizer=path, send_seed=False, fast_top_p=True)

    with MathGrader(workers=1) as grader:
        backend = build_backend(group_config("backend", "vllm"), path, seed=0)
        try:
            measure("in-process", backend)
        finally:
            backend.close()
        with vllm_server(path, name="m", log=f"{logs}/all.log") as url, remote([url]) as backend:
            measure("http", backend)
        if not args.skip_replicas and len(os.sched_getaffinity(0)) >= 2:
            cores = sorted(os.sched_getaffinity(0))
            with vllm_server(path, name="m", cpus=[cores[0]], log=f"{logs}/one.log") as url, remote([url]) as backend:
                measure("1 replica (1 core)", backend)
            with vllm_server(path, name="m", cpus=[cores[0]], log=f"{logs}/r0.log") as a, \
                    vllm_server(path, name="m", cpus=[cores[1]], log=f"{logs}/r1.log") as b, remote([a, b]) as backend:
                measure("2 replicas (1 core each)", backend)
                print("per endpoint:", json.dumps(backend.stats()))

    def tps(setup, name):
        return next((r["tokens_per_s"] for r in rows if r["setup"] == setup and r["strategy"] == name), None)

    print(f"\n{args.model}, GSM8K test rows {args.offset}-{args.offset + args.problems - 1}, n={args.n}, "
          f"max_tokens={args.max_tokens}, {platform.machine()} x{os.cpu_count()} "
          f"({time.strftime('%Y-%m-%d')})")
    print("| setup | strategy | wall s | tokens/s | backend calls | prompt tokens (cached) | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['strategy']} | {r['wall_s']} | {r['tokens_per_s']} | {r['calls']} | "
              f"{r['prompt_tokens']} ({r['cached_prompt_tokens']}) | {r['accuracy']:.3f} |")
    for name in strategies:
        local, http = tps("in-process", name), tps("http", name)
        one, two = tps("1 replica (1 core)", name), tps("2 replicas (1 core each)", name)
        if local and http:
            print(f"{name}: http / in-process tokens/s = {http / local:.3f} (target >= 0.90)")
        if one and two:
            print(f"{name}: 2 replicas / 1 replica tokens/s = {two / one:.3f}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
