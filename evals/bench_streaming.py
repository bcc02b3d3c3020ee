"""Streaming against `generate` on one engine, and how many tokens a stopped stream still costs.

    python evals/bench_streaming.py [--prompts 8] [--n 8] [--max-tokens 96] [--rounds 2] [--aborts 8]

1. Self-consistency twice on the same problems and engine: every problem's n samples by ONE
   `generate` call (n one-sample requests on the engine, FINAL_ONLY), and as n concurrent `stream`s
   folded into completions (what the token-level methods do: a delta per token). Rounds alternate generate, stream, generate, stream. Prints generated
   tokens/s of each and the ratio stream/generate.
2. Abort: a stream is closed after --stop-after tokens while 7 other streams of long answers run
   beside it (a loaded engine step). vLLM's own Prometheus count of generated tokens, minus the
   tokens every stream delivered, is what the closed stream generated after its abort. Repeated
   --aborts times; prints the mean and the maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import time
from dataclasses import dataclass, replace


def generated_total() -> float:
    from prometheus_client import REGISTRY

    return sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == "vllm:generation_tokens_total")


@dataclass
class StreamedSampling:
    """Self-consistency's search on streams: n concurrent one-sample streams, each folded."""

    n: int
    params: object

    async def __call__(self, problem, ctx):
        from ttscale.backends.base import StreamFold
        from ttscale.types import Trajectory

        async def one(i):
            fold = StreamFold(self.params.stats)
            async with contextlib.aclosing(ctx.stream(ctx.prompt, self.params, key=f"s{i}")) as deltas:
                async for delta in deltas:
                    fold.add(delta)
            return Trajectory.from_completion(fold.completion())

        return list(await asyncio.gather(*(one(i) for i in range(self.n))))


async def abort_once(backend, stop_after: int, seed: int) -> tuple[int, float]:
    from ttscale.backends.base import StreamFold
    from ttscale.types import SamplingParams

    long = SamplingParams(temperature=0.8, max_tokens=256, seed=seed)
    msgs = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]

    async def read(params, stop=None):
        fold = StreamFold()
        async with contextlib.aclosing(backend.stream(msgs, params)) as deltas:
            async for delta in deltas:
                fold.add(delta)
                if stop is not None and fold.num_tokens >= stop:
                    break
        return fold.num_tokens

    before = generated_total()
    others = [asyncio.create_task(read(replace(long, seed=seed + k + 1))) for k in range(7)]
    target = await read(replace(long, max_tokens=1500), stop_after)
    delivered = target + sum(await asyncio.gather(*others))
    await asyncio.sleep(0.5)
    return target, generated_total() - before - delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--aborts", type=int, default=8)
    parser.add_argument("--stop-after", type=int, default=24)
    parser.add_argument("--kv-gib", type=int, default=2)
    args = parser.parse_args()

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_gib))
    from ttscale import DatasetSpec, PromptTemplate, load_problems, run
    from ttscale.backends.vllm import VLLMBackend, _cpu_list, is_cpu_platform
    from ttscale.build import build_model_path
    from ttscale.config import group_config
    from ttscale.graders.math import MathGrader
    from ttscale.strategies import MajorityVote, Strategy
    from ttscale.strategies.search.parallel import ParallelSampling
    from ttscale.types import SamplingParams

    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list())
    path = build_model_path(group_config("model", "smollm2-135m"))
    engine_args = {"dtype": "float32", "enforce_eager": True, "max_model_len": 2048}
    if not is_cpu_platform():
        engine_args = {"max_model_len": 2048, "gpu_memory_utilization": 0.4}
    template = PromptTemplate(user="{question}", system="Solve step by step. End with: The answer is N.")
    problems = template.apply(load_problems(DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k",
                                                        limit=args.prompts)))
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens)
    backend = VLLMBackend(path, seed=0, engine_args=engine_args)
    ways = {"generate (n samples)": Strategy(ParallelSampling(args.n, params), MajorityVote(), name="sc"),
            "stream (n streams)": Strategy(StreamedSampling(args.n, params), MajorityVote(), name="sc")}
    rows = []
    with MathGrader(workers=1) as grader:
        grader.equivalent("\\sqrt{4}", "2")
        run(ways["generate (n samples)"], problems[:2], backend, grader=grader, progress=False)  # warm-up
        for r in range(args.rounds):
            for name, strategy in ways.items():
                start = time.perf_counter()
                outcome = run(strategy, problems, backend, grader=grader, progress=False, seed=r)
                secs = time.perf_counter() - start
                rows.append((name, r, sum(x.usage.completion_tokens for x in outcome.results), secs))
    aborts = [asyncio.run(abort_once(backend, args.stop_after, 100 * k)) for k in range(args.aborts)]
    backend.close()

    print(f"# {args.prompts} prompts x n={args.n} x max_tokens={args.max_tokens}, {args.rounds} rounds; "
          f"{platform.node()} {os.cpu_count()} cpus")
    print(f"{'path':26s} {'round':>5s} {'tokens':>7s} {'seconds':>8s} {'tok/s':>7s}")
    for name, r, tokens, secs in rows:
        print(f"{name:26s} {r:5d} {tokens:7d} {secs:8.2f} {tokens / secs:7.1f}")
    rate = {name: sum(t for n, _, t, _ in rows if n == name) / sum(s for n, _, _, s in rows if n == name)
            for name in ways}
    gen, stream = rate.values()
    print(f"generate {gen:.1f} tok/s, stream {stream:.1f} tok/s, ratio stream/generate = {stream / gen:.3f}")
    after = [a for _, a in aborts]
    print(f"abort after {args.stop_after} tokens beside 7 running streams, {len(aborts)} times: tokens generated "
          f"after the abort mean {sum(after) / len(after):.2f}, max {max(after):.0f} (delivered {[t for t, _ in aborts]})")
    print(json.dumps({"generate_tok_s": gen, "stream_tok_s": stream, "ratio": stream / gen,
                      "after_abort_mean": sum(after) / len(after), "after_abort_max": max(after)}))


if __name__ == "__main__":
    main()
