"""ttscale against its-hub 1.2.0 on the SAME vLLM server: only the orchestration differs.

    pip install --no-deps its-hub==1.2.0 backoff    # into the same environment (Python >= 3.11)
    python evals/bench_peers.py [--model smollm2-135m] [--problems 32] [--offset 150]

One local vLLM server (evals use its /metrics for both sides' token and request counts). Same
problems (GSM8K test rows offset..), same prompt (a system message and the question, rendered by the
server's chat template for its-hub and by the same template here for ttscale), same sampling
(temperature 0.8, top_p 1.0), same budgets, and the same deterministic reward for the guided
searches (`reward`: a hash of the question and the normalised partial solution, in [0.05, 0.95], so
neither side has a better judge). Each side runs every problem at once.

- self-consistency, n samples: its-hub `SelfConsistency` (boxed-answer projection) / ttscale
  `self_consistency`;
- particle filtering, n particles, steps at "\\n\\n", at most K steps of S tokens: its-hub
  `ParticleFiltering` / ttscale `particle_filtering` (reward of the whole partial solution);
- beam search, n candidates a level, the best n/4 kept, each expanded 4 times: its-hub
  `BeamSearch(beam_width=n/4)` with budget n / ttscale `beam_search` n, beam_width 4.

its-hub 1.2.0 traps, handled so both do the same work (documented in BENCHMARKS.md):
- PF and beam search flatten chat messages into one "role: content" user string: they get the bare
  question, and the system message through the LM's `system_prompt` (a real system message);
- `max_steps` is off by one: its-hub gets K - 1 for at most K steps;
- end-of-sequence is ignored (a path is finished only when `stop_token` is in its newest step): the
  LM below appends a sentinel to a step that ended at end-of-sequence or holds "\\boxed", and the
  sentinel is the stop token; ttscale finishes on end-of-sequence or "\\boxed" (answer_marker);
- top_p cannot be passed: the server runs with `--generation-config vllm` (no model defaults) and
  both sides use top_p 1.0;
- PF and beam search report no usage: both sides are measured from the server's /metrics;
- `resampling_method` is ignored: both resample multinomially (ttscale's default);
- the step at `max_steps` is capped like the others (ttscale: `last_step="step"`, particle
  filtering's reference default; beam search's own default lets that step run to the end).

Prints wall clock, generated tokens/s, requests, prompt tokens and accuracy (graded by ttscale's
math grader for both), and ttscale's wall-clock speed-up (target >= 2x on particle filtering).
`--rounds R` alternates the sides' order; `--raw` adds the server's ceiling for each method: the
tokens ttscale generated, sent as plain requests all at once (n a problem, exactly tokens/(problems x n)
tokens each), so each side's tokens/s reads as a share of what the server can do.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import re
import time
from dataclasses import dataclass

from ttscale.verifiers.base import Scores, Traits

SYSTEM = "Solve the problem step by step, one step per paragraph. Put the final answer in \\boxed{}."
SENTINEL = "<<END>>"


def reward(question: str, text: str) -> float:
    """The shared deterministic reward: a hash of the question and the partial solution's words."""
    words = " ".join(text.replace(SENTINEL, "").split())
    digest = hashlib.sha256(f"{question}\x00{words}".encode()).digest()
    return 0.05 + 0.9 * int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class HashReward:
    """ttscale's side of the shared reward, as a verifier."""

    traits = Traits()

    async def score(self, problem, trajectories, usage):
        usage.verifier_calls += len(trajectories)
        return [Scores(reward(problem.question, t.text)) for t in trajectories]


def metrics(url: str) -> dict[str, float]:
    import httpx

    wanted = {"vllm:prompt_tokens_total": "prompt", "vllm:generation_tokens_total": "generated",
              "vllm:request_success_total": "requests"}
    out = dict.fromkeys(wanted.values(), 0.0)
    for line in httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text.splitlines():
        for name, key in wanted.items():
            if line.startswith(name):
                out[key] += float(line.rsplit(" ", 1)[1])
    return out


def its_hub_side(url: str, model: str, problems, method: str, n: int, steps: int, step_tokens: int, max_tokens: int):
    """Answers (selected texts) of its-hub on every problem, concurrently."""
    from its_hub.api import AbstractProcessRewardModel
    from its_hub.core.algorithms.beam_search import BeamSearch
    from its_hub.core.algorithms.particle_gibbs import ParticleFiltering
    from its_hub.core.algorithms.self_consistency import SelfConsistency
    from its_hub.core.lms.openai_lm import OpenAICompatibleLanguageModel
    from its_hub.core.lms.step_generation import StepGeneration
    from its_hub.core.orchestrator import LMOrchestrator

    class SentinelLM(OpenAICompatibleLanguageModel):
        """Marks a step that ended at end-of-sequence or holds the answer (its-hub ignores EOS)."""

        async def agenerate(self, messages_lst, *args, **kwargs):
            out = await super().agenerate(messages_lst, *args, **kwargs)
            for message in out if isinstance(out, list) else [out]:
                raw = message.pop("_raw_choice", {}) or {}
                content = message.get("content") or ""
                eos = raw.get("finish_reason") == "stop" and not isinstance(raw.get("stop_reason"), str)
                if eos or "\\boxed" in content:
                    message["content"] = content + SENTINEL
            return out

    class Reward(AbstractProcessRewardModel):
        def __init__(self, question: str):
            self.question = question

        def score(self, prompt_or_messages, steps):
            return [reward(self.question, s) for s in steps]

        async def ascore(self, prompt_or_messages, steps):
            return self.score(prompt_or_messages, steps)

    lm = SentinelLM(endpoint=url, api_key="EMPTY", model_name=model, system_prompt=SYSTEM, temperature=0.8,
                    max_completion_tokens=max_tokens if method == "self_consistency" else step_tokens,
                    max_tries=3, max_concurrency=-1, include_raw_choices=True)
    boxed = re.compile(r"\\boxed\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")
    counter = iter(range(10**9))

    def project(text: str):
        found = boxed.findall(text or "")
        return found[-1].strip() if found else f"<no answer {next(counter)}>"  # never one shared 'no answer' vote

    sc = SelfConsistency(consistency_space_projection_func=project, orchestrator=LMOrchestrator(max_concurrency=1024))

    def algorithm(question: str):
        generation = StepGeneration(max_steps=steps - 1, step_token="\n\n", stop_token=SENTINEL, temperature=0.8)
        if method == "particle_filtering":
            return ParticleFiltering(generation, Reward(question), final_response_selection="argmax"), n
        if method == "beam_search":
            return BeamSearch(generation, Reward(question), beam_width=max(1, n // 4)), n
        return sc, n

    async def all_problems():
        async def one(problem):
            alg, budget = algorithm(problem.question)
            result = await alg.ainfer(lm, problem.question, budget=budget, return_response_only=True)
            return (result.get("content") or "").replace(SENTINEL, "")

        try:
            return await asyncio.gather(*(one(p) for p in problems), return_exceptions=True)
        finally:
            await lm.close() if hasattr(lm, "close") else None

    return asyncio.run(all_problems())


def client_cpu(server_url: str) -> float:
    """CPU seconds used so far by this process and its children other than the vLLM server (the
    grader's worker): the client's own work, which competes with the server for the same cores."""
    import psutil

    me = psutil.Process()
    port = server_url.rsplit(":", 1)[1].split("/")[0]
    children = me.children(recursive=True)
    server = {c.pid for c in children if port in (c.cmdline() if c.is_running() else [])}
    server |= {d.pid for c in children if c.pid in server for d in c.children(recursive=True)}  # its engine
    procs = [me] + [c for c in children if c.pid not in server]
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def raw_side(url: str, model: str, prompts: list[list[int]], n: int, tokens_each: int) -> None:
    """The server's ceiling for this much work: n plain requests per problem, all at once, each
    generating exactly `tokens_each` tokens (ignore_eos) from the problem's prompt."""
    import httpx

    async def all_requests():
        async with httpx.AsyncClient(timeout=httpx.Timeout(1800.0),
                                     limits=httpx.Limits(max_connections=None)) as client:
            async def one(ids, i):
                body = {"model": model, "prompt": ids, "max_tokens": tokens_each, "min_tokens": tokens_each,
                        "ignore_eos": True, "temperature": 0.8, "top_p": 1.0}
                (await client.post(url + "/completions", json=body)).raise_for_status()

            await asyncio.gather(*(one(ids, i) for ids in prompts for i in range(n)))

    asyncio.run(all_requests())


def ttscale_side(backend, problems, grader, method: str, n: int, steps: int, step_tokens: int, max_tokens: int):
    from ttscale.build import build_strategy
    from ttscale.config import group_config
    from ttscale.runtime import run

    cfg = dict(group_config("strategy", method), n=n, temperature=0.8, top_p=1.0, max_tokens=max_tokens)
    verifier = None
    if method != "self_consistency":
        # its-hub caps the step at max_steps like any other: last_step="step" (particle filtering's
        # default, the reference's; beam search's default lets that step run to the end)
        cfg.update(max_steps=steps, max_step_tokens=step_tokens, max_tokens=steps * step_tokens, last_step="step")
        verifier = {"name": f"{__name__}:HashReward"}
        if method == "beam_search":
            cfg.update(beam_width=4)
    strategy = build_strategy(cfg, verifier, backend, grader, step_delimiter="\n\n")
    return run(strategy, problems, backend, grader=grader, progress=False, concurrency=len(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--offset", type=int, default=150)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--step-tokens", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--methods", default="self_consistency,particle_filtering,beam_search")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of both sides, the order alternating")
    parser.add_argument("--raw", action="store_true",
                        help="also the server's ceiling: the tokens ttscale generated, as plain requests all at once")
    parser.add_argument("--data-path", default="../shared/data/gsm8k_test.jsonl")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from ttscale.backends.launch import vllm_server
    from ttscale.backends.openai import OpenAIBackend
    from ttscale.build import build_model_path, build_problems
    from ttscale.config import group_config
    from ttscale.graders.math import MathGrader

    model_cfg = group_config("model", args.model)
    path = build_model_path(model_cfg)
    dataset = dict(group_config("dataset", "gsm8k"), source=args.data_path, offset=args.offset, limit=args.problems)
    dataset["prompt"] = {**dataset.get("prompt", {}), "system": SYSTEM, "user": "{question}", "few_shot": []}
    problems = build_problems(dataset, model_cfg)
    rows: list[dict] = []
    with MathGrader(workers=1) as grader, \
            vllm_server(path, name="m", extra_args=["--generation-config", "vllm"], log="/tmp/bench_peers_server.log",
                        fast_top_p=False) as url, \
            OpenAIBackend([url], "m", tokenizer=path, send_seed=False) as backend:
        prompts = [backend.encode(p.messages) for p in problems]
        for round_, method in ((r, m) for r in range(args.rounds) for m in args.methods.split(",")):
            for side in ("its-hub", "ttscale")[::1 if round_ % 2 == 0 else -1] + (("raw",) if args.raw else ()):
                before, cpu0, t0 = metrics(url), client_cpu(url), time.perf_counter()
                if side == "raw":
                    ours = next(r for r in reversed(rows) if r["method"] == method and r["side"] == "ttscale")
                    raw_side(url, "m", prompts, args.n, max(1, round(ours["generated"] / (len(problems) * args.n))))
                    errors, correct = 0, []
                elif side == "ttscale":
                    outcome = ttscale_side(backend, problems, grader, method, args.n, args.steps, args.step_tokens,
                                           args.max_tokens)
                    correct = [r.correct for r in outcome.results]
                    errors = outcome.summary["errors"]
                else:
                    texts = its_hub_side(url, "m", problems, method, args.n, args.steps, args.step_tokens, args.max_tokens)
                    errors = sum(isinstance(t, BaseException) for t in texts)
                    correct = [None if isinstance(text, BaseException)
                               else grader.equivalent(problem.answer, grader.extract(text, problem))
                               for problem, text in zip(problems, texts)]
                wall = time.perf_counter() - t0
                cpu = client_cpu(url) - cpu0
                after = metrics(url)
                delta = {k: after[k] - before[k] for k in after}
                row = {"round": round_, "method": method, "side": side, "wall_s": round(wall, 1),
                       "generated": int(delta["generated"]), "tokens_per_s": round(delta["generated"] / wall, 1),
                       "requests": int(delta["requests"]), "prompt_tokens": int(delta["prompt"]),
                       "accuracy": sum(bool(c) for c in correct) / len(problems), "errors": errors,
                       "client_cpu_s": round(cpu, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{args.model}, GSM8K test rows {args.offset}-{args.offset + args.problems - 1}, n={args.n}, "
          f"{args.steps} steps x {args.step_tokens} tokens, {platform.machine()} x{os.cpu_count()} "
          f"({time.strftime('%Y-%m-%d')})")
    print("| round | method | side | wall s | generated tokens | tokens/s | requests | prompt tokens | client CPU s | accuracy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['method']} | {r['side']} | {r['wall_s']} | {r['generated']} | {r['tokens_per_s']} | "
              f"{r['requests']} | {r['prompt_tokens']} | {r['client_cpu_s']} | {r['accuracy']:.3f} |")
    for method in args.methods.split(","):
        hub, ours, raw = ({k: sum(r[k] for r in rows if r["method"] == method and r["side"] == side)
                           for k in ("wall_s", "generated", "requests")} for side in ("its-hub", "ttscale", "raw"))
        if raw["wall_s"]:
            ceiling = raw["generated"] / raw["wall_s"]
            print(f"{method}: tokens/s over the server's ceiling (plain requests): its-hub "
                  f"{hub['generated'] / hub['wall_s'] / ceiling:.2f}, ttscale {ours['generated'] / ours['wall_s'] / ceiling:.2f}")
        rate = (ours["generated"] / ours["wall_s"]) / max(hub["generated"] / hub["wall_s"], 1e-9)
        print(f"{method} (all rounds): wall its-hub / ttscale = {hub['wall_s'] / ours['wall_s']:.2f}x; "
              f"tokens/s ttscale / its-hub = {rate:.2f}; generated ttscale / its-hub = "
              f"{ours['generated'] / max(hub['generated'], 1):.2f}; requests its-hub / ttscale = "
              f"{hub['requests'] / max(ours['requests'], 1):.2f}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
