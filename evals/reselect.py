"""The same samples, another selection: a finished run re-selected into a run folder of its own.

    python evals/reselect.py RUN_DIR --select best_score|majority|weighted_vote --out OUT_DIR

Each problem's candidates (answers, answer groups, grades and verifier scores as the run recorded
them) are selected again; OUT_DIR gets results.jsonl (the chosen answer and its grade; usage and
candidates unchanged, since nothing new was sampled), config.yaml (strategy.select changed) and
summary.json, so `python -m ttscale.analysis compare` pairs it with other runs. Example: best-of-n
and a score-weighted vote from ONE generation scored by a verifier (`strategy=verifier_vote`), so
the comparison of the two selections has no sampling noise between them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from ttscale.runtime import load_results, summarize
from ttscale.strategies.select import BestScore, MajorityVote, WeightedVote
from ttscale.types import Result, Trajectory

SELECTIONS = {"best_score": BestScore, "majority": MajorityVote, "weighted_vote": lambda: WeightedVote("score")}


def reselect(result: Result, select) -> Result:
    if result.error or not result.candidates:
        return result
    trajectories = [Trajectory(text=c.text, num_tokens=c.num_tokens, finish_reason=c.finish_reason, answer=c.answer,
                               score=c.score, stats=c.stats) for c in result.candidates]
    selection = select(trajectories, [c.group for c in result.candidates])
    chosen = None if selection.index is None else result.candidates[selection.index]
    info = {**result.info, **selection.info, "chosen": selection.index, "reselected": True}
    return Result(problem_id=result.problem_id, answer=chosen.answer if chosen else None, candidates=result.candidates,
                  usage=result.usage, reference=result.reference, correct=chosen.correct if chosen else
                  (False if result.correct is not None else None), error=result.error, info=info,
                  undecided=result.undecided)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--select", required=True, choices=sorted(SELECTIONS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    results = [reselect(r, SELECTIONS[args.select]()) for r in load_results(run / "results.jsonl").values()]
    if any(r.candidates and r.candidates[0].group is None and r.candidates[0].answer is not None for r in results):
        raise SystemExit(f"{run}: candidates carry no answer groups; re-selection needs a graded run")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as handle:
        for r in results:
            handle.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    config.setdefault("strategy", {})["select"] = args.select
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    earlier = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    wall = earlier.get("wall_seconds") or sum(r.usage.wall_seconds for r in results)  # the samples' run
    summary = {"reselected_from": str(run), "select": args.select, **summarize(results, wall)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{out}: {args.select} over {run}'s samples: accuracy {summary['accuracy']:.3f} "
          f"({summary['graded']} graded problems)")


if __name__ == "__main__":
    main()
