"""The runtime's own cost, without an engine: the scripted backend answers at once.

    python evals/bench_runtime.py [--problems 1000] [--samples 16] [--pf-problems 64] [--particles 8] [--steps 16]

Self-consistency over many problems (samples/s through the runtime: seeding, usage accounting,
extraction, grouping, selection, grading, JSON results) and particle filtering (particle-steps/s:
step requests, scoring, resampling), each with the real math grader and with a stand-in grader
that does no work, so the share of the time spent grading is measured side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from ttscale import SamplingParams, run
from ttscale.backends.scripted import ScriptedBackend
from ttscale.graders.math import MathGrader
from ttscale.strategies import ParticleFiltering, StepGenerator, self_consistency
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.strategy import Strategy
from ttscale.types import Problem
from ttscale.verifiers.logprob import MeanTokenProbability


class FreeGrader:
    """The grader contract at no cost: the answer is the text's last word; groups by string."""

    def extract(self, text, problem=None, finished=True):
        return text.rsplit(" ", 1)[-1] if text else None

    async def agroup(self, answers, problem=None):
        seen: dict = {}
        return [None if a is None else seen.setdefault(a, len(seen)) for a in answers]

    async def agrade(self, result, problem):
        result.reference = problem.answer
        result.correct = result.answer == problem.answer
        for c in result.candidates:
            c.correct = c.answer == problem.answer

    def stats(self):
        return {}

    def close(self):
        pass


def sc_script(prompt, params, index):
    return f"Adding the numbers gives {(params.seed or 0) % 7 + index % 3}. The answer is {index % 3}."


def pf_script(steps):
    def script(prompt, params, index):
        depth = prompt.count("step ")
        return "so \\boxed{2}" if depth + 1 >= steps else f"step {depth}\n\n"
    return script


def timed(strategy, problems, backend, grader) -> float:
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        run(strategy, problems, backend, grader=grader, progress=False, concurrency=len(problems),
            output=os.path.join(folder, "results.jsonl"))
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--pf-problems", type=int, default=64)
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    sc_problems = [Problem(f"q{i}", "What is 1 + 1?", answer=str(i % 3)) for i in range(args.problems)]
    pf_problems = [Problem(f"p{i}", "What is 1 + 1?", answer="2") for i in range(args.pf_problems)]
    sc = self_consistency(n=args.samples, params=SamplingParams(temperature=0.8, max_tokens=64))
    gen = StepGenerator(SamplingParams(temperature=0.8, logprobs=0), max_step_tokens=8, max_steps=args.steps + 1,
                        max_tokens=10_000)
    pf = Strategy(ParticleFiltering(MeanTokenProbability(), n=args.particles, generator=gen), BestScore(),
                  name="particle_filtering")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; scripted backend, no latency")
    samples = args.problems * args.samples
    particle_steps = args.pf_problems * args.particles * args.steps
    for name, make in (("free grader", FreeGrader), ("math grader", lambda: MathGrader(workers=2))):
        grader = make()
        try:
            grader_warm = getattr(grader, "equivalent", None)
            if grader_warm:
                grader_warm("\\sqrt{4}", "2")  # workers started outside the timing
            sc_seconds = timed(sc, sc_problems, ScriptedBackend(sc_script), grader)
            pf_seconds = timed(pf, pf_problems, ScriptedBackend(pf_script(args.steps)), grader)
        finally:
            grader.close()
        print(f"{name:>12}: self-consistency {samples / sc_seconds:9.0f} samples/s ({args.problems} x {args.samples} "
              f"in {sc_seconds:.2f} s); particle filtering {particle_steps / pf_seconds:8.0f} particle-steps/s "
              f"({args.pf_problems} x {args.particles} x {args.steps} in {pf_seconds:.2f} s)")


if __name__ == "__main__":
    main()
