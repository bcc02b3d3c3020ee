"""`python -m ttscale.analysis RUN_DIR [...]`: the scaling curve of each finished run (maj@k, best-of-k,
pass@k for k = 1, 2, 4, ... N with 95% bootstrap intervals), printed and written to RUN_DIR/curve.csv."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from ttscale.analysis.curves import scaling_curve
from ttscale.runtime import load_results


def _fmt(value, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def main(argv: list[str] | None = None) -> None:
    folders = [Path(a) for a in (argv if argv is not None else sys.argv[1:])]
    if not folders:
        raise SystemExit(__doc__)
    for folder in folders:
        results_file = folder / "results.jsonl"
        if not results_file.exists():
            raise SystemExit(f"{folder}: no results.jsonl (is it a ttscale run folder?)")
        rows = scaling_curve(list(load_results(results_file).values()))
        print(f"# {folder}")
        metrics = [m for m in ("maj_at_k", "best_of_k", "pass_at_k") if rows and m in rows[0]]
        print("| k | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics))
        for row in rows:
            print(f"| {row['k']} | " + " | ".join(_fmt(row[m], row[m + '_ci95']) for m in metrics) + " |")
        with open(folder / "curve.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["k", "problems"] + [c for m in metrics for c in (m, m + "_low", m + "_high")])
            for row in rows:
                writer.writerow([row["k"], row["problems"]] + [v for m in metrics
                                                              for v in (row[m], *row[m + "_ci95"])])


if __name__ == "__main__":
    main()
