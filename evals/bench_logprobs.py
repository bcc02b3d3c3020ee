"""What top-k logprob statistics cost: self-consistency with and without them, on one engine.

    python evals/bench_logprobs.py [--model qwen2.5-coder-0.5b] [--problems 16] [--n 8] [--max-tokens 256]
                                   [--top-k 20] [--rounds 2] [--modes none,stats]

One in-process engine (`VLLMBackend`, the CLI's engine arguments). Rounds alternate the modes so that
machine noise hits each alike:

- `none`: `self_consistency(n)` as the default job runs it, no logprobs asked;
- `sampled`: the sampled tokens' logprobs only (`logprobs=0`: sum/mean logprob, perplexity);
- `stats`: top-k logprobs and the token statistics of ttscale.confidence (entropy, DeepConf's
  confidences), what inverse-entropy voting, DeepConf, RPC and the streaming methods ask for.

The modes ask for the same samples (same run seed; raw logprobs do not change sampling); on the CPU
build, seeded once per engine rather than per request, batches and hence draws follow timing, so the
token counts differ by a few percent and tokens/s is the measure. Prints tokens/s of each mode and the
ratio to `none` (target for `stats`: >= 0.90). `--fast-top-p false` runs with vLLM's own top-p (a
sort of the vocabulary per sequence and step) instead of ttscale's filter (backends/top_p.py).
GSM8K test rows offset.. (default 150; not the first 50).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--offset", type=int, default=150)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default="none,stats")
    parser.add_argument("--data-path", default="../shared/data/gsm8k_test.jsonl")
    parser.add_argument("--fast-top-p", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from ttscale import run, self_consistency
    from ttscale.build import build_backend, build_model_path, build_problems
    from ttscale.config import group_config
    from ttscale.confidence import StatsSpec
    from ttscale.graders.math import MathGrader
    from dataclasses import replace

    from ttscale.types import SamplingParams

    model_cfg = group_config("model", args.model)
    dataset = dict(group_config("dataset", "gsm8k"), source=args.data_path, offset=args.offset, limit=args.problems)
    problems = build_problems(dataset, model_cfg)
    base = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens)
    modes = {"none": base, "sampled": replace(base, logprobs=0),
             "stats": replace(base, logprobs=args.top_k, stats=StatsSpec())}
    chosen = args.modes.split(",")
    unknown = [m for m in chosen if m not in modes]
    if unknown:
        raise SystemExit(f"--modes: unknown {unknown}; choose from {sorted(modes)}")

    t0 = time.perf_counter()
    backend_cfg = dict(group_config("backend", "vllm"), fast_top_p={"true": True, "false": False}.get(args.fast_top_p, "auto"))
    backend = build_backend(backend_cfg, build_model_path(model_cfg), seed=0)
    start_s = time.perf_counter() - t0
    rows = []
    with MathGrader(workers=1) as grader, backend:
        run(self_consistency(n=1, params=SamplingParams(max_tokens=8)), problems[:2], backend, grader=grader,
            progress=False)  # warm-up
        for r in range(args.rounds):
            for mode in chosen if r % 2 == 0 else chosen[::-1]:
                t = time.perf_counter()
                outcome = run(self_consistency(n=args.n, params=modes[mode]), problems, backend, grader=grader,
                              progress=False, concurrency=len(problems))
                secs = time.perf_counter() - t
                tokens = sum(res.usage.completion_tokens for res in outcome.results)
                rows.append({"mode": mode, "round": r, "tokens": tokens, "seconds": round(secs, 2),
                             "tok_s": round(tokens / secs, 1), "errors": outcome.summary["errors"]})
                print(json.dumps(rows[-1]), flush=True)

    print(f"\n# {args.model}, GSM8K test rows {args.offset}-{args.offset + args.problems - 1}, n={args.n}, "
          f"max_tokens={args.max_tokens}, top-k {args.top_k}, {args.rounds} rounds, top-p by "
          f"{'ttscale' if backend.fast_top_p else 'vLLM'}; engine start {start_s:.0f} s; "
          f"{platform.machine()} x{os.cpu_count()} ({time.strftime('%Y-%m-%d')})")
    rate = {m: sum(x["tokens"] for x in rows if x["mode"] == m) / sum(x["seconds"] for x in rows if x["mode"] == m)
            for m in chosen}
    for m in chosen:
        print(f"{m:8s} {rate[m]:7.1f} tok/s" + (f"  ratio to none {rate[m] / rate['none']:.3f}" if "none" in rate else ""))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"rows": rows, "tok_s": rate}, handle, indent=2)


if __name__ == "__main__":
    main()
