"""A leaderboard: a grid of strategies x budgets on one benchmark, ranked with confidence intervals,
compute and cost-of-pass, and plotted at matched compute.

    python evals/leaderboard.py --out leaderboards/gsm8k-cpu                      # the CPU default grid
    python evals/leaderboard.py --out lb --strategies self_consistency,best_of_n,weighted_vote \\
        --budgets 1,2,4,8 -- dataset=gsm8k dataset.source=../shared/data/gsm8k_test.jsonl dataset.limit=50
    python evals/leaderboard.py --out lb --budget 800 \\
        --strategies self_consistency,particle_filtering,beam_search -- verifier=self_eval

`--budgets` runs every strategy at the same n values as ONE Hydra sweep (one engine serves every
cell). But n counts unlike things (samples, particles, beams, expansions...), so `--budget B`
instead matches compute, as the seed papers compare: each strategy's own knob (its n, in the
multiples it accepts) is calibrated to spend about B per problem — a pilot run at `--pilot-n`, then
n scaled by the measured compute, up to `--calibration-runs` runs, keeping the run closest to B.
`--budget-on` says what is matched:
    tokens     generated + verifier tokens (the default: a verifier's reading counts as compute)
    generated  generated tokens only (what `--token-budget T` matches, its older spelling)
    flops      estimated FLOPs (2 x params x tokens; needs model.params, and verifier.params for a
               verifier that is a model of its own)
`matched_budget.md` lists each strategy's n, what n counts, what it spent on each measure, and what
was matched; leaderboard.md's first line says it too.

`--baseline NAME` (a strategy name, or NAME@N for one budget) pairs every other cell against that
cell on their shared problems — accuracy difference with a paired bootstrap interval, exact McNemar
test, wins / losses / ties, compute — and writes OUT/comparisons.md.

Rerunning the same command resumes: finished cells and finished problems inside a cell are kept.
Writes OUT/runs/<cell>/ (each cell's run folder), OUT/leaderboard.md, OUT/leaderboard.csv and
OUT/compute_{tokens,flops,wall}.png (accuracy against compute with the Pareto frontier).
Everything after `--` is passed to ttscale (model, dataset, verifier, ...).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path


def for_strategy(strategy: str, extra: list[str]) -> list[str]:
    """The shared overrides without the strategy.* keys this strategy does not read (a grid's
    `strategy.beam_width=4` is meant for the beam searches; ttscale refuses unread keys)."""
    from ttscale.build import strategy_keys
    from ttscale.config import group_config

    readable = strategy_keys(group_config("strategy", strategy))
    out = []
    for override in extra:
        key = override.lstrip("+~").partition("=")[0]
        if key.startswith("strategy.") and key.count(".") == 1 and key.split(".", 1)[1] not in readable:
            continue
        out.append(override)
    return out


def run_cell(strategy: str, n: int, run_dir: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "ttscale.cli", f"strategy={strategy}", f"strategy.n={n}", "progress=false",
               f"hydra.run.dir={run_dir}", *for_strategy(strategy, extra)]
    print("running:", " ".join(command[2:]), flush=True)
    proc = subprocess.run(command)
    if proc.returncode != 0:
        raise SystemExit(f"leaderboard: {strategy} n={n} failed (exit {proc.returncode}); rerun to resume")
    return json.loads((run_dir / "summary.json").read_text())


def strategy_config(strategy: str, extra: list[str]) -> dict:
    """The strategy's config with the command line's strategy.* overrides applied (for its n step)."""
    import yaml

    from ttscale.config import group_config

    cfg = group_config("strategy", strategy)
    for override in extra:
        key, _, value = override.partition("=")
        if key.startswith("strategy.") and "." not in key[len("strategy."):]:
            cfg[key[len("strategy."):]] = yaml.safe_load(value)  # as Hydra reads a value
    return cfg


def aligned(n: float, step: int) -> int:
    return max(step, int(round(n / step)) * step)


MEASURES = {"tokens": "generated + verifier tokens", "generated": "generated tokens", "flops": "FLOPs"}


def spent(run_dir: Path) -> dict[str, float | None]:
    """A run's compute per problem on each measure (FLOPs: None when a size is unknown)."""
    from ttscale.analysis import load_run

    frame = load_run(run_dir)
    generated, verifier = frame["completion_tokens"].mean(), frame["verifier_tokens"].mean()
    flops = None if frame["flops"].isna().any() else float(frame["flops"].mean())
    return {"generated": float(generated), "verifier": float(verifier), "tokens": float(generated + verifier),
            "flops": flops}


def matched_budget(strategies: list[str], budget: float, measure: str, pilot_n: int, runs: int, out: Path,
                   extra: list[str]) -> list[dict]:
    """Calibrate each strategy's n to spend about `budget` per problem on `measure` (MEASURES); the
    chosen run of each goes to OUT/runs/<strategy>."""
    from ttscale.strategies.budget import budget_knob, budget_step

    rows = []
    for strategy in strategies:
        cfg = strategy_config(strategy, extra)
        step = budget_step(cfg)
        n, tried = aligned(pilot_n, step), {}
        for _ in range(max(1, runs)):
            run_dir = out / "calibration" / f"{strategy}-n{n}"
            run_cell(strategy, n, run_dir, extra)
            tried[n] = (spent(run_dir), run_dir)
            value = tried[n][0][measure]
            if value is None:
                raise SystemExit(f"leaderboard: --budget-on {measure} needs the model's size: set model.params (and "
                                 "verifier.params for a verifier that is a model of its own) after --")
            if value <= 0 or abs(value - budget) <= 0.1 * budget:
                break
            nxt = aligned(n * budget / value, step)
            if nxt in tried:
                break
            n = nxt
        best = min(tried, key=lambda k: (abs(tried[k][0][measure] - budget), k))
        used, run_dir = tried[best]
        target = out / "runs" / strategy
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(run_dir, target)
        rows.append({"strategy": strategy, "n": best, "n_counts": budget_knob(cfg), **used, "budget": budget,
                     "measure": measure, "off_by": (used[measure] - budget) / budget, "calibration_runs": len(tried)})
    lines = [f"Matched on {MEASURES[measure]} per problem: {budget:g}.", "",
             "| strategy | n | n counts | generated tokens / problem | verifier tokens / problem | FLOPs / problem | "
             "off by |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['strategy']} | {r['n']} | {r['n_counts']} | {r['generated']:.1f} | {r['verifier']:.1f} | "
              f"{'-' if r['flops'] is None else format(r['flops'], '.3g')} | {100 * r['off_by']:+.0f}% |" for r in rows]
    (out / "matched_budget.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


def compare_cells(runs: Path, baseline: str, out: Path) -> None:
    """Every cell paired against the baseline cell; OUT/comparisons.md."""
    import yaml

    from ttscale.analysis.compare import compare_runs, multiplicity_note
    from ttscale.analysis.report import _overrides, cell_labels, run_dirs

    def strategy_of(folder: Path) -> dict:
        return (yaml.safe_load((folder / "config.yaml").read_text()) or {}).get("strategy") or {}

    folders = run_dirs([runs])
    rows = [{"overrides": _overrides(f), "strategy": strategy_of(f).get("name"), "n": strategy_of(f).get("n")}
            for f in folders]
    cells = dict(zip(cell_labels(rows), folders))  # named as leaderboard.md names them (their overrides)
    keyed = {label: (row["strategy"], row["n"]) for label, row in zip(cells, rows)}
    matches = [label for label, (name, n) in keyed.items() if baseline in (name, f"{name}@{n}")]
    if not matches:
        raise SystemExit(f"leaderboard: --baseline {baseline!r} names no cell; cells: "
                         f"{', '.join(f'{name}@{n}' for name, n in keyed.values())}")
    base = max(matches, key=lambda label: keyed[label][1] or 0)  # the largest budget when no @N is given
    lines = [f"Paired against {keyed[base][0]}@{keyed[base][1]} ({base}) on the problems both share (difference = cell - baseline).", "",
             "| cell | problems | accuracy | baseline | difference [95% CI] | McNemar p | wins / losses / ties | "
             "generated tokens / problem (cell, baseline) |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for name, folder in cells.items():
        if name == base:
            continue
        try:
            c = compare_runs(folder, cells[base])
        except ValueError as exc:  # e.g. a cell whose every problem errored: no comparable problem
            lines.append(f"| {name} | 0 | - | - | no comparison: {exc} | - | - | - |")
            continue
        if c.get("disagreement"):
            notes.append(f"- {name}: {c['disagreement']}")
        low, high = c["difference_ci95"]
        lines.append(f"| {name} | {c['problems']} | {c['accuracy_a']:.3f} | {c['accuracy_b']:.3f} | "
                     f"{c['difference']:+.3f} [{low:+.3f}, {high:+.3f}] | {c['mcnemar_p']:.3g} | "
                     f"{c['wins']} / {c['losses']} / {c['ties']} | {c['compute_a']['generated_tokens_per_problem']:.0f}, "
                     f"{c['compute_b']['generated_tokens_per_problem']:.0f} |")
    compared = len(cells) - 1
    if multiplicity_note(compared):
        notes.append(f"- {multiplicity_note(compared)}")
    if notes:
        lines += ["", "Notes:", *notes]
    (out / "comparisons.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the leaderboard's folder")
    parser.add_argument("--strategies", default="self_consistency,best_of_n,weighted_vote")
    parser.add_argument("--budgets", default="1,2,4,8", help="strategy.n values (without --token-budget)")
    parser.add_argument("--budget", type=float, help="match compute: what every strategy spends per problem")
    parser.add_argument("--budget-on", choices=sorted(MEASURES), default="tokens",
                        help="--budget's measure: tokens (generated + verifier, the default), generated, flops")
    parser.add_argument("--token-budget", type=float, help="the same as --budget T --budget-on generated")
    parser.add_argument("--pilot-n", type=int, default=2, help="--token-budget: n of each strategy's first run")
    parser.add_argument("--calibration-runs", type=int, default=3, help="--token-budget: runs per strategy at most")
    parser.add_argument("--baseline", help="pair every cell against this one: a strategy name, or NAME@N")
    parser.add_argument("ttscale_args", nargs="*", help="more ttscale overrides (after --)")
    args = parser.parse_args()
    out = Path(args.out)
    runs = out / "runs"
    if args.token_budget and args.budget:
        parser.error("give --budget (with --budget-on) or --token-budget, not both")
    budget, measure = (args.token_budget, "generated") if args.token_budget else (args.budget, args.budget_on)
    if budget:
        matched_budget(args.strategies.split(","), budget, measure, args.pilot_n, args.calibration_runs, out,
                       args.ttscale_args)
    else:
        command = [sys.executable, "-m", "ttscale.cli", "-m", f"strategy={args.strategies}",
                   f"strategy.n={args.budgets}", "progress=false", f"hydra.sweep.dir={runs}", *args.ttscale_args]
        print("running:", " ".join(command[2:]), flush=True)
        proc = subprocess.run(command)
        if proc.returncode != 0:
            raise SystemExit(f"leaderboard: the sweep failed (exit {proc.returncode}); rerun to resume")
    analysis = subprocess.run([sys.executable, "-m", "ttscale.analysis", str(runs), "--out", str(out)])
    board = out / "leaderboard.md"
    if analysis.returncode == 0 and board.exists():  # what the table's cells have in common, said first
        said = (f"Matched compute: {MEASURES[measure]} per problem, {budget:g} (matched_budget.md)." if budget
                else f"Not matched on compute: every strategy at strategy.n in {args.budgets} (n counts unlike things).")
        board.write_text(said + "\n\n" + board.read_text())
    if analysis.returncode == 0 and args.baseline:
        compare_cells(runs, args.baseline, out)
    raise SystemExit(analysis.returncode)


if __name__ == "__main__":
    main()
