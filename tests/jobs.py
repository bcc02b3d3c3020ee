"""A sweep's job folders are named by their overrides (conf/config.yaml): find job `num` of a sweep."""

from __future__ import annotations

from pathlib import Path

import yaml


def job_dir(sweep: Path, num: int) -> Path:
    """The folder of the sweep's job number `num` (Hydra's order of the jobs)."""
    for hydra_yaml in Path(sweep).glob("*/.hydra/hydra.yaml"):
        if (yaml.safe_load(hydra_yaml.read_text()) or {})["hydra"]["job"].get("num") == num:
            return hydra_yaml.parent.parent
    raise FileNotFoundError(f"{sweep}: no job number {num}")


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a `python -m ttscale.cli` child: this process's, without LD_PRELOAD. An
    in-process engine started earlier in the session (the vllm_backend fixture) leaves vLLM's own
    LD_PRELOAD (tcmalloc and torch's libgomp) in os.environ; a child engine would then see GNU and
    Intel OpenMP both preloaded (ttscale's CLI preloads libiomp5) and refuse to start."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}
