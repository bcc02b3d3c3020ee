"""Plots of runs: a run's scaling curve (maj@k, best-of-k, pass@k against k) and accuracy against
compute over runs (the Pareto frontier marked)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttscale.analysis.report import COMPUTE_AXES, describe, pareto_frontier


def _wrap(title: str, width: int = 70) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in title.splitlines())


def plot_curve(rows: Sequence[dict[str, Any]], path: Path, title: str = "", run_point: tuple[str, float] | None = None
               ) -> Path:
    """maj@k, best-of-k and pass@k against k (log2 axis), 95% intervals shaded. `run_point`: the run's
    own selection at k = n (its name, its accuracy), drawn as a point of its own: a selection that is no
    vote (GenSelect, a verifier's best) is shown as itself, not as maj@k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ks = [r["k"] for r in rows]
    for metric, label in (("maj_at_k", "maj@k"), ("best_of_k", "best-of-k (by score)"), ("pass_at_k", "pass@k")):
        if rows and metric in rows[0]:
            ax.plot(ks, [r[metric] for r in rows], marker="o", label=label)
            ax.fill_between(ks, [r[metric + "_ci95"][0] for r in rows], [r[metric + "_ci95"][1] for r in rows], alpha=0.2)
    if run_point is not None and run_point[1] is not None and ks:
        ax.plot([ks[-1]], [run_point[1]], marker="*", markersize=13, linestyle="none", color="black",
                label=f"the run's own choice ({run_point[0]}, k = {ks[-1]})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.set_xlabel("k (samples drawn from the run's n)")
    ax.set_ylabel("accuracy (95% CI shaded)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(_wrap(title), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the title and the legend beside are never clipped
    plt.close(fig)
    return path


def plot_compute(rows: Sequence[dict[str, Any]], axis: str, path: Path, title: str = "") -> Path | None:
    """Accuracy against compute per problem, one point per cell, Pareto frontier drawn. Error bars: the
    95% interval of one run (Wilson's), or ± 1 sd over seeds for a row of several seeds. Points at one
    spot are drawn side by side; labels read "n = 4"; the legend (strategy and what its n counts)
    stands beside the axes, so no label lies under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = COMPUTE_AXES[axis]
    points = [r for r in rows if r.get(key) is not None and r.get("accuracy") is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    groups = sorted({r["strategy"] for r in points})
    placed: dict[tuple[float, float], int] = {}
    rank = {}
    for r in sorted(points, key=lambda r: (r["strategy"], r[key])):
        spot = (round(math.log10(r[key]), 2) if r[key] > 0 else r[key], round(r["accuracy"], 2))
        rank[id(r)] = placed[spot] = placed.get(spot, -1) + 1
    seeded = any((r.get("seeds") or 1) > 1 for r in points)
    for name, marker in zip(groups, "osD^vP*Xh<>p" * 4):
        mine = [r for r in points if r["strategy"] == name]
        xs = [r[key] * 1.05 ** rank[id(r)] if r[key] > 0 else r[key] for r in mine]
        lows, highs = [], []
        for r in mine:
            if (r.get("seeds") or 1) > 1 and r.get("accuracy_sd") is not None:
                lows.append(min(r["accuracy"], r["accuracy_sd"]))
                highs.append(min(1.0 - r["accuracy"], r["accuracy_sd"]))
            elif r.get("accuracy_ci95"):
                lows.append(max(0.0, r["accuracy"] - r["accuracy_ci95"][0]))
                highs.append(max(0.0, r["accuracy_ci95"][1] - r["accuracy"]))
            else:
                lows.append(0.0)
                highs.append(0.0)
        counts = sorted({str(r.get("n_counts") or "n") for r in mine})
        bars = ax.errorbar(xs, [r["accuracy"] for r in mine], yerr=[lows, highs], fmt=marker, capsize=3,
                           alpha=0.85, label=f"{name} (n: {', '.join(counts)})")
        for x, r in zip(xs, mine):
            ax.annotate(f"n = {r['n']}", (x, r["accuracy"]), fontsize=7, color=bars.lines[0].get_color(),
                        xytext=(4, 3 + 9 * rank[id(r)]), textcoords="offset points")
    frontier = pareto_frontier([(r[key], r["accuracy"]) for r in points])
    ax.plot([points[i][key] for i in frontier], [points[i]["accuracy"] for i in frontier], "k--", lw=1,
            label="Pareto frontier")
    if all(r[key] > 0 for r in points):
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.3g}" if str(f"{v:.3g}")[0] in "25" else ""))
    ax.margins(x=0.12, y=0.08)  # room for the labels right of the last point, inside the axes
    ax.set_xlabel({"tokens": "generated + verifier tokens per problem", "flops": "FLOPs per problem (estimated)",
                   "wall": "run wall seconds / problems", "thinking": "thinking tokens per problem (budget forcing)"}[axis]
                  + ("\n(points at one spot are drawn side by side)" if any(rank.values()) else ""))
    ax.set_ylabel("accuracy (bars: 95% CI" + ("; ± 1 sd over seeds" if seeded else "") + ")")
    ax.set_title(_wrap(title or f"{describe(points, 'model')} on {describe(points, 'dataset')}: {len(points)} cells"),
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # beside, not over, the points
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
