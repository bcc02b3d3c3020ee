"""Throughput: raw vLLM (`LLM.generate` with n) against ttscale self-consistency, same requests.

    python evals/bench_throughput.py [--prompts 16] [--n 8] [--max-tokens 128] [--rounds 2]

Both engines are started with the same arguments and kept alive; rounds alternate raw, ttscale,
raw, ttscale so that machine noise hits both alike. On the CPU build both use ttscale's top-p filter
(backends/top_p.py, VLLMBackend's default there), and a third run per round is raw vLLM with its own
top-p (a sort of the vocabulary) on the same engine: what the filter saves. Prints generated
tokens/s of each and the ratios. ttscale's time includes its whole path: prompt rendering, seeding, answer extraction, equivalence
grouping in worker processes and usage accounting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kv-gib", type=int, default=2)
    args = parser.parse_args()

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_gib))
    from vllm import LLM
    from vllm import SamplingParams as VSamplingParams

    from ttscale import DatasetSpec, PromptTemplate, load_problems, run, self_consistency
    from ttscale.backends.vllm import VLLMBackend, _cpu_list, is_cpu_platform
    from ttscale.build import build_model_path
    from ttscale.config import group_config
    from ttscale.graders.math import MathGrader
    from ttscale.types import SamplingParams

    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _cpu_list())
    path = build_model_path(group_config("model", "smollm2-135m"))
    engine_args = {"dtype": "float32", "enforce_eager": True, "max_model_len": 2048, "seed": 0,
                   "enable_prefix_caching": True}
    if not is_cpu_platform():
        engine_args = {"max_model_len": 2048, "seed": 0, "gpu_memory_utilization": 0.4}

    template = PromptTemplate(user="{question}", system="Solve step by step. End with: The answer is N.")
    problems = template.apply(load_problems(DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k",
                                                        limit=args.prompts)))
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens)

    fast = is_cpu_platform()  # ttscale's top-p filter (backends/top_p.py), as VLLMBackend's default there
    t0 = time.perf_counter()
    raw = LLM(model=path, **engine_args, **({"logits_processors": ["ttscale.backends.top_p:TopP"]} if fast else {}))
    raw_start = time.perf_counter() - t0
    tokenizer = raw.get_tokenizer()
    token_prompts = [{"prompt_token_ids": tokenizer.apply_chat_template(p.messages, tokenize=True,
                                                                        add_generation_prompt=True)}
                     for p in problems]
    if hasattr(token_prompts[0]["prompt_token_ids"], "keys"):
        token_prompts = [{"prompt_token_ids": list(t["prompt_token_ids"]["input_ids"])} for t in token_prompts]
    raw_params = VSamplingParams(n=args.n, temperature=params.temperature, top_p=1.0 if fast else params.top_p,
                                 extra_args={"ttscale_top_p": params.top_p} if fast else None,
                                 max_tokens=params.max_tokens)
    sorted_params = VSamplingParams(n=args.n, temperature=params.temperature, top_p=params.top_p,
                                    max_tokens=params.max_tokens)  # vLLM's own top-p (a sort of the vocabulary)

    t0 = time.perf_counter()
    ours = VLLMBackend(path, seed=0, engine_args={k: v for k, v in engine_args.items() if k != "seed"})
    ours_start = time.perf_counter() - t0
    strategy = self_consistency(n=args.n, params=params)

    def run_raw(sampling=raw_params) -> tuple[int, float]:
        start = time.perf_counter()
        outs = raw.generate(token_prompts, sampling, use_tqdm=False)
        return sum(len(o.token_ids) for out in outs for o in out.outputs), time.perf_counter() - start

    def run_ours(grader) -> tuple[int, float]:
        start = time.perf_counter()
        outcome = run(strategy, problems, ours, grader=grader, progress=False)
        return sum(r.usage.completion_tokens for r in outcome.results), time.perf_counter() - start

    rows = []
    with MathGrader(workers=1) as grader:
        grader.equivalent("\\sqrt{4}", "2")  # start the worker outside the timings
        # warm-up both engines on a small request
        raw.generate(token_prompts[:2], VSamplingParams(max_tokens=8), use_tqdm=False)
        run(self_consistency(n=1, params=SamplingParams(max_tokens=8)), problems[:2], ours, grader=grader, progress=False)
        for r in range(args.rounds):
            tokens, secs = run_raw()
            rows.append(("raw vLLM LLM.generate", r, tokens, secs))
            tokens, secs = run_ours(grader)
            rows.append(("ttscale self_consistency", r, tokens, secs))
            if fast:
                tokens, secs = run_raw(sorted_params)
                rows.append(("vLLM's own top-p (sort)", r, tokens, secs))
    ours.close()

    print(f"# {args.prompts} prompts x n={args.n} x max_tokens={args.max_tokens}, {args.rounds} rounds; "
          f"engine start: raw {raw_start:.0f} s, ttscale {ours_start:.0f} s; {platform.node()} {os.cpu_count()} cpus")
    print(f"{'path':28s} {'round':>5s} {'tokens':>7s} {'seconds':>8s} {'tok/s':>7s}")
    for name, r, tokens, secs in rows:
        print(f"{name:28s} {r:5d} {tokens:7d} {secs:8.2f} {tokens / secs:7.1f}")
    raw_rate = sum(t for n, _, t, _ in rows if n.startswith("raw")) / sum(s for n, _, _, s in rows if n.startswith("raw"))
    our_rate = sum(t for n, _, t, _ in rows if n.startswith("tts")) / sum(s for n, _, _, s in rows if n.startswith("tts"))
    print(f"raw {raw_rate:.1f} tok/s, ttscale {our_rate:.1f} tok/s, ratio ttscale/raw = {our_rate / raw_rate:.3f}"
          + (" (both with ttscale's top-p filter)" if fast else ""))
    out = {"raw_tok_s": raw_rate, "ttscale_tok_s": our_rate, "ratio": our_rate / raw_rate}
    if fast:
        sort_rate = (sum(t for n, _, t, _ in rows if n.startswith("vLLM")) / sum(s for n, _, _, s in rows if n.startswith("vLLM")))
        print(f"vLLM's own top-p (sort) {sort_rate:.1f} tok/s: raw with ttscale's filter / vLLM's own = {raw_rate / sort_rate:.2f}x")
        out["vllm_sort_tok_s"] = sort_rate
    print(json.dumps(out))


if __name__ == "__main__":
    main()
