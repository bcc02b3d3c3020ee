"""A job as the CLI runs it — the config composed by Hydra from the same overrides, the problems, grader
and strategy built by ttscale.build — but on the test session's shared engine (conftest's
`vllm_backend`) instead of a process and an engine of its own: the CLI's path is tested by test_cli.py;
a method's engine test needs only the engine."""

from __future__ import annotations

import json
from pathlib import Path


def run_job(backend, overrides: list[str], out_dir: Path) -> tuple[dict, list[dict]]:
    """The job's summary (the runtime's) and its rows as results.jsonl holds them."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ttscale.build import build_grader, build_problems, build_strategy, model_stop
    from ttscale.cli import CONFIG_NAME, check_overrides
    from ttscale.config import conf_dir, register_schemas
    from ttscale.runtime import run

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
                      grader=grader, progress=False)
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    return outcome.summary, rows
