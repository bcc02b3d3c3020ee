"""What tracing costs: the same run with trace=false and trace=true on ONE engine, and the page's size.

    python evals/bench_trace.py [--problems 32] [--particles 8] [--max-step-tokens 48] [--max-steps 4]
                                [--rounds 2] [--page-problems 500] [--page-particles 16] [--page-steps 40]

1. Particle filtering (the method that records the most: every step of every particle is a node, every
   round a resampling decision with its weights) over the GSM8K fixture on the embedded model, with
   tracing off and on in alternating rounds (seeds change per round, both modes share them). Prints the
   generated tokens/s of each and the ratio on / off (the issue's target: >= 0.97).
2. The viewer's page for a synthetic run of `page-problems` problems x `page-particles` particles x
   `page-steps` steps (steps of ~150 characters, a resampling decision per step): the trace file's size,
   the page's size and the seconds to write it (no model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path


def engine_rounds(args) -> dict:
    from ttscale.build import build_backend, build_model_path, build_problems, build_strategy
    from ttscale.config import group_config
    from ttscale.graders.math import MathGrader
    from ttscale.runtime import run

    model_cfg = group_config("model", "smollm2-135m")
    backend_cfg = group_config("backend", "vllm")
    backend_cfg["env"]["VLLM_CPU_KVCACHE_SPACE"] = args.kv_gib
    dataset_cfg = group_config("dataset", "gsm8k_fixture")
    problems = build_problems(dataset_cfg, model_cfg)
    problems = [dataclasses.replace(problems[i % len(problems)], id=f"{problems[i % len(problems)].id}#{i}")
                for i in range(args.problems)]
    strategy_cfg = group_config("strategy", "particle_filtering")
    strategy_cfg.update(n=args.particles, max_step_tokens=args.max_step_tokens, max_steps=args.max_steps,
                        max_tokens=args.max_step_tokens * args.max_steps)
    backend = build_backend(backend_cfg, build_model_path(model_cfg), seed=0)
    rows = []
    with MathGrader(workers=1) as grader, tempfile.TemporaryDirectory() as folder:
        strategy = build_strategy(strategy_cfg, group_config("verifier", "mean_token_prob"), backend, grader,
                                  step_delimiter=model_cfg["step_delimiter"])
        run(strategy, problems[:2], backend, grader=grader, progress=False)  # warm-up, not timed
        for r in range(args.rounds):
            modes = ("off", "on") if r % 2 == 0 else ("on", "off")
            for mode in modes:
                trace = Path(folder, f"{r}-{mode}", "trace.jsonl.gz") if mode == "on" else None
                start = time.perf_counter()
                outcome = run(strategy, problems, backend, grader=grader, progress=False, seed=r,
                              concurrency=len(problems), trace=trace)
                seconds = time.perf_counter() - start
                tokens = sum(x.usage.completion_tokens for x in outcome.results)
                rows.append({"mode": mode, "round": r, "seconds": seconds, "tokens": tokens,
                             "trace_bytes": trace.stat().st_size if trace else 0,
                             "errors": sum(x.error is not None for x in outcome.results)})
    backend.close()
    return {"rows": rows}


def synthetic_page(args) -> dict:
    from ttscale.tracing.page import write_page
    from ttscale.tracing.recorder import TraceWriter

    rng = random.Random(0)
    words = "the of total each then so we add multiply remaining apples dollars hours is are".split()
    with tempfile.TemporaryDirectory() as folder:
        writer = TraceWriter(Path(folder, "trace.jsonl.gz"))
        for p in range(args.page_problems):
            nodes, decisions, live = [], [], ["0"] * args.page_particles
            for step in range(args.page_steps):
                grown = []
                for i, parent in enumerate(live):
                    node_id = f"{parent}.{i}"
                    text = " ".join(rng.choice(words) for _ in range(28)) + "\n\n"
                    nodes.append({"id": node_id, "parent": parent, "role": "step", "depth": step + 1, "step": text,
                                  "step_tokens": 36, "tokens": 36 * (step + 1), "scores": [rng.random()],
                                  "finished": step + 1 == args.page_steps, "finish_reason": None})
                    grown.append(node_id)
                weights = [rng.random() for _ in grown]
                total = sum(weights)
                weights = [w / total for w in weights]
                live = rng.choices(grown, weights, k=len(grown))
                decisions.append({"kind": "resampled", "t": step * 0.1, "round": step + 1, "nodes": grown,
                                  "rewards": [rng.random() for _ in grown], "weights": weights, "ess": 8.0,
                                  "drawn": live})
            candidates = [{"answer": str(rng.randrange(5)), "score": rng.random(), "from": leaf, "tokens": 1440,
                           "finish_reason": "stop", "group": 0, "correct": None} for leaf in live]
            writer.write({"problem": f"p{p}", "method": "particle_filtering", "answer": "1", "reference": "1",
                          "correct": rng.random() < 0.5, "error": None, "usage": {"completion_tokens": 23040},
                          "seconds": 10.0, "samples": [], "nodes": nodes, "calls": [], "decisions": decisions,
                          "candidates": candidates, "votes": [], "info": {"chosen": 0}})
        writer.close()
        trace_bytes = Path(folder, "trace.jsonl.gz").stat().st_size
        start = time.perf_counter()
        page = write_page(folder)
        seconds = time.perf_counter() - start
        out = {"problems": args.page_problems, "particles": args.page_particles, "steps": args.page_steps,
               "trace_mb": trace_bytes / 2**20, "page_mb": page.stat().st_size / 2**20, "seconds": seconds}
        out.update(open_in_browser(page, args.page_problems))
        return out


def open_in_browser(page: Path, problems: int) -> dict:
    """Seconds until the page shows its index and first tree, then to open the last problem (a click on
    its row) in headless Chromium (tests/browser.py), when Chromium is installed."""
    import asyncio
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from browser import CHROMIUM, Browser

    if CHROMIUM is None:
        return {}

    async def look() -> dict:
        async with Browser() as browser:
            start = time.perf_counter()
            await browser.open(page)
            await browser.wait_for("document.querySelectorAll('#tree circle.node').length", timeout=120)
            loaded = time.perf_counter() - start
            start = time.perf_counter()
            await browser.click(f'tr.problem[data-index="{problems - 1}"]')
            await browser.wait_for(f"document.body.dataset.opened === '{problems - 1}'", timeout=120)
            nodes = await browser.evaluate("document.querySelectorAll('#tree circle.node').length")
            return {"load_seconds": loaded, "open_seconds": time.perf_counter() - start, "nodes_drawn": nodes,
                    "console_errors": len(browser.errors)}

    return asyncio.run(look())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--max-step-tokens", type=int, default=48)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kv-gib", type=int, default=4)
    parser.add_argument("--page-problems", type=int, default=500)
    parser.add_argument("--page-particles", type=int, default=16)
    parser.add_argument("--page-steps", type=int, default=40)
    parser.add_argument("--skip-engine", action="store_true", help="the page's size only")
    args = parser.parse_args()

    print(f"# {platform.node()} {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
    out = {}
    if not args.skip_engine:
        out["engine"] = engine_rounds(args)
        rows = out["engine"]["rows"]
        print(f"particle filtering, {args.problems} problems x {args.particles} particles, "
              f"{args.max_steps} steps of {args.max_step_tokens} tokens; {args.rounds} rounds (order alternates)")
        print(f"{'trace':6s} {'round':>5s} {'seconds':>8s} {'tokens':>7s} {'tok/s':>7s} {'trace KB':>8s} {'errors':>6s}")
        for row in rows:
            print(f"{row['mode']:6s} {row['round']:5d} {row['seconds']:8.1f} {row['tokens']:7d} "
                  f"{row['tokens'] / row['seconds']:7.1f} {row['trace_bytes'] / 1024:8.1f} {row['errors']:6d}")
        rate = {m: sum(r["tokens"] for r in rows if r["mode"] == m) / sum(r["seconds"] for r in rows if r["mode"] == m)
                for m in ("off", "on")}
        out["ratio_on_off"] = rate["on"] / rate["off"]
        print(f"tokens/s with tracing on / off: {out['ratio_on_off']:.3f} (target >= 0.97)")
    out["page"] = synthetic_page(args)
    page = out["page"]
    print(f"page of {page['problems']} problems x {page['particles']} particles x {page['steps']} steps: "
          f"trace {page['trace_mb']:.1f} MB, page {page['page_mb']:.1f} MB, written in {page['seconds']:.1f} s")
    if "load_seconds" in page:
        print(f"headless Chromium: index and first tree shown {page['load_seconds']:.1f} s after opening; the last "
              f"problem drawn ({page['nodes_drawn']} nodes) {page['open_seconds']:.2f} s after a click on its row; "
              f"console errors: {page['console_errors']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
