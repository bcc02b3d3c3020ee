"""Every vote on one generation: re-select the answers of a finished run with each selection method.

    python evals/vote_study.py RUN_DIR [RUN_DIR ...]

RUN_DIR is a ttscale run folder whose samples carry token statistics (run it with
strategy.logprobs=20, e.g. `ttscale strategy=self_consistency strategy.logprobs=20 ...`). Answer
groups and correctness come from the run's results.jsonl (graded by ttscale's math grader), so each
method sees exactly the same samples. Prints accuracy with a 95% bootstrap interval per method. A
method whose statistic the samples lack (a run from before it was recorded) is skipped, and said so;
a run with no token statistics at all is refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ttscale.analysis import proportion_ci
from ttscale.results import load_results
from ttscale.strategies.select import (DeepConfVote, MajorityVote, MissingStatistic, RPCVote, SelfCertainty,
                                       WeightedVote)
from ttscale.types import Trajectory

METHODS = {
    "majority": MajorityVote(),
    "inverse_entropy": WeightedVote("inverse_entropy"),
    "mean_confidence_weighted": WeightedVote("mean_confidence"),
    "rpc": RPCVote(prune=True),
    "rpc_no_pruning": RPCVote(prune=False),
    "deepconf_eta10": DeepConfVote(eta=10),
    "deepconf_eta90": DeepConfVote(eta=90),
    "self_certainty_borda": SelfCertainty(),
    "self_certainty_best": SelfCertainty(vote="best"),
}


class Refused(SystemExit):
    """A run this study cannot re-vote, said in one line."""


def graded(run_dir: Path) -> list:
    """The run's graded problems; a folder that is no run, or a run with nothing graded or without
    the token statistics the votes read, is refused in one line."""
    if not (run_dir / "results.jsonl").exists():
        raise Refused(f"vote_study: {run_dir}: no results.jsonl (is it a ttscale run folder?)")
    results = [r for r in load_results(run_dir / "results.jsonl").values() if not r.error and r.correct is not None]
    if not results:
        raise Refused(f"vote_study: {run_dir}: no graded problem (every one errored or was undecided)")
    if not any(c.stats.get("tokens") for r in results for c in r.candidates):
        raise Refused(f"vote_study: {run_dir}: its samples carry no token statistics, which every method but "
                      "majority reads; run it with strategy.logprobs=20 on a backend that returns top-k logprobs")
    return results


def trajectories(result) -> list[Trajectory]:
    return [Trajectory(text=c.text, num_tokens=c.num_tokens, answer=c.answer, score=c.score, stats=c.stats)
            for c in result.candidates]


def study(run_dir: Path, skipped: dict[str, str] | None = None) -> list[dict]:
    """A row per method; a method whose statistic a sample lacks goes to `skipped` (method: why)."""
    results = graded(run_dir)
    rows = []
    for name, select in METHODS.items():
        outcomes = []
        try:
            for result in results:
                chosen = select(trajectories(result), [c.group for c in result.candidates]).index
                outcomes.append(float(chosen is not None and bool(result.candidates[chosen].correct)))
        except MissingStatistic as exc:
            if skipped is not None:
                skipped[name] = str(exc)
            continue
        rows.append({"method": name, "problems": len(outcomes), "accuracy": sum(outcomes) / len(outcomes),
                     "ci95": proportion_ci(outcomes)})
    covered = [float(any(c.correct for c in r.candidates)) for r in results]
    rows.append({"method": "pass@n (oracle)", "problems": len(covered), "accuracy": sum(covered) / len(covered),
                 "ci95": proportion_ci(covered)})
    return rows


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    for folder in map(Path, sys.argv[1:]):
        skipped: dict[str, str] = {}
        rows = study(folder, skipped)
        for name, why in skipped.items():
            print(f"vote_study: {folder}: {name} skipped: {why}", file=sys.stderr)
        print(f"# {folder}")
        print("| method | problems | accuracy | 95% CI |\n|---|---|---|---|")
        for row in rows:
            low, high = row["ci95"]
            print(f"| {row['method']} | {row['problems']} | {row['accuracy']:.3f} | [{low:.3f}, {high:.3f}] |")
        (folder / "vote_study.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
