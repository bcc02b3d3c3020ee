"""Adaptive self-consistency, round form against cancel-early form, on one engine and the same problems.

    python evals/bench_adaptive.py [--source fixture:gsm8k_test_30] [--offset 0] [--limit 16] [--n 16]
                                   [--batch 4] [--threshold 0.95] [--max-tokens 256] [--rounds 2]

`adaptive_mode=rounds` (AdaptiveConsistency: batches of `batch` samples until the Beta rule settles)
and `adaptive_mode=cancel_early` (its_hub's BetaSelfConsistency: all n samples stream at once, the
rest aborted when the rule settles) run in alternating rounds on the embedded model (vLLM CPU here,
the same code on a GPU). Prints, per mode: wall seconds, generated tokens (aborted samples' tokens
included), samples that finished, accuracy; and the ratios cancel_early / rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="fixture:gsm8k_test_30")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kv-gib", type=int, default=2)
    args = parser.parse_args()

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_gib))
    from ttscale import DatasetSpec, PromptTemplate, load_problems, run
    from ttscale.backends.vllm import VLLMBackend, _cpu_list, is_cpu_platform
    from ttscale.build import build_model_path
    from ttscale.config import group_config
    from ttscale.graders.math import MathGrader
    from ttscale.strategies import MajorityVote, Strategy
    from ttscale.strategies.search.adaptive import AdaptiveSampling
    from ttscale.types import SamplingParams

    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list())
    model = group_config("model", "smollm2-135m")
    path = build_model_path(model)
    engine_args = {"dtype": "float32", "enforce_eager": True, "max_model_len": 2048}
    if not is_cpu_platform():
        engine_args = {"max_model_len": 2048, "gpu_memory_utilization": 0.4}
    template = PromptTemplate(user="{question}", system="Solve step by step. End with: The answer is N.")
    problems = template.apply(load_problems(DatasetSpec(source=args.source, answer_format="gsm8k",
                                                        offset=args.offset, limit=args.limit)))
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens)
    modes = {mode: Strategy(AdaptiveSampling(args.n, params, batch=args.batch, rule="beta", threshold=args.threshold,
                                             min_samples=args.batch, mode=mode), MajorityVote(), name=f"adaptive_{mode}")
             for mode in ("rounds", "cancel_early")}
    backend = VLLMBackend(path, seed=0, engine_args=engine_args)
    rows = []
    with MathGrader(workers=1) as grader:
        run(modes["rounds"], problems[:1], backend, grader=grader, progress=False)  # warm-up
        for r in range(args.rounds):
            for mode, strategy in (modes.items() if r % 2 == 0 else reversed(modes.items())):
                start = time.perf_counter()
                outcome = run(strategy, problems, backend, grader=grader, progress=False, seed=r)
                secs = time.perf_counter() - start
                results = outcome.results
                rows.append({"mode": mode, "round": r, "seconds": secs,
                             "tokens": sum(x.usage.completion_tokens for x in results),
                             "finished": sum(x.info.get("samples_drawn", 0) for x in results),
                             "aborted": sum(x.info.get("samples_aborted", 0) for x in results),
                             "correct": sum(bool(x.correct) for x in results), "problems": len(results)})
    backend.close()

    print(f"# {len(problems)} problems ({args.source}, offset {args.offset}), n={args.n}, batch={args.batch}, "
          f"threshold={args.threshold}, max_tokens={args.max_tokens}, {args.rounds} rounds (order alternates); "
          f"{platform.node()} {os.cpu_count()} cpus")
    print(f"{'mode':13s} {'round':>5s} {'seconds':>8s} {'tokens':>7s} {'finished':>8s} {'aborted':>7s} {'correct':>7s}")
    for row in rows:
        print(f"{row['mode']:13s} {row['round']:5d} {row['seconds']:8.1f} {row['tokens']:7d} {row['finished']:8d} "
              f"{row['aborted']:7d} {row['correct']:4d}/{row['problems']}")
    total = {m: {k: sum(r[k] for r in rows if r["mode"] == m) for k in ("seconds", "tokens", "finished", "correct")}
             for m in modes}
    ratio = {k: total["cancel_early"][k] / total["rounds"][k] for k in ("seconds", "tokens") if total["rounds"][k]}
    print(f"cancel_early / rounds: wall {ratio['seconds']:.3f}, tokens {ratio['tokens']:.3f}; correct "
          f"{total['cancel_early']['correct']} vs {total['rounds']['correct']} of {args.rounds * len(problems)}")
    print(json.dumps({"totals": total, "ratios": ratio}))


if __name__ == "__main__":
    main()
