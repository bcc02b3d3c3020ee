"""Runs as tables and plots: per-problem frames (pandas), a leaderboard over runs with confidence
intervals and compute, scaling-curve plots, and accuracy against compute with the Pareto frontier."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.analysis.compute import Prices, compute_summary, flops
from ttscale.analysis.metrics import bootstrap_ci
from ttscale.runtime import load_results

COMPUTE_AXES = {"tokens": "completion_tokens_per_problem", "flops": "flops_per_problem",
                "wall": "wall_seconds_per_problem"}


def run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders (holding results.jsonl); a multirun sweep folder stands for its job folders."""
    found = []
    for path in map(Path, paths):
        if (path / "results.jsonl").exists():
            found.append(path)
            continue
        jobs = sorted((p.parent for p in path.glob("*/results.jsonl")), key=lambda p: (len(p.name), p.name))
        if not jobs:
            raise FileNotFoundError(f"{path}: no results.jsonl here or in its subfolders (is it a ttscale run?)")
        found.extend(jobs)
    return found


def _config(run: Path) -> dict[str, Any]:
    import yaml

    path = run / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def load_run(run: str | Path):
    """One row per problem: outcome, usage and estimated FLOPs (pandas.DataFrame)."""
    import pandas as pd

    run = Path(run)
    cfg = _config(run)
    params = (cfg.get("model") or {}).get("params")
    verifier_params = (cfg.get("verifier") or {}).get("params")
    rows = []
    for result in load_results(run / "results.jsonl").values():
        u = result.usage
        rows.append({"run": str(run), "strategy": (cfg.get("strategy") or {}).get("name"),
                     "n": (cfg.get("strategy") or {}).get("n"), "problem_id": result.problem_id,
                     "correct": result.correct, "covered": any(c.correct for c in result.candidates),
                     "error": result.error, "candidates": len(result.candidates),
                     "completion_tokens": u.completion_tokens, "prompt_tokens": u.prompt_tokens,
                     "cached_prompt_tokens": u.cached_prompt_tokens, "verifier_tokens": u.verifier_tokens,
                     "verifier_calls": u.verifier_calls, "backend_calls": u.backend_calls,
                     "wall_seconds": u.wall_seconds, "flops": flops(u, params, verifier_params)})
    return pd.DataFrame(rows)


def leaderboard(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One row per run: accuracy with its 95% CI, pass@n, tokens, FLOPs, wall time, cost-of-pass."""
    rows = []
    for run in run_dirs(paths):
        cfg = _config(run)
        results = [r for r in load_results(run / "results.jsonl").values()]
        graded = [r for r in results if r.correct is not None]
        correct = [float(bool(r.correct)) for r in graded]
        n = len(results) or 1
        strategy = cfg.get("strategy") or {}
        row = {"run": str(run), "strategy": strategy.get("name"), "n": strategy.get("n"),
               "verifier": (cfg.get("verifier") or {}).get("name") or strategy.get("verifier"),
               "problems": len(results), "errors": sum(r.error is not None for r in results),
               "accuracy": sum(correct) / len(correct) if correct else None, "accuracy_ci95": bootstrap_ci(correct),
               "pass_at_n": (sum(any(c.correct for c in r.candidates) for r in graded) / len(graded)) if graded else None,
               "completion_tokens_per_problem": sum(r.usage.completion_tokens for r in results) / n,
               "prompt_tokens_per_problem": sum(r.usage.prompt_tokens for r in results) / n,
               "verifier_tokens_per_problem": sum(r.usage.verifier_tokens for r in results) / n,
               # the run's wall time shared over its problems (each problem's own time overlaps the others')
               "wall_seconds_per_problem": _run_wall(run, results) / n}
        model = cfg.get("model") or {}
        row.update(compute_summary(results, model.get("params"), (cfg.get("verifier") or {}).get("params"),
                                   Prices.from_config(model.get("prices"))))
        rows.append(row)
    return rows


def _run_wall(run: Path, results) -> float:
    summary = run / "summary.json"
    if summary.exists():
        wall = json.loads(summary.read_text()).get("wall_seconds")
        if wall:
            return float(wall)
    return max((r.usage.wall_seconds for r in results), default=0.0)


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: less or equal cost and higher accuracy (or equal
    accuracy and less cost). Sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    frontier, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            frontier.append(i)
            best = points[i][1]
    return frontier


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


LEADERBOARD_COLUMNS = ("strategy", "n", "verifier", "problems", "accuracy", "accuracy_ci95", "pass_at_n",
                       "completion_tokens_per_problem", "flops_per_problem", "flops_of_pass",
                       "wall_seconds_per_problem", "cost_of_pass", "run")


def write_leaderboard(rows: Sequence[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """leaderboard.csv and leaderboard.md in `out`, best accuracy first."""
    import csv

    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda r: (-(r["accuracy"] or 0), r["completion_tokens_per_problem"]))
    columns = [c for c in LEADERBOARD_COLUMNS if any(c in r for r in rows)]
    with open(out / "leaderboard.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in ordered:
            writer.writerow([json.dumps(r.get(c)) if isinstance(r.get(c), (list, tuple)) else r.get(c) for c in columns])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in ordered]
    (out / "leaderboard.md").write_text("\n".join(lines) + "\n")
    return out / "leaderboard.csv", out / "leaderboard.md"


def plot_curve(rows: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """maj@k, best-of-k and pass@k against k (log2 axis), 95% intervals shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ks = [r["k"] for r in rows]
    for metric, label in (("maj_at_k", "maj@k"), ("best_of_k", "best-of-k"), ("pass_at_k", "pass@k")):
        if rows and metric in rows[0]:
            ax.plot(ks, [r[metric] for r in rows], marker="o", label=label)
            ax.fill_between(ks, [r[metric + "_ci95"][0] for r in rows], [r[metric + "_ci95"][1] for r in rows], alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_compute(rows: Sequence[dict[str, Any]], axis: str, path: Path, title: str = "") -> Path | None:
    """Accuracy (95% CI bars) against compute per problem, one point per run, Pareto frontier drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = COMPUTE_AXES[axis]
    points = [r for r in rows if r.get(key) is not None and r.get("accuracy") is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.2))
    groups = sorted({r["strategy"] for r in points})
    for name in groups:
        mine = [r for r in points if r["strategy"] == name]
        lows = [r["accuracy"] - r["accuracy_ci95"][0] for r in mine]
        highs = [r["accuracy_ci95"][1] - r["accuracy"] for r in mine]
        ax.errorbar([r[key] for r in mine], [r["accuracy"] for r in mine], yerr=[lows, highs], fmt="o", capsize=3,
                    label=name)
        for r in mine:
            ax.annotate(f"n={r['n']}", (r[key], r["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    frontier = pareto_frontier([(r[key], r["accuracy"]) for r in points])
    ax.plot([points[i][key] for i in frontier], [points[i]["accuracy"] for i in frontier], "k--", lw=1,
            label="Pareto frontier")
    if all(r[key] > 0 for r in points):
        ax.set_xscale("log")
    ax.set_xlabel({"tokens": "generated tokens per problem", "flops": "FLOPs per problem (estimated)",
                   "wall": "run wall seconds / problems"}[axis])
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
