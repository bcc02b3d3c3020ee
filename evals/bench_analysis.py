"""What a run's summary costs, and the watchdog's look at the process tree, without an engine.

    python evals/bench_analysis.py

The summary (runtime.summarize: accuracy with Wilson's interval, pass@k, maj@k by 200 subsets per k,
pass@1[avg-of-n], G-Pass@k, latency) over synthetic runs of 30 x 8, 500 x 16 and 500 x 64 samples, and
one look of the watchdog (reaper.py: every process's /proc stat, the run's tree) on this machine.
"""

from __future__ import annotations

import os
import platform
import random
import time

from ttscale.results import summarize
from ttscale.types import Candidate, Result, Usage


def synthetic(problems: int, n: int, seed: int = 0) -> list[Result]:
    rng = random.Random(seed)
    out = []
    for i in range(problems):
        groups = [rng.randrange(4) for _ in range(n)]
        candidates = [Candidate(text="", answer=str(g), score=rng.random(), num_tokens=100, finish_reason="stop",
                                group=g, correct=g == 0) for g in groups]
        out.append(Result(f"p{i}", candidates[0].answer, candidates, correct=candidates[0].correct,
                          usage=Usage(completion_tokens=100 * n, wall_seconds=rng.random())))
    return out


def watchdog_look() -> tuple[int, float]:
    """One look as the watchdog takes it: every process's stat, parent links, this process's tree."""
    start = time.perf_counter()
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                procs[int(entry)] = (int(fields[1]), fields[19])
            except (OSError, IndexError, ValueError):
                continue
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    todo, found = [os.getpid()], 0
    while todo:
        for child in children.get(todo.pop(), ()):
            found += 1
            todo.append(child)
    return len(procs), time.perf_counter() - start


def main() -> None:
    print(f"# {platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}")
    summarize(synthetic(5, 2), 1.0)  # imports (scipy) once, outside the timings
    print("| run | summary seconds |\n|---|---|")
    for problems, n in ((30, 8), (500, 16), (500, 64)):
        results = synthetic(problems, n)
        start = time.perf_counter()
        summarize(results, 10.0)
        print(f"| {problems} problems x {n} samples | {time.perf_counter() - start:.3f} |")
    looks = [watchdog_look() for _ in range(20)]
    processes = looks[-1][0]
    seconds = sorted(t for _, t in looks)[len(looks) // 2]
    print(f"\nwatchdog look: {seconds * 1e3:.2f} ms for {processes} processes (median of 20); every 0.5 s: "
          f"{seconds / 0.5 * 100:.2f}% of a core")


if __name__ == "__main__":
    main()
