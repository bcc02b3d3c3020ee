"""Every depth weighting on one fractured-sampling run: re-vote its answers without sampling again.

    python evals/fractured_votes.py RUN_DIR

RUN_DIR is a ttscale run of `strategy=fractured_sampling`. Its answers carry their trajectory and
depth, and the run's math grader already grouped and graded them. The same answers are voted again
under each scheme: uniform over all depths (the run's default), linear weights (the paper's
Appendix B.1), only the last K depths (the paper's "H = -K", whose budget leaves out the other
depths' answer tokens), and each depth alone. Prints accuracy with a 95% bootstrap interval and the
generated tokens per problem that the scheme would have cost (trajectories + its answers).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ttscale.analysis import proportion_ci
from ttscale.results import load_results
from ttscale.strategies.search.fractured_sampling import depth_weight
from ttscale.strategies.select import WeightedVote
from ttscale.strategies.select.weighted import SEARCH_WEIGHT
from ttscale.types import Trajectory


def schemes(depths: int) -> dict[str, tuple[list[int], str]]:
    """name -> (depths voting, weighting)."""
    out = {"uniform, all depths": (list(range(1, depths + 1)), "uniform"),
           "linear, all depths": (list(range(1, depths + 1)), "linear")}
    for k in range(depths - 1, 0, -1):
        out[f"last {k} depth{'s' if k > 1 else ''}"] = (list(range(depths - k + 1, depths + 1)), "uniform")
    for h in range(1, depths):
        out[f"depth {h} alone"] = ([h], "uniform")
    return out


def study(run_dir: Path) -> list[dict]:
    results = [r for r in load_results(run_dir / "results.jsonl").values() if not r.error and r.correct is not None]
    depths = max(c.stats["depth"] for r in results for c in r.candidates)
    rows = []
    for name, (voting, weighting) in schemes(depths).items():
        outcomes, tokens = [], []
        for r in results:
            kept = [c for c in r.candidates if c.stats["depth"] in voting]
            own, seen = set(), set()  # each trajectory's own answer: the first of its last depth's
            for c in r.candidates:
                if c.stats["depth"] == depths and c.stats["trajectory"] not in seen:
                    seen.add(c.stats["trajectory"])
                    own.add(id(c))
            trajectories = [Trajectory(text=c.text, num_tokens=c.num_tokens, answer=c.answer,
                                       stats={SEARCH_WEIGHT: depth_weight(c.stats["depth"], depths, weighting)})
                            for c in kept]
            chosen = WeightedVote(SEARCH_WEIGHT)(trajectories, [c.group for c in kept]).index if kept else None
            outcomes.append(float(chosen is not None and bool(kept[chosen].correct)))
            tokens.append(r.info["trajectory_tokens"] + sum(c.num_tokens for c in kept if id(c) not in own))
        rows.append({"scheme": name, "accuracy": sum(outcomes) / len(outcomes), "ci95": proportion_ci(outcomes),
                     "tokens": sum(tokens) / len(tokens), "problems": len(outcomes)})
    return rows


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for row in study(Path(sys.argv[1])):
        low, high = row["ci95"]
        print(f"{row['scheme']:<22} {row['accuracy']:.3f} [{low:.3f}, {high:.3f}]  "
              f"{row['tokens']:8.0f} generated tokens / problem  ({row['problems']} problems)")


if __name__ == "__main__":
    main()
