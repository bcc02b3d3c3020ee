"""How long the math grader takes to group one problem's answers for a vote, 2 worker processes.

    python evals/bench_grouping.py [--baseline DIR] [--rounds 2]

Three hand-made problems of 64 or 65 distinct answers: 64 distinct numbers (`\\frac{k}{7}+\\sqrt{k+1}`),
the same 64 and one hostile answer (a fraction nested 95 deep: seconds for math-verify to read), and
64 polynomials that fall into 32 groups (`x^2+kx` = `x(x+k)`). Each round groups them with a fresh
grader (workers started before the clock) in a child process; with `--baseline DIR` (a checkout of an
older ttscale) the same answers are grouped by that version, and the ratio of times is printed, with
the number of groups each version found.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
from ttscale.graders.math import MathGrader
cases = json.load(open(sys.argv[1]))
out = {}
with MathGrader(workers=2, timeout=10.0) as grader:
    grader.group(["\\sqrt{4}", "2", "3"])  # both workers started outside the timing
    for name, answers in cases.items():
        t0 = time.perf_counter()
        labels = grader.group(answers)
        out[name] = {"seconds": time.perf_counter() - t0, "groups": len(set(labels))}
    out["stats"] = grader.stats()
print(json.dumps(out))
"""


def cases() -> dict[str, list[str]]:
    numbers = [f"\\frac{{{k}}}{{7}}+\\sqrt{{{k + 1}}}" for k in range(64)]
    hostile = "\\frac{1}{" * 95 + "3" + "}" * 95
    polynomials = [f"x^2+{k}x" for k in range(32)] + [f"x(x+{k})" for k in range(32)]
    return {"64 distinct numbers": numbers, "64 numbers + 1 hostile": numbers + [hostile],
            "64 polynomials, 32 groups": polynomials}


def measure(pythonpath: str, cases_file: str) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.run([sys.executable, "-c", CHILD, cases_file], capture_output=True, text=True, env=env,
                          check=True, cwd=tempfile.gettempdir())
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="a checkout of an older ttscale, measured the same way")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases(), f)
    versions = [("current", here)] + ([("baseline", os.path.abspath(args.baseline))] if args.baseline else [])
    best: dict[str, dict[str, dict]] = {name: {} for name, _ in versions}
    for _ in range(args.rounds):
        for name, path in versions:
            result = measure(path, f.name)
            for case, value in result.items():
                if case != "stats" and (case not in best[name] or value["seconds"] < best[name][case]["seconds"]):
                    best[name][case] = value
            best[name]["stats"] = result["stats"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; 2 workers; best of {args.rounds} rounds")
    for case in cases():
        line = f"  {case:28s}"
        for name, _ in versions:
            line += f"  {name}: {best[name][case]['seconds']:6.2f} s ({best[name][case]['groups']} groups)"
        if args.baseline:
            line += f"  ratio current/baseline: {best['current'][case]['seconds'] / best['baseline'][case]['seconds']:.3f}"
        print(line)
    for name, _ in versions:
        print(f"  {name} grader stats: {best[name]['stats']}")
    os.unlink(f.name)


if __name__ == "__main__":
    main()
