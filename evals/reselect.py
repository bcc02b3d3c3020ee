"""The same samples, another selection: a finished run re-selected into a run folder of its own.

    python evals/reselect.py RUN_DIR --select best_score|majority|weighted_vote|genselect --out OUT_DIR

Each problem's candidates (answers, answer groups, grades and verifier scores as the run recorded
them) are selected again; OUT_DIR gets results.jsonl (the chosen answer and its grade; usage and
candidates unchanged, since nothing new was sampled), config.yaml (strategy.select changed) and
summary.json, so `python -m ttscale.analysis compare` pairs it with other runs. Example: best-of-n
and a score-weighted vote from ONE generation scored by a verifier (`strategy=verifier_vote`), so
the comparison of the two selections has no sampling noise between them.

`--select codet|mbr_exec|s_star` (code runs) runs the recorded programs in the sandbox (the dataset and
the grader from the run's config.yaml) and, for CodeT's tests, MBR-exec's generated inputs or S*'s
tests, distinguishing inputs and judgments, calls the run's model; `--set strategy.test_samples=8` and
the other keys of conf/strategy/codet.yaml, mbr_exec.yaml or s_star.yaml set them (S* on a
`strategy=self_debug` run's chains is S* whole: its search, then its selection). The model's tokens are
added to usage; sandbox runs to each result's info.

`--select genselect` judges the recorded candidates with the run's own model (its backend is started
from the run's config.yaml; `--set strategy.judgments=4` and the other judge_* keys change its
settings): the judge's calls and tokens are added to each problem's usage, so compute comparisons
stay honest. (A fresh GenSelect run is not on the same samples: the CPU engine's numerics depend on
what it batches together, and seeded samples differ once judge prompts share the batches.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import yaml

from ttscale.results import load_results, summarize
from ttscale.strategies.select import BestScore, GenSelect, MajorityVote, WeightedVote
from ttscale.strategies.context import Context
from ttscale.types import Problem, Result, Trajectory, Usage

SELECTIONS = {"best_score": BestScore, "majority": MajorityVote, "weighted_vote": lambda: WeightedVote("score"),
              "genselect": GenSelect}  # genselect calls the run's model: its backend is started from config.yaml
# code selections that run the recorded programs (and write tests with the run's model): their problems
# and grader come from the run's config.yaml (the dataset reloaded), their settings from strategy.* there
# and --set
CODE_SELECTIONS = ("codet", "mbr_exec", "s_star", "visible_tests")


class VisibleTests:
    """Best-of-n scored again by the visible tests (unit_tests' share of them passed; ties to the first
    sampled), e.g. with another `--set dataset.visible_tests=...` than the run's."""

    needs_context = True

    async def choose(self, problem, ctx, trajectories, groups):
        from ttscale.strategies.select.base import Selection
        from ttscale.verifiers.unit_tests import UnitTests

        scores = [s.value for s in await UnitTests(ctx.grader).score(problem, trajectories, ctx.usage)]
        chosen = max(range(len(scores)), key=lambda i: (scores[i], -i)) if scores else None
        return Selection(chosen, {"visible_scores": scores})


def trajectories_of(result: Result) -> list[Trajectory]:
    return [Trajectory(text=c.text, num_tokens=c.num_tokens, finish_reason=c.finish_reason, answer=c.answer,
                       score=c.score, stats=c.stats) for c in result.candidates]


def reselected(result: Result, selection, usage=None) -> Result:
    """The result with another selection's choice; `usage`: what that selection spent, added."""
    chosen = None if selection.index is None else result.candidates[selection.index]
    info = {**result.info, **selection.info, "chosen": selection.index, "reselected": True}
    total = result.usage
    if usage is not None:
        total = Usage(**result.usage.to_dict())
        total.add(usage)
    return Result(problem_id=result.problem_id, answer=chosen.answer if chosen else None, candidates=result.candidates,
                  usage=total, reference=result.reference, correct=chosen.correct if chosen else
                  (False if result.correct is not None else None), error=result.error, info=info,
                  undecided=result.undecided)


def reselect(result: Result, select) -> Result:
    if result.error or not result.candidates:
        return result
    return reselected(result, select(trajectories_of(result), [c.group for c in result.candidates]))


def problem_of(result: Result) -> Problem:
    """The problem as the run asked it: its recorded prompt (the last user message is the question)."""
    prompt = result.info.get("prompt")
    if not isinstance(prompt, list) or not prompt:
        raise SystemExit(f"problem {result.problem_id}: the run recorded no chat prompt (info.prompt); genselect "
                         "needs the question (a run from before results kept their prompts?)")
    question = next(m["content"] for m in reversed(prompt) if m.get("role") == "user")
    return Problem(id=result.problem_id, question=question, messages=prompt)


async def judge_all(results: list[Result], select, backend, seed: int, concurrency: int = 16) -> list[Result]:
    """GenSelect over each problem's recorded candidates, many problems at once; its calls in usage."""
    limit = asyncio.Semaphore(concurrency)

    async def one(result: Result) -> Result:
        if result.error or not result.candidates:
            return result
        problem = problem_of(result)
        ctx = Context(problem=problem, backend=backend, grader=None, run_seed=seed)
        async with limit:
            selection = await select.choose(problem, ctx, trajectories_of(result), [c.group for c in result.candidates])
        return reselected(result, selection, ctx.usage)

    return list(await asyncio.gather(*(one(r) for r in results)))


def code_results(results: list[Result], name: str, config: dict) -> list[Result]:
    """CodeT or MBR-exec over each problem's recorded programs (the run's dataset and grader; its
    model only when the selection writes tests)."""
    import contextlib

    from ttscale.build import build_backend, build_grader, build_model_path, build_problems, needs_model_weights
    from ttscale.config import group_config
    from ttscale.strategies import registry

    if name == "visible_tests":
        select = VisibleTests()
    else:
        cls, fixed = registry.resolve("select", name)
        strategy = {**group_config("strategy", name), **{k: v for k, v in (config.get("strategy") or {}).items()
                                                        if k in group_config("strategy", name)}}
        for key, value in (config.get("set") or {}).items():
            strategy[key] = value
        select = registry.build(cls, strategy, {}, fixed)
    problems = {p.id: p for p in build_problems(config["dataset"], config["model"])}
    missing = [r.problem_id for r in results if r.problem_id not in problems]
    if missing:
        raise SystemExit(f"reselect.py: {len(missing)} recorded problems are not in the run's dataset (first: {missing[0]})")
    writes_tests = name in ("codet", "s_star") or getattr(select, "inputs", "visible") != "visible"
    seed = config.get("seed", 0)
    with contextlib.ExitStack() as stack:
        grader = stack.enter_context(build_grader(config["dataset"], config["grader"], config.get("model")))
        backend = None
        if writes_tests:
            path = build_model_path(config["model"]) if needs_model_weights(config["backend"]) else None
            backend = stack.enter_context(build_backend(config["backend"], path, seed))

        async def every() -> list[Result]:
            limit = asyncio.Semaphore(16)

            async def one(result: Result) -> Result:
                if result.error or not result.candidates:
                    return result
                problem = problems[result.problem_id]
                ctx = Context(problem=problem, backend=backend, grader=grader, run_seed=seed)
                async with limit:
                    selection = await select.choose(problem, ctx, trajectories_of(result),
                                                    [c.group for c in result.candidates])
                return reselected(result, selection, ctx.usage)

            return list(await asyncio.gather(*(one(r) for r in results)))

        return asyncio.run(every())


def genselect_results(run: Path, results: list[Result], config: dict) -> list[Result]:
    from ttscale.build import build_backend, build_model_path, needs_model_weights

    strategy = config.get("strategy") or {}
    select = GenSelect(**{k: strategy[c] for k, c in (("window", "judge_window"), ("judgments", "judgments"),
                                                       ("mode", "judge_mode"), ("orderings", "judge_orderings"),
                                                       ("judge_temperature", "judge_temperature"),
                                                       ("judge_tokens", "judge_tokens")) if c in strategy})
    path = build_model_path(config["model"]) if needs_model_weights(config["backend"]) else None
    with build_backend(config["backend"], path, config.get("seed", 0)) as backend:
        return asyncio.run(judge_all(results, select, backend, config.get("seed", 0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--select", required=True, choices=sorted([*SELECTIONS, *CODE_SELECTIONS]))
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", action="append", default=[],
                        help="genselect, codet, mbr_exec: a setting, e.g. --set strategy.judgments=4 (the keys of "
                             "conf/strategy/NAME.yaml)")
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    loaded = list(load_results(run / "results.jsonl").values())
    if args.select == "genselect":
        for key, value in (o.split("=", 1) for o in args.set):  # strategy.judgments=4, ...
            section, _, name = key.partition(".")
            config.setdefault(section, {})[name] = yaml.safe_load(value)
        results = genselect_results(run, loaded, config)
    elif args.select in CODE_SELECTIONS:
        if (config.get("dataset") or {}).get("format", "qa") == "qa":
            raise SystemExit(f"reselect.py: --select {args.select} runs programs: {run} is not a code run")
        settings = [(key.partition("."), yaml.safe_load(value)) for key, value in (o.split("=", 1) for o in args.set)]
        config["set"] = {name: value for (section, _, name), value in settings if section == "strategy"}
        config["dataset"] = {**config["dataset"], **{name: value for (section, _, name), value in settings
                                                      if section == "dataset"}}  # e.g. dataset.visible_tests=1
        results = code_results(loaded, args.select, config)
        config["strategy"] = {**(config.get("strategy") or {}), **config.pop("set")}
    else:
        from ttscale.strategies.select.base import MissingStatistic

        try:
            results = [reselect(r, SELECTIONS[args.select]()) for r in loaded]
        except MissingStatistic as exc:  # e.g. best_score on a run whose samples carry no score
            raise SystemExit(f"reselect.py: {run}: {exc}") from None
    if any(r.candidates and r.candidates[0].group is None and r.candidates[0].answer is not None for r in results):
        raise SystemExit(f"{run}: candidates carry no answer groups; re-selection needs a graded run")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as handle:
        for r in results:
            handle.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
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
