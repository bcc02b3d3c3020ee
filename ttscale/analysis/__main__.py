"""`python -m ttscale.analysis RUN_DIR [RUN_DIR ...] [--out DIR]`

For each run (a multirun sweep folder stands for all its jobs): the scaling curve (maj@k, best-of-k,
pass@k for k = 1, 2, 4, ... N, by subsampling, with 95% bootstrap intervals), printed and written to
RUN_DIR/curve.csv and RUN_DIR/curve.png. Over all the runs: leaderboard.csv / leaderboard.md
(accuracy with CI, tokens, FLOPs, wall time, cost-of-pass) and accuracy-against-compute plots with
the Pareto frontier (compute_tokens.png, compute_flops.png, compute_wall.png), in --out (default:
the single folder given).

`python -m ttscale.analysis compare BASELINE RUN [RUN ...]`: each RUN paired against BASELINE on the
problems both share: the accuracy difference (RUN - BASELINE) with a paired bootstrap 95% interval,
the exact McNemar test, wins / losses / ties, and each side's compute (ttscale.analysis.compare).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ttscale.results.curves import scaling_curve
from ttscale.analysis.plots import plot_compute, plot_curve
from ttscale.analysis.report import COMPUTE_AXES, leaderboard, run_dirs, write_leaderboard
from ttscale.results import load_results


def _fmt(value, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def curve(folder: Path) -> list[dict]:
    rows = scaling_curve(list(load_results(folder / "results.jsonl").values()))
    print(f"# {folder}")
    metrics = [m for m in ("maj_at_k", "best_of_k", "pass_at_k") if rows and m in rows[0]]
    print("| k | " + " | ".join(metrics) + " |\n|---|" + "---|" * len(metrics))
    for row in rows:
        print(f"| {row['k']} | " + " | ".join(_fmt(row[m], row[m + '_ci95']) for m in metrics) + " |")
    with open(folder / "curve.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["k", "problems"] + [c for m in metrics for c in (m, m + "_low", m + "_high")])
        for row in rows:
            writer.writerow([row["k"], row["problems"]] + [v for m in metrics for v in (row[m], *row[m + "_ci95"])])
    if len(rows) > 1:
        plot_curve(rows, folder / "curve.png", title=curve_title(folder, rows), run_point=run_choice(folder))
    return rows


def run_choice(folder: Path) -> tuple[str, float | None]:
    """The run's own selection and its accuracy over graded problems (the curve's point at k = n)."""
    from ttscale.results.curves import graded_results
    from ttscale.analysis.report import _config

    strategy = _config(folder).get("strategy") or {}
    graded = graded_results(list(load_results(folder / "results.jsonl").values()))
    accuracy = sum(bool(r.correct) for r in graded) / len(graded) if graded else None
    return str(strategy.get("select") or strategy.get("name") or "selection"), accuracy


def curve_title(folder: Path, rows: list[dict]) -> str:
    """strategy (n = N, what n counts, verifier) · model (a stand-in says so) · dataset · problems, and
    the run's cell (its own overrides), never an absolute path."""
    from ttscale.analysis.report import _config, _overrides
    from ttscale.provenance import identity
    from ttscale.strategies.budget import budget_knob

    cfg = _config(folder)
    strategy = cfg.get("strategy") or {}
    model, dataset = identity(cfg)["model_label"], (cfg.get("dataset") or {}).get("name")
    verifier = (cfg.get("verifier") or {}).get("name") or strategy.get("verifier")
    head = f"{strategy.get('name', 'strategy unknown')} (n = {strategy.get('n')}, n counts {budget_knob(strategy)}"
    head += f", verifier {verifier})" if verifier else ")"
    cell = " ".join(_overrides(folder)) or folder.name
    return (f"{head} · {model or 'model unknown'} · {dataset or 'dataset unknown'} · "
            f"{max((r['problems'] for r in rows), default=0)} problems\n{cell}")


def compare_main(argv: list[str]) -> None:
    import json

    from ttscale.analysis.compare import compare_runs, format_comparison, multiplicity_note

    parser = argparse.ArgumentParser(prog="python -m ttscale.analysis compare",
                                     description="Each RUN paired against BASELINE on their shared problems.")
    parser.add_argument("baseline")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--json", help="also write every comparison to this JSON file")
    args = parser.parse_args(argv)
    outcomes = []
    for run in args.runs:
        try:
            outcome = compare_runs(run, args.baseline)
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"compare {run} with {args.baseline}: {exc}") from None
        print(format_comparison(outcome) + "\n")
        outcomes.append(outcome)
    note = multiplicity_note(len(outcomes))
    if note:
        print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps(outcomes, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m ttscale.analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders or multirun sweep folders")
    parser.add_argument("--out", help="where the leaderboard and compute plots go")
    parser.add_argument("--columns", default="paper",
                        help="leaderboard.md's columns: paper (default), compute, all, or names joined by commas "
                             "(leaderboard.csv always has every column)")
    parser.add_argument("--no-seed-mean", action="store_true",
                        help="one row per run, not one per cell with the mean and sd over its seeds")
    args = parser.parse_args(argv)
    from ttscale.analysis.report import table_columns

    try:
        table_columns(args.columns)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    try:
        folders = run_dirs(args.runs)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    for folder in folders:
        curve(folder)
    out = Path(args.out) if args.out else Path(args.runs[0])
    rows = leaderboard(folders, aggregate_seeds=not args.no_seed_mean)
    csv_path, md_path = write_leaderboard(rows, out, columns=args.columns)
    print(f"\n# leaderboard ({len(rows)} runs)\n" + md_path.read_text())
    plots = [p for axis in COMPUTE_AXES if (p := plot_compute(rows, axis, out / f"compute_{axis}.png"))]
    print(f"written: {csv_path}, {md_path}, " + ", ".join(map(str, plots)))


if __name__ == "__main__":
    main()
