"""Math grader throughput: answers graded per second against their references, 2 worker processes.

    python evals/bench_grader.py --data ../shared/data [--baseline DIR] [--rounds 3] [--outputs 500]

Pairs are built from real references (MATH-500 and GSM8K test answers): each reference against
itself, against a rewriting of it (`\\dfrac`, spaces, `.0`, thousands separators), against another
problem's reference and against itself in parentheses, so the mix has cheap exact cases and symbolic
ones (the share that needs math-verify is printed). Each round grades all pairs
with a fresh grader (its workers started before the clock) in a child process; with `--baseline DIR`
(a checkout of an older ttscale) the same pairs are graded by that version in alternating rounds, and
the ratio is printed. Verdicts that differ between the versions are counted too. Extraction is timed
on MATH-500's reference solutions read as model outputs (outputs/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from ttscale.graders.math import MathGrader
pairs = [tuple(p) for p in json.load(open(sys.argv[1]))]
with MathGrader(workers=2, timeout=10.0) as grader:
    grader.equivalent("\\\\sqrt{4}", "2")  # both workers are started outside the timing
    grader.grade_batch([("\\\\sqrt{4}", "2"), ("\\\\sqrt{9}", "3")])
    t0 = time.perf_counter()
    verdicts = grader.grade_batch(pairs)
    seconds = time.perf_counter() - t0
    texts = json.load(open(sys.argv[2]))
    grader.extract(texts[0])
    t0 = time.perf_counter()
    if hasattr(grader, "extract_many"):
        answers = grader.extract_many(texts, [True] * len(texts))
    else:
        answers = [grader.extract(t) for t in texts]
    extract_seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "verdicts": verdicts, "extract_seconds": extract_seconds, "answers": answers}))
"""


def rewrite(answer: str) -> str:
    out = answer.replace("\\frac", "\\dfrac").replace(",", ", ")
    if out.isdigit():
        out = f"{int(out):,}" if len(out) > 3 else out + ".0"
    return out


def build_pairs(data: Path, count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    math_refs = [json.loads(line)["answer"] for line in open(data / "math500.jsonl")]
    gsm_refs = [json.loads(line)["answer"].split("####")[-1].strip() for line in open(data / "gsm8k_test.jsonl")]
    refs = math_refs + gsm_refs
    pairs = []
    while len(pairs) < count:
        gold = rng.choice(refs)
        # itself, a rewriting, another reference, and the reference in parentheses (always symbolic)
        pairs += [(gold, gold), (gold, rewrite(gold)), (gold, rng.choice(refs)), (gold, f"({gold})")]
    return pairs[:count]


def measure(pythonpath: str, pairs_file: str, texts_file: str) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.run([sys.executable, "-c", CHILD, pairs_file, texts_file], capture_output=True, text=True, env=env, check=True,
                          cwd=tempfile.gettempdir())  # not the checkout: PYTHONPATH picks the version
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with math500.jsonl and gsm8k_test.jsonl")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outputs", type=int, default=500, help="MATH-500 solutions to extract answers from")
    parser.add_argument("--baseline", help="a checkout of another ttscale version to compare with")
    args = parser.parse_args()
    pairs = build_pairs(args.data, args.pairs, seed=0)
    versions = {"current": str(Path(__file__).resolve().parents[1])}
    if args.baseline:
        versions["baseline"] = str(Path(args.baseline).resolve())
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(pairs, handle)
    # extraction: MATH-500's reference solutions as model outputs (boxed answers inside prose and LaTeX)
    texts = [json.loads(line).get("solution") or "" for line in open(args.data / "math500.jsonl")][: args.outputs]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as text_handle:
        json.dump(texts, text_handle)
    rates: dict[str, list[float]] = {name: [] for name in versions}
    extract_rates: dict[str, list[float]] = {name: [] for name in versions}
    verdicts: dict[str, list] = {}
    for _ in range(args.rounds):
        for name, path in versions.items():
            outcome = measure(path, handle.name, text_handle.name)
            rates[name].append(len(pairs) / outcome["seconds"])
            extract_rates[name].append(len(texts) / outcome["extract_seconds"])
            verdicts[name] = outcome["verdicts"]
    os.unlink(handle.name)
    os.unlink(text_handle.name)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; {len(pairs)} pairs "
          f"(each reference vs itself, a rewriting, another reference); 2 workers; {args.rounds} rounds")
    means = {name: sum(r) / len(r) for name, r in rates.items()}
    for name, values in rates.items():
        print(f"{name:>9}: {means[name]:8.1f} answers/s  (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    for name, values in extract_rates.items():
        print(f"{name:>9}: {sum(values) / len(values):8.1f} outputs/s extracted ({len(texts)} MATH-500 solutions; "
              f"rounds: {', '.join(f'{v:.1f}' for v in values)})")
    from ttscale.graders.math import quick_equivalent

    symbolic = sum(quick_equivalent(g, p) is None for g, p in pairs)
    print(f"pairs that need math-verify (a worker): {symbolic} ({100 * symbolic / len(pairs):.0f}%)")
    current = verdicts["current"]
    print(f"current verdicts: {sum(v is True for v in current)} equal, {sum(v is False for v in current)} not equal, "
          f"{sum(v is None for v in current)} undecided")
    if args.baseline:
        print(f"ratio current / baseline: {means['current'] / means['baseline']:.3f}")
        changed = [(p, b, c) for p, b, c in zip(pairs, verdicts["baseline"], current) if b != c]
        print(f"verdicts that differ from the baseline: {len(changed)}")
        for (gold, pred), old, new in changed[:15]:
            print(f"  {gold!r} vs {pred!r}: baseline {old}, current {new}")


if __name__ == "__main__":
    main()
