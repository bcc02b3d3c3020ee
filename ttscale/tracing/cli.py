"""`ttscale trace RUN_DIR`: the run's trace page; with --reselect or --resample, a replay on the trace.

    ttscale trace RUN_DIR [--out PAGE.html]
    ttscale trace RUN_DIR --reselect majority|best_score|weighted_vote
    ttscale trace RUN_DIR --resample multinomial|systematic|stratified [--temperature T]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from ttscale.tracing.page import latest, write_page
from ttscale.tracing.recorder import read_traces
from ttscale.strategies.select.base import MissingStatistic
from ttscale.strategies.step.resampling import ANNEALING
from ttscale.tracing.replay import SELECTIONS, SCHEMES, replay_resampling, replayable, reselect


def _share(values) -> str:
    values = list(values)
    graded = [v for v in values if v is not None]
    return f"{sum(graded)}/{len(graded)} correct" + (f" ({len(values) - len(graded)} ungraded)" if len(graded) < len(values) else "")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ttscale trace", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run's folder (its trace.jsonl.gz: run with trace=true)")
    parser.add_argument("--out", help="where the page goes (default: RUN_DIR/trace.html)")
    parser.add_argument("--reselect", choices=sorted(SELECTIONS), help="select the recorded candidates again")
    parser.add_argument("--resample", choices=SCHEMES, help="redraw a particle filter's recorded resampling rounds")
    parser.add_argument("--temperature", type=float, default=None,
                        help="with --resample: the weights' temperature (default: the run's)")
    parser.add_argument("--annealing", choices=ANNEALING, default=None,
                        help="with --resample: ePF's annealing rule (default: the run's)")
    return parser


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        if not (args.reselect or args.resample):
            print(f"trace page: {write_page(args.run_dir, args.out)}")
            return 0
        traces = latest(read_traces(args.run_dir))
    except (FileNotFoundError, ValueError) as exc:
        print(f"ttscale trace: {exc}", file=sys.stderr)
        return 2
    if args.reselect:
        graded = [t for t in traces if t.get("error") is None]
        replays, unscored = [], 0
        for trace in graded:
            try:
                replays.append((trace, reselect(trace, args.reselect)))
            except MissingStatistic:  # best_score / weighted_vote on candidates that no verifier scored
                unscored += 1
        if unscored:
            print(f"{unscored} problems have candidates without scores: {args.reselect} cannot choose among them")
        print(f"recorded selection: {_share(t.get('correct') for t, _ in replays)}")
        print(f"{args.reselect} on the same candidates: {_share(r['correct'] for _, r in replays)}")
        changed = sum(1 for t, r in replays if r["answer"] != t.get("answer"))
        print(f"problems whose answer changed: {changed}")
    if args.resample:
        particle = [t for t in traces if "resampling" in replayable(t)]
        if not particle:
            print("no problem of this run has resampling decisions (not a particle filtering run): nothing to replay")
            return 2
        try:
            replays = [replay_resampling(t, args.resample, args.temperature, args.annealing) for t in particle]
        except ValueError as exc:
            print(f"ttscale trace: {exc}", file=sys.stderr)
            return 2
        diverged = Counter(r["diverged_at"] for r in replays)
        print(f"{len(replays)} problems with resampling; rounds replayed exactly until the draw differs:")
        for at, count in sorted(diverged.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            where = "never diverged (every round replayed)" if at is None else f"diverged at round {at} (later rounds need the model)"
            print(f"  {where}: {count}")
    return 0
