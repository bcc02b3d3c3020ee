"""A leaderboard: a grid of strategies x budgets on one benchmark, run as ONE Hydra sweep (one engine
serves every cell), then ranked with confidence intervals, compute and cost-of-pass, and plotted at
matched compute.

    python evals/leaderboard.py --out leaderboards/gsm8k-cpu                      # the CPU default grid
    python evals/leaderboard.py --out lb --strategies self_consistency,best_of_n,weighted_vote \\
        --budgets 1,2,4,8 -- dataset=gsm8k dataset.source=../shared/data/gsm8k_test.jsonl dataset.limit=50

Rerunning the same command resumes: finished cells and finished problems inside a cell are kept.
Writes OUT/runs/<job>/ (each cell's run folder), OUT/leaderboard.md, OUT/leaderboard.csv and
OUT/compute_{tokens,flops,wall}.png (accuracy against compute with the Pareto frontier).
Everything after `--` is passed to ttscale (model, dataset, verifier, ...).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the leaderboard's folder")
    parser.add_argument("--strategies", default="self_consistency,best_of_n,weighted_vote")
    parser.add_argument("--budgets", default="1,2,4,8", help="strategy.n values")
    parser.add_argument("ttscale_args", nargs="*", help="more ttscale overrides (after --)")
    args = parser.parse_args()
    out = Path(args.out)
    runs = out / "runs"
    command = [sys.executable, "-m", "ttscale.cli", "-m", f"strategy={args.strategies}", f"strategy.n={args.budgets}",
               "progress=false", f"hydra.sweep.dir={runs}", *args.ttscale_args]
    print("running:", " ".join(command[2:]), flush=True)
    proc = subprocess.run(command)
    if proc.returncode != 0:
        raise SystemExit(f"leaderboard: the sweep failed (exit {proc.returncode}); rerun to resume")
    analysis = subprocess.run([sys.executable, "-m", "ttscale.analysis", str(runs), "--out", str(out)])
    raise SystemExit(analysis.returncode)


if __name__ == "__main__":
    main()
