"""A job as the CLI runs it — the config composed by Hydra from the same overrides, the problems, grader
and strategy built by ttscale.build — but on the test session's shared engine (conftest's
`vllm_backend`) instead of a process and an engine of its own: the CLI's path is tested by test_cli.py
(end to end, and a sweep on one engine in test_cli_killed.py); a method's engine test needs only the
engine."""

from __future__ import annotations

import json
from pathlib import Path


def own_overrides(strategy: str, overrides: list[str]) -> list[str]:
    """`strategy=NAME` and those of `overrides` that this strategy reads: a sweep's shared overrides
    (`strategy.batch=1` for the adaptive method among several) cut to one job's, as the CLI accepts
    them for a sweep whose some strategy reads each."""
    from ttscale.build import strategy_keys
    from ttscale.config import group_config

    keys = strategy_keys(group_config("strategy", strategy))
    return [f"strategy={strategy}"] + [o for o in overrides
                                       if not o.startswith("strategy.") or o.split("=")[0].split(".", 1)[1] in keys]


def run_job(backend, overrides: list[str], out_dir: Path, trace: bool = False) -> tuple[dict, list[dict]]:
    """The job's summary (the runtime's) and its rows as results.jsonl holds them; with trace, its
    trace.jsonl.gz in out_dir as `trace=true` writes it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ttscale.build import build_grader, build_problems, build_strategy, model_stop
    from ttscale.cli import check_overrides
    from ttscale.config import CONFIG_NAME, conf_dir, register_schemas
    from ttscale.runtime import run
    from ttscale.tracing.recorder import TRACE_FILE

    assert check_overrides(overrides) is None, check_overrides(overrides)  # as the CLI checks before it starts
    register_schemas()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose(config_name=CONFIG_NAME, overrides=overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    problems = build_problems(resolved["dataset"], resolved["model"])
    with build_grader(resolved["dataset"], resolved["grader"], resolved["model"]) as grader:
        strategy = build_strategy(resolved["strategy"], resolved["verifier"], backend, grader,
                                  extra_stop=model_stop(resolved["model"]),
                                  step_delimiter=resolved["model"]["step_delimiter"])
        outcome = run(strategy, problems, backend, seed=resolved["seed"], output=out_dir / "results.jsonl",
                      grader=grader, progress=False, trace=out_dir / TRACE_FILE if trace else None)
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    return outcome.summary, rows
