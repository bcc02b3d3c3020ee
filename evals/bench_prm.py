"""PRM verifier throughput: vLLM's pooling runner against transformers, same checkpoint, same inputs.

    python evals/bench_prm.py [--trajectories 256] [--hidden 256] [--layers 4] [--batch-size 16]

The checkpoint is a tiny random Qwen2ForProcessRewardModel (ttscale.verifiers.tiny_prm) with
SmolLM2's tokenizer; the inputs are GSM8K fixture questions with their reference rationales as
steps (one step per line). Both paths score every trajectory of every problem concurrently, as the
runtime would send them. Prints trajectories/s and tokens/s of each, the ratio, and the largest
difference between the two paths' step scores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from ttscale.backends.vllm import _cpu_list
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list())

    from ttscale import DatasetSpec, load_problems
    from ttscale.build import build_model_path
    from ttscale.config import group_config
    from ttscale.types import Trajectory, Usage
    from ttscale.verifiers.prm import TransformersPRM, VLLMPoolingPRM
    from ttscale.verifiers.tiny_prm import build_tiny_prm

    import ttscale.data

    problems = load_problems(DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k"))
    fixture = Path(ttscale.data.__file__).parent / "fixtures" / "gsm8k_test_30.jsonl"
    rationales = [json.loads(line)["answer"].split("####")[0] for line in fixture.read_text().splitlines()]
    rows = list(zip(problems, rationales))
    tokenizer_source = build_model_path(group_config("model", "smollm2-135m"))
    work = tempfile.mkdtemp(prefix="ttscale-prm-bench-")
    path = str(build_tiny_prm("qwen_math_prm", tokenizer_source, work, hidden_size=args.hidden,
                              intermediate_size=2 * args.hidden, num_hidden_layers=args.layers,
                              num_attention_heads=args.hidden // 32, num_key_value_heads=1))

    def inputs():
        out = []
        for i in range(args.trajectories):
            problem, rationale = rows[i % len(rows)]
            steps = [line for line in rationale.splitlines() if line.strip()] or [problem.question]
            out.append((problem, Trajectory("\n\n".join(steps[: 1 + i % len(steps)]))))
        return out

    items = inputs()

    async def score_all(verifier) -> tuple[list, Usage, float]:
        usage = Usage()
        start = time.perf_counter()
        scores = await asyncio.gather(*(verifier.score(p, [t], usage) for p, t in items))
        return [s[0].steps for s in scores], usage, time.perf_counter() - start

    hf = TransformersPRM(path, "qwen_math_prm", batch_size=args.batch_size).load()
    asyncio.run(score_all(hf))  # warm-up
    hf_scores, hf_usage, hf_secs = asyncio.run(score_all(hf))

    pooled = VLLMPoolingPRM(path, "qwen_math_prm", engine_args={"dtype": "float32", "enforce_eager": True,
                                                                  "max_model_len": 2048}).load()
    asyncio.run(score_all(pooled))  # warm-up
    vl_scores, vl_usage, vl_secs = asyncio.run(score_all(pooled))
    pooled.close()

    diff = max(abs(a - b) for x, y in zip(hf_scores, vl_scores) for a, b in zip(x, y))
    n, tokens = len(items), hf_usage.verifier_tokens
    print(f"# tiny Qwen2ForProcessRewardModel (hidden {args.hidden}, {args.layers} layers), {n} trajectories, "
          f"{tokens} tokens; {platform.node()} {os.cpu_count()} cpus")
    print(f"{'path':26s} {'seconds':>8s} {'traj/s':>8s} {'tok/s':>9s}")
    print(f"{'transformers (batch ' + str(args.batch_size) + ')':26s} {hf_secs:8.2f} {n / hf_secs:8.1f} {tokens / hf_secs:9.0f}")
    print(f"{'vLLM pooling runner':26s} {vl_secs:8.2f} {n / vl_secs:8.1f} {tokens / vl_secs:9.0f}")
    print(f"ratio vLLM / transformers = {hf_secs / vl_secs:.2f}; largest step-score difference {diff:.2e}")
    print(json.dumps({"transformers_traj_s": n / hf_secs, "vllm_traj_s": n / vl_secs, "ratio": hf_secs / vl_secs,
                      "max_abs_diff": diff, "tokens": tokens}))


if __name__ == "__main__":
    main()
